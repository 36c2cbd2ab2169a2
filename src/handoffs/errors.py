"""The exceptions handoffs raises: the whole tree, in this one module.

```
HandoffsError
├── ConfigError              bad config, job file or model id: shown as one line, exit code 2
│   ├── MissingKey           .model, .env_var — a model the job needs has no API key in the environment
│   ├── LocalModelUnavailable .missing, .install — the embedded local model cannot run here
│   ├── JobsDatabaseError    the jobs database URL is malformed, or the database is unreachable
│   └── UnknownJob           .job_id — no job has this id in the jobs database
├── HandoffError             .task_id, .attempts
│   ├── VerificationFailed   .verdicts — every rung produced output that failed its checks
│   ├── NoRouteAvailable     .reasons — the router kept no model for the task
│   ├── HandoffFailed        every rung was tried and none delivered
│   │   └── ProviderRejected .model, .cause — a 4xx that retrying cannot fix (bad request, auth)
│   └── HandoffTimeout       the handoff ran out of time or attempts
├── BudgetExceeded           .limit, .spent, .reserved, .requested
├── JobNotCompleted          .info — the result of a durable job that was cancelled or failed
├── Refused                  internal: the guard sent no request (an open circuit, a spend cap)
├── MalformedResponse        internal: a 200 response that holds no readable answer
└── OutputOverrun            internal: the provider answered past the max_tokens it was sent
```

The three internal ones are also pydantic-ai `ModelAPIError`s: they are how a model call that
failed in a way pydantic-ai does not know reaches the engine's fault sorting
(`handoffs.providers.classify`), which turns them into provider faults; they do not leave the
engine. One assertion lives outside the
tree: `handoffs.gauntlet.GauntletFailed` is an `AssertionError`, so that pytest reports a broken
Gauntlet invariant as a failed assertion.

Exceptions are data: keyword-only context, no logging, no I/O. Every one pickles with its class and
fields (DBOS journals an exception a step or workflow raised by pickling it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic_ai.exceptions import ModelAPIError

from handoffs.handoff import Attempt, Verdict

if TYPE_CHECKING:
    from pydantic import ValidationError
    from pydantic_core import ErrorDetails

    from handoffs.handoff import Attempt, Verdict

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "HandoffError",
    "HandoffFailed",
    "HandoffTimeout",
    "HandoffsError",
    "JobNotCompleted",
    "JobsDatabaseError",
    "LocalModelUnavailable",
    "MalformedResponse",
    "MissingKey",
    "NoRouteAvailable",
    "OutputOverrun",
    "ProviderRejected",
    "Refused",
    "Rejection",
    "UnknownJob",
    "VerificationFailed",
]

Rejection = Literal["content_filter", "rejected"]
"""Why a provider refused a request outright: its content filter, or any other 4xx."""


def _restore(cls: type[HandoffsError], args: tuple[Any, ...], fields: dict[str, Any]) -> Any:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(fields)
    return exc


class HandoffsError(Exception):
    """Base class of every error handoffs raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields defeat BaseException's pickling (it calls cls(*args)): rebuild the
        # instance from its message and fields without calling __init__.
        return _restore, (type(self), self.args, dict(vars(self)))


class ConfigError(HandoffsError):
    """A configuration, catalog, policy or job file is invalid. The message is one line for a user."""


class MissingKey(ConfigError):
    """A model the job needs is hosted by a provider whose API key is not in the environment."""

    def __init__(self, *, model: str, env_var: str) -> None:
        self.model = model
        self.env_var = env_var
        super().__init__(f"model {model!r} needs {env_var} in the environment")


class LocalModelUnavailable(ConfigError):
    """The embedded model cannot run here: `missing` names the package or file that is absent,
    `install` how to install it."""

    def __init__(self, *, missing: str, install: str) -> None:
        self.missing = missing
        self.install = install
        super().__init__(f"the local model needs {missing}: {install}")


