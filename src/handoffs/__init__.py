"""handoffs: delegate typed subtasks to cheaper models, verify, escalate, stay in budget."""

from handoffs import checks
from handoffs.budget import Budget
from handoffs.catalog import Catalog, ModelEntry
from handoffs.delegate import Session
from handoffs.errors import (
    BudgetExceeded,
    ConfigError,
    HandoffError,
    HandoffFailed,
    HandoffsError,
    MissingKey,
    NoRouteAvailable,
    VerificationFailed,
)
from handoffs.handoff import Attempt, Delivery, HandoffRecord, RouteStep, Verdict
from handoffs.router import Policy, RouteDecision, Rule, route
from handoffs.task import Task
from handoffs.verify import Check, CheckContext

__all__ = [
    "Attempt",
    "Budget",
    "BudgetExceeded",
    "Catalog",
    "Check",
    "CheckContext",
    "ConfigError",
    "Delivery",
    "HandoffError",
    "HandoffFailed",
    "HandoffRecord",
    "HandoffsError",
    "MissingKey",
    "ModelEntry",
    "NoRouteAvailable",
    "Policy",
    "RouteDecision",
    "RouteStep",
    "Rule",
    "Session",
    "Task",
    "Verdict",
    "VerificationFailed",
    "checks",
    "route",
]
