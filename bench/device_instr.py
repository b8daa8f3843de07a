#!/usr/bin/env python
"""Device benchmark in QEMU mps2-an500 (the Cortex-M7 stand-in): instructions per
MAC by layer type and phase, and instructions per training step, full against
sparse update, on mbv2-tiny.

    .venv/bin/python bench/device_instr.py           # writes bench/results/device_instr.{md,json}
    .venv/bin/python bench/device_instr.py --quick   # tiny sizes, a smoke run (results to --out)

QEMU runs with -icount shift=0, so the firmware's cycle counter counts executed
instructions (resolution 40, boards/qemu-mps2-an500/README.md): the per-phase
figures. Where a host C compiler can build it (`--counter plugin`, the default
then), QEMU also runs the TCG plugin boards/qemu-mps2-an500/qemu-plugin/ that
counts the instructions inside every function exactly, and part (a) gets an
exact table of the kernels alone. These are
instruction counts of the fp32 reference kernels built with the board's flags
(-O2, Cortex-M7, FPv5-SP), not cycles: a real M7 adds pipeline stalls, flash
wait states and cache misses, and dual-issue can take some back.

(a) Per layer type. For a layer T (dense conv 3x3, pointwise 1x1, depthwise
3x3, fully connected, each mapping its input shape to itself) two tiny models
are built with onnx.helper:

    M:  input -> P -> T -> GlobalAveragePool -> Flatten -> Gemm(10)
    B:  input -> P ->      GlobalAveragePool -> Flatten -> Gemm(10)

P is a depthwise 1x1 conv (a per-channel scale), there so that T is not the
first op and its input gradient is computed when P trains. No activations, so
nothing but T differs between M and B. Each is planned with every channel of
its convs selectable, built, and trained for a short epoch per selection:

    M/pre    all channels of P     backward = head + T input-grad + P weight-grad
    M/T      all channels of T     backward = head + T weight-grad
    M/T1     channel 0 of T        backward = head + T weight-grad of 1 channel
    M/all    all channels of P, T  (the "raw" row: whole-model phases)
    B/pre    all channels of P     backward = head + P weight-grad

    T forward       = fwd(M/pre) - fwd(B/pre)
    T input-grad    = bwd(M/pre) - bwd(B/pre)
    T weight-grad   = (bwd(M/T) - bwd(M/T1)) * C/(C-1)   (marginal per channel)
    T update        = (upd(M/T) - upd(M/T1)) / ((C-1) * slice)  per weight
    map save        = (fwd(M/T) - fwd(M/T1)) / ((C-1) * map)    per element

Each difference is divided by that phase's MACs from planner.compute.step_macs
(update: by the number of updated weights). What the differences include: the
kernel calls and their loops, the runtime's per-op dispatch, the gradient
zeroing/accumulation the runtime does for that op; what they leave out: the
loss, the head, the protocol loop and the cycle-counter reads, which are the
same on both sides. The raw row divides the whole phase of M/all by all of its
MACs and so includes all of that.

(b) mbv2-tiny: one firmware whose pre-selection is the deepest layers whose
full update (every channel's gradient slice and saved map in the pool) still
fits the board's 320 KB of RAM, trained at batch 1 (a training step = one
sample's forward and backward and one SGD step) with the full selection and
with 5% of the pre-selected channels (uniform over them, and restricted to the
deepest layers).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "host"))

from medyate.boards import get_board  # noqa: E402
from medyate.ir.onnx_import import load_onnx  # noqa: E402
from medyate.planner.arena import plan_arena  # noqa: E402
from medyate.planner.compute import step_macs  # noqa: E402
from medyate.planner.footprint import ram_footprint  # noqa: E402
from medyate.planner.program import lower  # noqa: E402

BOARD = "qemu-mps2-an500"
CLASSES = 10
LR = 0.01
FRACTION = 0.05


def tools_available() -> bool:
    return shutil.which("qemu-system-arm") is not None and \
        shutil.which("arm-none-eabi-gcc") is not None


# ------------------------------------------------------------------ tiny models
def tiny_onnx(path: Path, c: int, h: int, w: int, layer: str | None, seed: int) -> Path:
    """input [1,c,h,w] -> P (depthwise 1x1) -> [layer] -> GAP -> Flatten -> Gemm(10).
    layer: None (baseline), "dense3x3", "pointwise1x1", "depthwise3x3", "fc"."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def param(name, shape, fan_in):
        a = (rng.standard_normal(shape) * np.sqrt(1.0 / fan_in)).astype(np.float32)
        inits.append(numpy_helper.from_array(a, name))
        return name

    def conv(name, x, y, cout, cin_g, k, group):
        nodes.append(helper.make_node(
            "Conv", [x, param(name + ".w", (cout, cin_g, k, k), cin_g * k * k),
                     param(name + ".b", (cout,), 1e4)], [y], name=name,
            kernel_shape=[k, k], strides=[1, 1], pads=[k // 2] * 4, group=group))

    conv("P", "input", "p", c, 1, 1, c)
    x = "p"
    if layer == "dense3x3":
        conv("T", x, "t", c, c, 3, 1)
        x = "t"
    elif layer == "pointwise1x1":
        conv("T", x, "t", c, c, 1, 1)
        x = "t"
    elif layer == "depthwise3x3":
        conv("T", x, "t", c, 1, 3, c)
        x = "t"
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["g"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["g"], ["f"], name="flatten", axis=1))
    x = "f"
    if layer == "fc":
        nodes.append(helper.make_node("Gemm", [x, param("T.w", (c, c), c), param("T.b", (c,), 1e4)],
                                      ["t"], name="T", transB=1))
        x = "t"
    elif layer not in (None, "dense3x3", "pointwise1x1", "depthwise3x3"):
        raise ValueError(layer)
    nodes.append(helper.make_node("Gemm", [x, param("head.w", (CLASSES, c), c),
                                           param("head.b", (CLASSES,), 1e4)],
                                  ["logits"], name="head", transB=1))
    g = helper.make_graph(nodes, f"bench_{layer or 'base'}",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, c, h, w])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CLASSES])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


