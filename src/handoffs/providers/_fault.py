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
| `overrun`        | usage past the `max_tokens` sent (`OutputOverrun`)          | next provider, no     |
|                  |                                                             | delay; breaker opened |

A fault is `billable` when the provider may have billed the request: it was sent and no error
status came back first (a read timeout, a stream that broke off or stalled, an error inside a
stream, a body that could not be read, an overrun). The engine charges such a call its whole
reservation (or what the provider reported, when that is more).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx
from pydantic_ai import RunContext
from pydantic_ai.exceptions import (
    AgentRunError,
    ContentFilterError,
    ModelAPIError,
    ModelConnectionError,
    ModelContextWindowExceededError,
    ModelHTTPError,
    ModelRateLimitError,
    ModelRequestRejectedError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from handoffs.errors import MalformedResponse, OutputOverrun
from handoffs.handoff import FaultKind
from handoffs.providers._secret import redact

__all__ = [
    "FaultKind",
    "MalformedResponse",
    "OutputOverrun",
    "ProviderFault",
    "ReadableModel",
    "classify",
]

_FILTER_CODES = frozenset({"content_filter", "content_policy_violation"})


def _transport_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [
        httpx.TransportError,
        httpcore.ProtocolError,
        httpcore.NetworkError,
        httpcore.TimeoutException,
    ]
    try:  # the openai SDK of this release talks through httpx2, httpx's successor
        module = importlib.import_module("httpx2")
    except ImportError:
        return tuple(found)
    error = getattr(module, "TransportError", None)
    if isinstance(error, type) and issubclass(error, BaseException):
        found.append(error)
    return tuple(found)


_TRANSPORT = _transport_errors()
"""The HTTP stack's errors for a connection that broke: the endpoint's fault."""

_UNREADABLE = (IndexError, AttributeError, AssertionError, KeyError)
"""What pydantic-ai's wire adapters raise on a response they cannot read: `choices[0]` of an
empty list (IndexError), `None.output_tokens_details` for a Messages response without `usage`
(AttributeError), a stream whose first event is not `message_start` (AssertionError)."""


class ReadableModel(WrapperModel):
    """`wrapped`, with what its adapter raises on a response it cannot read (`_UNREADABLE`), plain
    or streamed, turned into a `MalformedResponse` (a provider fault: failover, recorded, charged
    its reservation): without it a bare IndexError, AttributeError or AssertionError escapes the
    engine with no record."""

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        try:
            return await super().request(messages, model_settings, model_request_parameters)
        except _UNREADABLE as exc:
            raise _malformed(self.model_name, exc) from exc

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse, None]:
        try:
            async with super().request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                yield stream
        except _UNREADABLE as exc:
            raise _malformed(self.model_name, exc) from exc


def _malformed(model: str, exc: BaseException) -> MalformedResponse:
    if isinstance(exc, IndexError):
        return MalformedResponse(
            model, f"the response holds no answer (an empty choices list?): {exc}"
        )
    return MalformedResponse(model, f"the response could not be read: {type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderFault:
    """A provider failure, sorted."""

    kind: FaultKind
    detail: str
    """One line: the error's class and message."""
    retry_after_s: float | None = None
    """What a 429 asked us to wait, when it said."""
    billable: bool = True
    """Whether the provider may have billed the request (it was sent, and no error status came
    back before an answer began)."""

    @property
    def counts_against_endpoint(self) -> bool:
        """Whether the breaker should count it: the endpoint is sick, not the request."""
        return self.kind in ("unavailable", "overrun")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


def _billable(exc: BaseException) -> bool:
    """Whether the request may have been billed: it was sent and no error status answered it."""
    if isinstance(exc, ModelHTTPError) and not exc.in_stream:
        return False  # an error status: providers do not bill the request it refuses
    if isinstance(exc, ModelConnectionError) and exc.phase in ("pool", "connect"):
        return False  # never sent
    return not isinstance(exc, ConnectionRefusedError)


def classify(exc: BaseException) -> ProviderFault | None:
    """Sort a provider failure, or None when `exc` is not one (e.g. an invalid answer)."""
    fault = _sort(exc)
    if fault is None or _billable(exc):
        return fault
    return ProviderFault(
        kind=fault.kind, detail=fault.detail, retry_after_s=fault.retry_after_s, billable=False
    )


def _sort(exc: BaseException) -> ProviderFault | None:
    detail = redact(_one_line(exc))
    if isinstance(exc, OutputOverrun):
        return ProviderFault(kind="overrun", detail=detail)
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
    if isinstance(exc, (ModelAPIError, TimeoutError, OSError, *_TRANSPORT)):
        # httpx's (even httpcore's) own errors reach here raw when the openai SDK reads a
        # streamed request's error body outside its error mapping and the body breaks off
        return ProviderFault(kind="unavailable", detail=detail)
    if isinstance(exc, UnexpectedModelBehavior | UsageLimitExceeded):
        return None  # the answer's fault: the engine retries with feedback, then escalates
    if isinstance(exc, AgentRunError):
        return ProviderFault(kind="unavailable", detail=detail)
    return None
