"""The orchestrator's own model: its catalog chain, every request walked through the session's guard.

```
ChainModel(primary, failover...)     a pydantic-ai WrapperModel over the catalog chain of the
                                     orchestrator's model id (`Catalog.rung`)
  each request: for each model of the chain, through `Guard.call` (the same guard as handoffs):
    spend caps (kind "orchestrator"), breaker admission, reservation of the worst case, the call,
    settlement, fault sorting and breaker feeding
      answered                              -> the response
      unavailable, rate limited, context,   -> the next model; a 429 whose Retry-After fits is
      overrun                                  waited out once no other model is left, as for a
                                               handoff (`Guard.walk`)
      content filter, rejected              -> raised as it is: no failover hides it
      refused (open circuit, spend cap)     -> the next model, without a call
  every model failed                        -> FallbackExceptionGroup (one model: its error)
```

An open circuit is skipped without a call except on the chain's last model, which is always
tried: a job is not failed on a breaker's word alone. A request makes at most the retry policy's
`max_attempts` calls within its `max_handoff_s`, each within `request_timeout_s`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import anyio
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from pydantic_ai import RunContext
from pydantic_ai.exceptions import FallbackExceptionGroup
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import (
    CompletedStreamedResponse,
    Model,
    ModelRequestParameters,
    StreamedResponse,
)
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from handoffs.budget import Budget
from handoffs.catalog import ModelEntry, reserved_input_tokens, token_bound
from handoffs.engine._call import prompt_cached
from handoffs.engine._guard import Bound, Guard, Meter, Refused
from handoffs.engine._session import Session
from handoffs.providers import ProviderFault, ReadableModel
from handoffs.tracing import Tracing

__all__ = ["ORCHESTRATOR_KIND", "ChainModel", "Helm", "Refused"]

ORCHESTRATOR_KIND = "orchestrator"
"""The task kind the orchestrator's own requests count under in spend caps (`[[caps]] kind`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Turn:
    """How one model's turn on the chain ended (`Guard.walk` reads `moves_on` and `fault`)."""

    moves_on: bool
    fault: ProviderFault | None = None
    response: ModelResponse | None = None
    model: Model | None = None
    """The model that answered."""
    error: Exception | None = None
    """What to raise: the walk stops on it."""