# layer type -> (input c, h, w). Shapes like mbv2-tiny's middle stages.
LAYER_TYPES = {
    "dense3x3": (16, 8, 8),
    "pointwise1x1": (32, 8, 8),
    "depthwise3x3": (32, 8, 8),
    "fc": (128, 1, 1),
}
QUICK_TYPES = {"pointwise1x1": (16, 4, 4)}


# ------------------------------------------------------------------ firmware
class Builder:
    """Builds firmware images one after another in one build tree (only the
    generated model changes between them, so all but the first build are
    incremental) and keeps a copy of each ELF."""

    def __init__(self, work: Path, log, kernels=None):
        self.work, self.log, self.kernels = work, log, kernels
        self.n = 0

    def build(self, graph, model_path, layers, budget) -> tuple[Path, object]:
        from medyate.session.firmware import build_device_firmware
        plan = types.SimpleNamespace(layers=list(layers), train_bias=False,
                                     budget_elements=int(budget), model=str(model_path),
                                     precision="fp32")
        t0 = time.perf_counter()
        program, build = build_device_firmware(graph, plan, BOARD, self.work / "fw",
                                               log=lambda s: None, kernels=self.kernels)
        self.n += 1
        elf = self.work / f"fw{self.n}_{Path(model_path).stem}.elf"
        shutil.copy(build.elf, elf)
        # the linker map: the exact counts attribute code to its object file
        shutil.copy(Path(build.elf).with_suffix(".map"), elf.with_suffix(".map"))
        self.log(f"  built {Path(model_path).name} ({time.perf_counter() - t0:.1f} s)")
        return elf, program


def full_budget(program) -> int:
    return sum(l.channels * (l.slice_size + l.map_size) for l in program.layers)


def kernel_names() -> dict[str, str]:
    """Every kernel (firmware/src/kernels/**, one per file, named after its
    file; the profile counts each object file, its static helpers included)
    and the phase it belongs to."""
    out = {}
    for f in sorted((REPO / "firmware" / "src" / "kernels").rglob("mdy_*.c")):
        n = f.stem
        out[n] = ("backward_input" if "_igrad" in n else
                  "backward_weight" if "_wgrad" in n or "bias_grad" in n else
                  "update" if "sgd" in n else
                  "loss" if "xent" in n else "forward")
    return out


def kernel_phases(counts: dict) -> dict:
    """Exact instructions inside the kernels of each phase (the plugin's profile)."""
    out = {"forward": 0, "backward_input": 0, "backward_weight": 0, "update": 0, "loss": 0}
    for name, phase in kernel_names().items():
        out[phase] += counts.get(name, 0)
    return out


