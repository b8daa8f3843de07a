"""Benchmark: every training strategy under the same whole-device RAM budgets.

    .venv/bin/python bench/strategies.py            # the default grid (< 1 h on 2 cores)
    .venv/bin/python bench/strategies.py --quick    # tiny grid, CI smoke test (< 60 s)

Grid: models x tasks x RAM budgets x seeds x strategies (full, last, bias, su,
static-random, trady, medyate: medyate.strategy_names.BENCHMARK_STRATEGIES),
all trained through the host build of the C engine (the device's kernels). A RAM budget is the whole RAM of training on the board
(arena + trainable weights + firmware static data + stack), counted exactly as
`medyate plan` counts it (`planner_memory_fn(graph, board)`, planner.footprint).

How a RAM budget becomes each strategy's channel budget, the same way for all:
  static-random, trady
                  `plan_training(metric="rgn")`: rank, pre-select, and solve the
                  largest channel budget whose footprint for *their* layers fits;
  medyate         the same with `metric="lara"`;
  su              its fixed layers (biases of the last third, weights of the
                  last 4): the largest channel budget whose footprint fits;
  bias, last      take no channel budget: their own footprint is reported and
                  flagged when it exceeds the budget (they cannot shrink);
  full            ignores the budget (the accuracy upper bound); its RAM is
                  reported.
Strategies that take no budget are run once per (model, task, seed) and
compared at every budget. Every strategy gets the same epochs, schedule (SGD
without momentum, cosine with warm-up), data order and seeds (`run_strategy`),
and one ranking run per (model, task, seed) is shared between them.

Writes, in --out (default bench/results/): strategies.jsonl (every run's final
record), strategies.md (tables and the goal check) and strategies.png
(accuracy against training RAM).
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from medyate.strategy_names import BENCHMARK_STRATEGIES  # noqa: E402

STRATEGY_ORDER = list(BENCHMARK_STRATEGIES)
UNBUDGETED = ("full", "last", "bias")     # one run per (model, task, seed)
BOARD = "nucleo-f746"

DEFAULT = dict(models=["mbv2-tiny", "mcunet-tiny"],
               tasks=["fmnist-5to9", "digits", "fmnist-inv"],
               budgets=["160KiB", "192KiB", "256KiB"], seeds=[0, 1, 2],
               epochs=10, n_train=500, n_test=500, batch=16, lr=0.05)
QUICK = dict(models=["mbv2-tiny"], tasks=["fmnist-5to9"], budgets=["256KiB"], seeds=[0],
             epochs=2, n_train=64, n_test=64, batch=16, lr=0.05)


# --------------------------------------------------------------------------- setup

_CACHE: dict = {}


def _model(name):
    """Graph and engine factory of a bundled model, built once per process."""
    if ("model", name) not in _CACHE:
        from medyate.algo.trainer import HostEngineFactory
        from medyate.ir.onnx_import import load_onnx
        graph = load_onnx(str(ROOT / "models" / f"{name}.onnx"))
        _CACHE[("model", name)] = (graph, HostEngineFactory(graph))
    return _CACHE[("model", name)]


def _task(name, seed, n_train, n_test):
    key = ("task", name, seed, n_train, n_test)
    if key not in _CACHE:
        from medyate.data import load_task
        _CACHE[key] = load_task(name, seed=seed, n_train=n_train, n_test=n_test)
    return _CACHE[key]


def _overhead(graph=None) -> int:
    """Firmware static data + stack on the board (with one input of `graph`
    for the sample buffer)."""
    from medyate.planner import footprint
    return sum(footprint.device_overhead(BOARD, graph).values())


def _memory_fn_for(graph):
    """Whole-device bytes for a plan: the planner's exact arena + trainable
    weights, plus the board's firmware static data and stack (as `make_plan`)."""
    from medyate.algo.plan import planner_memory_fn
    return planner_memory_fn(graph, BOARD)


