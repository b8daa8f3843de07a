#!/usr/bin/env python
"""Benchmark: every training strategy on the real ImageNet-pretrained int8 models
(TTE's mcunet-5fps, mbv2-w0.35, proxyless-w0.3, 3x128x128, each with a new head for
the task), at TTE's own sparse-update memory sizes, with tuned baselines.

    PYTHONPATH=host .venv/bin/python bench/real_models.py --quick    # CI smoke, ~1 min
    PYTHONPATH=host .venv/bin/python bench/real_models.py --medium   # 1 h on 2 cores
    PYTHONPATH=host .venv/bin/python bench/real_models.py            # the full grid, ~23-37 h on 2 cores

Budgets. For each model, one budget per TTE scheme of that model ("49kb" ... , the
schemes of `medyate.algo.su_schemes`): the budget is that scheme's training memory
counted as the paper counts it (weight-gradient slices in fp32 and saved input maps
in int8 of the trained channels, plus the trained biases' gradients; no firmware, no
stack, no frozen forward), so SU runs its published scheme and every other budgeted
strategy gets exactly the same training memory. Each run also reports the
whole-device RAM of its plan on the F746 (arena + trainable int8 weights + firmware
static data + stack, `planner_memory_fn`, the figure `medyate plan` solves against;
layers that train their bias alone keep their weights in flash).
Then one budget per device-RAM size of the grid ("256KiB device"): static-random,
TraDy and MeDyate are planned against that whole-device RAM exactly as `medyate plan`
plans (`algo.plan.plan_deepest_fit`: pre-selection by their metric, layers too early
for backward to fit left out, channel budget solved); SU's cell there is the largest
scheme of the grid whose plan fits.

Strategies (`medyate.algo.strategies`), all with the new head trained in full:
  full            full fine-tuning in float on the host (the upper bound, fp32 engine
                  on the model's float view; the int8 graph's full update is the
                  one TTE reports diverging);
  last, bias      the head alone; biases of every layer and the head;
  su              TTE's published scheme for the model and memory;
  static-random, trady   top-K layers by RGN, channels drawn uniformly once / each epoch;
  medyate         top-K layers by LaRa, importance-weighted resampling each epoch.
Everything but `full` runs on the int8 path (int8 forward, fp32 gradients, QAS updates
of int8 codes): the host build of the device's C.

Fairness. A validation split (a fixed, seeded fifth of the training data) chooses
each strategy's learning rate from the same grid (and, for last/bias, the number of
epochs from {E, 3E}), per model, task and budget, at seed 0; the final runs train on
the whole training split with the chosen values, every seed, and the test split is
used once, for the table. Same data order, seeds and epochs for every strategy.

Layer ranking quality: per model and task, the project's oracle (`algo.measure`)
trains each layer alone with the head, under the same channel budget for every layer,
for a few epochs on the training part, and measures how much it lowers the validation
loss below the head alone's; the table gives Spearman's rho of LaRa's and RGN's layer
scores against that gain.

Writes, in --out (default bench/results/): real_models{_quick,_medium}.jsonl (every
run), .meta.json (grid, time, ranking quality), .md (tables, goal check) and .png
(accuracy against training memory). --report-only rewrites .md and .png from the
records, with the device RAM recounted by the current planner (no training).

In pieces: every run is appended to .runs.jsonl (the journal) as it finishes;
--stop-after HOURS stops cleanly after that long, and the same command with
--resume later takes the journal's runs and does the rest (the time reported
is the sum of the sittings). The full grid is meant to run so, a few hours at a
time, on a machine that keeps --out between sittings.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing as mp
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT / "bench"))

from strategies import fmt_time, _mean_std  # noqa: E402  (the toy grid's helpers)

BOARD = "nucleo-f746"
HEAD = "classifier"
MODELS = ("mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3")
TASKS = ("fmnist-5to9-rgb128", "digits-rgb128", "fmnist-inv-rgb128")
ORDER = ("full", "last", "bias", "su", "static-random", "trady", "medyate")
BUDGETED = ("su", "static-random", "trady", "medyate")
PLANNED = ("static-random", "trady", "medyate")   # planned against a device-RAM budget
DEVICE = " device"         # suffix of a device-RAM budget's key: "256KiB device"


def device_bytes(key) -> int | None:
    """The whole-device RAM of a device-RAM budget key, None for any other."""
    from medyate.algo.budget import parse_size
    return parse_size(key[:-len(DEVICE)]) if key and key.endswith(DEVICE) else None

# One small grid for every strategy, two decades in steps of about 3. It
# reaches down to where full fine-tuning of the whole float network stays
# stable (0.0006-0.002), which the sparse strategies rarely need: a grid that
# stops at 0.006 leaves the float upper bound near chance and every comparison
# with it meaningless.
LRS = [0.0006, 0.002, 0.006, 0.02, 0.06]
GRIDS = {
    "full": dict(models=MODELS, tasks=TASKS, schemes=[0, 1, 2, 3, 4], seeds=[0, 1, 2],
                 device_ram=["256KiB", "320KiB"], epochs=10, n_train=400, n_test=400,
                 batch=8, lrs=LRS, oracle_layers=None, oracle_epochs=3),
    "medium": dict(models=MODELS, tasks=["fmnist-5to9-rgb128"], schemes=[0, 4], seeds=[0],
                   device_ram=["256KiB"], epochs=6, n_train=150, n_test=200, batch=8,
                   lrs=LRS, oracle_layers=8, oracle_epochs=2),
    "quick": dict(models=["mcunet-5fps"], tasks=["digits-rgb128"], schemes=[0], seeds=[0],
                  device_ram=["256KiB"], epochs=1, n_train=20, n_test=16, batch=8,
                  lrs=[0.05],
                  oracle_layers=2, oracle_epochs=1),
}
VAL_FRACTION = 0.2
RANKING_SAMPLES = 64
RANKING_LR = 0.01          # the ranking run's lr: one for every strategy and candidate

# ------------------------------------------------------------------ per-process cache
_CACHE: dict = {}


def model_for_task(model: str, task):
    """(graph with the task's new head, int8 factory, fp32 factory), once per process."""
    key = ("model", model, len(task.classes))
    if key not in _CACHE:
        from medyate.algo import HostEngineFactory
        from medyate.session.model import load_for_task
        _, graph, _ = load_for_task(str(ROOT / "models" / f"{model}.onnx"), task=task,
                                    seed=0, log=lambda s: None)
        _CACHE[key] = (graph, HostEngineFactory(graph, precision="int8"),
                       HostEngineFactory(graph, precision="fp32"))
    return _CACHE[key]


def task_split(name: str, seed: int, cfg: dict, split: str):
    """split 'select': training part + validation part (as x_test); 'final': the
    whole training split + the test split. The validation rows are fixed and
    seeded, the same for every strategy."""
    key = ("task", name, seed, cfg["n_train"], cfg["n_test"], split)
    if key not in _CACHE:
        from medyate.data import load_task
        t = load_task(name, seed=seed, n_train=cfg["n_train"], n_test=cfg["n_test"])
        if split == "select":
            perm = np.random.default_rng([seed, 0xDA7A]).permutation(len(t.x_train))
            nv = max(1, int(round(VAL_FRACTION * len(perm))))
            va, tr = np.sort(perm[:nv]), np.sort(perm[nv:])
            t = dataclasses.replace(t, x_train=t.x_train[tr], y_train=t.y_train[tr],
                                    x_test=t.x_train[va], y_test=t.y_train[va])
        _CACHE[key] = t
    return _CACHE[key]


def ranking_for(model, task_name, seed, cfg, split):
    key = ("ranking", model, task_name, seed, split)
    if key not in _CACHE:
        from medyate.algo.ranking import ranking_run
        task = task_split(task_name, seed, cfg, split)
        _, f8, _ = model_for_task(model, task)
        _CACHE[key] = ranking_run(f8, task.x_train, task.y_train, samples=RANKING_SAMPLES,
                                  batch=cfg["batch"], lr=RANKING_LR, seed=seed)
    return _CACHE[key]


# ---------------------------------------------------------------------- budgets

def scheme_budget(model, task, key) -> dict:
    """The training memory of TTE's scheme `key` for `model`, in 4-byte words:
    the pool words of its channels plus its trained biases."""
    from medyate.algo.strategies import RunContext, StaticSparseUpdate
    from medyate.algo.su_schemes import TTE_SCHEMES
    graph, f8, _ = model_for_task(model, task)
    su = StaticSparseUpdate(scheme=TTE_SCHEMES[model][key], always=[HEAD])
    spec = su.prepare(RunContext(f8, task, 0, 0, 8, 0.01, 1))
    specs = {s.name: s for s in f8.layers}
    biases = sum(specs[n].out_c for n in spec.trainable)
    return {"pool_words": int(spec.budget_elements), "bias_words": int(biases),
            "words": int(spec.budget_elements + biases)}


def make_strategy(name, scheme=None):
    from medyate.algo import strategies as S
    if name == "su":
        return S.StaticSparseUpdate(scheme=scheme, always=[HEAD])
    if name == "bias":
        return S.BiasOnly(always=[HEAD])
    if name in ("static-random", "trady", "medyate"):
        return S.STRATEGIES[name](always=[HEAD])
    return S.STRATEGIES[name]()


# ------------------------------------------------------------------------- runs

def planned(job, task, f8, graph):
    """The plan `medyate plan` would make for a device-RAM budget: layers
    pre-selected by the strategy's metric (LaRa for MeDyate, RGN for the
    others), restricted to deeper layers until backward fits, and the channel
    budget solved against the whole-device RAM on the board (`algo.plan`)."""
    from medyate.algo import planner_memory_fn
    from medyate.algo.plan import plan_deepest_fit
    cfg = job["cfg"]
    ranking = ranking_for(job["model"], job["task"], job["seed"], cfg, job["split"])
    tp, _ = plan_deepest_fit(f8, task.x_train, task.y_train, ranking,
                             ram=device_bytes(job["scheme"]),
                             memory_fn_for=planner_memory_fn(graph, BOARD, "int8"),
                             metric="lara" if job["strategy"] == "medyate" else "rgn",
                             batch=cfg["batch"], lr=job["lr"], epochs=job["epochs"],
                             seed=job["seed"], always=[HEAD])
    return tp


def trained_layers(strategy) -> tuple[list[str], list[str]]:
    """(layers whose weights train, layers whose bias alone trains): what the
    device holds in RAM for a strategy (weights of the first, biases of both);
    the strategy's own pre-selection and bias-only list (EngineSpec.bias_only)."""
    bias_only = list(getattr(strategy, "bias_only", []))
    return [n for n in strategy.layers if n not in bias_only], bias_only


def device_ram(rec, graph) -> int:
    """Whole-device RAM of a run's plan on the board, the planner's count
    (arena, trainable weights, static data, stack)."""
    from medyate.algo import planner_memory_fn
    prec = "fp32" if rec["strategy"] == "full" else "int8"
    fn = planner_memory_fn(graph, BOARD, prec)
    layers = sorted(set(rec["weight_layers"]) | set(rec["bias_layers"]),
                    key=[n.name for n in graph.nodes].index)
    return int(fn(layers, rec["bias_words"] > 0, bias_only=rec["bias_layers"])(
        max(rec["pool_words"], 1)))


def run_job(job: dict) -> dict:
    """One training run (a worker); returns its record."""
    from medyate.algo.strategies import Diverged, run_strategy
    from medyate.algo.su_schemes import TTE_SCHEMES
    from medyate.errors import MedyateError
    cfg = job["cfg"]
    task = task_split(job["task"], job["seed"], cfg, job["split"])
    graph, f8, f32 = model_for_task(job["model"], task)
    t0 = time.perf_counter()
    rec = {k: job.get(k) for k in ("kind", "model", "task", "seed", "split", "strategy",
                                   "scheme", "budget_words", "lr", "epochs", "layer")}
    if job["kind"] == "oracle":
        from medyate.algo.measure import oracle_loss
        loss = oracle_loss(f8, task, job["layer"], job["budget_words"], epochs=job["epochs"],
                           batch=cfg["batch"], lr=job["lr"], seed=0, always=[HEAD])
        return dict(rec, acc=float("nan"), loss=loss, seconds=time.perf_counter() - t0)
    strat_name = job["strategy"]
    factory = f32 if strat_name == "full" else f8
    on_device_budget = device_bytes(job.get("scheme")) is not None
    scheme = TTE_SCHEMES[job["model"]][job["scheme"]] \
        if strat_name == "su" and job.get("scheme") else None
    budget = {"full": sum(s.total_cost for s in f32.layers),
              "last": sum(s.total_cost for s in f8.layers[-1:])}.get(strat_name, 0)
    ranking = None
    if strat_name in PLANNED:
        ranking = ranking_for(job["model"], job["task"], job["seed"], cfg, job["split"])
        if on_device_budget:
            try:
                tp = planned(job, task, f8, graph)
            except MedyateError as e:
                return dict(rec, acc=float("nan"), infeasible=str(e),
                            seconds=time.perf_counter() - t0)
            from medyate.algo import strategies as S
            strategy = S.STRATEGIES[strat_name](layers=tp.layers, always=[HEAD])
            budget = rec["budget_words"] = int(tp.budget_elements)
            rec["plan_ram"] = int(tp.memory_bytes)
        else:
            strategy = make_strategy(strat_name)
            budget = job["budget_words"]
    else:
        strategy = make_strategy(strat_name, scheme=scheme)
    try:
        hist = run_strategy(factory, task, strategy, epochs=job["epochs"],
                            batch=cfg["batch"], lr=job["lr"], seed=job["seed"],
                            budget=budget, ranking=ranking, log=lambda s: None)
    except Diverged as e:
        return dict(rec, acc=float("nan"), diverged=str(e),
                    seconds=time.perf_counter() - t0)
    weights, biases = trained_layers(strategy)
    spec_of = {s.name: s for s in factory.layers}
    train_bias = strat_name in ("full", "last", "bias", "su")
    pool = max(h["elements"] for h in hist)
    bias_words = sum(spec_of[n].out_c for n in weights + biases) if train_bias else 0
    rec.update(acc=float(hist[-1]["test_acc"]), best_acc=max(h["test_acc"] for h in hist),
               loss=float(hist[-1]["loss"]), train_mem=4 * (pool + bias_words),
               pool_words=int(pool), bias_words=int(bias_words),
               n_layers=len(weights) + len(biases), weight_layers=weights,
               bias_layers=biases, seconds=time.perf_counter() - t0,
               retries=sum(h.get("retries", 0) for h in hist))
    if job["split"] == "final" and job["seed"] == cfg["seeds"][0]:
        rec["device_ram"] = device_ram(rec, graph)
    return rec


def _worker_init():
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[v] = "1"


JOB_KEY = ("kind", "model", "task", "seed", "split", "strategy", "scheme", "budget_words",
           "lr", "epochs", "layer")


class Stopped(Exception):
    """The run's time budget (--stop-after) ran out; the journal holds what ran."""


class Journal:
    """Every finished run, appended to {stem}.runs.jsonl as it finishes, so that
    a grid too long for one sitting runs in pieces (--stop-after, --resume)
    with every record kept. The first line is the grid; a "session" line per
    sitting holds its wall time, which the report sums."""

    def __init__(self, path: Path, cfg: dict, resume: bool, stop_after_h: float | None):
        self.path, self.done, self.seconds = path, {}, 0.0
        grid = json.loads(json.dumps({k: v for k, v in cfg.items() if k != "workers"}))
        if resume and path.exists():
            lines = [json.loads(line) for line in path.read_text().splitlines() if line]
            if not lines or lines[0].get("kind") != "grid" or lines[0]["cfg"] != grid:
                raise SystemExit(f"{path}: the journal is of another grid; "
                                 "run without --resume to start this one afresh")
            for r in lines[1:]:
                if r["kind"] == "session":
                    self.seconds += r["seconds"]
                else:
                    self.done[self.key(r)] = r
        else:
            path.write_text(json.dumps({"kind": "grid", "cfg": grid}) + "\n")
        self.t0 = time.perf_counter()
        self.deadline = None if stop_after_h is None else self.t0 + 3600 * stop_after_h

    @staticmethod
    def key(job) -> str:
        return json.dumps([job.get(k) for k in JOB_KEY])

    def add(self, rec):
        with open(self.path, "a") as f:
            f.write(json.dumps({k: v for k, v in rec.items() if k != "cfg"}) + "\n")

    def elapsed(self) -> float:
        """Wall time of every sitting so far, this one included."""
        return self.seconds + time.perf_counter() - self.t0

    def close_session(self):
        with open(self.path, "a") as f:
            f.write(json.dumps({"kind": "session",
                                "seconds": time.perf_counter() - self.t0}) + "\n")


def run_all(jobs, workers, log, label, journal: Journal | None = None):
    """Run `jobs`, longest first; progress and ETA on the log. With a journal,
    runs it already holds are taken from it, each new one is appended to it,
    and past its deadline the pool stops (Stopped)."""
    weight = lambda j: j["epochs"] * (2.0 if j["strategy"] in ("full", "bias") else 1.0)  # noqa: E731
    out = [None] * len(jobs)
    if journal is not None:
        for i, j in enumerate(jobs):
            out[i] = journal.done.get(Journal.key(j))
        reused = sum(r is not None for r in out)
        if reused:
            log(f"  {label}: {reused} of {len(jobs)} runs from {journal.path.name}")
    todo = [i for i in range(len(jobs)) if out[i] is None]
    order = sorted(todo, key=lambda i: -weight(jobs[i]))
    total = sum(weight(jobs[i]) for i in todo)
    done, t0 = 0.0, time.perf_counter()
    if not order:
        return out
    if workers > 1:
        pool = mp.get_context("spawn").Pool(workers, initializer=_worker_init)
        it = pool.imap_unordered(_indexed, [(i, jobs[i]) for i in order])
    else:
        pool, it = None, map(_indexed, [(i, jobs[i]) for i in order])
    for k, (i, rec) in enumerate(it, 1):
        out[i] = rec
        if journal is not None:
            journal.add(rec)
        done += weight(jobs[i])
        el = time.perf_counter() - t0
        what = rec["layer"] if rec["kind"] == "oracle" else (rec.get("scheme") or "-")
        what = what or "(head alone)"
        log(f"  {label} [{k}/{len(jobs)}] {rec['model']} {rec['task']} s{rec['seed']} "
            f"{rec['strategy']:<13} {what:<22} lr {rec['lr']:<6g} ep {rec['epochs']:>2} "
            f"acc {rec['acc']:.3f} loss {rec.get('loss', math.nan):.3f} {rec['seconds']:5.1f}s  elapsed {fmt_time(el)} "
            f"ETA {fmt_time(el / done * (total - done))}")
        if journal is not None and journal.deadline is not None \
                and time.perf_counter() > journal.deadline and k < len(order):
            if pool is not None:
                pool.terminate()
                pool.join()
            raise Stopped(f"{label}: {k} of {len(order)} runs done this sitting")
    if pool is not None:
        pool.close()
        pool.join()
    return out


def _indexed(a):
    i, job = a
    return i, run_job(job)


def grid_jobs(cfg, split, chosen=None):
    """Training jobs of one phase. `chosen` {(model, task, strategy, scheme): (lr,
    epochs)} for the final phase; None: every candidate at seed 0 (selection)."""
    from medyate.algo.su_schemes import TTE_SCHEMES
    jobs = []
    seeds = cfg["seeds"] if split == "final" else cfg["seeds"][:1]
    for model in cfg["models"]:
        keys = list(TTE_SCHEMES[model])
        for task_name in cfg["tasks"]:
            for seed in seeds:
                task = task_split(task_name, seed, cfg, split)
                cells = [(s, None, None) for s in ("full", "last", "bias")]
                for i in cfg["schemes"]:
                    key = keys[i]
                    words = scheme_budget(model, task, key)["words"]
                    cells += [(s, key, words) for s in BUDGETED]
                # a device-RAM budget: the planned strategies solve their own
                # channel budget; SU's cell is the largest scheme that fits
                for ram in cfg.get("device_ram", []):
                    cells += [(s, ram + DEVICE, None) for s in PLANNED]
                for strat, key, words in cells:
                    if chosen is None:
                        eps = [cfg["epochs"], 3 * cfg["epochs"]] if strat in ("last", "bias") \
                            else [cfg["epochs"]]
                        cands = [(lr, e) for lr in cfg["lrs"] for e in eps]
                    else:
                        cands = [chosen[(model, task_name, strat, key)]]
                    for lr, ep in cands:
                        jobs.append(dict(kind=split, cfg=cfg, model=model, task=task_name,
                                         seed=seed, split=split, strategy=strat, scheme=key,
                                         budget_words=words, lr=lr, epochs=ep))
    return jobs


def choose(selection):
    """Best validation accuracy per (model, task, strategy, scheme); ties: the
    first candidate (smaller lr, fewer epochs)."""
    best = {}
    for r in selection:
        k = (r["model"], r["task"], r["strategy"], r["scheme"])
        # a run that diverged (or whose loss blew up while its accuracy stayed
        # at chance) is never chosen over one that trained
        ok = math.isfinite(r["acc"]) and math.isfinite(r.get("loss", math.nan)) \
            and r["loss"] < 1e3
        acc = r["acc"] if ok else -1.0
        if k not in best or acc > best[k][0]:
            best[k] = (acc, (r["lr"], r["epochs"]))
    return {k: v[1] for k, v in best.items()}


def oracle_jobs(cfg, chosen):
    """Per model and task (`medyate.algo.measure`'s oracle): the head alone, and
    each (sampled) layer with the head, its channels redrawn uniformly under the
    same channel budget for every layer (the smallest scheme's, less the head), on
    the selection split at seed 0, at MeDyate's chosen lr."""
    from medyate.algo.su_schemes import TTE_SCHEMES
    jobs = []
    for model in cfg["models"]:
        for task_name in cfg["tasks"]:
            task = task_split(task_name, 0, cfg, "select")
            _, f8, _ = model_for_task(model, task)
            names = [s.name for s in f8.layers if s.name != HEAD]
            if cfg["oracle_layers"]:
                idx = np.unique(np.linspace(0, len(names) - 1, cfg["oracle_layers"]).round()
                                .astype(int))
                names = [names[i] for i in idx]
            first = list(TTE_SCHEMES[model])[cfg["schemes"][0]]
            lr = chosen.get((model, task_name, "medyate", first), (cfg["lrs"][0], 0))[0]
            head = {s.name: s for s in f8.layers}[HEAD].total_cost
            budget = scheme_budget(model, task, first)["pool_words"] - head
            base = dict(kind="oracle", cfg=cfg, model=model, task=task_name, seed=0,
                        split="select", scheme=first, lr=lr, epochs=cfg["oracle_epochs"],
                        budget_words=budget, strategy="oracle")
            jobs += [dict(base, layer=n) for n in [None] + names]
    return jobs


def spearman_table(oracle, cfg):
    """{(model, task): {metric: rho, ...}}: LaRa's and RGN's layer scores against
    the oracle's validation-loss decrease over the head alone."""
    from medyate.algo.measure import spearman
    from medyate.algo.ranking import layer_scores
    out = {}
    by = defaultdict(list)
    for r in oracle:
        by[(r["model"], r["task"])].append(r)
    for (model, task_name), rs in by.items():
        head = [r["loss"] for r in rs if r["layer"] is None][0]
        gains = {r["layer"]: head - r["loss"] for r in rs if r["layer"] is not None}
        rk = ranking_for(model, task_name, 0, cfg, "select")
        row = {"layers": len(gains), "head_loss": head,
               "gain": {k: float(v) for k, v in gains.items()}}
        names = sorted(gains)
        for metric in ("lara", "rgn"):
            sc = layer_scores(rk, metric)
            row[metric] = spearman([sc[n] for n in names], [gains[n] for n in names])
        out[(model, task_name)] = row
    return out


# ------------------------------------------------------------------------ report

def budget_keys(model, cfg) -> list[str]:
    """The grid's budget columns for `model`: TTE scheme keys, then device RAM."""
    from medyate.algo.su_schemes import TTE_SCHEMES
    return [list(TTE_SCHEMES[model])[i] for i in cfg["schemes"]] + \
        [ram + DEVICE for ram in cfg.get("device_ram", [])]


def cell_records(final, model, strategy, key, cfg):
    """The final runs of one table cell. At a device-RAM budget, SU's cell is
    the largest scheme of the grid whose device RAM fits, and last/bias (which
    take no budget) are the same runs in every column."""
    from medyate.algo.su_schemes import TTE_SCHEMES
    runs = [r for r in final if r["model"] == model and r["strategy"] == strategy]
    if strategy in ("full", "last", "bias"):
        return [r for r in runs if r["scheme"] is None]
    ram = device_bytes(key)
    if ram is not None and strategy == "su":
        fits = [k for k in budget_keys(model, cfg) if not k.endswith(DEVICE)
                and any(r["scheme"] == k and r.get("device_ram", math.inf) <= ram
                        for r in runs)]
        if not fits:
            return []
        best = max(fits, key=list(TTE_SCHEMES[model]).index)
        return [r for r in runs if r["scheme"] == best]
    return [r for r in runs if r["scheme"] == key]


def _summary(rs):
    """(mean acc %, std, max train mem B, device RAM B or None, scheme)."""
    accs = [100 * r["acc"] for r in rs]
    mu, sd = _mean_std(accs) if accs else (math.nan, math.nan)
    dev = [r["device_ram"] for r in rs if "device_ram" in r]
    return (mu, sd, max((r.get("train_mem", 0) for r in rs), default=0),
            dev[0] if dev else None, rs[0]["scheme"] if rs else None)


def write_report(final, chosen, rho, cfg, grid, seconds, out_md, out_png, command):
    L = [f"# Training strategies on the real int8 models ({grid} grid)", "",
         f"Reproduce: `{command}` ({fmt_time(seconds)} on {cfg['workers']} worker "
         f"process(es), {platform.machine()}, Python {platform.python_version()}).", "",
         f"Grid: models {', '.join(cfg['models'])}; tasks {', '.join(cfg['tasks'])}; "
         f"seeds {', '.join(map(str, cfg['seeds']))}; {cfg['n_train']} training samples "
         f"(a fifth held out for the choice of lr/epochs) and {cfg['n_test']} test samples "
         f"per task; {cfg['epochs']} epochs, batch {cfg['batch']}, SGD without momentum, "
         f"cosine with warm-up; lr grid {cfg['lrs']} (last/bias also choose "
         f"{cfg['epochs']} or {3 * cfg['epochs']} epochs) on the validation part at seed 0. "
         "Budgets: TTE's scheme sizes per model, as training memory counted the paper's "
         "way (fp32 weight-gradient slices + int8 saved maps of the trained channels + "
         "trained bias gradients), in KiB; SU runs that scheme, the other budgeted "
         "strategies the same memory. Device-RAM budgets (`... device`): whole-device RAM "
         f"on the {BOARD} (arena + trainable weights in RAM + firmware static data + "
         "stack), the figure `medyate plan --ram` solves: static-random, TraDy and MeDyate "
         "are planned against it as `medyate plan` does (their channel budget is solved, "
         "and layers too early for backward to fit are left out); SU's cell is the largest "
         "scheme of the grid whose plan fits (its bias-only layers keep their weights in "
         "flash); a strategy whose plan does not fit is marked ✗ there. `full` (float, "
         "host) is the upper bound; `last` and `bias` take no budget and are repeated in "
         "every column. Accuracy: top-1 test accuracy (%) after the last epoch, mean ± std "
         "over tasks and seeds. The new head (task classes) trains in full in every "
         "strategy.", ""]
    goals = []
    agg, mem = {}, {}
    for model in cfg["models"]:
        keys = budget_keys(model, cfg)
        L += [f"## {model}", "",
              "| strategy | " + " | ".join(f"{k}: acc | train mem KiB | device RAM KiB"
                                           for k in keys) + " |",
              "|---|" + "---|---|---|" * len(keys)]
        table = {}
        for s in ORDER:
            cells = []
            for k in keys:
                rs = cell_records(final, model, s, k, cfg)
                if rs and all("infeasible" in r for r in rs):
                    cells += ["does not fit", "-", "-"]
                    continue
                if not rs:
                    cells += ["none fits" if s == "su" and k.endswith(DEVICE) else "-", "-", "-"]
                    continue
                mu, sd, tm, d, sch = table[(s, k)] = _summary(rs)
                limit = device_bytes(k) or 320 * 1024
                mark = (" ✗" if k.endswith(DEVICE) else " †") if d is not None and d > limit else ""
                note = f" ({sch})" if s == "su" and k.endswith(DEVICE) else ""
                cells += [f"{mu:.1f} ± {sd:.1f}{note}", f"{tm / 1024:.1f}",
                          "-" if d is None else f"{d / 1024:.1f}{mark}"]
            L.append(f"| {s} | " + " | ".join(cells) + " |")
        L += ["", "† over the board's 320 KiB; ✗ over the column's device-RAM budget.", "",
              "Chosen (lr, epochs) per task: " + "; ".join(
                  f"{s}{'@' + k if k else ''} {t.split('-rgb128')[0]} {lr:g}/{ep}"
                  for (m, t, s, k), (lr, ep) in sorted(chosen.items(), key=str) if m == model),
              ""]
        for (s, k), v in table.items():
            if not k.endswith(DEVICE):
                agg[(model, s, None if s in ("full", "last", "bias") else k)] = v[0]
                mem[(model, s, None if s in ("full", "last", "bias") else k)] = v[2]
        infeasible = {r["scheme"]: r["infeasible"] for r in final
                      if r["model"] == model and r["strategy"] == "medyate" and "infeasible" in r}
        goals += goal_lines(model, keys, table, infeasible)
    L += ["## Goal check", "", "MeDyate at or above every other strategy on average at every "
          "budget (at a device-RAM budget, among the strategies whose plan fits it); within "
          "1 point of full fine-tuning at ≤ 1/10 of its training memory, which is a "
          "comparison only where full fine-tuning is an upper bound (at or above last layer "
          "and bias only).", ""]
    L += goals + [""]
    L += ["## Layer ranking against a per-layer training oracle", "",
          "Oracle (`medyate.algo.measure.oracle_loss`): each layer listed trains alone "
          "with the head, its channels redrawn uniformly each epoch under the same channel "
          "budget for every layer (the smallest scheme's, less the head), for "
          f"{cfg['oracle_epochs']} epochs on the training part; gain = the head alone's "
          "validation loss minus the layer's. Spearman's rho of the ranking run's layer "
          f"scores ({RANKING_SAMPLES} samples) against the gain"
          + (f", over {cfg['oracle_layers']} layers evenly spaced in the network."
             if cfg["oracle_layers"] else ", over every layer but the head."), "",
          "| model | task | layers | head alone val loss | rho LaRa | rho RGN |",
          "|---|---|---|---|---|---|"]
    for (m, t), r in sorted(rho.items()):
        L.append(f"| {m} | {t} | {r['layers']} | {r['head_loss']:.3f} | "
                 f"{r['lara']:+.2f} | {r['rgn']:+.2f} |")
    L.append("")
    Path(out_md).write_text("\n".join(L))
    _plot(agg, mem, cfg, out_png)


def goal_lines(model, keys, table, infeasible=None) -> list[str]:
    """The goal check of one model, from its table {(strategy, key): summary};
    infeasible {key: the planner's error} where no plan fits a budget."""
    infeasible = infeasible or {}
    out = []
    full = table.get(("full", keys[0]))
    floor = max((table[(s, keys[0])][0] for s in ("last", "bias") if (s, keys[0]) in table),
                default=math.nan)
    for k in keys:
        med = table.get(("medyate", k))
        if med is None or math.isnan(med[0]):
            out.append(f"- {model} {k}: no MeDyate result: "
                       + (infeasible.get(k) or "see the records") + ".")
            continue
        mmu = med[0]
        ram = device_bytes(k)
        others, unfit = {}, []
        for s in ("last", "bias", "su", "static-random", "trady"):
            v = table.get((s, k))
            if v is None or math.isnan(v[0]):
                continue
            if ram is not None and (v[3] is None or v[3] > ram):
                unfit.append(s)
                continue
            others[s] = v[0]
        below = [f"{s} {v:.1f}" for s, v in others.items() if v > mmu + 1e-9]
        line = (f"- {model} {k}: MeDyate {mmu:.1f} — "
                + ("**at or above every other strategy**" if not below else
                   "**below** " + ", ".join(below)))
        if unfit:
            line += f" (not fitting {k}: {', '.join(unfit)})"
        if ram is not None and med[3] is not None and med[3] > ram:
            line += f"; MeDyate's own plan is over the budget ({med[3] / 1024:.1f} KiB)"
        if full is not None:
            fmu, fmem = full[0], full[2]
            tenth = med[2] <= fmem / 10
            if math.isnan(fmu) or fmu < floor:
                verdict = (f"**not comparable**: full fine-tuning reaches {fmu:.1f}, below "
                           f"last/bias ({floor:.1f}), so it is no upper bound under this grid")
            else:
                verdict = ("**met**" if tenth and mmu >= fmu - 1 else "**not met**") + \
                    f" (full {fmu:.1f}, {mmu - fmu:+.1f} points; MeDyate's training memory " \
                    f"{med[2] / 1024:.1f} KiB {'≤' if tenth else '>'} 1/10 of full's " \
                    f"{fmem / 1024:.0f} KiB)"
            line += "; within 1 point of full fine-tuning at ≤ 1/10 of its memory: " + verdict
        out.append(line + ".")
    return out


def _plot(agg, mem, cfg, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from medyate.algo.su_schemes import TTE_SCHEMES
    fig, axes = plt.subplots(1, len(cfg["models"]), figsize=(6 * len(cfg["models"]), 4.5),
                             squeeze=False)
    for ax, model in zip(axes[0], cfg["models"]):
        keys = [list(TTE_SCHEMES[model])[i] for i in cfg["schemes"]]
        for s, mk in zip(ORDER, "osD^v<*"):
            kk = [None] if s in ("full", "last", "bias") else keys
            pts = [(mem[(model, s, k)] / 1024, agg[(model, s, k)])
                   for k in kk if (model, s, k) in agg and not math.isnan(agg[(model, s, k)])]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker=mk, lw=2.5 if s == "medyate" else 1.2, label=s)
        ax.set_xscale("log")
        ax.set_xlabel("training memory (KiB, paper's count, log)")
        ax.set_ylabel("top-1 test accuracy (%)")
        ax.set_title(model)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="CI smoke grid (about a minute)")
    g.add_argument("--medium", action="store_true", help="3 models, 1 task, the smallest "
                   "and largest scheme sizes and 256 KiB of device RAM, 1 seed (about 1 h "
                   "on 2 cores)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--resume", action="store_true",
                   help="take the runs the journal (real_models*.runs.jsonl in --out) already "
                   "holds from it, run the rest (the grid must be the journal's)")
    p.add_argument("--stop-after", type=float, metavar="HOURS",
                   help="stop cleanly after this many hours of this sitting, every "
                   "finished run kept in the journal; go on later with --resume")
    p.add_argument("--report-only", action="store_true",
                   help="no training: rewrite the table and plot from the grid's records "
                   "(.jsonl, .meta.json), with the device RAM recounted by today's planner")
    args = p.parse_args(argv)
    grid = "quick" if args.quick else "medium" if args.medium else "full"
    cfg = dict(GRIDS[grid], workers=args.workers)
    stem = "real_models" + ("" if grid == "full" else f"_{grid}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = lambda s: print(s, flush=True)  # noqa: E731
    command = "PYTHONPATH=host .venv/bin/python bench/real_models.py" + \
        ("" if grid == "full" else f" --{grid}")
    if args.report_only:
        return report_only(out, stem, grid, log)
    log(f"{grid} grid: {json.dumps(cfg)}")
    journal = Journal(out / f"{stem}.runs.jsonl", cfg, args.resume, args.stop_after)
    try:
        sel_jobs = grid_jobs(cfg, "select")
        log(f"choosing lr/epochs on the validation part: {len(sel_jobs)} runs")
        selection = run_all(sel_jobs, args.workers, log, "select", journal)
        chosen = choose(selection)
        fin_jobs = grid_jobs(cfg, "final", chosen)
        log(f"final runs: {len(fin_jobs)}")
        final = run_all(fin_jobs, args.workers, log, "final", journal)
        orc_jobs = oracle_jobs(cfg, chosen)
        log(f"layer oracle: {len(orc_jobs)} runs")
        oracle = run_all(orc_jobs, args.workers, log, "oracle", journal)
    except Stopped as e:
        journal.close_session()
        log(f"stopped after {fmt_time(journal.elapsed())} in all ({e}); every finished run "
            f"is in {journal.path}: go on with the same command and --resume")
        return 3
    journal.close_session()
    rho = spearman_table(oracle, cfg)
    seconds = journal.elapsed()
    with open(out / f"{stem}.jsonl", "w") as f:
        for r in selection + final + oracle:
            f.write(json.dumps({k: v for k, v in r.items() if k != "cfg"}) + "\n")
    (out / f"{stem}.meta.json").write_text(json.dumps(
        {"cfg": cfg, "seconds": seconds, "command": command,
         "rho": [dict(model=m, task=t, **r) for (m, t), r in rho.items()]}, indent=1))
    write_report(final, chosen, rho, cfg, grid, seconds, out / f"{stem}.md",
                 out / f"{stem}.png", command)
    log((out / f"{stem}.md").read_text())
    return 0


def report_only(out, stem, grid, log) -> int:
    meta = json.loads((out / f"{stem}.meta.json").read_text())
    cfg = meta["cfg"]
    recs = [json.loads(line) for line in (out / f"{stem}.jsonl").read_text().splitlines()]
    final = [r for r in recs if r["kind"] == "final"]
    for r in final:
        if "device_ram" in r:
            task = task_split(r["task"], r["seed"], cfg, r["split"])
            r["device_ram"] = device_ram(r, model_for_task(r["model"], task)[0])
    with open(out / f"{stem}.jsonl", "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    chosen = choose([r for r in recs if r["kind"] == "select"])
    rho = {(r["model"], r["task"]): r for r in meta["rho"]}
    write_report(final, chosen, rho, cfg, grid, meta["seconds"], out / f"{stem}.md",
                 out / f"{stem}.png", meta["command"])
    log((out / f"{stem}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