def run_selections(elf: Path, dataset: Path, selections: dict, n: int, batch: int,
                   exact: bool) -> dict:
    """Train one epoch of n samples per selection; return the per-phase
    instruction counts the device measures (SysTick, resolution 40) and, when
    `exact`, the exact instructions inside each phase's kernels (the QEMU
    plugin; one QEMU run per selection, since a profile covers a whole run)."""
    if not exact:
        return _run(elf, dataset, selections, n, batch, None)
    from medyate.session.insn_profile import InsnProfile
    out = {}
    for name, sel in selections.items():
        prof = InsnProfile(elf, map_file=elf.with_suffix(".map"))
        out.update(_run(elf, dataset, {name: sel}, n, batch, prof))
        out[name]["kernels"] = kernel_phases(prof.read())
    return out


def _run(elf, dataset, selections, n, batch, prof) -> dict:
    from medyate.protocol.device import Device
    from medyate.protocol.link import Link
    from medyate.session.qemu import QemuMachine

    out = {}
    extra = prof.qemu_args() if prof is not None else ()
    with QemuMachine(elf, dataset, timeout=2.0, extra_args=extra) as q:
        dev = Device(Link(q.serial, timeout=10.0))
        info = dev.info()
        assert info.cycles_hz == 1_000_000_000, info.cycles_hz
        for name, sel in selections.items():
            dev.set_selection(sel)
            st = dev.run_epoch("train", 0, n, batch=batch, lr=LR, seed=1, timeout=600.0)
            if st.seen != n or not np.isfinite(st.loss):
                raise RuntimeError(f"{name}: epoch saw {st.seen} samples, loss {st.loss}")
            out[name] = {"forward": st.cycles_forward, "backward": st.cycles_backward,
                         "update": st.cycles_update, "total": st.cycles_total,
                         "samples": st.seen, "steps": st.steps,
                         "stack_high_water": st.stack_high_water}
        try:
            dev.shutdown()
            if prof is not None:
                q.wait(timeout=30)      # the plugin writes its counts as QEMU exits
        except Exception:  # QEMU is stopped on the way out anyway
            if prof is not None:
                raise
    return out


def dataset_image(path: Path, shape, n: int, seed: int) -> Path:
    from medyate.protocol.dataset_image import write_dataset_image
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    y = rng.integers(0, CLASSES, n)
    return write_dataset_image(path, x, y, x[:1], y[:1], classes=CLASSES)


# ------------------------------------------------------------------ (a)
def bench_layer_types(types_: dict, builder: Builder, work: Path, n: int, batch: int,
                      seed: int, log, exact: bool) -> list[dict]:
    rows = []
    baselines: dict = {}
    for kind, (c, h, w) in types_.items():
        data = work / f"data_{c}x{h}x{w}.bin"
        if not data.exists():
            dataset_image(data, (c, h, w), n, seed)
        if (c, h, w) not in baselines:
            p = tiny_onnx(work / f"base_{c}x{h}x{w}.onnx", c, h, w, None, seed)
            g = load_onnx(str(p))
            prog = lower(g.copy(), ["P"], False)
            elf, prog = builder.build(g, p, ["P"], full_budget(prog))
            sel = {"pre": [(0, k) for k in range(c)]}
            baselines[(c, h, w)] = (prog, run_selections(elf, data, sel, n, batch, exact))
        bprog, bres = baselines[(c, h, w)]
        p = tiny_onnx(work / f"{kind}.onnx", c, h, w, kind, seed)
        g = load_onnx(str(p))
        prog = lower(g.copy(), ["P", "T"], False)
        elf, prog = builder.build(g, p, ["P", "T"], full_budget(prog))
        T = prog.layers[1]
        sels = {"pre": [(0, k) for k in range(c)],
                "T": [(1, k) for k in range(T.channels)],
                "T1": [(1, 0)],
                "all": [(0, k) for k in range(c)] + [(1, k) for k in range(T.channels)]}
        res = run_selections(elf, data, sels, n, batch, exact)
        rows.append(layer_row(kind, (c, h, w), prog, bprog, res, bres["pre"], sels))
        r = rows[-1].get("kernel") or rows[-1]
        log(f"  {kind}: fwd {r['forward_per_mac']:.2f}, bwd-input {r['backward_input_per_mac']:.2f},"
            f" bwd-weight {r['backward_weight_per_mac']:.2f} instr/MAC, update"
            f" {r['update_per_weight']:.2f} instr/weight"
            f" ({'kernels, exact' if 'kernel' in rows[-1] else 'phases, SysTick'})")
    return rows