def solve_cell(model, task, seed, ram, cfg, ranking):
    """For one (model, task, seed) and RAM budget: each budgeted strategy's
    trainable layers and channel budget, or the reason it cannot fit."""
    from medyate.algo.budget import solve_budget
    from medyate.algo.plan import plan_training
    from medyate.algo.strategies import RunContext, StaticSparseUpdate
    from medyate.errors import MedyateError
    graph, factory = _model(model)
    mfor = _memory_fn_for(graph)
    specs = {s.name: s for s in factory.layers}
    out = {}
    for strat, metric in (("static-random", "rgn"), ("trady", "rgn"), ("medyate", "lara")):
        try:
            tp = plan_training(factory, task.x_train, task.y_train, ram=ram,
                               memory_fn_for=mfor, metric=metric, ranking=ranking)
            out[strat] = {"layers": tp.layers, "budget": tp.budget_elements}
        except MedyateError as e:
            out[strat] = {"error": str(e)}
    su = StaticSparseUpdate()
    ctx = RunContext(factory, task, 0, seed, cfg["batch"], cfg["lr"], cfg["epochs"])
    spec = su.prepare(ctx)
    wl = [specs[n] for n in su.weight_layers]
    try:
        b = solve_budget(ram, mfor(spec.trainable, True), min(s.cost for s in wl),
                         sum(s.total_cost for s in wl))
        out["su"] = {"layers": spec.trainable, "budget": int(b)}
    except MedyateError as e:
        out["su"] = {"error": str(e)}
    return out


def make_jobs(cfg, log=print):
    """Rankings (one per model, task, seed, shared by all its runs) and the
    per-strategy budgets, solved here once; one job per training run."""
    from medyate.algo.budget import parse_size
    from medyate.algo.ranking import ranking_run
    from medyate.algo.schedule import lr_at
    jobs, skipped = [], []
    for model in cfg["models"]:
        _, factory = _model(model)
        for task_name in cfg["tasks"]:
            for seed in cfg["seeds"]:
                task = _task(task_name, seed, cfg["n_train"], cfg["n_test"])
                # exactly the ranking run_strategy would compute itself
                rk = ranking_run(factory, task.x_train, task.y_train, samples=256,
                                 batch=cfg["batch"], lr=lr_at(0, cfg["epochs"], cfg["lr"]),
                                 seed=seed)
                base = dict(model=model, task=task_name, seed=seed, ranking=rk)
                for strat in UNBUDGETED:
                    jobs.append(dict(base, strategy=strat, budget_label=None,
                                     ram_budget=None, layers=None, budget=None))
                for label in cfg["budgets"]:
                    ram = parse_size(label)
                    solved = solve_cell(model, task, seed, ram, cfg, rk)
                    for strat in ("su", "static-random", "trady", "medyate"):
                        s = solved[strat]
                        rec = dict(base, strategy=strat, budget_label=label, ram_budget=ram)
                        if "error" in s:
                            skipped.append({k: v for k, v in rec.items() if k != "ranking"}
                                           | {"error": s["error"]})
                            continue
                        jobs.append(dict(rec, layers=s["layers"], budget=s["budget"]))
    return jobs, skipped


# ------------------------------------------------------------------------- running

