"""What a failed provider call means, and what the engine does about it.

pydantic-ai 2.68 already sorts provider errors into categories (`ModelRateLimitError`,
`ModelOverloadedError`, `ModelConnectionError`, `ModelContextWindowExceededError`,
`ContentFilterError`...), whichever wire and SDK they came through. `classify` maps them onto the
engine's five actions:

| kind             | from                                                        | the engine            |
|------------------|-------------------------------------------------------------|-----------------------|
| `unavailable`    | 5xx, 529 overloaded, quota, connection refused/reset,       | next provider, no     |
|                  | read timeout, a stream that broke off, request deadlines    | delay; breaker failure|
| `rate_limited`   | 429                                                         | wait `Retry-After` if |
|                  |                                                             | it fits, else next    |
| `context_length` | the input exceeds the model's context window                | a longer-context model|
| `content_filter` | the provider's content filter refused                       | the task's fallback   |
| `rejected`       | any other 4xx: bad request, authentication, unknown model   | stop: a clear error   |
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic_ai.exceptions import (
    AgentRunError,
    ContentFilterError,
    ModelAPIError,
    ModelContextWindowExceededError,
    ModelHTTPError,
    ModelRateLimitError,
    ModelRequestRejectedError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)

from handoffs.handoff import FaultKind
from handoffs.providers._secret import redact

__all__ = ["FaultKind", "ProviderFault", "classify"]

_FILTER_CODES = frozenset({"content_filter", "content_policy_violation"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderFault:
    """A provider failure, sorted."""

    kind: FaultKind
    detail: str
    """One line: the error's class and message."""
    retry_after_s: float | None = None
    """What a 429 asked us to wait, when it said."""

    @property
    def counts_against_endpoint(self) -> bool:
        """Whether the breaker should count it: the endpoint is sick, not the request."""
        return self.kind == "unavailable"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


def classify(exc: BaseException) -> ProviderFault | None:
    """Sort a provider failure, or None when `exc` is not one (e.g. an invalid answer)."""
    detail = redact(_one_line(exc))
    if isinstance(exc, ContentFilterError):
        return ProviderFault(kind="content_filter", detail=detail)
    if isinstance(exc, ModelAPIError) and exc.provider_error_code in _FILTER_CODES:
        return ProviderFault(kind="content_filter", detail=detail)  # OpenAI's 400 content_filter
    if isinstance(exc, ModelRateLimitError):
        return ProviderFault(kind="rate_limited", detail=detail, retry_after_s=exc.retry_after)
    if isinstance(exc, ModelContextWindowExceededError):
        return ProviderFault(kind="context_length", detail=detail)
    if isinstance(exc, ModelRequestRejectedError):
        return ProviderFault(kind="rejected", detail=detail)
    if isinstance(exc, ModelHTTPError):
        status = exc.status_code
        if status == 429:
            return ProviderFault(kind="rate_limited", detail=detail, retry_after_s=exc.retry_after)
        if 400 <= status < 500 and status not in (402, 408, 409):
            return ProviderFault(kind="rejected", detail=detail)
        return ProviderFault(kind="unavailable", detail=detail)
    if isinstance(exc, ModelAPIError | TimeoutError | OSError):
        return ProviderFault(kind="unavailable", detail=detail)
    if isinstance(exc, UnexpectedModelBehavior | UsageLimitExceeded):
        return None  # the answer's fault: the engine retries with feedback, then escalates
    if isinstance(exc, AgentRunError):
        return ProviderFault(kind="unavailable", detail=detail)
    return None
