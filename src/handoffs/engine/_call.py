"""One typed request of one catalog model, as the engine makes it.

`Caller` keeps one pydantic-ai `Agent` per (model, output type, role), waits for a slot on models
with `max_concurrency` unless the caller holds one (`ModelQueue`; a wait is its own
`queue {model}` span), sets pydantic-ai's deadlines
(`request_timeout`, and `first_event_timeout` on streamed models), streams when the catalog says
so, and turns the silent failures a provider can hide in a successful response into errors the
engine can sort (`_whole`): an answer cut off by a content filter or at `max_tokens`; a plain
response whose finish reason is unknown (a gateway's substitute); a stream that ended before the provider
said it finished (no finish reason on the wire: pydantic-ai fills in `stop` for an OpenAI stream
that ends without one, so the raw reason it keeps in `provider_details` is what counts); a stream
that goes on past `max_tokens` (cut off at once: `Meter.stream`); a response its adapter cannot
read (`ReadableModel`).

A call whose output is a pydantic model takes the thin path (`handoffs.engine._thin`) once the
agent has made one call of its (model, output type, role): the same request through
`pydantic_ai.direct`, without the agent loop; `thin=False` keeps every call on the agent.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from contextlib import AsyncExitStack
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter
from pydantic_ai import (
    Agent,
    NativeOutput,
    PromptedOutput,
    RunContext,
    ToolOutput,
    capture_run_messages,
)
from pydantic_ai.exceptions import ContentFilterError, UnexpectedModelBehavior
from pydantic_ai.messages import (
    AgentStreamEvent,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPartDelta,
    ThinkingPartDelta,
    ToolCallPartDelta,
)
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.instrumented import InstrumentedModel
from pydantic_ai.settings import CacheConfig, ModelSettings
from pydantic_ai.usage import RunUsage, UsageLimits

from handoffs.catalog import ModelEntry
from handoffs.engine._guard import Meter
from handoffs.engine._queue import ModelQueue
from handoffs.engine._thin import Shape, read_output, thin_eligible, thin_request, thin_stream
from handoffs.providers import MalformedResponse, ReadableModel
from handoffs.tracing import Tracing

__all__ = ["Caller", "Role", "output_spec", "prompt_cached"]

_PREFIX_ONLY: CacheConfig = {"messages": False}
"""pydantic-ai's `cache` setting for one-shot requests: cache points on the stable prefix (the
instructions and the tool definitions, where the output schema is), none on the message, whose
input differs from call to call (a write there would cost 1.25x on Anthropic and never be read)."""


def prompt_cached(entry: ModelEntry, wanted: bool = True) -> bool:
    """Whether a call of `entry` asks for the provider's prompt cache: the model's
    `prompt_cache` (on by default; `[portfolio] prompt_cache = false` turns it off everywhere) and
    the task's own wish (`Task.prompt_cache`), on a provider that caches prompts."""
    return wanted and entry.prompt_cache and entry.provider in ("anthropic", "openai")


Role = Literal["subordinate", "check"]
"""Who a call is for: an attempt at the task (`subordinate:{model}`) or a check (`check:{model}`,
a judge or an agreement vote); the agent's name, hence its `invoke_agent` span's, says which."""


def output_spec(entry: ModelEntry, output_type: type[Any]) -> Any:
    """What the agent is given as `output_type` for `entry`: native, prompted or tool output."""
    if not issubclass(output_type, BaseModel):
        return output_type  # str, int, lists...: pydantic-ai picks the mode
    if entry.structured_output == "native":
        return NativeOutput(output_type)
    if entry.structured_output == "prompted":
        return PromptedOutput(output_type)
    return ToolOutput(output_type)


def _carries_output(event: AgentStreamEvent) -> bool:
    """Whether a stream event carries generated output (each such event is at least one token)."""
    if isinstance(event, PartStartEvent):
        return event.part.has_content()
    if isinstance(event, PartDeltaEvent):
        delta = event.delta
        if isinstance(delta, TextPartDelta | ThinkingPartDelta):
            return bool(delta.content_delta)
        if isinstance(delta, ToolCallPartDelta):
            return bool(delta.args_delta)
    return False


