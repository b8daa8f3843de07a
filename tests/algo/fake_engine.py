"""A numpy engine with the Trainer interface, for testing the algorithm without
the C engine: pointwise convolutions (ReLU) over an [C, H*W] input, global average
pooling, then a fully connected classifier.

Input channel c of a pointwise conv costs slice = O (the column W[:, c]) plus
map = H*W (the saved input map); of the classifier, slice = O, map = 1: the
paper's accounting. Training follows the engine contract: samples in the given
order, gradients averaged over `batch` samples (a last partial batch is scaled
by 1/batch too), SGD without momentum on the selected columns (and biases of
trainable layers with train_bias), per selected channel the sum over SGD steps
of the squared norm of its gradient column.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from medyate.algo.trainer import LayerSpec
# The engine's own result types (plain dataclasses, no C behind them).
from medyate.engine.host import EpochResult
from medyate.errors import MedyateError


class FakeModel:
    """Weights: list of (name, W [O, I], b [O]); the last one is the classifier."""

    def __init__(self, params, hw: int):
        self.params = [(n, W.astype(np.float64).copy(), b.astype(np.float64).copy())
                       for n, W, b in params]
        self.hw = hw

    def forward(self, x):
        """x [N, C, HW] -> logits and the per-layer inputs (for backward)."""
        acts, pre = [], []
        a = x
        for n, W, b in self.params[:-1]:
            acts.append(a)
            z = np.einsum("oc,ncp->nop", W, a) + b[None, :, None]
            pre.append(z)
            a = np.maximum(z, 0.0)
        p = a.mean(axis=2)
        acts.append(p)
        n, W, b = self.params[-1]
        return p @ W.T + b, acts, pre

    def grads(self, x, y, scale):
        logits, acts, pre = self.forward(x)
        m = logits.max(axis=1, keepdims=True)
        e = np.exp(logits - m)
        prob = e / e.sum(axis=1, keepdims=True)
        loss = -np.log(prob[np.arange(len(y)), y] + 1e-30)
        d = prob.copy()
        d[np.arange(len(y)), y] -= 1.0
        d *= scale
        gW, gb = [None] * len(self.params), [None] * len(self.params)
        _, W, _ = self.params[-1]
        gW[-1] = d.T @ acts[-1]
        gb[-1] = d.sum(axis=0)
        dp = d @ W                                   # [N, C_last]
        da = np.repeat(dp[:, :, None] / self.hw, self.hw, axis=2)
        for i in range(len(self.params) - 2, -1, -1):
            dz = da * (pre[i] > 0)
            gW[i] = np.einsum("nop,ncp->oc", dz, acts[i])
            gb[i] = dz.sum(axis=(0, 2))
            da = np.einsum("oc,nop->ncp", self.params[i][1], dz)
        return loss, logits, gW, gb


class FakeEngine:
    def __init__(self, model: FakeModel, trainable, budget_elements, train_bias, bias_only=()):
        self.model = model
        self.bias_only = set(bias_only)
        names = [n for n, _, _ in model.params]
        for t in trainable:
            if t not in names:
                raise MedyateError(f"unknown layer {t}")
        order = [n for n in names if n in set(trainable)]
        self.layer_index = [names.index(n) for n in order]
        self.layers = []
        for i in self.layer_index:
            n, W, _ = model.params[i]
            mp = 1 if i == len(names) - 1 else model.hw
            # a bias-only layer has no selectable channels (planner.program.lower)
            self.layers.append(LayerSpec(n, 0 if n in self.bias_only else W.shape[1],
                                         W.shape[0], mp, None, W.shape[0], W.shape[0] * mp))
        self.budget = int(budget_elements)
        self.train_bias = bool(train_bias)
        self.selection: list[tuple[int, int]] = []
        self.selections_seen = []

    def set_selection(self, pairs):
        pairs = [(int(l), int(c)) for l, c in pairs]
        for a, b in zip(pairs, pairs[1:]):
            if not a < b:
                raise MedyateError("selection not strictly increasing")
        cost = 0
        for l, c in pairs:
            if not (0 <= l < len(self.layers) and 0 <= c < self.layers[l].channels):
                raise MedyateError(f"bad pair {(l, c)}")
            cost += self.layers[l].slice_size + self.layers[l].map_size
        if cost > self.budget:
            raise MedyateError(f"selection costs {cost} > budget {self.budget}")
        self.selection = pairs
        self.selections_seen.append(list(pairs))

    def _x(self, x):
        x = np.asarray(x, dtype=np.float64)
        return x.reshape(x.shape[0], x.shape[1], -1)

    def train_epoch(self, x, y, batch, lr, order):
        x = self._x(x)
        y = np.asarray(y)
        order = np.asarray(order)
        stats = np.zeros(len(self.selection))
        losses, correct, steps = [], 0, 0
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            loss, logits, gW, gb = self.model.grads(x[idx], y[idx], 1.0 / batch)
            losses.append(loss)
            correct += int((logits.argmax(1) == y[idx]).sum())
            for k, (l, c) in enumerate(self.selection):
                i = self.layer_index[l]
                g = gW[i][:, c]
                stats[k] += float(g @ g)
                self.model.params[i][1][:, c] -= lr * g
            if self.train_bias or self.bias_only:
                for i in self.layer_index:
                    if not self.train_bias and self.model.params[i][0] not in self.bias_only:
                        continue
                    self.model.params[i][2][:] -= lr * gb[i]
            steps += 1
        return EpochResult(float(np.concatenate(losses).mean()), correct / len(order),
                           steps, stats.astype(np.float32))

    def forward(self, x):
        return self.model.forward(self._x(x))[0].astype(np.float32)

    def evaluate(self, x, y):
        logits = self.model.forward(self._x(x))[0]
        m = logits.max(axis=1, keepdims=True)
        lp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
        y = np.asarray(y)
        return float(-lp[np.arange(len(y)), y].mean()), float((logits.argmax(1) == y).mean())

    def weights(self):
        return {n: (W.astype(np.float32).copy(), b.astype(np.float32).copy())
                for n, W, b in (self.model.params[i] for i in self.layer_index)}

    def load_weights(self, d):
        for i in self.layer_index:
            n, W, b = self.model.params[i]
            if n in d:
                W[:] = d[n][0]
                b[:] = d[n][1]

    def memory(self):
        tw = sum(self.model.params[i][1].size for i in self.layer_index
                 if self.model.params[i][0] not in self.bias_only) * 4
        arena = self.budget * 4 + 4 * self.model.hw * max(W.shape[0] for _, W, _ in self.model.params)
        return {"arena": arena, "trainable_weights": tw, "total": arena + tw}


class FakeFactory:
    """Engines on fresh copies of the same weights."""

    def __init__(self, params, hw):
        self.params = params
        self.hw = hw
        self.layers = []
        for i, (n, W, _) in enumerate(params):
            mp = 1 if i == len(params) - 1 else hw
            self.layers.append(LayerSpec(n, W.shape[1], W.shape[0], mp))
        self.engines = []

    def __call__(self, trainable, budget_elements, train_bias, bias_only=()):
        eng = FakeEngine(FakeModel(self.params, self.hw), trainable, budget_elements,
                         train_bias, bias_only)
        self.engines.append(eng)
        return eng


def make_params(rng, channels=(4, 12, 16, 16), classes=5, scale=1.0):
    params = []
    dims = list(channels) + [classes]
    for i in range(len(dims) - 1):
        W = rng.normal(0, scale * np.sqrt(2.0 / dims[i]), size=(dims[i + 1], dims[i]))
        params.append((f"layer{i}", W, np.zeros(dims[i + 1])))
    return params


def make_problem(seed=0, n_train=320, n_test=160, channels=(4, 12, 16, 16), classes=5,
                 hw=9, noise=0.6, fresh_head=True):
    """A teacher network labels Gaussian inputs; the student starts from the
    teacher's feature layers with noise and (fresh_head) a new random classifier:
    a fine-tuning problem whose loss training can lower."""
    rng = np.random.default_rng(seed)
    teacher = make_params(rng, channels, classes)
    tm = FakeModel(teacher, hw)
    x = rng.normal(size=(n_train + n_test, channels[0], 3, hw // 3)).astype(np.float32)
    y = tm.forward(x.reshape(len(x), channels[0], -1))[0].argmax(1)
    student = []
    for i, (n, W, b) in enumerate(teacher):
        if i == len(teacher) - 1 and fresh_head:
            W = rng.normal(0, 0.1, size=W.shape)
        else:
            W = W + noise * rng.normal(0, np.sqrt(2.0 / W.shape[1]), size=W.shape)
        student.append((n, W, b.copy()))
    task = SimpleNamespace(x_train=x[:n_train], y_train=y[:n_train],
                           x_test=x[n_train:], y_test=y[n_train:], classes=classes)
    return FakeFactory(student, hw), task
