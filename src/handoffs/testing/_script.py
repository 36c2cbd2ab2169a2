"""The scripting vocabulary of the fake provider: what a script sees, and what it answers.

A script is a callable `FakeRequest -> Reply | Fault` (or an awaitable of one) held by a
`ScriptedModel`. `FakeRequest` is the same whichever wire the request came over, so one script
serves an `OpenAIChatModel` and an `AnthropicModel` alike.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Wire = Literal["openai", "anthropic"]
"""The API dialect a request arrived in."""

OUTPUT_TOOL_PREFIX = "final_result"
"""The name prefix pydantic-ai gives the tools that carry an agent's typed output."""


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def estimate_tokens(text: str) -> int:
    """Estimate a token count the way the fake provider does: about four characters a token."""
    return max(1, math.ceil(len(text) / 4))


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """A call of one tool, made by the model (in a reply) or seen earlier in the conversation."""

    name: str
    """The tool's name."""
    arguments: dict[str, Any]
    """The call's arguments, a JSON object."""
    id: str = field(default_factory=_call_id)
    """The call id the tool result refers back to; generated when not given."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeTool:
    """A tool the request offers the model."""

    name: str
    """The tool's name."""
    description: str
    """The tool's description ('' when it has none)."""
    parameters: dict[str, Any]
    """The JSON Schema of the tool's arguments."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeMessage:
    """One message of the conversation, normalised across wires."""

    role: Literal["user", "assistant", "tool"]
    """Who said it; `tool` is a tool result."""
    text: str = ""
    """Its text (a tool result's content, for `tool`)."""
    tool_calls: list[ToolCall] = field(default_factory=list[ToolCall])
    """The tool calls an assistant message made."""
    tool_call_id: str | None = None
    """For a tool result: the id of the call it answers."""
    tool_name: str | None = None
    """For a tool result: the name of the tool called, found from the earlier call when known."""
    is_error: bool = False
    """For a tool result: whether the client marked it as an error (Anthropic `is_error`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeRequest:
    """The normalised request a script sees."""

    wire: Wire
    """The API dialect the request came in."""
    model: str
    """The request's `model` field, which chose the script."""
    system: str
    """All system prompt and instructions text, joined by blank lines."""
    messages: list[FakeMessage]
    """The conversation, oldest first, without the system prompt."""
    tools: list[FakeTool]
    """The function tools offered."""
    output_schema: dict[str, Any] | None
    """The JSON Schema of a native structured output (OpenAI `response_format` json_schema,
    Anthropic `output_config.format`), else None."""
    stream: bool
    """Whether the client asked for server-sent events."""
    max_tokens: int | None
    """The output token limit the client sent, if any."""
    tool_choice: str | None = None
    """`auto`, `required`, `none`, the name of a forced tool, or None when not sent."""

    @property
    def last_user_text(self) -> str:
        """The text of the latest user message ('' when there is none)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text
        return ""

    @property
    def tool_results(self) -> list[FakeMessage]:
        """The tool results sent since the model's latest message: the answers to its last calls."""
        results: list[FakeMessage] = []
        for message in reversed(self.messages):
            if message.role == "assistant":
                break
            if message.role == "tool":
                results.append(message)
        return results[::-1]

    def tool_result(self, name: str) -> str | None:
        """The text of the latest result of the tool `name` since the model's last message, if any."""
        for message in reversed(self.tool_results):
            if message.tool_name == name:
                return message.text
        return None

    @property
    def output_tool(self) -> FakeTool | None:
        """The one tool named `final_result…` (pydantic-ai's tool output), or None if not exactly one."""
        found = [tool for tool in self.tools if tool.name.startswith(OUTPUT_TOOL_PREFIX)]
        return found[0] if len(found) == 1 else None

    @property
    def all_text(self) -> str:
        """Everything the request says, flattened: the basis of the input token estimate."""
        parts = [self.system]
        for message in self.messages:
            parts.append(message.text)
            parts.extend(json.dumps(call.arguments) for call in message.tool_calls)
        for tool in self.tools:
            parts.extend((tool.name, tool.description, json.dumps(tool.parameters)))
        if self.output_schema is not None:
            parts.append(json.dumps(self.output_schema))
        return "\n".join(part for part in parts if part)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """A scripted answer: text, tool calls, or both."""

    text: str | None = None
    """The assistant text, if any."""
    tool_calls: Sequence[ToolCall] = ()
    """Tool calls the model makes."""
    input_tokens: int | None = None
    """Reported input tokens; None estimates them from the request text (~4 chars a token)."""
    output_tokens: int | None = None
    """Reported output tokens; None estimates them from the reply's text and call arguments."""

    @classmethod
    def json(
        cls, obj: object, *, input_tokens: int | None = None, output_tokens: int | None = None
    ) -> Reply:
        """A reply whose text is `json.dumps(obj)`; see `FakeProvider` for how a tool output gets it."""
        text = json.dumps(obj)
        return cls(text=text, input_tokens=input_tokens, output_tokens=output_tokens)

    @property
    def output_text(self) -> str:
        """The reply's text and call arguments flattened: the basis of the output token estimate."""
        parts = [self.text or ""]
        parts.extend(f"{call.name}{json.dumps(call.arguments)}" for call in self.tool_calls)
        return "".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """A scripted failure of one request, answered with a provider-shaped error body."""

    status: int = 500
    """The HTTP status to return (429, 500, 503, 529, 400, 401, ...)."""
    retry_after_s: float | None = None
    """When set, sent as the `Retry-After` header."""
    stall_s: float = 0.0
    """Seconds to wait before answering, so that clients can hit their timeouts."""
    message: str = "scripted fault"
    """The error message in the body."""


Answer = Reply | Fault
"""What a script returns for one request."""

Script = Callable[[FakeRequest], Answer | Awaitable[Answer]]
"""A scripted model's behaviour: sync or async."""


@dataclass(kw_only=True)
class ScriptedModel:
    """A model id's scripted behaviour."""

    answer: Script
    """Called once per request with the normalised request."""
    latency_s: float = 0.0
    """Seconds added before answering, for realism."""