class ChainModel(WrapperModel):
    """A model and its failover chain, each request made through `guard` and charged to `budget`.

    `max_tokens` is what a request may answer when its settings do not say (the reservation's
    output bound).
    """

    def __init__(
        self,
        chain: Sequence[tuple[ModelEntry, Model]],
        *,
        guard: Guard,
        budget: Budget,
        max_tokens: int,
        tracing: Tracing | None = None,
    ) -> None:
        chain = [(entry, ReadableModel(model)) for entry, model in chain]
        super().__init__(chain[0][1])
        self.chain = tuple(chain)
        self.guard = guard
        self.tracing = tracing
        self.budget = budget
        self.max_tokens = max_tokens
        self.spent_usd = Decimal(0)
        """What every call of the chain has been charged."""
        self.requests = 0
        """How many requests the chain's models answered."""
        self.cache_read_tokens = 0
        """Input tokens of the chain's calls that providers served from their prompt caches."""
        self.cache_saved_usd = Decimal(0)
        """What prompt caching saved on the chain's calls (`ModelEntry.cache_saving`)."""
        self._others: list[AsyncExitStack] = []

    async def __aenter__(self) -> Self:
        """Enter every model of the chain, as pydantic-ai's `FallbackModel` does, so that each
        provider manages its HTTP client's lifecycle."""
        await super().__aenter__()  # the primary
        try:
            async with AsyncExitStack() as stack:
                for _, model in self.chain[1:]:
                    await stack.enter_async_context(model)
                self._others.append(stack.pop_all())
        except BaseException:
            await super().__aexit__(*sys.exc_info())
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        try:
            if self._others:
                await self._others.pop().__aexit__(exc_type, exc_val, exc_tb)
        finally:
            await super().__aexit__(exc_type, exc_val, exc_tb)
        return None

    def _bound(
        self,
        messages: list[ModelMessage],
        settings: ModelSettings | None,
        params: ModelRequestParameters,
    ) -> Bound:
        tools = [*params.function_tools, *params.output_tools]
        sent = str(messages) + json.dumps([t.parameters_json_schema for t in tools], default=str)
        sent += "".join(f"{t.name}{t.description or ''}" for t in tools)
        max_tokens = (settings or {}).get("max_tokens") or self.max_tokens
        return Bound(  # a request that asks for the prompt cache may pay to write it
            input_tokens=reserved_input_tokens(token_bound(sent)),
            output_tokens=max_tokens,
            cached=bool((settings or {}).get("cache")),
        )

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        guard, params, retry = self.guard, model_request_parameters, self.guard.retry
        bound = self._bound(messages, model_settings, params)
        deadline = time.monotonic() + retry.max_handoff_s
        last = len(self.chain) - 1
        models = {entry.id: (index, model) for index, (entry, model) in enumerate(self.chain)}
        failures: list[Exception] = []
        calls = 0

        async def take(entry: ModelEntry) -> _Turn:
            nonlocal calls
            if calls >= retry.max_attempts or time.monotonic() >= deadline:
                return _Turn(moves_on=False)  # out of attempts or time: what failed is raised
            index, model = models[entry.id]
            # the agent prepared the messages for the primary; each other model prepares its own
            prepared = messages if index == 0 else model.prepare_messages(messages, params)

            async def send(meter: Meter) -> ModelResponse:
                left = min(retry.request_timeout_s, deadline - time.monotonic())
                with anyio.fail_after(max(left, 0)):
                    response = await model.request(prepared, model_settings, params)
                meter.usage.incr(response.usage)
                return response

            started = time.time_ns()
            call = await guard.call(
                entry,
                send,
                kind=ORCHESTRATOR_KIND,
                budget=self.budget,
                bound=bound,
                force=index == last,
            )
            self.spent_usd += call.cost_usd
            used = call.usage
            self.cache_read_tokens += used.cache_read_tokens
            self.cache_saved_usd += entry.cache_saving(
                used.cache_read_tokens, used.cache_write_tokens
            )
            if call.outcome != "refused":
                calls += 1
            if call.outcome == "answered":
                return _Turn(moves_on=False, response=call.output, model=model)
            error = call.error or Refused(entry.name, f"{entry.id}: no answer")
            if call.outcome != "refused" and not call.moves_on:
                return _Turn(moves_on=False, error=error)  # over budget, invalid, rejected
            failures.append(error)
            self._trace_attempt(model, error, started)
            return _Turn(moves_on=True, fault=call.fault)

        entries = [entry for entry, _ in self.chain]
        turn = await guard.walk(entries, take, deadline=deadline, limit_s=None)
        if turn is not None and turn.response is not None:
            self.requests += 1
            if turn.model is not None and turn.model is not self.wrapped:
                trace.get_current_span().set_attributes(_model_attributes(turn.model))
            return turn.response
        if turn is not None and turn.error is not None:
            raise turn.error
        if len(failures) == 1:
            raise failures[0]
        failures = failures or [Refused(self.model_name, "no attempt left")]
        raise FallbackExceptionGroup("every model of the orchestrator's chain failed", failures)

    def _trace_attempt(self, model: Model, error: Exception, started_ns: int) -> None:
        """A failed attempt as an ERROR span under the request's `chat` span, as pydantic-ai's
        `FallbackModel` records one (best effort: telemetry never changes the outcome)."""
        if self.tracing is None:
            return
        parent = trace.get_current_span()
        span = self.tracing.tracer.start_span(
            f"model request attempt {model.model_name}",
            context=trace.set_span_in_context(parent),
            attributes=_model_attributes(model),
            start_time=started_ns,
        )
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        """The whole request through the guard (as `request`), replayed as a stream."""
        response = await self.request(messages, model_settings, model_request_parameters)
        yield CompletedStreamedResponse(
            response, model_request_parameters=model_request_parameters, replay_events=True
        )


def _model_attributes(model: Model) -> dict[str, str]:
    return {
        "gen_ai.provider.name": model.system,
        "gen_ai.system": model.system,
        "gen_ai.request.model": model.model_name,
    }


class Helm:
    """The orchestrator's model for one run: `model` to give its agent, and what it spent."""

    def __init__(self, session: Session, model_id: str, max_tokens: int) -> None:
        chain = [session.catalog[m] for m in session.catalog.rung(model_id)]
        self.settings: ModelSettings = {"max_tokens": max_tokens}
        """The model settings of the orchestrator's run: its `max_tokens`, and pydantic-ai's
        `cache` when its model caches prompts (the instructions, the tools and the growing
        conversation: each step re-reads the one before)."""
        if prompt_cached(chain[0]):
            self.settings["cache"] = True
        self.model = ChainModel(
            [(e, session.models(e)) for e in chain],
            guard=session.guard,
            budget=session.budget,
            max_tokens=max_tokens,
            tracing=session.tracing,
        )

    @property
    def spent_usd(self) -> Decimal:
        """What every model of the chain has cost this run."""
        return self.model.spent_usd

    @property
    def cache_read_tokens(self) -> int:
        """Input tokens of this run's requests served from the providers' prompt caches."""
        return self.model.cache_read_tokens

    @property
    def cache_saved_usd(self) -> Decimal:
        """What prompt caching saved on this run's requests."""
        return self.model.cache_saved_usd

    @property
    def requests(self) -> int:
        """How many requests the chain's models answered this run."""
        return self.model.requests
