"""Fault injection: when a scripted model fails, and what a client then sees.

Three ways to make a model fail, all answering with a `Fault`:

- per request: the script returns `Fault.http(503)` (or any other kind) for that request;
- by rule: `faulty(script, fault, when=Rate(0.3, seed=1))` fails ~30 % of requests, the same ones
  on every run (the n-th request draws `Random(f"{seed}:{n}")`); `First(2)` fails the first two;
- in an outage: `Outage()` is a switch (`start()`/`end()`, a `with` block, or a window
  `start(at=t0, for_s=d)` on a monotonic clock); `FakeProvider.outage(model_id)` installs one.

Faults that send part of an answer (stall, stall_mid_stream, truncate, malformed, stream_error)
send the script's own answer when `faulty` injects them. Every faulted request is logged once
in `FakeProvider.requests`, with `fault` set to its kind and `status` to the HTTP status sent
(`NO_RESPONSE` = 0 for `refuse`; 200 for faults that break a started stream).

What a pydantic-ai 2.68 agent run raises, with the SDKs' `max_retries=0` (openai 3.54,
anthropic 2.12; pinned by tests/wire/test_faults.py). "both" = the OpenAI wire through
`OpenAIChatModel` and the Anthropic wire through `AnthropicModel`; plain = `Agent.run`, stream =
`Agent.run_stream`. "HTTP s" = also a `ModelHTTPError` with `.status_code == s`, `.body` (the
error object: OpenAI's `error` member, Anthropic's whole body; a str for an HTML page) and
`.headers`. Every `Model*Error` is a `ModelAPIError` (`.model_name`, `.provider_error_code`,
`.provider_error_type`, `.retry_after`, `.in_stream` - False unless stated); the exception
class's `__name__` is the category's. `UnexpectedModelBehavior`/`ContentFilterError` are not
`ModelAPIError`s. "log" is what `FakeProvider.requests` holds, one entry per request:

| fault | wire, mode | the run raises | log (status) |
|---|---|---|---|
| `http(500)` | both, both | `ModelServerError` HTTP 500 | 500 |
| `http(502, html=True)` | both, both | `ModelServerError` HTTP 502, `.body` the page (str) | 502 |
| `http(503)` | both, both | `ModelUnavailableError` HTTP 503; `ModelOverloadedError` when the message says "overloaded" | 503 |
| `http(529)` | both, both | `ModelOverloadedError` HTTP 529; Anthropic `.provider_error_type == "overloaded_error"`, OpenAI `"server_error"` | 529 |
| `http(429, retry_after_s=s)` | both, both | `ModelRateLimitError` HTTP 429, `.retry_after == s` (from `retry-after-ms`, so fractions survive; `Retry-After` is `ceil(s)`) | 429 |
| `http(400)` | both, both | `ModelRequestRejectedError` HTTP 400 | 400 |
| `http(401)` | both, both | `ModelAuthenticationError` HTTP 401 (OpenAI `.provider_error_code == "invalid_api_key"`) | 401 |
| `context_length()` | both, both | `ModelContextWindowExceededError` HTTP 400 (a `ModelRequestRejectedError`); OpenAI `.provider_error_code == "context_length_exceeded"`; Anthropic `.provider_error_type == "invalid_request_error"`, "prompt is too long" in `.body` | 400 |
| `content_filter()` | both, both | `ContentFilterError` (an `UnexpectedModelBehavior`): OpenAI `finish_reason: "content_filter"`, Anthropic `stop_reason: "refusal"` | 200 |
| `content_filter(partial=Reply(text=t))` | both, both | nothing for a `str` output: the output is `t`, and only `result.response.finish_reason == "content_filter"` tells; a structured output retries, then `UnexpectedModelBehavior` | 200 (x2 structured) |
| `content_filter_error()` | both, both | `ModelRequestRejectedError` HTTP 400, not a `ContentFilterError` (pydantic-ai maps OpenAI's `code: "content_filter"` only for Azure); OpenAI `.provider_error_code == "content_filter"`; Anthropic "content filtering policy" in `.body` | 400 |
| `refuse()`, `refuse(cut="reset")` | both, both | `ModelConnectionError`, `.phase == "read"` (the request was sent) | 0 `NO_RESPONSE` |
| `stall(s)`, model setting `timeout` < s | both, both | `ModelTimeoutError` (a `ModelConnectionError`), `.phase == "read"` | 200 |
| `stall(s)`, `first_event_timeout` < s | both, stream | `ModelRequestTimeout`, `.setting == "first_event_timeout"` (it bounds streams only) | 200 |
| `stall_mid_stream(s)`, `timeout` < s | both, both | `ModelTimeoutError`, `.phase == "read"` | 200 |
| `stall_mid_stream(s)`, `request_timeout` < s | both, stream | `ModelRequestTimeout`, `.setting == "request_timeout"` | 200 |
| `truncate()`, `truncate(cut="reset")` | both, both | `ModelConnectionError`, `.phase == "read"` | 200 |
| `truncate(cut="end")` | both, plain | `ModelAPIError` (exactly; "Failed to decode response as JSON") | 200 |
| `truncate(cut="end")` | both, stream | nothing: the partial text is the output. OpenAI reports `finish_reason == "stop"` (filled in), Anthropic `None`; neither has `provider_details["finish_reason"]` | 200 |
| `malformed()` | both, both | `ModelAPIError` (exactly; "Failed to decode response as JSON") | 200 |
| `stream_error(529)` | anthropic, stream | `ModelOverloadedError` HTTP 529, `.in_stream` | 200 |
| `stream_error(529)` | openai, stream | `ModelServerError` HTTP 500, `.in_stream` (classified by the error's `type: "server_error"`) | 200 |
| `stream_error(s)` | both, plain | as `http(s)` | s |
| `empty()` | both, both | `UnexpectedModelBehavior` "Exceeded maximum output retries (1)": the agent asked again once | 200 x2 |
| `off_schema()` | both, both | nothing for a `str` output: the output is `{"unexpected": "fault"}` | 200 |
| `off_schema()`, structured output | both, plain | `UnexpectedModelBehavior` after one retry | 200 x2 |
| `off_schema()`, structured output | both, stream | `UnexpectedModelBehavior` ("retries are not supported in `run_stream()`") | 200 |

A stream broken midway (truncate, malformed, stream_error) has already handed its first deltas
to `stream_text()` when the error is raised: a failover must buffer to avoid partial output.
A refused connection in the strict sense (nothing listens on the port) is `refused_url()`:
`ModelConnectionError` with `.phase == "connect"` (nothing was sent).
"""

