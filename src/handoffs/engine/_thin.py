"""The thin path: a tool-less subtask as one typed model request, without pydantic-ai's agent loop.

A subordinate the engine calls has no tools, so its run is one request and one typed answer; the
agent loop around it (graph, capabilities, run context) costs more CPU than the request itself.
The first call of each (model, output type, role) still goes through the pydantic-ai `Agent`
(`Caller`); the `Shape` model below records the `ModelRequestParameters` the agent sent — output
tools, native or prompted output, the profile's choices — and every later call sends exactly
those through `pydantic_ai.direct.model_request` (or `model_request_stream`), so the wire request
is the one the agent makes. The answer is read as the agent reads it (the output tool's arguments,
or the text for native and prompted output) and validated once with pydantic; one that does not
validate raises `UnexpectedModelBehavior` with pydantic's message, which the engine feeds back on
a retry. Spans: the same `invoke_agent {role}:{model}` span (GenAI conventions, with the run's
`gen_ai.aggregated_usage.*`) around pydantic-ai's own `chat {model}` span.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_ai import RunContext
from pydantic_ai.direct import model_request, model_request_stream
from pydantic_ai.exceptions import ContentFilterError, UnexpectedModelBehavior
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.models import ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

__all__ = ["Shape", "read_output", "thin_eligible", "thin_request", "thin_stream"]


class Shape(WrapperModel):
    """`wrapped`, remembering the request parameters the agent sent it (`parameters`), with the
    instructions taken out: the thin path sends each call's own."""

    parameters: ModelRequestParameters | None = None

    def _keep(self, parameters: ModelRequestParameters) -> None:
        if self.parameters is None:
            self.parameters = dataclasses.replace(parameters, instruction_parts=None)

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        self._keep(model_request_parameters)
        return await super().request(messages, model_settings, model_request_parameters)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        self._keep(model_request_parameters)
        async with super().request_stream(
            messages, model_settings, model_request_parameters, run_context
        ) as stream:
            yield stream


def _messages(instructions: str, prompt: str) -> list[ModelMessage]:
    return [ModelRequest(parts=[UserPromptPart(prompt)], instructions=instructions or None)]


async def thin_request(
    model: Any,
    instructions: str,
    prompt: str,
    *,
    settings: ModelSettings,
    parameters: ModelRequestParameters,
) -> ModelResponse:
    """One non-streamed request of `model` (instrumented or not) with the agent's parameters."""
    return await model_request(
        model,
        _messages(instructions, prompt),
        model_settings=settings,
        model_request_parameters=parameters,
        instrument=False,
    )


async def thin_stream(
    model: Any,
    instructions: str,
    prompt: str,
    *,
    settings: ModelSettings,
    parameters: ModelRequestParameters,
    on_event: Callable[[Any], None],
) -> ModelResponse:
    """One streamed request: each event goes to `on_event` (which may raise to cut it off); the
    whole response is returned once the stream ends."""
    async with model_request_stream(
        model,
        _messages(instructions, prompt),
        model_settings=settings,
        model_request_parameters=parameters,
        instrument=False,
    ) as stream:
        async for event in stream:
            on_event(event)
        return stream.get()


def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        first = text.find("\n")
        last = text.rfind("```")
        if first != -1 and last > first:
            return text[first + 1 : last].strip()
    return text


def read_output(
    response: ModelResponse, parameters: ModelRequestParameters, adapter: TypeAdapter[Any]
) -> Any:
    """The typed answer in `response`, read the way the agent asked for it: the output tool's
    arguments (tool output) or the text (native or prompted output), validated once. Raises
    `ContentFilterError` for a filtered response and `UnexpectedModelBehavior` for an answer that
    is missing or does not validate."""
    if response.finish_reason == "content_filter":
        raise ContentFilterError("Content filter triggered.")
    names = {tool.name for tool in parameters.output_tools}
    raw: str | None = None
    if names:
        for part in response.parts:
            if isinstance(part, ToolCallPart) and part.tool_name in names:
                raw = part.args_as_json_str()
                break
    if raw is None and (parameters.allow_text_output or not names):
        texts = [p.content for p in response.parts if isinstance(p, TextPart)]
        if texts:
            raw = _strip_fences("".join(texts))
    if raw is None:
        raise UnexpectedModelBehavior("the response holds no answer in the requested output format")
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'/'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
            for e in exc.errors(include_url=False)[:5]
        )
        raise UnexpectedModelBehavior(f"the answer does not match its type: {problems}") from exc


def thin_eligible(output_type: type[Any]) -> bool:
    """Whether calls for `output_type` may take the thin path: structured output (a pydantic
    model); plain types (`str`, lists...) keep the agent, whose output modes for them differ."""
    return issubclass(output_type, BaseModel)
