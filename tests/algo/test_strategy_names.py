"""One registry of strategy names (medyate.strategy_names): what the
algorithm implements, plan.json accepts, `medyate plan` offers, a session
runs from a plan, the benchmark compares and the docs describe."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from medyate import cli, strategy_names as names
from medyate.algo.strategies import STRATEGIES, make_strategy
from medyate.planner import plan as plan_file

ROOT = Path(__file__).resolve().parents[2]


def test_algorithm_implements_every_name_but_the_plans_own():
    assert set(STRATEGIES) == set(names.STRATEGIES) - {"fixed"}
    for name in STRATEGIES:
        assert make_strategy(name).name == name
    assert set(names.BENCHMARK_STRATEGIES) == set(STRATEGIES)


def test_plans_accept_and_offer_the_registrys_names():
    assert tuple(plan_file.STRATEGIES) == names.PLAN_STRATEGIES
    assert set(names.PLANNED_STRATEGIES) <= set(names.PLAN_STRATEGIES)
    action = next(a for a in cli.build_parser()._subparsers._group_actions[0]
                  .choices["plan"]._actions if a.dest == "strategy")
    assert tuple(action.choices) == names.PLANNED_STRATEGIES


@pytest.mark.parametrize("name", names.PLAN_STRATEGIES)
def test_a_session_runs_every_plan_strategy(name):
    from types import SimpleNamespace
    from medyate.session.run import strategy_from_plan
    plan = SimpleNamespace(strategy=name, layers=["a"], importance={"a": [1.0]},
                           temperature=1.0, train_bias=False, selection=[[0, 0]])
    assert strategy_from_plan(plan, graph=None).name == name


def test_docs_and_benchmark_use_the_names():
    doc = (ROOT / "docs" / "ALGORITHM.md").read_text()
    table = set(re.findall(r"^\| `([a-z-]+)` \|", doc, re.M))
    assert set(STRATEGIES) <= table
    bench = (ROOT / "bench" / "strategies.py").read_text()
    assert "STRATEGY_ORDER = list(BENCHMARK_STRATEGIES)" in bench
