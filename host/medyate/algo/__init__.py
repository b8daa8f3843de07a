"""The training algorithm: layer ranking (LaRa, RGN), importance-weighted channel
resampling, the budget solver and every strategy in one harness. See
docs/ALGORITHM.md."""
from .budget import format_size, parse_size, resolve_budget, solve_budget
from .importance import ChannelImportance
from .ranking import (LAYER_METRICS, RankingRun, layer_scores, preselect, rank_layers,
                      ranking_run, register_metric)
from .sampling import fill_budget, priority_order, sample_indices, sample_selection
from .schedule import cosine_schedule, lr_at
from .plan import TrainingPlan, plan_training, planner_memory_fn
from .strategies import (STRATEGIES, EngineSpec, RunContext, Strategy, data_order,
                         make_strategy, run_strategy)
from .trainer import HostEngineFactory, LayerSpec, Pair

__all__ = [
    "format_size", "parse_size", "resolve_budget", "solve_budget", "ChannelImportance",
    "LAYER_METRICS", "RankingRun", "layer_scores", "preselect", "rank_layers",
    "ranking_run", "register_metric", "fill_budget", "priority_order",
    "sample_indices", "sample_selection", "cosine_schedule", "lr_at", "STRATEGIES",
    "EngineSpec", "RunContext", "Strategy", "data_order", "make_strategy",
    "run_strategy", "TrainingPlan", "plan_training", "planner_memory_fn", "HostEngineFactory", "LayerSpec", "Pair",
]