def run_job(job, cfg):
    """One training run in a worker; returns its final record."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from medyate.algo.strategies import run_strategy, make_strategy
    graph, factory = _model(job["model"])
    task = _task(job["task"], job["seed"], cfg["n_train"], cfg["n_test"])
    strat, specs = job["strategy"], {s.name: s for s in factory.layers}
    if strat in ("static-random", "trady", "medyate", "su") and job["layers"] is not None:
        kwargs = {} if strat == "su" else {"layers": job["layers"]}
        strategy = make_strategy(strat, **kwargs)
        budget = job["budget"]
    else:
        strategy = make_strategy(strat)
        budget = 0 if strat == "bias" else sum(s.total_cost for s in factory.layers)
    t0 = time.perf_counter()
    hist = run_strategy(factory, task, strategy, epochs=cfg["epochs"], batch=cfg["batch"],
                        lr=cfg["lr"], seed=job["seed"], budget=budget,
                        ranking=job["ranking"])
    seconds = time.perf_counter() - t0
    final = hist[-1]
    overhead = _overhead(graph)
    peak = max(h["bytes"] for h in hist) + overhead
    trainable = getattr(strategy, "layers", None)
    return {
        "model": job["model"], "task": job["task"], "seed": job["seed"],
        "strategy": strat, "budget_label": job["budget_label"],
        "ram_budget": job["ram_budget"], "channel_budget": int(budget),
        "layers": list(trainable) if trainable is not None else None,
        "peak_ram": int(peak), "overhead": int(overhead), "epochs": cfg["epochs"], "n_train": len(task.x_train),
        "n_test": len(task.x_test), "batch": cfg["batch"], "lr": cfg["lr"],
        "test_acc": final["test_acc"], "test_loss": final["test_loss"],
        "train_acc": final["train_acc"], "loss": final["loss"],
        "best_test_acc": max(h["test_acc"] for h in hist),
        "channels": final["channels"], "elements": final["elements"],
        "seconds": seconds, "final": final,
    }


def _worker_init():
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["OPENBLAS_NUM_THREADS"] = "1"


def _run_indexed(arg):
    i, job, cfg = arg
    return i, run_job(job, cfg)


def _cost_weight(job, cfg):
    """Relative run time, for the ETA: full backprop costs more per epoch."""
    return cfg["epochs"] * (1.35 if job["strategy"] == "full" else 1.0)


def calibrate(cfg) -> float:
    """Seconds per epoch of a sparse run (one epoch of a medyate-like run on the
    first model and task), to predict the grid's duration before starting."""
    from medyate.algo.strategies import run_strategy
    _, factory = _model(cfg["models"][0])
    task = _task(cfg["tasks"][0], cfg["seeds"][0], cfg["n_train"], cfg["n_test"])
    t0 = time.perf_counter()
    run_strategy(factory, task, "trady", epochs=1, batch=cfg["batch"], lr=cfg["lr"],
                 seed=cfg["seeds"][0], budget=5000)
    return time.perf_counter() - t0


def fmt_time(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else \
        f"{s // 60}m{s % 60:02d}s"


def run_grid(cfg, workers: int, log=print):
    t_start = time.perf_counter()
    log(f"planning: rankings and per-strategy channel budgets ...")
    jobs, skipped = make_jobs(cfg, log)
    for s in skipped:
        log(f"  does not fit: {s['model']} {s['task']} seed {s['seed']} {s['budget_label']} "
            f"{s['strategy']}: {s['error']}")
    per_epoch = calibrate(cfg)
    weights = [_cost_weight(j, cfg) for j in jobs]
    expect = sum(weights) * per_epoch / max(1, workers)
    log(f"{len(jobs)} runs, {cfg['epochs']} epochs each, {workers} worker(s); "
        f"~{per_epoch:.2f} s per epoch: expected duration {fmt_time(expect)} "
        f"(planning took {fmt_time(time.perf_counter() - t_start)})")
    # longest first, so that the two workers finish together
    order = sorted(range(len(jobs)), key=lambda i: -weights[i])
    args = [(i, jobs[i], cfg) for i in order]
    results = [None] * len(jobs)
    done_w, total_w = 0.0, sum(weights)
    t0 = time.perf_counter()

    def report(k, i, rec):
        nonlocal done_w
        done_w += weights[i]
        el = time.perf_counter() - t0
        eta = el / done_w * (total_w - done_w)
        b = rec["budget_label"] or "-"
        log(f"[{k:3d}/{len(jobs)}] {rec['model']:<11} {rec['task']:<11} s{rec['seed']} "
            f"{b:>7} {rec['strategy']:<8} acc {rec['test_acc']:.3f} "
            f"ram {rec['peak_ram']:>7d} B  {rec['seconds']:5.1f}s  "
            f"elapsed {fmt_time(el)} ETA {fmt_time(eta)}")

    if workers <= 1:
        for k, a in enumerate(args, 1):
            i, rec = _run_indexed(a)
            results[i] = rec
            report(k, i, rec)
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_worker_init) as pool:
            for k, (i, rec) in enumerate(pool.imap_unordered(_run_indexed, args), 1):
                results[i] = rec
                report(k, i, rec)
    return results, skipped, time.perf_counter() - t_start


# -------------------------------------------------------------------------- report

