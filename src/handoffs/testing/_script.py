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
            parts.extend(_json(call.arguments) for call in message.tool_calls)
        for tool in self.tools:
            parts.extend((tool.name, tool.description, _json(tool.parameters)))
        if self.output_schema is not None:
            parts.append(json.dumps(self.output_schema))
        return "\n".join(part for part in parts if part)

    @property
    def prefix_text(self) -> str:
        """`all_text` in the order a provider's prompt cache reads a request (tools, output
        schema, system prompt, then the conversation): the same characters, so a prefix of it
        is a share of the input token estimate."""
        parts: list[str] = []
        for tool in self.tools:
            parts.extend((tool.name, tool.description, _json(tool.parameters)))
        if self.output_schema is not None:
            parts.append(json.dumps(self.output_schema))
        parts.append(self.system)
        for message in self.messages:
            parts.append(message.text)
            parts.extend(_json(call.arguments) for call in message.tool_calls)
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
    """Reported output tokens; None estimates them from the reply's text and call arguments (at
    most the request's `max_tokens`, as a provider reports). Set it past `max_tokens` to play a
    provider that ignores the limit."""

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
        parts.extend(f"{call.name}{_json(call.arguments)}" for call in self.tool_calls)
        return "".join(parts)


FaultKind = Literal[
    "http",
    "context_length",
    "content_filter",
    "content_filter_error",
    "refuse",
    "stall",
    "stall_mid_stream",
    "truncate",
    "malformed",
    "stream_error",
    "empty",
    "off_schema",
]
"""What goes wrong; `handoffs.testing.fault` tables what a client sees for each kind."""

Cut = Literal["close", "reset", "end"]
"""How a fault ends a connection: `close` it (TCP FIN) without finishing the HTTP message, `reset` it
(TCP RST), or `end` the HTTP message properly with its payload cut short (truncate only)."""

_CARRIERS: frozenset[FaultKind] = frozenset(
    {"stall", "stall_mid_stream", "truncate", "malformed", "stream_error"}
)
_HTTP_STATUS_KINDS: frozenset[FaultKind] = frozenset({"http", "stream_error"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """A scripted failure of one request; `kind` says which, the other fields tune it.

    Build one with its constructor for the kind (`Fault.http(503)`, `Fault.truncate()`, ...);
    `Fault(status=..., retry_after_s=..., stall_s=...)` is an HTTP error, as before. A script
    returns it for one request; `handoffs.testing.faulty` injects it by rate or during an outage.
    Faults that cut a connection short need a real socket (`LoopbackServer`).
    """

    kind: FaultKind = "http"
    """What goes wrong."""
    status: int = 500
    """The HTTP status of an `http` or `stream_error` fault (429, 500, 502, 503, 529, 400, 401...)."""
    retry_after_s: float | None = None
    """For `http`: sent as `Retry-After` (whole seconds, rounded up) and `retry-after-ms`."""
    stall_s: float = 0.0
    """Seconds to stall: before answering (`http`, `stall`) or mid-answer (`stall_mid_stream`)."""
    after_frames: int = 3
    """For stream faults: the content frames sent before the fault (a plain body is cut in half)."""
    cut: Cut = "close"
    """For `refuse` and `truncate`: how the connection ends."""
    html: bool = False
    """For `http`: answer with an HTML error page, as a gateway in front of a provider does."""
    message: str = "scripted fault"
    """The error message in an error body (a refusal's explanation, for `content_filter`)."""
    reply: Reply | None = None
    """The answer a fault delays, cuts short or corrupts, or the text a refusal comes after.
    None: `faulty` fills in the script's own answer; the provider falls back to a stock one."""

    def __post_init__(self) -> None:
        if self.kind in _HTTP_STATUS_KINDS and not 400 <= self.status <= 599:
            raise ValueError(f"a {self.kind} fault needs a 4xx or 5xx status, not {self.status}")
        if self.cut == "end" and self.kind != "truncate":
            raise ValueError("cut='end' applies to truncate faults only")
        if self.after_frames < 0 or self.stall_s < 0:
            raise ValueError("after_frames and stall_s cannot be negative")

    @property
    def carries_reply(self) -> bool:
        """Whether the fault sends (some of) a real answer, which `reply` supplies."""
        return self.kind in _CARRIERS

    @classmethod
    def http(
        cls,
        status: int = 500,
        *,
        retry_after_s: float | None = None,
        stall_s: float = 0.0,
        html: bool = False,
        message: str = "scripted fault",
    ) -> Fault:
        """An HTTP error with the provider's error body: 5xx, 529 overloaded, 429, 401, 400..."""
        return cls(
            status=status, retry_after_s=retry_after_s, stall_s=stall_s, html=html, message=message
        )

    @classmethod
    def context_length(cls) -> Fault:
        """The provider's 400 for a prompt longer than the model's context window."""
        return cls(kind="context_length")

    @classmethod
    def content_filter(
        cls, *, partial: Reply | None = None, message: str = "scripted refusal"
    ) -> Fault:
        """A 200 answer the provider's safety system stopped, after `partial` text if given."""
        return cls(kind="content_filter", reply=partial, message=message)

    @classmethod
    def content_filter_error(cls) -> Fault:
        """The 400 a provider sends when its content filter blocks the request outright."""
        return cls(kind="content_filter_error")

    @classmethod
    def refuse(cls, *, cut: Cut = "close") -> Fault:
        """Drop the connection without any HTTP response, once the request is read."""
        return cls(kind="refuse", cut=cut)

    @classmethod
    def stall(cls, stall_s: float) -> Fault:
        """Send nothing for `stall_s` seconds, then the answer."""
        return cls(kind="stall", stall_s=stall_s)

    @classmethod
    def stall_mid_stream(cls, stall_s: float, *, after_frames: int = 3) -> Fault:
        """Start the answer, stall `stall_s` seconds after `after_frames` frames, then finish."""
        return cls(kind="stall_mid_stream", stall_s=stall_s, after_frames=after_frames)

    @classmethod
    def truncate(cls, *, after_frames: int = 3, cut: Cut = "close") -> Fault:
        """Start the answer and stop after `after_frames` frames, without its terminal event."""
        return cls(kind="truncate", after_frames=after_frames, cut=cut)

    @classmethod
    def malformed(cls, *, after_frames: int = 3) -> Fault:
        """A 200 whose JSON body (or the stream's frame after `after_frames`) does not parse."""
        return cls(kind="malformed", after_frames=after_frames)

    @classmethod
    def stream_error(cls, status: int = 529, *, after_frames: int = 3) -> Fault:
        """A stream that reports a provider error in an error event after `after_frames`
        frames; a plain request gets the same error as an HTTP status."""
        return cls(kind="stream_error", status=status, after_frames=after_frames)

    @classmethod
    def empty(cls) -> Fault:
        """A well-formed 200 answer with no content at all."""
        return cls(kind="empty")

    @classmethod
    def off_schema(cls) -> Fault:
        """A well-formed 200 answer whose JSON fits no output schema: `{"unexpected": "fault"}`."""
        return cls(kind="off_schema")


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


def _json(value: Any) -> str:
    """JSON as a model reads and writes it: characters as they are, not `\\u` escapes (a
    handle's `⟦` is one character to a tokenizer, not six)."""
    return json.dumps(value, ensure_ascii=False)
