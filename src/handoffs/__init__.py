"""handoffs: delegate typed subtasks to cheaper models, verify, escalate, stay in budget."""

from handoffs import checks
from handoffs.budget import Budget
from handoffs.cap import Caps, SpendCap
from handoffs.catalog import Catalog, ModelEntry
from handoffs.config import Config, load_config
from handoffs.delegate import Session
from handoffs.errors import (
    BudgetExceeded,
    ConfigError,
    HandoffError,
    HandoffFailed,
    HandoffsError,
    HandoffTimeout,
    MissingKey,
    NoRouteAvailable,
    ProviderRejected,
    VerificationFailed,
)
from handoffs.handoff import Attempt, Delivery, HandoffRecord, RouteStep, Verdict
from handoffs.health import BreakerSettings, Health
from handoffs.orchestrator import JobResult, Orchestrator, OrchestratorSpec, Subordinate
from handoffs.probe import Prober
from handoffs.providers import Portfolio
from handoffs.retry import RetryPolicy
from handoffs.router import Policy, RouteDecision, Rule, route
from handoffs.run import open_portfolio
from handoffs.task import NO_FALLBACK, Task
from handoffs.tracing import Tracing
from handoffs.verify import Check, CheckContext

__all__ = [
    "NO_FALLBACK",
    "Attempt",
    "BreakerSettings",
    "Budget",
    "BudgetExceeded",
    "Caps",
    "Catalog",
    "Check",
    "CheckContext",
    "Config",
    "ConfigError",
    "Delivery",
    "HandoffError",
    "HandoffFailed",
    "HandoffRecord",
    "HandoffTimeout",
    "HandoffsError",
    "Health",
    "JobResult",
    "MissingKey",
    "ModelEntry",
    "NoRouteAvailable",
    "Orchestrator",
    "OrchestratorSpec",
    "Policy",
    "Portfolio",
    "Prober",
    "ProviderRejected",
    "RetryPolicy",
    "RouteDecision",
    "RouteStep",
    "Rule",
    "Session",
    "SpendCap",
    "Subordinate",
    "Task",
    "Tracing",
    "Verdict",
    "VerificationFailed",
    "checks",
    "load_config",
    "open_portfolio",
    "route",
]
