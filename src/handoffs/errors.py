"""The exceptions handoffs raises.

```
HandoffsError
├── ConfigError            bad config, job file or model id: shown as one line, exit code 2
├── MissingKey             a model the job needs has no API key in the environment (a ConfigError)
├── HandoffError           .task_id, .attempts
│   ├── VerificationFailed .verdicts — every rung produced output that failed its checks
│   ├── NoRouteAvailable   .reasons — the router kept no model for the task
│   ├── HandoffFailed      every rung was tried and none delivered
│   │   └── ProviderRejected .model, .cause — a 4xx that retrying cannot fix (bad request, auth)
│   └── HandoffTimeout     the handoff ran out of time or attempts
└── BudgetExceeded         .limit, .spent, .reserved, .requested
```

Exceptions are data: keyword-only context, no logging, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from handoffs.handoff import Attempt, Verdict

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "HandoffError",
    "HandoffFailed",
    "HandoffTimeout",
    "HandoffsError",
    "MissingKey",
    "NoRouteAvailable",
    "ProviderRejected",
    "VerificationFailed",
]


class HandoffsError(Exception):
    """Base class of every error handoffs raises on purpose."""


class ConfigError(HandoffsError):
    """A configuration, catalog, policy or job file is invalid. The message is one line for a user."""


class MissingKey(ConfigError):
    """A model the job needs is hosted by a provider whose API key is not in the environment."""

    def __init__(self, *, model: str, env_var: str) -> None:
        self.model = model
        self.env_var = env_var
        super().__init__(f"model {model!r} needs {env_var} in the environment")


class HandoffError(HandoffsError):
    """A handoff could not deliver a validated output."""

    def __init__(self, message: str, *, task_id: str, attempts: Sequence[Attempt] = ()) -> None:
        self.task_id = task_id
        self.attempts = tuple(attempts)
        super().__init__(message)


class VerificationFailed(HandoffError):
    """Every model that answered produced output that failed its checks."""

    def __init__(
        self,
        message: str,
        *,
        task_id: str,
        attempts: Sequence[Attempt] = (),
        verdicts: Sequence[Verdict] = (),
    ) -> None:
        self.verdicts = tuple(verdicts)
        super().__init__(message, task_id=task_id, attempts=attempts)


class NoRouteAvailable(HandoffError):
    """The router kept no model for this task; `.reasons` says why each one was dropped."""

    def __init__(self, message: str, *, task_id: str, reasons: Sequence[str] = ()) -> None:
        self.reasons = tuple(reasons)
        super().__init__(message, task_id=task_id)


class HandoffFailed(HandoffError):
    """Every rung of the route was tried and none delivered (provider errors, failed checks)."""


class ProviderRejected(HandoffFailed):
    """A provider refused the request itself (bad request, authentication, unknown model): sending it
    again, here or elsewhere, would not help, so nothing is retried and no fallback hides it."""

    def __init__(
        self,
        message: str,
        *,
        task_id: str,
        model: str,
        cause: str,
        attempts: Sequence[Attempt] = (),
    ) -> None:
        self.model = model
        self.cause = cause
        super().__init__(message, task_id=task_id, attempts=attempts)


class HandoffTimeout(HandoffError):
    """The handoff used up its time (`deadline_s`, `max_handoff_s`) or its attempts."""


class BudgetExceeded(HandoffsError):
    """A reservation would take spending past a budget's limit; raised before the call is made."""

    def __init__(
        self,
        message: str,
        *,
        limit: Decimal,
        spent: Decimal,
        reserved: Decimal,
        requested: Decimal,
    ) -> None:
        self.limit = limit
        self.spent = spent
        self.reserved = reserved
        self.requested = requested
        super().__init__(message)
