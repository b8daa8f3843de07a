"""Pre-train the bundled models on the source task and export them to ONNX.

    .venv/bin/python models/pretrain.py                 # both models, as committed
    .venv/bin/python models/pretrain.py --model mbv2-tiny --epochs 2 --out /tmp/m

The source task (Fashion-MNIST classes 0-4, pre-training pool) is defined in
medyate.data.builtin, the one place where the pre-training / downstream split lives.
Training is seeded and deterministic (same result on the same machine and torch
version). The classifier head has 10 outputs although the source task uses 5 of them,
so that every downstream task with at most 10 classes fine-tunes the same head.

Each exported model is checked: onnxruntime's outputs against torch's, the file imports
into medyate's IR, and the parameters, MACs and activation sizes are printed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from medyate.data import model_summary, source_task  # noqa: E402

N_OUTPUTS = 10
OPSET = 13


def conv_bn(cin, cout, k=1, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=False))
    return layers


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion (skipped when t == 1), depthwise kxk, ReLU6,
    linear 1x1 bottleneck, residual Add when input and output shapes match."""

    def __init__(self, cin, cout, t, k=3, stride=1):
        super().__init__()
        hidden = cin * t
        layers = [] if t == 1 else conv_bn(cin, hidden, 1)
        layers += conv_bn(hidden, hidden, k, stride, groups=hidden)
        layers += conv_bn(hidden, cout, 1, act=False)
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class TinyNet(nn.Module):
    """stem conv 3x3 s2 + BN + ReLU6, blocks, 1x1 conv + BN + ReLU6,
    GlobalAveragePool, Flatten, Linear."""

    def __init__(self, stem, blocks, last, n_out=N_OUTPUTS):
        super().__init__()
        layers = conv_bn(1, stem, 3, 2)
        c = stem
        for t, cout, k, s in blocks:
            layers.append(InvertedResidual(c, cout, t, k, s))
            c = cout
        layers += conv_bn(c, last, 1)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(last, n_out)

    def forward(self, x):
        return self.classifier(self.flatten(self.pool(self.features(x))))


# (expansion t, output channels, depthwise kernel, stride) per block
ARCHS = {
    # MobileNetV2-like: 3x3 depthwise everywhere, t = 1 for the first blocks (as in
    # MobileNetV2, where the narrow 14x14 stage cannot afford an expansion within the
    # 16 KB activation limit), then t = 3-4.
    "mbv2-tiny": dict(stem=16, last=128, blocks=[
        (1, 16, 3, 1),      # 14x14, residual
        (1, 24, 3, 2),      # -> 7x7
        (3, 24, 3, 1),      # 7x7, residual
        (3, 32, 3, 2),      # -> 4x4
        (4, 32, 3, 1),      # 4x4, residual
    ]),
    # MCUNet/ProxylessNAS-like: mobile inverted blocks whose depthwise kernels (3/5/7)
    # and expansion ratios (1/2/3/4/6) vary per block, as a NAS would pick them.
    "mcunet-tiny": dict(stem=16, last=96, blocks=[
        (1, 8, 3, 1),       # MBConv1 3x3, 14x14
        (2, 16, 5, 2),      # MBConv2 5x5 -> 7x7
        (4, 16, 7, 1),      # MBConv4 7x7, residual
        (3, 32, 3, 2),      # MBConv3 3x3 -> 4x4
        (6, 32, 5, 1),      # MBConv6 5x5, residual
    ]),
}


def build(name) -> TinyNet:
    a = ARCHS[name]
    return TinyNet(a["stem"], a["blocks"], a["last"])


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def train(name, task, epochs, seed, batch=128, lr=3e-3, log=print):
    torch.manual_seed(seed)
    model = build(name)
    x = torch.from_numpy(task.x_train)
    y = torch.from_numpy(task.y_train)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(x) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.15)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    for ep in range(epochs):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            xb = x[idx]
            # horizontal flips: clothes are mirror-symmetric, and it fights overfitting
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = loss_fn(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log(f"  {name} epoch {ep + 1}/{epochs}: loss {total / len(x):.4f} "
            f"({time.time() - t0:.1f} s)")
    model.eval()
    return model


def export(model, path: Path):
    dummy = torch.zeros(1, 1, 28, 28)
    torch.onnx.export(model, (dummy,), str(path), dynamo=False, opset_version=OPSET,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True)


def check_export(model, path: Path, x: np.ndarray) -> float:
    """Max |onnxruntime - torch| on x; also imports the file into medyate's IR."""
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"input": x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    err = float(np.abs(got - want).max())
    if err > 1e-3:
        raise SystemExit(f"{path}: onnxruntime and torch differ by {err}")
    # the importer folds BN and rewrites ReLU6; its numpy reference must agree too
    from medyate.ir.onnx_import import load_onnx
    from medyate.ir.reference import evaluate as ir_evaluate
    graph = load_onnx(path)
    for i in range(4):
        ir = ir_evaluate(graph, x[i:i + 1])
        ir_err = float(np.abs(ir - want[i:i + 1]).max())
        if ir_err > 1e-3:
            raise SystemExit(f"{path}: medyate's IR and torch differ by {ir_err}")
    return err


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=sorted(ARCHS), action="append",
                    help="model(s) to train (default: all)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 keeps results independent of the core count")
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    args.out.mkdir(parents=True, exist_ok=True)

    task = source_task(seed=args.seed)
    print(task.describe())
    xte = torch.from_numpy(task.x_test)
    yte = torch.from_numpy(task.y_test)
    results = {}
    for name in args.model or sorted(ARCHS):
        t0 = time.time()
        model = train(name, task, args.epochs, args.seed)
        acc = evaluate(model, xte, yte)
        path = args.out / f"{name}.onnx"
        export(model, path)
        err = check_export(model, path, task.x_test[:256])
        s = model_summary(path)
        s.update(source_test_accuracy=round(acc, 4), train_seconds=round(time.time() - t0, 1),
                 ort_max_abs_diff=err, epochs=args.epochs, seed=args.seed)
        s.pop("ops")
        results[name] = s
        print(f"{name}: source test accuracy {acc:.4f} on {len(yte)} samples, "
              f"{s['params']} params, {s['macs']} MACs, {s['conv_layers']} conv layers, "
              f"largest activation {s['largest_activation']} floats "
              f"({s['largest_activation'] * 4 / 1024:.1f} KiB), op in+out "
              f"{s['max_op_io'] * 4 / 1024:.1f} KiB, peak live "
              f"{s['peak_live'] * 4 / 1024:.1f} KiB, onnxruntime vs torch {err:.2e}, "
              f"{s['train_seconds']} s")
    for name, s in results.items():
        print(name, json.dumps(s, default=str))


if __name__ == "__main__":
    main()
