"""handoffs: delegate typed subtasks to cheaper models, verify, escalate, stay in budget."""

from handoffs.budget import Budget
from handoffs.catalog import Catalog, ModelEntry
from handoffs.engine import Caps, RetryPolicy, Session, SpendCap
from handoffs.errors import (
    BudgetExceeded,
    ConfigError,
    HandoffError,
    HandoffFailed,
    HandoffsError,
    HandoffTimeout,
    JobNotCompleted,
    JobsDatabaseError,
    LocalModelUnavailable,
    MissingKey,
    NoRouteAvailable,
    ProviderRejected,
    UnknownJob,
    VerificationFailed,
)
from handoffs.handoff import Attempt, Delivery, HandoffRecord, RouteStep, Verdict
from handoffs.health import BreakerSettings, Health, Prober
from handoffs.orchestrator import JobResult, Orchestrator, OrchestratorSpec, Subordinate
from handoffs.project import Config, load_config, open_portfolio
from handoffs.providers import Portfolio
from handoffs.routing import Policy, RouteDecision, Rule, route
from handoffs.task import NO_FALLBACK, Task
from handoffs.tracing import Tracing
from handoffs.verify import Check, CheckContext, checks

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
    "JobNotCompleted",
    "JobResult",
    "JobsDatabaseError",
    "LocalModelUnavailable",
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
    "UnknownJob",
    "Verdict",
    "VerificationFailed",
    "checks",
    "load_config",
    "open_portfolio",
    "route",
]
