#!/usr/bin/env python
"""Host training-step benchmark: full update against sparse update on mbv2-tiny.

    .venv/bin/python bench/engine_step.py            # writes bench/results/engine_step.{md,json}
    .venv/bin/python bench/engine_step.py --quick    # tiny sizes, a smoke run (results to --out)

Pre-selection: every trainable layer of models/mbv2-tiny.onnx (16 layers, 841
input channels), so that "full update" is plain full fine-tuning of the
weights (biases frozen in every variant, so that only channel selection
differs). The variants, all selections of these layers:

  full          every channel of every pre-selected layer
  uniform 5%    5% of the channels by count, seeded, uniform (importance-free)
  importance 5% 5% drawn as the medyate strategy draws them (Gumbel top-k on
                I_c = E_c / cost, temperature 1) from a short ranking run
  deep 5%       5% drawn uniformly among the deepest layers only (input map at
                the smallest spatial size, i.e. the 4x4 stage, and the head)
  with stem 5%  the stem conv's only input channel plus uniform draws for the
                rest: backward has to reach the first op

Backward input-gradient work depends only on how deep backward reaches (the
deepest op with a selected channel), not on how many channels are selected;
only the weight-gradient work scales with the selection. The variants show
that split.

Measured: the C engine (the host build through cffi, -O2, single thread)
per-phase wall time of mdy_train_forward / mdy_train_backward / mdy_sgd_step
at batch 1 (one SGD step per sample), and the whole-epoch throughput at batch
1 and batch 8. If torch is importable, the same masked fine-tuning step in
PyTorch on the CPU in the same run: an equivalent module built from the IR
graph with the IR's folded weights, weight gradients masked to the same
selected input channels (only layers with a selected channel require grad, so
autograd stops at the same depth), plain SGD, batch 1 and batch 8, with
torch.set_num_threads(1) so both sides use one core.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "host"))

from medyate.algo.importance import ChannelImportance  # noqa: E402
from medyate.algo.ranking import ranking_run  # noqa: E402
from medyate.algo.sampling import priority_order  # noqa: E402
from medyate.algo.trainer import HostEngineFactory  # noqa: E402
from medyate.engine.host import HostEngine, check  # noqa: E402
from medyate.ir.onnx_import import load_onnx  # noqa: E402
from medyate.planner.compute import step_macs  # noqa: E402

MODEL = REPO / "models" / "mbv2-tiny.onnx"
FRACTION = 0.05
LR = 0.01


# ------------------------------------------------------------------ selections
def make_selections(layers, importance_fn, seed: int) -> dict[str, list[tuple[int, int]]]:
    """Variant name -> sorted (layer, channel) pairs. importance_fn(pairs) gives
    I_c per pair, or None to leave the importance variant out."""
    pairs = [(li, c) for li, l in enumerate(layers) for c in range(l.channels)]
    n = max(1, round(FRACTION * len(pairs)))
    rng = np.random.default_rng(seed)
    out = {"full": pairs}
    idx = rng.choice(len(pairs), size=n, replace=False)
    out["uniform 5%"] = sorted(pairs[i] for i in idx)
    if importance_fn is not None:
        order = priority_order(importance_fn(pairs), 1.0, np.random.default_rng(seed + 1))
        out["importance 5%"] = sorted(pairs[i] for i in order[:n])
    smallest = min(l.map_size for l in layers if l.map_size > 1)
    deep = [p for p in pairs if layers[p[0]].map_size <= smallest]
    idx = np.random.default_rng(seed + 2).choice(len(deep), size=min(n, len(deep)), replace=False)
    out["deep 5%"] = sorted(deep[i] for i in idx)
    rest = [p for p in pairs if p[0] != 0]
    idx = np.random.default_rng(seed + 3).choice(len(rest), size=n - layers[0].channels,
                                                 replace=False)
    out["with stem 5%"] = sorted([(0, c) for c in range(layers[0].channels)] + [rest[i] for i in idx])
    return out


# ------------------------------------------------------------------ timing
# The machine may be shared: per-phase times are the median over all timed
# samples (every sample costs the same work, so the median drops the ones a
# preemption hit), the batch-8 throughput the best of the repeats, and the
# variants are interleaved repeat by repeat so a change in load hits all alike.
class Timing:
    def __init__(self):
        self.f, self.b, self.u, self.b8 = [], [], [], math.inf

    def summary(self, n: int) -> dict:
        f, b, u = (float(np.median(v)) / 1e3 for v in (self.f, self.b, self.u))
        return {"forward_us": f, "backward_us": b, "update_us": u, "step_us": f + b + u,
                "samples_per_s_b1": 1e6 / (f + b + u), "samples_per_s_b8": n / self.b8}


def engine_runner(eng: HostEngine, xs_nhwc, ys, sel):
    """A callable timing one batch-1 epoch and one batch-8 epoch of the C engine
    (mdy_train_forward / mdy_train_backward / mdy_sgd_step) into a Timing.
    Weights change as it trains; the cost of a step does not."""
    ffi, lib, ctx = eng.ffi, eng.lib, eng.ctx
    ptrs = [ffi.from_buffer("float[]", x) for x in xs_nhwc]
    labels = [int(v) for v in ys]
    n = len(ptrs)
    pc = time.perf_counter_ns

    def run(t: Timing):
        eng.set_selection(sel)
        for i in range(min(2, n)):       # warm-up after the switch of selection
            check(lib.mdy_train_sample(ctx, ptrs[i], labels[i], 1), "train")
            lib.mdy_sgd_step(ctx, LR)
        for i in range(n):
            t0 = pc()
            check(lib.mdy_train_forward(ctx, ptrs[i]), "forward")
            t1 = pc()
            check(lib.mdy_train_backward(ctx, labels[i], 1), "backward")
            t2 = pc()
            lib.mdy_sgd_step(ctx, LR)
            t3 = pc()
            t.f.append(t1 - t0)
            t.b.append(t2 - t1)
            t.u.append(t3 - t2)
        t0 = time.perf_counter()
        for b0 in range(0, n, 8):
            chunk = range(b0, min(n, b0 + 8))
            for i in chunk:
                check(lib.mdy_train_sample(ctx, ptrs[i], labels[i], len(chunk)), "train")
            lib.mdy_sgd_step(ctx, LR)
        t.b8 = min(t.b8, time.perf_counter() - t0)
    return run


# ------------------------------------------------------------------ torch
def torch_module(graph):
    """An nn.Module computing `graph` (Conv, Clip/Relu, Add, GlobalAveragePool,
    Flatten/Reshape, Gemm) with the IR's folded weights."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class IRNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.nodes = list(graph.nodes)
            self.layers = nn.ModuleDict()
            self.key = {}
            for k, node in enumerate(self.nodes):
                if node.op == "Conv":
                    w = torch.from_numpy(node.params["weight"].copy())
                    m = nn.Conv2d(w.shape[1] * node.attrs.get("group", 1), w.shape[0],
                                  tuple(w.shape[2:]), stride=node.attrs["strides"],
                                  groups=node.attrs.get("group", 1), bias=True)
                elif node.op == "Gemm":
                    w = torch.from_numpy(node.params["weight"].copy())
                    m = nn.Linear(w.shape[1], w.shape[0], bias=True)
                elif node.op in ("Clip", "Relu", "Add", "GlobalAveragePool", "Flatten",
                                 "Reshape"):
                    continue
                else:
                    raise NotImplementedError(f"torch reference: op {node.op}")
                with torch.no_grad():
                    m.weight.copy_(w)
                    m.bias.copy_(torch.from_numpy(node.params["bias"].copy()))
                self.key[node.name] = f"l{k}"
                self.layers[f"l{k}"] = m

        def forward(self, x):
            env = {graph.input: x}
            for node in self.nodes:
                a = [env[i] for i in node.inputs]
                if node.op == "Conv":
                    t, l, b, r = node.attrs["pads"]
                    if (t, l) == (b, r):
                        m = self.layers[self.key[node.name]]
                        y = F.conv2d(a[0], m.weight, m.bias, m.stride, (t, l), 1, m.groups)
                    else:
                        m = self.layers[self.key[node.name]]
                        y = F.conv2d(F.pad(a[0], (l, r, t, b)), m.weight, m.bias, m.stride, 0, 1,
                                     m.groups)
                elif node.op == "Gemm":
                    y = self.layers[self.key[node.name]](a[0])
                elif node.op == "Clip":
                    y = torch.clamp(a[0], node.attrs.get("min", -math.inf),
                                    node.attrs.get("max", math.inf))
                elif node.op == "Relu":
                    y = torch.relu(a[0])
                elif node.op == "Add":
                    y = a[0] + a[1]
                elif node.op == "GlobalAveragePool":
                    y = a[0].mean(dim=(2, 3), keepdim=True)
                else:                                   # Flatten / Reshape
                    y = a[0].reshape(a[0].shape[0], -1)
                env[node.outputs[0]] = y
            return env[graph.output]

    return IRNet()