class JobsDatabaseError(ConfigError):
    """The jobs database URL is malformed, or the database cannot be reached or created."""


class UnknownJob(ConfigError):
    """No job has this id in the jobs database."""

    def __init__(self, *, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"no job {job_id!r} in the jobs database")


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
        cause: Rejection,
        attempts: Sequence[Attempt] = (),
    ) -> None:
        self.model = model
        self.cause: Rejection = cause
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


class JobNotCompleted(HandoffsError):
    """`JobHandle.result()` of a job that was cancelled or failed; `.info` (a `handoffs.jobs.JobInfo`:
    the protocol layer names no wing's types) holds what finished."""

    def __init__(self, message: str, *, info: Any) -> None:
        self.info = info
        super().__init__(message)


class Refused(HandoffsError, ModelAPIError):
    """The guard refused the call (an open circuit, a spend cap): no request was sent."""

    def __init__(self, model_name: str, message: str) -> None:
        ModelAPIError.__init__(self, model_name, message)


class MalformedResponse(HandoffsError, ModelAPIError):
    """A 200 response that cannot be read as an answer (e.g. an empty `choices` list, a stream
    that ended without the provider's finish reason)."""

    def __init__(self, model_name: str, message: str) -> None:
        ModelAPIError.__init__(self, model_name, message)


class OutputOverrun(HandoffsError, ModelAPIError):
    """The provider answered past the `max_tokens` it was sent (its usage says so, or it kept
    streaming): it ignores the limit every reservation relies on."""

    def __init__(self, model_name: str, message: str) -> None:
        ModelAPIError.__init__(self, model_name, message)


def config_error(
    error: ValidationError, *, source: str | None = None, within: Sequence[str | int] = ()
) -> ConfigError:
    """pydantic's complaint about a file as one `ConfigError` line: the file (`source`), the key
    path (below `within`) and the problem of its first error, e.g.
    `handoffs.toml: models.frontier.tier: must be one of frontier, mid, small, local (got 'huge')`.
    """
    problems = error.errors(include_url=False)
    first = problems[0]
    key = _key_path((*within, *first["loc"]))
    text = ": ".join(part for part in (source, key, _problem(first)) if part)
    if len(problems) > 1:
        more = len(problems) - 1
        text += f"; and {more} more problem{'s' if more > 1 else ''}"
    return ConfigError(text)


_SAID = {
    "missing": "is required",
    "extra_forbidden": "unknown key",
    "bool_type": "must be true or false",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "list_type": "must be an array",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "greater_than": "must be greater than {gt:g}",
    "greater_than_equal": "must be at least {ge:g}",
    "less_than": "must be less than {lt:g}",
    "less_than_equal": "must be at most {le:g}",
}
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key_path(loc: Sequence[str | int]) -> str:
    """`("policy", "rules", 0, "ladder")` -> `policy.rules[0].ladder`; odd keys quoted, escaped."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != "[key]":  # pydantic's mark for a problem with a table's key itself
            shown = part if _BARE.fullmatch(part) else json.dumps(part)
            text += f".{shown}" if text else shown
    return text


def _problem(error: ErrorDetails) -> str:
    kind = error["type"]
    context: dict[str, Any] = dict(error.get("ctx") or {})
    if kind in ("missing", "extra_forbidden"):
        return _SAID[kind]
    if kind == "literal_error":
        said = "must be one of " + ", ".join(re.findall(r"'([^']*)'", str(context["expected"])))
    elif kind == "too_short":
        least = context.get("min_length", 1)
        said = "must not be empty" if least == 1 else f"must have at least {least} items"
    elif kind in ("value_error", "assertion_error") and "error" in context:
        said = str(context["error"])
    elif kind in _SAID:
        said = _SAID[kind].format(**context)
    else:
        said = error["msg"][:1].lower() + error["msg"][1:]
    if isinstance(error["input"], dict):  # a whole table: the key path says which
        return said
    shown = repr(error["input"])
    return f"{said} (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