def layer_row(kind, shape, prog, bprog, res, base, sels) -> dict:
    T = prog.layers[1]
    top = prog.ops[T.op]
    from medyate.planner.compute import op_macs, wgrad_macs_per_channel
    fwd_macs = op_macs(prog, T.op)
    igrad_macs = fwd_macs                       # dx of a conv / FC: as many MACs as forward
    wgrad_macs = T.channels * wgrad_macs_per_channel(prog, 1)
    per = lambda r, ph: r[ph] / r["samples"]     # noqa: E731
    per_step = lambda r: r["update"] / r["steps"]  # noqa: E731
    C = T.channels
    fwd = per(res["pre"], "forward") - per(base, "forward")
    igrad = per(res["pre"], "backward") - per(base, "backward")
    wgrad = (per(res["T"], "backward") - per(res["T1"], "backward")) * C / (C - 1)
    upd = (per_step(res["T"]) - per_step(res["T1"])) / ((C - 1) * T.slice_size)
    save = (per(res["T"], "forward") - per(res["T1"], "forward")) / ((C - 1) * T.map_size)
    raw_macs = step_macs(prog, sels["all"])
    raw = res["all"]
    n_weights = sum(l.channels * l.slice_size for l in prog.layers)
    p = top.params
    kernel = None
    if "kernels" in base:
        k = lambda r, ph: r["kernels"][ph] / r["samples"]     # noqa: E731
        k_step = lambda r: r["kernels"]["update"] / r["steps"]  # noqa: E731
        kf = k(res["pre"], "forward") - k(base, "forward")
        ki = k(res["pre"], "backward_input") - k(base, "backward_input")
        kw = (k(res["T"], "backward_weight") - k(res["T1"], "backward_weight")) * C / (C - 1)
        ku = (k_step(res["T"]) - k_step(res["T1"])) / ((C - 1) * T.slice_size)
        kernel = {"instr_forward": kf, "instr_backward_input": ki, "instr_backward_weight": kw,
                  "forward_per_mac": kf / fwd_macs, "backward_input_per_mac": ki / igrad_macs,
                  "backward_weight_per_mac": kw / wgrad_macs,
                  "input_grad_over_forward": ki / kf, "update_per_weight": ku}
    row = {
        "type": kind, "input_chw": list(shape),
        "layer": f"{p['in_c']}->{p['out_c']}, {p['k_h']}x{p['k_w']}, groups {p['groups']}, "
                 f"{p['out_h']}x{p['out_w']} out",
        "macs_forward": fwd_macs, "macs_backward_input": igrad_macs,
        "macs_backward_weight": wgrad_macs, "weights": C * T.slice_size,
        "instr_forward": fwd, "instr_backward_input": igrad, "instr_backward_weight": wgrad,
        "forward_per_mac": fwd / fwd_macs,
        "backward_input_per_mac": igrad / igrad_macs,
        "backward_weight_per_mac": wgrad / wgrad_macs,
        "backward_per_mac": (igrad + wgrad) / (igrad_macs + wgrad_macs),
        "update_per_weight": upd,
        "map_save_per_element": save,
        "raw": {"forward_per_mac": per(raw, "forward") / raw_macs["forward"],
                "backward_per_mac": per(raw, "backward")
                / (raw_macs["backward_input"] + raw_macs["backward_weight"]),
                "update_per_weight": per_step(raw) / n_weights,
                "macs": raw_macs},
        "epochs": {"M": res, "B": base},
    }
    if kernel is not None:
        row["kernel"] = kernel
    return row


# ------------------------------------------------------------------ (b)
def full_update_ram(graph, names) -> int:
    """Device RAM (planner's figures + firmware static + stack) of a full update."""
    from medyate.algo.trainer import HostEngineFactory
    specs = [s for s in HostEngineFactory(graph).layers if s.name in set(names)]
    prog = lower(graph.copy(), list(names), False)
    plan_arena(prog, sum(s.total_cost for s in specs))
    return int(ram_footprint(prog, BOARD)["total"])


