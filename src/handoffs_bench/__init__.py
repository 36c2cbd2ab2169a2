"""Benchmarks on recorded outcomes: replay routing policies without calling any model.

`handoffs bench routing --train DIR --data DIR` (see `docs/routing-benchmark.md`).
"""

from handoffs.routing import EXPORT_COLUMNS, Outcomes, load_outcomes
from handoffs_bench.metric import (
    accuracy,
    aiq,
    apgr,
    cost_to_reach,
    cpt,
    escalation_rate,
    pgr,
    share_curve,
    upper_hull,
    verifier_rates,
)

__all__ = [
    "EXPORT_COLUMNS",
    "Outcomes",
    "accuracy",
    "aiq",
    "apgr",
    "cost_to_reach",
    "cpt",
    "escalation_rate",
    "load_outcomes",
    "pgr",
    "share_curve",
    "upper_hull",
    "verifier_rates",
]
