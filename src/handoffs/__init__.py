"""handoffs: delegate typed subtasks to cheaper models, verify, escalate, stay in budget."""

from handoffs.budget import Budget
from handoffs.catalog import Catalog, ModelEntry
from handoffs.engine._cap import Caps, SpendCap
from handoffs.engine._retry import RetryPolicy
from handoffs.engine._session import Session
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
from handoffs.health._breaker import BreakerSettings, Health
from handoffs.health._prober import Prober
from handoffs.orchestrator._agent import JobResult, Orchestrator, OrchestratorSpec, Subordinate
from handoffs.project._config import Config, load_config
from handoffs.project._run import open_portfolio
from handoffs.providers._portfolio import Portfolio
from handoffs.routing._router import Policy, RouteDecision, Rule, route
from handoffs.task import NO_FALLBACK, Task
from handoffs.tracing._spans import Tracing
from handoffs.verify import checks
from handoffs.verify._run import Check, CheckContext

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