def deepest_fitting(graph) -> list[str]:
    """The most of the deepest trainable layers whose full update fits the board."""
    from medyate.algo.trainer import HostEngineFactory
    specs = HostEngineFactory(graph).layers
    ram = int(get_board(BOARD).ram)
    best = [specs[-1].name]
    for k in range(1, len(specs) + 1):
        names = [s.name for s in specs[-k:]]
        prog = lower(graph.copy(), names, False)
        plan_arena(prog, sum(s.total_cost for s in specs[-k:]))
        # 4 KiB of margin: the footprint's static part is an estimate
        if ram_footprint(prog, BOARD)["total"] + 4096 > ram:
            break
        best = names
    return best


def mbv2_selections(prog, seed: int) -> dict:
    layers = prog.layers
    pairs = [(li, c) for li, l in enumerate(layers) for c in range(l.channels)]
    n = max(1, round(FRACTION * len(pairs)))
    out = {"full": pairs}
    idx = np.random.default_rng(seed).choice(len(pairs), size=n, replace=False)
    out["uniform 5%"] = sorted(pairs[i] for i in idx)
    smallest = min(l.map_size for l in layers if l.map_size > 1)
    deep = [p for p in pairs if layers[p[0]].map_size <= smallest]
    idx = np.random.default_rng(seed + 2).choice(len(deep), size=min(n, len(deep)), replace=False)
    out["deep 5%"] = sorted(deep[i] for i in idx)
    return out


def short(name: str) -> str:
    return name.replace("/features/features.", "f").replace("/Conv", "") \
        .replace("/body/body.", ".").replace("/classifier/Gemm", "classifier")


def bench_mbv2(builder: Builder, work: Path, n: int, seed: int, log) -> dict:
    from medyate.data import bundled_model, load_task
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    names = deepest_fitting(graph)
    prog = lower(graph.copy(), names, False)
    elf, prog = builder.build(graph, path, names, full_budget(prog))
    task = load_task("fmnist-5to9", seed=seed, n_train=max(n, 10), n_test=10)
    data = work / "mbv2_data.bin"
    from medyate.protocol.dataset_image import write_dataset_image
    write_dataset_image(data, task.x_train[:n], task.y_train[:n], task.x_test[:1],
                        task.y_test[:1], classes=CLASSES)
    sels = mbv2_selections(prog, seed)
    res = run_selections(elf, data, sels, n, 1, False)
    rows = []
    for name, sel in sels.items():
        r = res[name]
        macs = step_macs(prog, sel)
        first = min(li for li, _ in sel)
        f, b = r["forward"] / r["samples"], r["backward"] / r["samples"]
        u = r["update"] / r["steps"]
        rows.append({"name": name, "channels": len(sel),
                     "weights": sum(prog.layers[li].slice_size for li, _ in sel),
                     "reach": short(prog.layers[first].name), "macs": macs,
                     "instr_forward": f, "instr_backward": b, "instr_update": u,
                     "instr_step": f + b + u,
                     "forward_per_mac": f / macs["forward"],
                     "backward_per_mac": b / (macs["backward_input"] + macs["backward_weight"]),
                     "stack_high_water": r["stack_high_water"], "epoch": r})
        log(f"  mbv2-tiny {name}: {f + b + u:,.0f} instructions per step")
    full = rows[0]
    for r in rows:
        r["ratio_backward_instr"] = r["instr_backward"] / full["instr_backward"]
        r["ratio_backward_macs"] = ((r["macs"]["backward_input"] + r["macs"]["backward_weight"])
                                    / (full["macs"]["backward_input"]
                                       + full["macs"]["backward_weight"]))
        r["ratio_step_instr"] = r["instr_step"] / full["instr_step"]
    mem = ram_footprint(prog, BOARD)
    every = [n.name for n in graph.trainable_nodes()]
    return {"preselected_layers": [short(x) for x in names], "all_layers": len(every),
            "all_layers_ram": full_update_ram(graph, every),
            "preselected_channels": sum(l.channels for l in prog.layers),
            "budget_elements": full_budget(prog), "ram_footprint": mem, "samples": n,
            "rows": rows}


