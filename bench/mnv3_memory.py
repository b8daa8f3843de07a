#!/usr/bin/env python
"""Does a MobileNetV3-small-style model (squeeze-excite, hard-swish) on a
3x48x192 input plan within 320 KiB on nucleo-f746, in fp32 and in int8?

The model is built here with onnx.helper from seeded random weights (the memory
question does not depend on the weights): a 3x3 stride-2 stem with hard-swish,
the eleven bneck blocks of MobileNetV3-small (Howard et al. 2019, table 2:
depthwise 3x3/5x5, expansions 16-576, SE as GlobalAveragePool -> 1x1 conv ->
Relu -> 1x1 conv -> HardSigmoid -> Mul, ReLU in the first three blocks and
hard-swish after), the last 1x1 conv (576 channels at width 1) with
hard-swish, global average pooling and a 10-class Gemm, at width multipliers
1.0 and 0.75 (the full width's int8 weights do not fit the board's 1 MiB
flash). BatchNorm is left out: it folds into the convs and does not change
the memory.

The script checks that the model imports and that the fp32 host engine's
forward matches onnxruntime, quantizes it with onnxruntime's quantize_static
(QDQ, medyate.ir.quantize.quantize_model) on random calibration data, checks
the int8 path accepts it (require_int8), and reports per precision:

- the smallest whole-device RAM at which anything trains (one channel of the
  cheapest layer, backward reaching only that layer);
- a MeDyate plan (make_plan: ranking, pre-selection, budget) within 320 KiB on
  a small random 10-class task, and its memory plan (arena and its parts,
  trainable weights, firmware static data, stack), and the RAM and flash of
  its firmware image linked for the board.

    PYTHONPATH=host .venv/bin/python bench/mnv3_memory.py     # about 1 minute

Writes bench/results/mnv3_memory.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "host"))

from medyate.algo import HostEngineFactory, planner_memory_fn  # noqa: E402
from medyate.algo.plan import make_plan  # noqa: E402
from medyate.data.task import Task  # noqa: E402
from medyate.errors import MedyateError  # noqa: E402
from medyate.ir.cost import node_macs, param_count  # noqa: E402
from medyate.ir.onnx_import import load_onnx  # noqa: E402
from medyate.ir.quantize import int8_problems, quantize_model  # noqa: E402
from medyate.planner.arena import plan_arena  # noqa: E402
from medyate.planner.footprint import memory_plan  # noqa: E402
from medyate.planner.program import lower  # noqa: E402

BOARD = "nucleo-f746"
RAM = "320KiB"
RAM_BYTES = 320 * 1024
INPUT = (1, 3, 48, 192)
CLASSES = 10
OUT = REPO / "bench" / "results"

# MobileNetV3-small bneck: kernel, expansion, out channels, SE, hard-swish, stride
BNECK = [(3, 16, 16, True, False, 2),
         (3, 72, 24, False, False, 2),
         (3, 88, 24, False, False, 1),
         (5, 96, 40, True, True, 2),
         (5, 240, 40, True, True, 1),
         (5, 240, 40, True, True, 1),
         (5, 120, 48, True, True, 1),
         (5, 144, 48, True, True, 1),
         (5, 288, 96, True, True, 2),
         (5, 576, 96, True, True, 1),
         (5, 576, 96, True, True, 1)]
WIDTHS = (1.0, 0.75)


def make_divisible(v: float, d: int = 8) -> int:
    """torchvision's channel rounding for the SE squeeze width."""
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def build_model(path: Path, width: float = 1.0, seed: int = 0) -> None:
    """MobileNetV3-small at `width` (torchvision's rule: every block's channels
    times width, rounded to multiples of 8; the last conv 6x the last block's)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    count = [0]

    def name(kind):
        count[0] += 1
        return f"{kind}_{count[0]}"

    def conv(x, cin, cout, k, stride=1, group=1, act=None):
        n = name("conv")
        # He-scaled weights keep the activations of a deep random net in range
        w = rng.normal(0, np.sqrt(2.0 / (k * k * cin / group)),
                       (cout, cin // group, k, k)).astype(np.float32)
        b = rng.normal(0, 0.05, cout).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, n + "_w"), numpy_helper.from_array(b, n + "_b")])
        nodes.append(helper.make_node("Conv", [x, n + "_w", n + "_b"], [n], name=n,
                                      kernel_shape=[k, k], strides=[stride, stride],
                                      pads=[k // 2] * 4, group=group))
        return act_(n, act)

    def act_(x, act):
        if act is None:
            return x
        n = name(act.lower())
        if act == "HardSigmoid":   # ONNX's default alpha 0.2; MobileNetV3's is 1/6
            nodes.append(helper.make_node(act, [x], [n], name=n, alpha=1.0 / 6, beta=0.5))
        else:
            nodes.append(helper.make_node(act, [x], [n], name=n))
        return n

    def se(x, c):
        s = make_divisible(c / 4)
        p = name("gap")
        nodes.append(helper.make_node("GlobalAveragePool", [x], [p], name=p))
        h = conv(p, c, s, 1, act="Relu")
        g = conv(h, s, c, 1, act="HardSigmoid")
        m = name("se_mul")
        nodes.append(helper.make_node("Mul", [x, g], [m], name=m))
        return m

    c = lambda v: make_divisible(v * width)  # noqa: E731
    x = conv("input", 3, c(16), 3, stride=2, act="HardSwish")
    cin = c(16)
    for k, exp, cout, use_se, hs, stride in BNECK:
        exp, cout = c(exp), c(cout)
        act = "HardSwish" if hs else "Relu"
        y = x
        if exp != cin:
            y = conv(y, cin, exp, 1, act=act)
        y = conv(y, exp, exp, k, stride=stride, group=exp, act=act)
        if use_se:
            y = se(y, exp)
        y = conv(y, exp, cout, 1)
        if stride == 1 and cin == cout:
            a = name("add")
            nodes.append(helper.make_node("Add", [y, x], [a], name=a))
            y = a
        x, cin = y, cout
    last = 6 * cin
    x = conv(x, cin, last, 1, act="HardSwish")
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], name="flatten", axis=1))
    w = rng.normal(0, np.sqrt(1.0 / last), (CLASSES, last)).astype(np.float32)
    inits += [numpy_helper.from_array(w, "fc_w"),
              numpy_helper.from_array(np.zeros(CLASSES, np.float32), "fc_b")]
    nodes.append(helper.make_node("Gemm", ["features", "fc_w", "fc_b"], ["logits"],
                                  name="classifier", transB=1))
    g = helper.make_graph(
        nodes, f"mnv3-small-{width:g}-48x192",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *INPUT[1:]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def ort_logits(path, x):
    import onnxruntime as ort
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def smallest(graph, factory, precision) -> dict:
    """Whole-device RAM of the cheapest plan that trains anything: one channel
    of one layer, backward reaching only that layer."""
    fn = planner_memory_fn(graph, BOARD, precision)
    ram, layer, cost = min((fn([s.name], False)(s.cost), s.name, s.cost) for s in factory.layers)
    return {"ram": int(ram), "layer": layer, "budget_elements": int(cost),
            "memory": plan_memory(graph, [layer], cost, precision)}


def plan_memory(graph, layers, budget, precision) -> dict:
    prog = lower(graph.copy(), list(layers), False, precision)
    plan_arena(prog, int(budget))
    return memory_plan(prog, BOARD, RAM_BYTES)


def image_memory(graph, plan, build_dir) -> dict:
    """RAM and flash of the plan's linked firmware image for the board
    (.data + .bss + stack reserve; text + rodata + data), or why it did not build."""
    from medyate.session.firmware import build_device_firmware
    from medyate.session.memory_report import firmware_memory
    try:
        program, build = build_device_firmware(graph, plan, BOARD, build_dir, log=lambda s: None)
        rep = firmware_memory(program, build, BOARD, plan.ram_bytes)["image"]
    except Exception as e:   # a link that overflows the chip says so here
        return {"error": " ".join(str(e).split())[:600] or type(e).__name__}
    return {"ram": rep["ram"]["total"], "flash": rep["flash"]["total"], "report": rep}


def measure(width, x, task, args, d) -> dict:
    """Build, check, quantize and plan the model at `width`, in directory `d`."""
    result = {"width": width}
    fp_path, q_path = Path(d) / "mnv3.onnx", Path(d) / "mnv3_int8.onnx"
    build_model(fp_path, width)
    g32 = load_onnx(fp_path)
    ops = {}
    for n in g32.nodes:
        ops[n.op] = ops.get(n.op, 0) + 1
    f32 = HostEngineFactory(g32)
    macs = int(sum(node_macs(g32, n) for n in g32.nodes))
    params = int(sum(param_count(n) for n in g32.nodes))
    eng = f32([], 0, False)
    ref = ort_logits(fp_path, x[:4])
    got = np.stack([eng.forward(x[i:i + 1])[0] for i in range(4)])
    result["model"] = {"ops": ops, "trainable_layers": len(f32.layers),
                       "parameters": params, "forward_macs": macs,
                       "fp32_vs_onnxruntime_max_abs": float(np.max(np.abs(got - ref)))}
    print(json.dumps(result["model"]), flush=True)

    quantize_model(fp_path, q_path, x[:args.calib])
    g8 = load_onnx(q_path)
    probs = int8_problems(g8)
    result["int8_problems"] = probs
    print(f"int8 problems: {len(probs)}", *probs, sep="\n  ", flush=True)

    graphs = {"fp32": (fp_path, g32, f32)}
    if not probs:
        f8 = HostEngineFactory(g8, precision="int8")
        graphs["int8"] = (q_path, g8, f8)
        e8 = f8([], 0, False)
        ref8 = ort_logits(q_path, x[:4])
        got8 = np.stack([e8.forward(x[i:i + 1])[0] for i in range(4)])
        result["int8_vs_onnxruntime"] = {
            "max_abs": float(np.max(np.abs(got8 - ref8))),
            "logit_range": float(np.max(np.abs(ref8))),
            "same_top1": int(np.sum(got8.argmax(1) == ref8.argmax(1))), "samples": 4}
        print(json.dumps(result["int8_vs_onnxruntime"]), flush=True)
    for prec, (path, graph, factory) in graphs.items():
        row = {"smallest": smallest(graph, factory, prec)}
        try:
            plan, tp = make_plan(path, graph, task, ram=RAM, board=BOARD, batch=8,
                                 epochs=4, lr=0.01, ranking_samples=args.ranking_samples,
                                 precision=prec, log=lambda s: print("  " + s))
            row.update(fits=True, layers=plan.layers, budget_elements=plan.budget_elements,
                       memory=plan_memory(graph, plan.layers, plan.budget_elements, prec))
            row["image"] = image_memory(graph, plan, Path(d) / f"fw-{prec}")
        except MedyateError as e:
            row.update(fits=False, error=str(e))
        result[prec] = row
        print(prec, json.dumps({k: v for k, v in row.items() if k != "memory"}), flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-train", type=int, default=64, help="random task samples")
    ap.add_argument("--calib", type=int, default=32, help="calibration samples (>= 16)")
    ap.add_argument("--ranking-samples", type=int, default=16)
    ap.add_argument("--width", type=float, nargs="+", default=list(WIDTHS),
                    help="width multipliers to measure")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (args.n_train + 16,) + INPUT[1:]).astype(np.float32)
    y = np.arange(len(x)) % CLASSES
    rng.shuffle(y)
    task = Task("random-3x48x192", x[:args.n_train], y[:args.n_train].astype(np.int64),
                x[args.n_train:], y[args.n_train:].astype(np.int64),
                [str(i) for i in range(CLASSES)], source="numpy normal(0, 1), seed 0",
                mean=(), std=())
    result = {"command": "PYTHONPATH=host .venv/bin/python bench/mnv3_memory.py",
              "board": BOARD, "ram_budget": RAM_BYTES, "input": list(INPUT),
              "classes": CLASSES, "n_train": args.n_train, "calibration_samples": args.calib,
              "ranking_samples": args.ranking_samples}
    result["widths"] = []
    for width in args.width:
        with tempfile.TemporaryDirectory() as d:
            result["widths"].append(measure(width, x, task, args, d))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    OUT.mkdir(exist_ok=True)
    (OUT / "mnv3_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    (OUT / "mnv3_memory.md").write_text(report(result))
    print((OUT / "mnv3_memory.md").read_text())
    return 0


def report(r) -> str:
    kib = lambda b: f"{b / 1024:.1f}"  # noqa: E731
    lines = ["# MobileNetV3-small-style model, 3x48x192, within 320 KiB?", "",
             f"`{r['command']}`", "",
             f"Board {r['board']}: {kib(r['ram_budget'])} KiB RAM (all of the chip's), 1 MiB "
             "flash. Models built by the script (seeded random weights): stem 3x3 s2 + "
             "hard-swish, the 11 MobileNetV3-small bneck blocks (squeeze-excite: GAP -> 1x1 "
             "conv -> Relu -> 1x1 conv -> HardSigmoid -> Mul; hard-swish from the fourth block), "
             f"last 1x1 conv (6x the last block's channels) + hard-swish, GAP, {r['classes']}-class "
             "Gemm, at width multipliers " + " and ".join(f"{w['width']:g}" for w in r["widths"])
             + " (torchvision's channel rounding). int8: onnxruntime quantize_static (QDQ, "
             f"per-channel symmetric int8 weights) on {r['calibration_samples']} random "
             "calibration samples.", "",
             "MeDyate plan: `make_plan` on a random 10-class task "
             f"({r['n_train']} samples, {r['ranking_samples']} for the ranking run), batch 8, "
             "lr 0.01 given. RAM is the planner's whole-device figure: arena + trainable weights "
             "in RAM + firmware static data (including one model input) + stack reserve. "
             "Image: the plan's firmware built and linked for the board (RAM .data + .bss + "
             "stack reserve; flash text + rodata + data).", "",
             "KiB are 1024 B; each total's parts are arena + trainable weights + static + stack.",
             "", "| width | precision | smallest RAM that trains: total KiB (parts), layer | "
             "MeDyate plan within 320 KiB: total B (parts KiB) | under 320 KiB by | layers | "
             "channel budget | linked image |", "|---|---|---|---|---|---|---|---|"]
    for w in r["widths"]:
        for prec in ("fp32", "int8"):
            head = f"| {w['width']:g} | {prec} |"
            if prec not in w:
                lines.append(f"{head} not int8 end to end | - | - | - | - | - |")
                continue
            row = w[prec]
            s = row["smallest"]
            sm = s["memory"]
            first = (f"{kib(s['ram'])} ({kib(sm['arena'])} + {kib(sm['trainable_weights'])} + "
                     f"{kib(sm['static'])} + {kib(sm['stack'])}), {s['layer']}"
                     + ("" if s["ram"] <= r["ram_budget"] else
                        f"; over 320 KiB by {kib(s['ram'] - r['ram_budget'])} KiB"))
            if not row["fits"]:
                lines.append(f"{head} {first} | does not fit | - | - | - | - |")
                continue
            p = row["memory"]
            im = row.get("image", {})
            image = (f"RAM {kib(im['ram'])} KiB, flash {kib(im['flash'])} KiB" if "ram" in im
                     else im.get("error", "-").split(" largest parts")[0])
            lines.append(f"{head} {first} | {p['total']} ({kib(p['arena'])} + "
                         f"{kib(p['trainable_weights'])} + {kib(p['static'])} + "
                         f"{kib(p['stack'])}) | {r['ram_budget'] - p['total']} B | "
                         f"{len(row['layers'])} | {row['budget_elements']} | {image} |")
    for w in r["widths"]:
        m = w["model"]
        lines += ["", f"## width {w['width']:g}", "",
                  f"{m['parameters']} parameters, {m['trainable_layers']} trainable layers, "
                  f"{m['forward_macs'] / 1e6:.1f} M MACs; ops {m['ops']}. fp32 host engine "
                  f"against onnxruntime: max abs {m['fp32_vs_onnxruntime_max_abs']:.2g} on the "
                  "logits. "
                  + ("The int8 path accepts the quantized model as onnxruntime wrote it "
                     "(require_int8: no problems); int8 host engine against onnxruntime on the "
                     "QDQ file: max abs {max_abs:.3g} on logits up to {logit_range:.3g}, same "
                     "top-1 on {same_top1} of {samples} samples.".format(
                         **w["int8_vs_onnxruntime"]) if not w["int8_problems"] else
                     f"The int8 path refuses it ({len(w['int8_problems'])} problems, below).")]
        for prec in ("fp32", "int8"):
            if prec not in w:
                continue
            for what, mp in (("smallest plan", w[prec]["smallest"]["memory"]),
                             ("MeDyate plan", w[prec].get("memory"))):
                if mp is None:
                    continue
                lines += ["", f"{prec}, {what}: arena {mp['arena']} B (lower bound "
                          f"{mp['arena_lower_bound']}); its parts, summed before reuse: "
                          + ", ".join(f"{k} {v}" for k, v in sorted(
                              mp["arena_parts"].items(), key=lambda kv: -kv[1])) + " B."]
            if w[prec].get("layers"):
                lines += ["", f"{prec} MeDyate layers: {', '.join(w[prec]['layers'])}."]
        if "fp32" in w and not w["fp32"]["fits"]:
            sm = w["fp32"]["smallest"]["memory"]
            lines += ["", "fp32 does not fit because the forward alone does not: with only the "
                      f"classifier training, the arena ({kib(sm['arena'])} KiB, its lower bound) "
                      "is the most fp32 activations live at once in the forward, and the "
                      f"firmware's static data ({kib(sm['static'])} KiB) holds one fp32 input of "
                      f"3x48x192 ({kib(4 * 3 * 48 * 192)} KiB). int8 activations and an int8 "
                      "input planned in the arena are what make it fit."]
        if w["int8_problems"]:
            lines += ["", "int8 problems (require_int8):", ""] + [
                f"- {p}" for p in w["int8_problems"]]
    lines += ["", f"Runtime {r['seconds']} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