def _metered(meter: Meter) -> Callable[[RunContext[None], AsyncIterable[AgentStreamEvent]], Any]:
    """An event handler that makes pydantic-ai stream the request (the output is taken whole) and
    counts its output events on `meter`, which cuts the stream off past `max_tokens`."""

    async def drain(ctx: RunContext[None], events: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in events:
            if _carries_output(event):
                meter.stream()

    return drain


def _finished(response: ModelResponse) -> bool:
    """Whether the provider said the response was finished. pydantic-ai's wire adapters keep the
    raw finish reason in `provider_details`; their own `finish_reason` is a guess (`stop`) for an
    OpenAI stream that ends without one. A model with no wire (a scripted one) has only its own."""
    if response.finish_reason is None:
        return False
    if response.provider_name is None:
        return True
    return bool((response.provider_details or {}).get("finish_reason"))


def _whole(entry: ModelEntry, response: ModelResponse) -> None:
    """Raise unless `response` is a whole answer: not cut off by a content filter
    (`ContentFilterError`) or at `max_tokens` (an invalid answer: retried with feedback, then
    escalated), and finished as the provider says it finishes — a stream with a finish reason on
    the wire, a plain response with one pydantic-ai knows (an unknown one, such as a gateway's
    `guardrail_intervened` on the text it substituted, is read as none: `MalformedResponse`)."""
    reason = response.finish_reason
    if reason == "content_filter":  # a partial answer the filter cut off
        raise ContentFilterError(f"{entry.id}: the answer was cut off by a content filter")
    if reason == "length":
        raise UnexpectedModelBehavior(
            f"{entry.id}: the answer was cut off at max_tokens (finish reason length)"
        )
    if entry.stream and not _finished(response):
        raise MalformedResponse(entry.name, "the stream ended before the provider finished")
    if not entry.stream and reason is None and response.provider_name is not None:
        raw = (response.provider_details or {}).get("finish_reason")
        raise MalformedResponse(
            entry.name, f"the response gave no finish reason the engine knows ({raw!r})"
        )


class Caller:
    """Makes single typed requests to catalog models through pydantic-ai agents."""

    def __init__(
        self,
        models: Callable[[ModelEntry], Model],
        *,
        tracing: Tracing | None,
        timeout_s: float,
        first_event_timeout_s: float | None,
        thin: bool = True,
    ) -> None:
        self._models = models
        self.thin = thin
        """Whether calls with structured output skip the agent loop once their shape is known."""
        self.tracing = tracing
        """Where the subordinates' pydantic-ai spans go (agents built after a change use it)."""
        self._timeout_s = timeout_s
        self._first_event_timeout_s = first_event_timeout_s
        self._agents: dict[tuple[str, Any, Role], Agent[None, Any]] = {}
        self._queues: dict[str, ModelQueue] = {}
        self._shapes: dict[tuple[str, Any, Role], Shape] = {}
        self._instrumented: dict[tuple[str, int], Model] = {}
        self._adapters: dict[Any, TypeAdapter[Any]] = {}

    def queue(self, entry: ModelEntry) -> ModelQueue | None:
        """The slots of a model with `max_concurrency` and the calls waiting for them (None: the
        model takes any number of concurrent calls)."""
        if entry.max_concurrency is None:
            return None
        queue = self._queues.get(entry.id)
        if queue is None:
            queue = self._queues[entry.id] = ModelQueue(
                model=entry.id, slots=entry.max_concurrency, service_s=entry.typical_latency_s
            )
        return queue

    async def _slot(self, entry: ModelEntry, held: AsyncExitStack) -> None:
        """Waits as long as it takes for a slot of `entry` (held until `held` closes), inside a
        `queue {model}` span when every slot is taken; a no-op for other models."""
        queue = self.queue(entry)
        if queue is not None:
            await held.enter_async_context(
                queue.slot(left_s=None, patient=True, tracing=self.tracing)
            )

    def _agent(self, entry: ModelEntry, output_type: type[Any], role: Role) -> Agent[None, Any]:
        key = (entry.id, output_type, role)
        agent = self._agents.get(key)
        if agent is None:
            shape = self._shapes[key] = Shape(ReadableModel(self._models(entry)))
            agent = Agent(
                shape,
                output_type=output_spec(entry, output_type),
                retries={"output": 0, "tools": 0},
                name=f"{role}:{entry.id}",
                capabilities=[self.tracing.instrumentation()] if self.tracing else None,
            )
            self._agents[key] = agent
        return agent

    async def call(
        self,
        entry: ModelEntry,
        instructions: str,
        prompt: str,
        output_type: type[Any],
        meter: Meter,
        max_tokens: int,
        time_left_s: float | None,
        *,
        role: Role = "subordinate",
        slotted: bool = False,
        cache: bool = True,
    ) -> Any:
        """One request; the tokens it reports are added to `meter.usage` whatever happens, and a
        streamed answer's output events are counted on `meter`. Raises what pydantic-ai raises,
        plus `ContentFilterError`, `MalformedResponse` or `OutputOverrun` for the silent failures
        above. `slotted`: the caller already holds the model's slot (`queue`). `cache`: mark the
        stable prefix for the provider's prompt cache (`prompt_cached` decides with the model's
        own setting); False sends no cache points at all."""
        timeout_s = min(time_left_s, self._timeout_s) if time_left_s else self._timeout_s
        settings: ModelSettings = {"max_tokens": max_tokens, "request_timeout": timeout_s}
        if prompt_cached(entry, cache):
            settings["cache"] = _PREFIX_ONLY
        first = self._first_event_timeout_s
        if entry.stream and first is not None:
            settings["first_event_timeout"] = min(first, timeout_s)
        shape = self._shapes.get((entry.id, output_type, role)) if self.thin else None
        if shape is not None and shape.parameters is not None and thin_eligible(output_type):
            async with AsyncExitStack() as held:
                if not slotted:
                    await self._slot(entry, held)
                return await self._thin(
                    entry, shape, instructions, prompt, output_type, meter, settings, role
                )
        async with AsyncExitStack() as held:
            if not slotted:
                await self._slot(entry, held)
            with capture_run_messages() as messages:
                try:
                    result = await self._agent(entry, output_type, role).run(
                        prompt,
                        instructions=instructions,
                        usage=meter.usage,
                        usage_limits=UsageLimits(request_limit=1),
                        model_settings=settings,
                        event_stream_handler=_metered(meter) if entry.stream else None,
                    )
                except UnexpectedModelBehavior as exc:
                    # an answer that did not validate: from a stream that broke off, the
                    # provider's fault (and bill), not the answer's
                    answer = next(
                        (m for m in reversed(messages) if isinstance(m, ModelResponse)), None
                    )
                    if entry.stream and not isinstance(exc, ContentFilterError):
                        if answer is None or not _finished(answer):
                            raise MalformedResponse(
                                entry.name, f"the stream ended before the provider finished: {exc}"
                            ) from exc
                    raise
        _whole(entry, result.response)
        return result.output

    def _model(self, entry: ModelEntry, shape: Shape) -> Model:
        """The model a thin call sends to: the agent's (`shape`), inside pydantic-ai's
        instrumentation when traced (its `chat {model}` span and metrics)."""
        tracing = self.tracing
        if tracing is None or tracing.lean:
            return shape
        key = (entry.id, id(tracing))
        model = self._instrumented.get(key)
        if model is None:
            model = self._instrumented[key] = InstrumentedModel(shape, tracing.settings)
        return model

    async def _thin(
        self,
        entry: ModelEntry,
        shape: Shape,
        instructions: str,
        prompt: str,
        output_type: type[Any],
        meter: Meter,
        settings: ModelSettings,
        role: Role,
    ) -> Any:
        """One call on the thin path: the agent's request, read and validated here."""
        parameters = shape.parameters
        assert parameters is not None
        adapter = self._adapters.get(output_type)
        if adapter is None:
            adapter = self._adapters[output_type] = TypeAdapter(output_type)
        model = self._model(entry, shape)
        tracing = self.tracing
        if tracing is None:
            return await self._thin_call(
                entry, model, instructions, prompt, adapter, parameters, meter, settings
            )
        with tracing.agent_run(f"{role}:{entry.id}", model_name=entry.name) as span:
            used = RunUsage()
            try:
                return await self._thin_call(
                    entry, model, instructions, prompt, adapter, parameters, meter, settings, used
                )
            finally:
                tracing.agent_usage(span, used)

    async def _thin_call(
        self,
        entry: ModelEntry,
        model: Model,
        instructions: str,
        prompt: str,
        adapter: TypeAdapter[Any],
        parameters: ModelRequestParameters,
        meter: Meter,
        settings: ModelSettings,
        used: RunUsage | None = None,
    ) -> Any:
        if entry.stream:

            def on_event(event: Any) -> None:
                if _carries_output(event):
                    meter.stream()

            response = await thin_stream(
                model,
                instructions,
                prompt,
                settings=settings,
                parameters=parameters,
                on_event=on_event,
            )
        else:
            response = await thin_request(
                model, instructions, prompt, settings=settings, parameters=parameters
            )
        meter.usage.incr(response.usage)
        meter.usage.requests += 1
        if used is not None:
            used.incr(response.usage)
            used.requests += 1
        _whole(entry, response)
        return read_output(response, parameters, adapter)