# ------------------------------------------------------------------ report
def table_a(rows) -> str:
    hdr = ["layer type", "layer (input C×H×W)", "fwd MACs", "fwd instr/MAC",
           "bwd-input instr/MAC", "bwd-weight instr/MAC", "bwd instr/MAC",
           "update instr/weight", "map save instr/elem", "raw fwd instr/MAC",
           "raw bwd instr/MAC", "raw update instr/weight"]
    out = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for r in rows:
        c, h, w = r["input_chw"]
        out.append("| " + " | ".join([
            r["type"], f"{r['layer']} ({c}×{h}×{w})", f"{r['macs_forward']:,}",
            f"{r['forward_per_mac']:.2f}", f"{r['backward_input_per_mac']:.2f}",
            f"{r['backward_weight_per_mac']:.2f}", f"{r['backward_per_mac']:.2f}",
            f"{r['update_per_weight']:.2f}", f"{r['map_save_per_element']:.2f}",
            f"{r['raw']['forward_per_mac']:.2f}", f"{r['raw']['backward_per_mac']:.2f}",
            f"{r['raw']['update_per_weight']:.2f}"]) + " |")
    return "\n".join(out)


def table_k(rows) -> str:
    """The kernels alone, exact (QEMU plugin): what CMSIS-NN's per-MAC counts compare with."""
    hdr = ["layer type", "layer (input C×H×W)", "fwd instr/MAC", "bwd-input instr/MAC",
           "bwd-input ÷ fwd", "bwd-weight instr/MAC", "update instr/weight"]
    out = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for r in rows:
        k = r["kernel"]
        c, h, w = r["input_chw"]
        out.append("| " + " | ".join([
            r["type"], f"{r['layer']} ({c}×{h}×{w})", f"{k['forward_per_mac']:.2f}",
            f"{k['backward_input_per_mac']:.2f}", f"{k['input_grad_over_forward']:.2f}",
            f"{k['backward_weight_per_mac']:.2f}", f"{k['update_per_weight']:.2f}"]) + " |")
    return "\n".join(out)


def table_b(b) -> str:
    hdr = ["selection", "channels", "reach", "fwd MACs", "bwd-input MACs", "bwd-weight MACs",
           "fwd instr", "bwd instr", "update instr", "instr/step", "fwd instr/MAC",
           "bwd instr/MAC", "bwd MACs ÷ full", "bwd instr ÷ full", "step instr ÷ full",
           "ms/step at 216 MHz, 1 IPC"]
    out = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for r in b["rows"]:
        m = r["macs"]
        out.append("| " + " | ".join([
            r["name"], f"{r['channels']:,}", r["reach"], f"{m['forward']:,}",
            f"{m['backward_input']:,}", f"{m['backward_weight']:,}",
            f"{r['instr_forward']:,.0f}", f"{r['instr_backward']:,.0f}",
            f"{r['instr_update']:,.0f}", f"{r['instr_step']:,.0f}",
            f"{r['forward_per_mac']:.2f}", f"{r['backward_per_mac']:.2f}",
            f"{r['ratio_backward_macs']:.3f}", f"{r['ratio_backward_instr']:.3f}",
            f"{r['ratio_step_instr']:.3f}", f"{r['instr_step'] / 216e3:.1f}"]) + " |")
    return "\n".join(out)