def torch_masks(net, graph, program, sel):
    """Per trainable weight, the mask of the selected input channels (same
    slices as the engine's: W[:, c] dense / FC, W[c*m:(c+1)*m] depthwise)."""
    import torch
    masks = {}
    for li, c in sel:
        l = program.layers[li]
        m = net.layers[net.key[l.name]]
        if l.name not in masks:
            masks[l.name] = (m.weight, torch.zeros_like(m.weight))
        node = graph.node(l.name)
        if node.is_depthwise:
            mult = m.weight.shape[0] // l.channels
            masks[l.name][1][c * mult:(c + 1) * mult] = 1
        else:
            masks[l.name][1][:, c] = 1
    return list(masks.values())


def torch_setup(net, graph, program, sel):
    for p in net.parameters():
        p.requires_grad_(False)
    masks = torch_masks(net, graph, program, sel)
    for w, _ in masks:
        w.requires_grad_(True)
    return masks


def torch_runner(net, graph, program, sel, x, y):
    """The same as engine_runner for the masked torch step."""
    import torch
    import torch.nn.functional as F
    xt, yt = torch.from_numpy(x), torch.from_numpy(np.asarray(y, dtype=np.int64))
    n = len(xt)
    pc = time.perf_counter_ns

    def run(t: Timing):
        masks = torch_setup(net, graph, program, sel)

        def update():
            with torch.no_grad():
                for w, mk in masks:
                    w.sub_(LR * w.grad * mk)
                    w.grad = None

        for i in range(min(2, n)):
            F.cross_entropy(net(xt[i:i + 1]), yt[i:i + 1]).backward()
            update()
        for i in range(n):
            t0 = pc()
            loss = F.cross_entropy(net(xt[i:i + 1]), yt[i:i + 1])
            t1 = pc()
            loss.backward()
            t2 = pc()
            update()
            t3 = pc()
            t.f.append(t1 - t0)
            t.b.append(t2 - t1)
            t.u.append(t3 - t2)
        t0 = time.perf_counter()
        for b0 in range(0, n, 8):
            F.cross_entropy(net(xt[b0:b0 + 8]), yt[b0:b0 + 8]).backward()
            update()
        t.b8 = min(t.b8, time.perf_counter() - t0)
    return run