def _mean_std(v):
    import numpy as np
    v = np.asarray(v, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _expand(results, budgets):
    """Unbudgeted runs count at every budget: rows (budget_label, record)."""
    rows = []
    for r in results:
        labels = budgets if r["budget_label"] is None else [r["budget_label"]]
        for b in labels:
            rows.append((b, r))
    return rows


def _fits(r, ram):
    return r["peak_ram"] <= ram


def summarise(results, cfg):
    """{(model|'all', budget, strategy): dict(acc=[...], ram=[...], fits=[...],
    by_task={task: [...]})}"""
    from medyate.algo.budget import parse_size
    agg = defaultdict(lambda: {"acc": [], "ram": [], "fits": [], "by_task": defaultdict(list)})
    for b, r in _expand(results, cfg["budgets"]):
        for m in (r["model"], "all"):
            a = agg[(m, b, r["strategy"])]
            a["acc"].append(100 * r["test_acc"])
            a["ram"].append(r["peak_ram"])
            a["fits"].append(_fits(r, parse_size(b)))
            a["by_task"][r["task"]].append(100 * r["test_acc"])
    return agg


def goal_check(agg, cfg, models):
    """Per budget and model set: is MeDyate >= every other strategy (but full)
    on average? Strategies over the budget are listed apart."""
    lines = []
    verdicts = {}
    for m in models:
        for b in cfg["budgets"]:
            if (m, b, "medyate") not in agg:
                lines.append(f"- {m}, {b}: MeDyate has no plan that fits: **not met**.")
                verdicts[(m, b)] = False
                continue
            med = _mean_std(agg[(m, b, "medyate")]["acc"])[0]
            beat, lost, over = [], [], []
            for s in STRATEGY_ORDER:
                if s in ("medyate", "full") or (m, b, s) not in agg:
                    continue
                a = agg[(m, b, s)]
                acc = _mean_std(a["acc"])[0]
                if not all(a["fits"]):
                    over.append(f"{s} {acc:.1f} (over the budget)")
                    continue
                (beat if med >= acc - 1e-9 else lost).append(f"{s} {acc:.1f}")
            ok = not lost
            verdicts[(m, b)] = ok
            full = _mean_std(agg[(m, b, "full")]["acc"])[0] if (m, b, "full") in agg else math.nan
            lines.append(
                f"- {m}, {b}: MeDyate {med:.1f}; "
                + ("**met**" if ok else "**not met**, below " + ", ".join(lost))
                + (f" (at or above {', '.join(beat)})" if beat else "")
                + (f"; not comparable: {', '.join(over)}" if over else "")
                + f"; full fine-tuning {full:.1f} ({med - full:+.1f} points).")
    return lines, verdicts


def tenth_check(results, agg, cfg, models):
    """Is MeDyate within 1 point of full fine-tuning at <= 1/10 of full's RAM?"""
    import numpy as np
    lines = []
    for m in models:
        if m == "all":
            continue
        full = [r for r in results if r["model"] == m and r["strategy"] == "full"]
        if not full:
            continue
        full_ram = max(r["peak_ram"] for r in full)
        full_acc = float(np.mean([100 * r["test_acc"] for r in full]))
        low = min((r for r in results if r["model"] == m), key=lambda r: r["peak_ram"])
        cheapest = low["peak_ram"]
        tenth = full_ram / 10
        rows = []
        met = False
        for b in cfg["budgets"]:
            if (m, b, "medyate") not in agg:
                continue
            a = agg[(m, b, "medyate")]
            acc, ram = _mean_std(a["acc"])[0], max(a["ram"])
            met |= ram <= tenth and acc >= full_acc - 1.0
            rows.append(f"{b}: {acc:.1f} % at {ram:,} B = {ram / full_ram:.2f} of full, "
                        f"{acc - full_acc:+.1f} points")
        why = ""
        if not met and cheapest > tenth:
            why = (f" 1/10 of full's RAM ({int(tenth):,} B) is below the cheapest training "
                   f"of any strategy here ({cheapest:,} B, {low['strategy']}): firmware static "
                   f"data and stack alone take {_recorded_overhead(low):,} B and the forward pass's "
                   f"activations must fit too, so no strategy can train at 1/10 on these "
                   f"models.")
        lines.append(f"- {m}: full fine-tuning {full_acc:.1f} % at {full_ram:,} B. "
                     + ("**Met**." if met else "**Not met**.") + why
                     + (" MeDyate: " + "; ".join(rows) + "." if rows else ""))
    return lines


def _recorded_overhead(r) -> int:
    """The firmware overhead a run counted (records before the field: peak
    RAM minus the engine's bytes)."""
    return int(r.get("overhead", r["peak_ram"] - r["final"]["bytes"]))


def write_markdown(results, skipped, cfg, path, seconds, command, workers):
    from medyate.algo.budget import parse_size
    agg = summarise(results, cfg)
    used = sorted({_recorded_overhead(r) for r in results})
    now = sorted({_overhead(_model(m)[0]) for m in cfg["models"]})
    models = cfg["models"] + (["all"] if len(cfg["models"]) > 1 else [])
    L = ["# Benchmark: training strategies under a whole-device RAM budget", ""]
    L += [f"Reproduce: `{command}` ({fmt_time(seconds)} on {workers} worker process(es), "
          f"{platform.machine()}, Python {platform.python_version()}).", ""]
    L += [f"Grid: models {', '.join(cfg['models'])}; tasks {', '.join(cfg['tasks'])}; "
          f"RAM budgets {', '.join(cfg['budgets'])} (whole device RAM on {BOARD}: arena + "
          f"trainable weights + firmware static data + stack, {', '.join(f'{v:,}' for v in used)} B of the last two); "
          f"seeds {', '.join(map(str, cfg['seeds']))}; {cfg['epochs']} epochs, "
          f"{cfg['n_train']} training / {cfg['n_test']} test samples per task, batch "
          f"{cfg['batch']}, base lr {cfg['lr']}, SGD without momentum, cosine with warm-up, "
          f"the same data order and seeds for every strategy; host build of the C engine. "
          f"Accuracy: top-1 test accuracy (%) after the last epoch, mean ± std over "
          f"seeds and tasks. RAM: peak training RAM in bytes (engine memory + "
          f"firmware overhead), the largest over the runs. `full`, `last` and `bias` take "
          f"no channel budget and are run once per model, task and seed; they are "
          f"repeated in each budget's column and marked † where they exceed that budget.", ""]
    if used != now:
        d = now[0] - used[0]
        L += [f"**Accounting note.** These runs counted {', '.join(f'{v:,}' for v in used)} B of "
              f"firmware static data and stack; `planner.footprint` now counts "
              f"{', '.join(f'{v:,}' for v in now)} B (it changed while the grid ran). Under the "
              f"current accounting every RAM figure below is {d:,} B higher, so the budgeted "
              f"strategies would exceed each budget by up to {d:,} B; rerunning the command "
              f"solves every strategy's channel budget against {d:,} B less RAM (all strategies "
              f"alike). The comparison between strategies is at equal RAM either way.", ""]
    for m in models:
        title = "All models (average)" if m == "all" else f"Model {m}"
        L += [f"## {title}", ""]
        L += ["| strategy | " + " | ".join(f"{b}: accuracy | {b}: RAM (B)" for b in cfg["budgets"]) + " |"]
        L += ["|---|" + "---|---|" * len(cfg["budgets"])]
        for s in STRATEGY_ORDER:
            cells = []
            for b in cfg["budgets"]:
                a = agg.get((m, b, s))
                if a is None:
                    cells += ["does not fit", "-"]
                    continue
                mu, sd = _mean_std(a["acc"])
                mark = "" if all(a["fits"]) else " †"
                if s == "full":
                    mark = " (no budget)"
                cells += [f"{mu:.1f} ± {sd:.1f}", f"{max(a['ram']):,}{mark}"]
            L.append(f"| {s} | " + " | ".join(cells) + " |")
        L.append("")
        L += [f"Per task ({title.lower()}), accuracy mean ± std over seeds:", ""]
        L += ["| strategy | budget | " + " | ".join(cfg["tasks"]) + " |"]
        L += ["|---|---|" + "---|" * len(cfg["tasks"])]
        for b in cfg["budgets"]:
            for s in STRATEGY_ORDER:
                a = agg.get((m, b, s))
                if a is None:
                    continue
                cells = []
                for t in cfg["tasks"]:
                    v = a["by_task"].get(t)
                    cells.append("-" if not v else "{:.1f} ± {:.1f}".format(*_mean_std(v)))
                L.append(f"| {s} | {b} | " + " | ".join(cells) + " |")
        L.append("")
    if skipped:
        L += ["## Plans that do not fit", ""]
        for s in skipped:
            L.append(f"- {s['model']} {s['task']} seed {s['seed']} {s['budget_label']} "
                     f"{s['strategy']}: {s['error']}")
        L.append("")
    L += ["## Goal check", "",
          "Goal (issue 5): MeDyate at or above every other strategy on average at every "
          "budget, and within 1 point of full fine-tuning at ≤ 1/10 of its training RAM. "
          "Strategies whose footprint exceeds a budget (†) are not in the comparison at "
          "that budget, but are listed.", ""]
    lines, verdicts = goal_check(agg, cfg, models)
    L += lines + [""]
    L += ["Within 1 point of full fine-tuning at ≤ 1/10 of its RAM:", ""]
    L += tenth_check(results, agg, cfg, models) + [""]
    Path(path).write_text("\n".join(L))
    return verdicts


def write_plot(results, cfg, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    agg = summarise(results, cfg)
    models = cfg["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    markers = dict(zip(STRATEGY_ORDER, "osD^v<*"))
    from medyate.algo.budget import parse_size
    for ax, m in zip(axes[0], models):
        for s in STRATEGY_ORDER:
            pts = []
            for b in cfg["budgets"]:
                a = agg.get((m, b, s))
                if a is None:
                    continue
                import numpy as np
                pts.append((float(np.mean(a["ram"])), _mean_std(a["acc"])[0], all(a["fits"])))
            if s in UNBUDGETED:
                pts = pts[:1]    # one footprint whatever the budget
            if not pts:
                continue
            xs, ys, _ = zip(*pts)
            ax.plot(xs, ys, marker=markers[s], lw=2.5 if s == "medyate" else 1.2,
                    ms=9 if s == "medyate" else 6, label=s)
        for b in cfg["budgets"]:
            ax.axvline(parse_size(b), color="grey", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("peak training RAM on the board (bytes, log)")
        ax.set_ylabel("top-1 test accuracy (%), mean over tasks and seeds")
        ax.set_title(f"{m} (dotted: RAM budgets {', '.join(cfg['budgets'])})", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="tiny grid (1 model, 1 task, 1 budget, 1 seed, 2 epochs, 64 samples)")
    p.add_argument("--models", nargs="+")
    p.add_argument("--tasks", nargs="+")
    p.add_argument("--budgets", nargs="+", help="RAM budgets, e.g. 144KiB 192KiB 256KiB")
    p.add_argument("--seeds", nargs="+", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--n-train", type=int)
    p.add_argument("--n-test", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", default=str(ROOT / "bench" / "results"),
                   help="directory for strategies.{md,png,jsonl}")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild strategies.md and .png from the existing strategies.jsonl "
                        "in --out (no training)")
    p.add_argument("--elapsed", type=float, default=0.0,
                   help="with --report-only: the grid's wall time in seconds, for the report")
    args = p.parse_args(argv)
    cfg = dict(QUICK if args.quick else DEFAULT)
    for k in ("models", "tasks", "budgets", "seeds", "epochs", "n_train", "n_test", "batch", "lr"):
        v = getattr(args, k)
        if v is not None:
            cfg[k] = v
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = ".venv/bin/python bench/strategies.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"config: {json.dumps(cfg)}", flush=True)
    if args.report_only:
        results = [json.loads(l) for l in (out / "strategies.jsonl").read_text().splitlines()
                   if l.strip()]
        results = [r for r in results if r.get("kind") != "skipped"]
        skipped = [json.loads(l) for l in (out / "strategies.jsonl").read_text().splitlines()
                   if l.strip() and json.loads(l).get("kind") == "skipped"]
        seconds = args.elapsed
        command = command.replace(" --report-only", "").replace(f" --elapsed {args.elapsed:g}", "")
    else:
        results, skipped, seconds = run_grid(cfg, args.workers,
                                             log=lambda s: print(s, flush=True))
        with open(out / "strategies.jsonl", "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")
            for r in skipped:      # plans that do not fit, kept with the runs
                f.write(json.dumps(dict(r, kind="skipped")) + "\n")
    verdicts = write_markdown(results, skipped, cfg, out / "strategies.md", seconds,
                              command.strip(), args.workers)
    write_plot(results, cfg, out / "strategies.png")
    print(f"done in {fmt_time(seconds)}; wrote {out / 'strategies.md'}, .png, .jsonl")
    for (m, b), ok in verdicts.items():
        print(f"  goal (MeDyate >= others) {m} {b}: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