def markdown(res) -> str:
    a, b = res["layer_types"], res["mbv2"]
    full, sparse = b["rows"][0], b["rows"][1]
    deep = b["rows"][-1]
    worst_fwd = max(a, key=lambda r: r["forward_per_mac"])
    best_fwd = min(a, key=lambda r: r["forward_per_mac"])
    fwd_lo, fwd_hi = best_fwd["forward_per_mac"], worst_fwd["forward_per_mac"]
    ig = [r["backward_input_per_mac"] for r in a]
    wg = [r["backward_weight_per_mac"] for r in a if r["type"] != "fc"] or \
        [r["backward_weight_per_mac"] for r in a]
    up = [r["update_per_weight"] for r in a]
    ig_lo, ig_hi, wg_lo, wg_hi = min(ig), max(ig), min(wg), max(wg)
    up_lo, up_hi = min(up), max(up)
    dp = [r for r in a if r["type"] in ("dense3x3", "pointwise1x1")] or a
    wg_over_ig = float(np.mean([r["backward_weight_per_mac"] / r["backward_input_per_mac"]
                                for r in dp]))
    exact = all("kernel" in r for r in a)
    kernels_md = f"""
### The kernels alone, exact

Instructions executed inside the kernels (one per file in
`firmware/src/kernels/`, each file's code with its static helpers, located by
the linker map and counted by the QEMU TCG plugin
`boards/qemu-mps2-an500/qemu-plugin/insn_profile.c`, exact), with the same
differences as above: forward and input-gradient kernels of `T` (M against B),
weight-gradient kernel over all of `T`'s channels (marginal per channel), the SGD
kernel per updated weight. The runtime's dispatch, gradient zeroing and map
copies are not in these; the table above has them.

{table_k(a)}
""" if exact else """
(The QEMU plugin was not used: no exact per-kernel table. Run without
`--counter systick` on a machine with a host C compiler.)
"""
    return f"""# Device instructions: per MAC by layer type, per step full against sparse

Produced by `.venv/bin/python bench/device_instr.py`{' --quick' if res['quick'] else ''}{' --kernels reference' if res.get('kernels') == 'reference' else ''}
in QEMU mps2-an500 (Cortex-M7, `-icount shift=0`: one cycle = one instruction,
SysTick resolution 40 for the phase figures; kernel figures exact from the TCG
plugin where marked), firmware built by `build_device_firmware` for
`{BOARD}` (arm-none-eabi-gcc {res['gcc']}, -O2, FPv5-SP hard float), with {KERNELS[res.get('kernels', 'board')]}. Instruction counts are exact and repeatable; they are not
M7 cycles (stalls, wait states and dual issue are not modelled).

## (a) Instructions per MAC by layer type

Each layer alone, from differences of short epochs ({res['layer_samples']} random
samples, batch {res['layer_batch']}) on two tiny models, `input -> P -> T -> GAP ->
Flatten -> Gemm(10)` and the same without `T` (P: depthwise 1×1), see the script's
docstring. Forward and backward-input per MAC of `T`, backward-weight per MAC of
all of `T`'s channels (marginal per channel), update per updated weight (one SGD
step on one slice: `w -= lr·g; g = 0` plus the squared-norm statistic), map save per
element of a selected channel's saved input map (forward). These include the
kernel loops and the runtime's per-op work and leave out the loss, the head and the
protocol loop. The "raw" columns divide whole phases of the model with every channel
of P and T selected by all of its MACs (step_macs) or weights: everything included.

{table_a(a)}
{kernels_md}
## (b) mbv2-tiny: instructions per training step, full against sparse update

Pre-selection: the deepest {len(b['preselected_layers'])} layers
({b['preselected_layers'][0]} … {b['preselected_layers'][-1]}, {b['preselected_channels']}
channels), the most whose full update fits the board's 320 KB: channel pool
{b['budget_elements']:,} elements, RAM {b['ram_footprint']['total']:,} B of 327,680
(arena {b['ram_footprint']['arena']:,} + trainable weights
{b['ram_footprint']['trainable_weights']:,} + firmware static + stack). Full update of
all {b['all_layers']} layers would need {b['all_layers_ram']:,} B and does not fit. Batch 1, so a step is one sample's
forward and backward plus one SGD step; {b['samples']} sample(s) of `fmnist-5to9`
per selection. Sparse: 5% of the pre-selected channels by count, uniform over them
or restricted to the deepest layers (input map 4×4 and the head). "reach": the
deepest selected layer, where backward stops (fN = /features/features.N, fN.k its
body.k). The last column is only the
instruction count at the F746's 216 MHz and one instruction per cycle, a floor.

{table_b(b)}

## Reading

- MACs are nominal (step_macs: every kernel tap, padding included; at 8×8 with a
  3×3 kernel and padding 1 only 84 % of the taps touch the input), so the per-MAC
  figures of 3×3 layers include the skipped border taps' loop overhead.
- The selected kernels cost {fwd_lo:.1f}–{fwd_hi:.1f} instructions per forward
  MAC with the runtime's per-op work ({best_fwd['type']} best, {worst_fwd['type']} worst).
  Input gradients cost {ig_lo:.1f}–{ig_hi:.1f} per MAC, weight gradients of convs
  {wg_lo:.1f}–{wg_hi:.1f} ({wg_over_ig:.1f}× the input gradient's cost per MAC for
  dense and pointwise convs). An SGD update costs {up_lo:.1f}–{up_hi:.1f} instructions
  per updated weight. The kernels alone are in the exact table of (a);
  `bench/kernel_instr.py` compares each optimized kernel with its reference.
- Sparse update at 5% of the channels, uniform over the pre-selected layers:
  backward {sparse['ratio_backward_instr']:.3f} of full update's instructions
  ({sparse['ratio_backward_macs']:.3f} in MACs; the instruction ratio is lower because
  the weight gradients it drops are the expensive part per MAC), a whole step
  {sparse['ratio_step_instr']:.3f}. Restricted to the deepest layers:
  backward {deep['ratio_backward_instr']:.3f}, a step {deep['ratio_step_instr']:.3f}.
  Forward is the same work in every variant (minus the maps the selection does not
  save) and is then most of a sparse step; the input-gradient chain down to the
  deepest selected layer is most of the rest.
- Full update of the pre-selected layers: {full['instr_step']:,.0f} instructions per
  step, about {full['instr_step'] / 216e3:.0f} ms at 216 MHz even at one instruction
  per cycle; 5% sparse: about {sparse['instr_step'] / 216e3:.0f} ms.
"""