def agreement(graph, sel, x, y) -> float:
    """One SGD step on one sample, engine against torch: the largest absolute
    difference of the weight changes (both from the same pre-trained weights)."""
    import torch
    import torch.nn.functional as F
    eng = HostEngine(graph.copy(), trainable=[n.name for n in graph.trainable_nodes()],
                     budget_elements=full_budget(graph))
    before = eng.weights()
    eng.set_selection(sel)
    eng.train_epoch(x[:1], y[:1], 1, 1.0)
    after = eng.weights()
    net = torch_module(graph)
    masks = torch_setup(net, graph, eng.program, sel)
    F.cross_entropy(net(torch.from_numpy(x[:1])), torch.tensor([int(y[0])])).backward()
    worst = 0.0
    names = {id(w): name for name, k in net.key.items() for w in [net.layers[k].weight]}
    for w, mk in masks:
        name = names[id(w)]
        d_torch = -(w.grad * mk).numpy()
        d_eng = after[name][0] - before[name][0]
        worst = max(worst, float(np.abs(d_torch - d_eng).max()))
    return worst


def full_budget(graph) -> int:
    """Channel budget (elements) holding every channel of every trainable layer."""
    return sum(s.total_cost for s in HostEngineFactory(graph).layers)


# ------------------------------------------------------------------ report
def fmt_int(v) -> str:
    return f"{int(v):,}"


