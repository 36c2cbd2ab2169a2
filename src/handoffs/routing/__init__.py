"""The routing wing: pure routing with a reason for every model kept or dropped (`route`), the
learned scorer and its training, shadow replay, and the outcome log the router learns from.
"""

from handoffs.routing._outcome import OutcomeLog, passed
from handoffs.routing._qualify import INCUMBENT, Trial, drift, qualification, wilson
from handoffs.routing._recorded import EXPORT_COLUMNS, Outcomes, load_outcomes
from handoffs.routing._router import (
    Policy,
    RouteDecision,
    Rule,
    estimate_input_tokens,
    longer_context,
    route,
    scorer_text,
)
from handoffs.routing._scorer import LinearScorer, Scorer, load_scorer, shape
from handoffs.routing._shadow import shadow_document
from handoffs.routing._trainer import Example, fit_linear_scorer, read_examples

__all__ = [
    "EXPORT_COLUMNS",
    "INCUMBENT",
    "Example",
    "LinearScorer",
    "OutcomeLog",
    "Outcomes",
    "Policy",
    "RouteDecision",
    "Rule",
    "Scorer",
    "Trial",
    "drift",
    "estimate_input_tokens",
    "fit_linear_scorer",
    "load_outcomes",
    "load_scorer",
    "longer_context",
    "passed",
    "qualification",
    "read_examples",
    "route",
    "scorer_text",
    "shadow_document",
    "shape",
    "wilson",
]