KERNELS = {"board": "the\nkernels the board selects (`board.json` \"kernels\": the Cortex-M7 fp32 kernels of\n"
                    "`firmware/src/kernels/cortex-m7/` where they exist, the reference kernels\n"
                    "elsewhere)",
           "reference": "the reference\nkernels only (`firmware/src/kernels/reference/`, "
                        "MEDYATE_KERNELS empty: what the\noptimized kernels are measured against)"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "bench" / "results"),
                    help="directory for device_instr.md / .json")
    ap.add_argument("--work", default=None, help="build directory (default: a temporary one)")
    ap.add_argument("--counter", choices=("plugin", "systick"), default=None,
                    help="per-kernel exact counts with the QEMU plugin (default where a host "
                         "C compiler can build it), or the board's SysTick phases only")
    ap.add_argument("--kernels", choices=tuple(KERNELS), default="board",
                    help="the board's kernel selection (default), or the reference kernels "
                         "only (writes device_instr_reference.md / .json)")
    args = ap.parse_args(argv)
    if not tools_available():
        print("needs qemu-system-arm and arm-none-eabi-gcc", file=sys.stderr)
        return 2
    import subprocess
    gcc = subprocess.run(["arm-none-eabi-gcc", "-dumpversion"], capture_output=True,
                         text=True).stdout.strip()
    from medyate.session import insn_profile
    if args.counter == "plugin" and not insn_profile.available():
        print("--counter plugin needs a host C compiler (cc) and arm-none-eabi-nm",
              file=sys.stderr)
        return 2
    exact = insn_profile.available() if args.counter is None else args.counter == "plugin"
    layer_samples, layer_batch = (2, 2) if args.quick else (8, 4)
    mbv2_samples = 1 if args.quick else 4
    t0 = time.perf_counter()
    tmp = None
    if args.work:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="medyate-bench-")
        work = Path(tmp.name)
    log = lambda s: print(s, flush=True)  # noqa: E731
    try:
        builder = Builder(work, log, kernels=[] if args.kernels == "reference" else None)
        log("(a) instructions per MAC by layer type")
        a = bench_layer_types(QUICK_TYPES if args.quick else LAYER_TYPES, builder, work,
                              layer_samples, layer_batch, args.seed, log, exact)
        log("(b) mbv2-tiny, full against sparse update")
        b = bench_mbv2(builder, work, mbv2_samples, args.seed, log)
    finally:
        if tmp is not None:
            tmp.cleanup()
    res = {"board": BOARD, "quick": args.quick, "seed": args.seed, "gcc": gcc, "lr": LR,
           "kernels": args.kernels,
           "counter": "plugin" if exact else "systick",
           "layer_samples": layer_samples, "layer_batch": layer_batch,
           "seconds": round(time.perf_counter() - t0, 1), "layer_types": a, "mbv2": b}
    print()
    print(table_a(a))
    print()
    if exact:
        print(table_k(a))
        print()
    print(table_b(b))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "device_instr" + ("_reference" if args.kernels == "reference" else "")
    (out / f"{stem}.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