def render(res: dict) -> str:
    rows = res["variants"]
    has_torch = res["torch"] is not None
    lines = []
    hdr = ["selection", "channels", "reach", "fwd MACs", "bwd-input MACs", "bwd-weight MACs",
           "total MACs", "bwd MACs ÷ full", "medyate fwd µs", "medyate bwd µs",
           "medyate upd µs", "medyate bwd time ÷ full", "medyate samples/s b1",
           "medyate samples/s b8"]
    if has_torch:
        hdr += ["torch fwd µs", "torch bwd µs", "torch upd µs", "torch bwd time ÷ full",
                "torch samples/s b1", "torch samples/s b8"]
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "---|" * len(hdr))
    for r in rows:
        m, e = r["macs"], r["medyate"]
        cells = [r["name"], fmt_int(r["channels"]), r["reach"], fmt_int(m["forward"]),
                 fmt_int(m["backward_input"]), fmt_int(m["backward_weight"]), fmt_int(m["total"]),
                 f"{r['ratio_backward_macs']:.3f}", f"{e['forward_us']:.0f}",
                 f"{e['backward_us']:.0f}", f"{e['update_us']:.1f}",
                 f"{r['ratio_backward_time_medyate']:.3f}", f"{e['samples_per_s_b1']:.0f}",
                 f"{e['samples_per_s_b8']:.0f}"]
        if has_torch:
            t = r["torch"]
            cells += [f"{t['forward_us']:.0f}", f"{t['backward_us']:.0f}", f"{t['update_us']:.0f}",
                      f"{r['ratio_backward_time_torch']:.3f}", f"{t['samples_per_s_b1']:.0f}",
                      f"{t['samples_per_s_b8']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    ap.add_argument("--samples", type=int, default=None, help="samples per timed epoch")
    ap.add_argument("--repeats", type=int, default=None, help="best of N timed epochs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-torch", action="store_true", help="leave the PyTorch side out")
    ap.add_argument("--out", default=str(REPO / "bench" / "results"),
                    help="directory for engine_step.md / .json")
    args = ap.parse_args(argv)
    samples = args.samples or (16 if args.quick else 256)
    repeats = args.repeats or (1 if args.quick else 5)
    ranking_samples = 16 if args.quick else 128

    from medyate.data import load_task
    graph = load_onnx(str(MODEL))
    task = load_task("fmnist-5to9", seed=args.seed, n_train=max(samples, ranking_samples),
                     n_test=10)
    x = np.ascontiguousarray(task.x_train[:samples], dtype=np.float32)
    y = np.asarray(task.y_train[:samples], dtype=np.int64)
    xs_nhwc = [np.ascontiguousarray(v.transpose(1, 2, 0)).reshape(-1) for v in x]

    names = [n.name for n in graph.trainable_nodes()]
    budget = full_budget(graph)
    eng = HostEngine(graph.copy(), trainable=names, budget_elements=budget)
    layers, program = eng.layers, eng.program

    factory = HostEngineFactory(graph)
    run = ranking_run(factory, task.x_train, task.y_train, samples=ranking_samples, batch=8,
                      lr=LR, seed=args.seed)
    imp = ChannelImportance.from_energy(factory.layers, run.energy)
    by_index = {i: l.name for i, l in enumerate(layers)}
    sels = make_selections(layers, lambda pairs: imp.importances(
        [(by_index[li], c) for li, c in pairs]), args.seed)

    torch_info = None
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(1)
            torch_info = {"version": torch.__version__, "threads": torch.get_num_threads()}
        except ImportError:
            torch = None

    rows, runners = [], []
    for name, sel in sels.items():
        macs = step_macs(program, sel)
        macs["backward"] = macs["backward_input"] + macs["backward_weight"]
        first = min(li for li, _ in sel)
        rows.append({"name": name, "channels": len(sel), "layers": len({li for li, _ in sel}),
                     "reach": layers[first].name, "reach_op": program.layers[first].op,
                     "macs": macs})
        r = [("medyate", engine_runner(eng, xs_nhwc, y, sel), Timing())]
        if torch is not None:
            # one module per variant: requires_grad differs between variants
            r.append(("torch", torch_runner(torch_module(graph), graph, program, sel, x, y),
                      Timing()))
        runners.append(r)
    for rep in range(repeats):
        for row, r in zip(rows, runners):
            for _, run, t in r:
                run(t)
        print(f"  repeat {rep + 1}/{repeats} done", flush=True)
    for row, r in zip(rows, runners):
        for side, _, t in r:
            row[side] = t.summary(samples)
    full = rows[0]
    for r in rows:
        r["ratio_backward_macs"] = r["macs"]["backward"] / full["macs"]["backward"]
        r["ratio_backward_time_medyate"] = r["medyate"]["backward_us"] / full["medyate"]["backward_us"]
        if "torch" in r:
            r["ratio_backward_time_torch"] = r["torch"]["backward_us"] / full["torch"]["backward_us"]
        # reach column: short layer name
        r["reach"] = r["reach"].replace("/features/features.", "f").replace("/Conv", "") \
            .replace("/body/body.", ".").replace("/classifier/Gemm", "classifier")
    if torch is not None:
        torch_info["max_abs_weight_delta_diff_one_step"] = agreement(
            graph, sels["uniform 5%"], x, y)

    res = {"model": "models/mbv2-tiny.onnx", "quick": args.quick, "samples": samples,
           "repeats": repeats, "lr": LR, "seed": args.seed, "fraction": FRACTION,
           "preselected_layers": len(layers), "preselected_channels": sum(l.channels for l in layers),
           "budget_elements": budget, "machine": platform.machine(),
           "python": platform.python_version(), "torch": torch_info, "variants": rows}
    table = render(res)
    print()
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "engine_step.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "engine_step.md").write_text(markdown(res, table))
    return 0


def markdown(res: dict, table: str) -> str:
    t = res["torch"]
    rows = {r["name"]: r for r in res["variants"]}
    f, u = rows["full"], rows["uniform 5%"]
    d, s = rows["deep 5%"], rows["with stem 5%"]
    txt = f"""# Host training step: full against sparse update (mbv2-tiny)

Produced by `.venv/bin/python bench/engine_step.py`{' --quick' if res['quick'] else ''}
({res['samples']} samples of `fmnist-5to9` per timed epoch, {res['repeats']} repeats,
lr {res['lr']}, seed {res['seed']}; {res['machine']}, Python {res['python']}).

Pre-selection: all {res['preselected_layers']} trainable layers ({res['preselected_channels']}
input channels); sparse variants train {FRACTION:.0%} of those channels (by count).
Biases are frozen everywhere. MACs per sample from `planner.compute.step_macs`;
"reach" is the deepest (closest to the input) selected layer, where backward stops
(fN = /features/features.N, fN.k its body.k).
Times are per sample at batch 1 (one SGD step per sample), the median over all
timed samples; samples/s b1 is 1 / (sum of the three medians); "b8" is the best
epoch throughput with one SGD step per 8 samples. Wall-clock times on a shared
2-core machine: expect ±20 % between runs; the MAC columns are exact.

{table}

- Sparse backward at 5% of the channels, drawn uniformly over the pre-selected
  layers: {u['ratio_backward_macs']:.3f} of full backward in MACs,
  {u['ratio_backward_time_medyate']:.3f} in measured time. The weight-gradient
  MACs shrink with the channel count, but the input-gradient MACs depend only on
  how deep backward reaches, and a uniform 5% almost always includes a channel of
  an early layer, so most of the input-gradient chain still runs.
- The same 5% restricted to the deepest layers: {d['ratio_backward_macs']:.3f} of
  full backward in MACs, {d['ratio_backward_time_medyate']:.3f} in time.
  Including the stem's channel makes backward run the whole input-gradient chain
  (bwd-input MACs equal to full update's): {s['ratio_backward_macs']:.3f} in MACs,
  {s['ratio_backward_time_medyate']:.3f} in time.
- Measured time falls further than MACs because the engine's weight-gradient
  kernels cost more per MAC than its input-gradient kernels (on the device about
  3× for dense and pointwise convs, bench/results/device_instr.md): full update's
  backward is {f['medyate']['backward_us'] / f['macs']['backward'] * 1e3:.2f} ns/MAC,
  uniform 5%'s {u['medyate']['backward_us'] / u['macs']['backward'] * 1e3:.2f} ns/MAC,
  forward {f['medyate']['forward_us'] / f['macs']['forward'] * 1e3:.2f} ns/MAC.
- Forward is the same in every variant, so at 5% it is over half of a step: the
  samples/s gain of sparse update is {u['medyate']['samples_per_s_b1'] / f['medyate']['samples_per_s_b1']:.2f}×
  (uniform) to {d['medyate']['samples_per_s_b1'] / f['medyate']['samples_per_s_b1']:.2f}× (deep), not 20×.
"""
    if t:
        txt += f"""- PyTorch {t['version']} on the CPU, `torch.set_num_threads(1)` (the C engine
  is single-threaded too): the same model built from the IR graph with the IR's
  folded weights, only layers with a selected channel require grad, the weight
  gradients are masked to the selected input channels before a plain SGD step.
  torch computes the full weight gradient of every layer that has a selected
  channel and masks it afterwards, so its weight-gradient work does not shrink
  with the selection as the engine's does; both stop backward at the same depth.
  One SGD step on one sample from the same weights, engine against torch: weight
  changes differ by at most {t['max_abs_weight_delta_diff_one_step']:.2e}.
- At batch 1 the engine is {f['medyate']['samples_per_s_b1'] / f['torch']['samples_per_s_b1']:.1f}× torch's
  throughput for full update and {u['medyate']['samples_per_s_b1'] / u['torch']['samples_per_s_b1']:.1f}× for uniform 5%
  (most likely torch's per-op overhead, large next to ops this small). At batch 8 torch batches
  the samples through its kernels and reaches {f['torch']['samples_per_s_b8']:.0f} samples/s for
  full update; the engine trains per sample by design (activation memory of one
  sample), so its batch-8 throughput is its batch-1 throughput.
"""
    else:
        txt += "- torch was not importable: no PyTorch column.\n"
    return txt


if __name__ == "__main__":
    sys.exit(main())