from __future__ import annotations

import inspect
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Protocol, Self

from ._script import Answer, FakeRequest, Fault, Script

__all__ = ["Faulty", "First", "Outage", "Rate", "Trigger", "ask", "faulty", "resolve"]


class Trigger(Protocol):
    """Decides whether a request fails, from its number (1 for the first one seen)."""

    def fires(self, number: int) -> bool:
        """Whether request `number` gets the fault."""
        ...


@dataclass(frozen=True, slots=True)
class First:
    """Fail the first `count` requests, then none."""

    count: int
    """How many requests fail."""

    def fires(self, number: int) -> bool:
        """Whether request `number` is among the first `count`."""
        return number <= self.count


@dataclass(frozen=True, slots=True)
class Rate:
    """Fail a seeded, reproducible `fraction` of requests: each request number draws once."""

    fraction: float
    """The share of requests that fail, from 0 to 1."""
    seed: int = 0
    """Another seed fails other requests at the same rate."""

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1:
            raise ValueError(f"a rate is between 0 and 1, not {self.fraction}")

    def fires(self, number: int) -> bool:
        """Whether request `number` draws below `fraction`."""
        return random.Random(f"{self.seed}:{number}").random() < self.fraction


class Outage:
    """A switch that fails every request while on: a `with` block, `start()`/`end()`, or a window.

    `start(at=t0, for_s=d)` switches on from `t0` (default now) for `d` seconds (default until
    `end()`), read on `clock` (default `time.monotonic`; give your own to test windows without
    waiting).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        """An outage that has not started."""
        self._clock = clock
        self._lock = threading.Lock()
        self._start: float | None = None
        self._end = float("inf")

    def start(self, *, at: float | None = None, for_s: float | None = None) -> Self:
        """Switch on at `at` (default: now) for `for_s` seconds (default: until `end()`)."""
        begin = self._clock() if at is None else at
        with self._lock:
            self._start = begin
            self._end = float("inf") if for_s is None else begin + for_s
        return self

    def end(self) -> None:
        """Switch off now."""
        with self._lock:
            if self._start is not None:
                self._end = min(self._end, self._clock())

    @property
    def active(self) -> bool:
        """Whether the outage is on now."""
        now = self._clock()
        with self._lock:
            return self._start is not None and self._start <= now < self._end

    @property
    def ends_at(self) -> float | None:
        """When it ends on `clock` (inf while open-ended), or None before it was started."""
        with self._lock:
            return None if self._start is None else self._end

    def fires(self, number: int) -> bool:
        """Whether the outage is on, whatever the request."""
        return self.active

    def __enter__(self) -> Self:
        """Start now."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """End now."""
        self.end()


async def ask(script: Script, request: FakeRequest) -> Answer:
    """The script's answer to `request`, awaited if it is async."""
    answer = script(request)
    if inspect.isawaitable(answer):
        return await answer
    return answer


async def resolve(fault: Fault, script: Script, request: FakeRequest) -> Answer:
    """`fault`, given the script's answer to send part of if it needs one; a script that fails
    on its own answers with its own fault."""
    if not fault.carries_reply or fault.reply is not None:
        return fault
    answer = await ask(script, request)
    if isinstance(answer, Fault):
        return answer
    return replace(fault, reply=answer)


class Faulty:
    """A script that answers with `fault` when `when` fires, and asks `script` otherwise."""

    def __init__(self, script: Script, fault: Fault, when: Trigger) -> None:
        """Wrap `script`; see `faulty`."""
        self.script = script
        """The script asked when no fault fires."""
        self.fault = fault
        """The fault injected."""
        self.when = when
        """What decides, request by request."""
        self.seen = 0
        """Requests received so far."""
        self.injected = 0
        """Requests that got the fault so far."""
        self._lock = threading.Lock()

    async def __call__(self, request: FakeRequest) -> Answer:
        """Answer one request."""
        with self._lock:
            self.seen += 1
            number = self.seen
        if not self.when.fires(number):
            return await ask(self.script, request)
        with self._lock:
            self.injected += 1
        return await resolve(self.fault, self.script, request)


class _Always:
    def fires(self, number: int) -> bool:
        return True


def faulty(script: Script, fault: Fault, *, when: Trigger | None = None) -> Faulty:
    """`script` failing with `fault` whenever `when` fires (every request by default).

    Nest calls to combine faults: the outer one decides first, e.g.
    `faulty(faulty(answer, Fault.truncate(), when=Rate(0.05)), Fault.http(503), when=outage)`.
    """
    return Faulty(script, fault, _Always() if when is None else when)
