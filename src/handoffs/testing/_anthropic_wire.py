"""The Anthropic Messages dialect: reading requests, writing replies, errors and streams."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from ._json import (
    JsonObject,
    WireError,
    as_int,
    as_list,
    as_object,
    as_str,
    pieces,
    sse,
)
from ._script import FakeMessage, FakeRequest, FakeTool, Reply, ToolCall


def _blocks(content: object, what: str) -> list[JsonObject]:
    """A message's content as blocks: a bare string is one text block."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [as_object(block, what) for block in as_list(content, what)]


def _text(content: object, what: str) -> str:
    return "".join(
        as_str(block.get("text"), f"{what}.text")
        for block in _blocks(content, what)
        if block.get("type") == "text"
    )


class _Conversation:
    """Builds normalised messages block by block, merging adjacent text of one role."""

    def __init__(self) -> None:
        self.system: list[str] = []
        self.messages: list[FakeMessage] = []
        self._names: dict[str, str] = {}
        self._text: list[str] = []
        self._calls: list[ToolCall] = []

    def _flush(self, role: str) -> None:
        if role == "assistant" and (self._text or self._calls):
            text, calls = "".join(self._text), list(self._calls)
            self.messages.append(FakeMessage(role="assistant", text=text, tool_calls=calls))
        elif role == "user" and self._text:
            self.messages.append(FakeMessage(role="user", text="".join(self._text)))
        self._text, self._calls = [], []

    def add(self, role: object, content: object, what: str) -> None:
        if role == "system":
            self.system.append(_text(content, what))
            return
        if role not in ("user", "assistant"):
            raise WireError(f"{what}.role {role!r} is not supported")
        for block in _blocks(content, what):
            match block.get("type"):
                case "text":
                    self._text.append(as_str(block.get("text"), f"{what}.text"))
                case "tool_use" if role == "assistant":
                    call = ToolCall(
                        id=as_str(block.get("id"), "tool_use.id"),
                        name=as_str(block.get("name"), "tool_use.name"),
                        arguments=as_object(block.get("input", {}), "tool_use.input"),
                    )
                    self._names[call.id] = call.name
                    self._calls.append(call)
                case "tool_result" if role == "user":
                    self._flush("user")
                    call_id = as_str(block.get("tool_use_id"), "tool_result.tool_use_id")
                    self.messages.append(
                        FakeMessage(
                            role="tool",
                            text=_text(block.get("content", ""), "tool_result.content"),
                            tool_call_id=call_id,
                            tool_name=self._names.get(call_id),
                            is_error=block.get("is_error") is True,
                        )
                    )
                case _:  # images, documents, thinking: not part of the normalised view
                    pass
        self._flush(role)


def _tools(raw: object) -> list[FakeTool]:
    tools: list[FakeTool] = []
    for item in as_list(raw, "tools"):
        tool = as_object(item, "tools[]")
        if tool.get("type", "custom") != "custom":  # server tools (web search, ...)
            continue
        tools.append(
            FakeTool(
                name=as_str(tool.get("name"), "tools[].name"),
                description=as_str(tool.get("description"), "tools[].description"),
                parameters=as_object(tool.get("input_schema", {}), "tools[].input_schema"),
            )
        )
    return tools


def _tool_choice(raw: object) -> str | None:
    if raw is None:
        return None
    choice = as_object(raw, "tool_choice")
    match choice.get("type"):
        case "any":
            return "required"
        case "tool":
            return as_str(choice.get("name"), "tool_choice.name")
        case kind:
            return as_str(kind, "tool_choice.type")


def _output_schema(raw: object) -> dict[str, Any] | None:
    if raw is None:
        return None
    output_format = as_object(raw, "output_config").get("format")
    if output_format is None:
        return None
    output_format = as_object(output_format, "output_config.format")
    if output_format.get("type") != "json_schema":
        return None
    return as_object(output_format.get("schema", {}), "output_config.format.schema")


def parse(body: JsonObject) -> FakeRequest:
    """Read a Messages request body."""
    conversation = _Conversation()
    system = body.get("system")
    if system is not None:
        conversation.system.append(_text(system, "system"))
    for index, item in enumerate(as_list(body.get("messages"), "messages")):
        message = as_object(item, f"messages[{index}]")
        conversation.add(message.get("role"), message.get("content"), f"messages[{index}]")
    return FakeRequest(
        wire="anthropic",
        model=as_str(body.get("model"), "model"),
        system="\n\n".join(part for part in conversation.system if part),
        messages=conversation.messages,
        tools=_tools(body.get("tools")),
        output_schema=_output_schema(body.get("output_config")),
        stream=body.get("stream") is True,
        max_tokens=as_int(body.get("max_tokens"), "max_tokens"),
        tool_choice=_tool_choice(body.get("tool_choice")),
    )


def _stop_reason(reply: Reply) -> str:
    return "tool_use" if reply.tool_calls else "end_turn"


def _usage(input_tokens: int, output_tokens: int, read: int = 0, written: int = 0) -> JsonObject:
    """Anthropic's usage: `input_tokens` is only what the cache neither read nor wrote."""
    return {
        "input_tokens": max(input_tokens - read - written, 0),
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
    }


def _content(reply: Reply) -> list[JsonObject]:
    content: list[JsonObject] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    content.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        for call in reply.tool_calls
    )
    return content


def _message(
    model: str,
    content: list[JsonObject],
    stop_reason: str | None,
    usage: JsonObject,
    stop_details: JsonObject | None = None,
) -> JsonObject:
    message: JsonObject = {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    if stop_details is not None:
        message["stop_details"] = stop_details
    return message


def refusal_details(explanation: str) -> JsonObject:
    """The `stop_details` of a refusal (`stop_reason: "refusal"`)."""
    return {"type": "refusal", "category": None, "explanation": explanation}


def render(
    model: str,
    reply: Reply,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    refusal: str | None = None,
) -> JsonObject:
    """A non-streamed `message` body; with `refusal`, one the safety system stopped.
    `input_tokens` counts the whole prompt, the cache's reads and writes included."""
    usage = _usage(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)
    if refusal is not None:
        return _message(model, _content(reply), "refusal", usage, refusal_details(refusal))
    return _message(model, _content(reply), _stop_reason(reply), usage)


def _block_events(index: int, block: JsonObject) -> Iterator[bytes]:
    if block["type"] == "text":
        start: JsonObject = {"type": "text", "text": ""}
        deltas = ({"type": "text_delta", "text": piece} for piece in pieces(block["text"]))
    else:
        start = {**block, "input": {}}
        deltas = (
            {"type": "input_json_delta", "partial_json": piece}
            for piece in pieces(json.dumps(block["input"]))
        )
    yield sse(
        {"type": "content_block_start", "index": index, "content_block": start},
        "content_block_start",
    )
    for delta in deltas:
        yield sse(
            {"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta"
        )
    yield sse({"type": "content_block_stop", "index": index}, "content_block_stop")


def stream_frames(
    model: str,
    reply: Reply,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    refusal: str | None = None,
) -> tuple[list[bytes], list[bytes]]:
    """The server-sent events of a streamed reply: its content frames (from `message_start`,
    whose usage has the input and cache counts), and the tail that ends it (`message_delta`
    with the stop reason and the cumulative usage, `message_stop`)."""
    cached = (cache_read_tokens, cache_write_tokens)
    start = _message(model, [], None, _usage(input_tokens, 1, *cached))
    content = [sse({"type": "message_start", "message": start}, "message_start")]
    for index, block in enumerate(_content(reply)):
        content.extend(_block_events(index, block))
    delta: JsonObject = {"stop_reason": _stop_reason(reply), "stop_sequence": None}
    if refusal is not None:
        delta = {"stop_reason": "refusal", "stop_sequence": None}
        delta["stop_details"] = refusal_details(refusal)
    usage = _usage(input_tokens, output_tokens, *cached)
    tail = [
        sse({"type": "message_delta", "delta": delta, "usage": usage}, "message_delta"),
        sse({"type": "message_stop"}, "message_stop"),
    ]
    return content, tail


def render_stream(
    model: str, reply: Reply, *, input_tokens: int, output_tokens: int
) -> Iterable[bytes]:
    """The server-sent events of a streamed reply, from `message_start` to `message_stop`."""
    content, tail = stream_frames(
        model, reply, input_tokens=input_tokens, output_tokens=output_tokens
    )
    return [*content, *tail]


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str) -> JsonObject:
    """An Anthropic-shaped error body."""
    kind = _ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def context_length_body(input_tokens: int) -> JsonObject:
    """The 400 body Anthropic sends for a prompt over the context window."""
    return error_body(
        400, f"prompt is too long: {max(input_tokens, 200001)} tokens > 200000 maximum"
    )


def content_filter_body() -> JsonObject:
    """The 400 body Anthropic sends when its content filter blocks the output outright."""
    return error_body(400, "Output blocked by content filtering policy")


def stream_error_frame(status: int, message: str) -> bytes:
    """The `error` event Anthropic sends when a stream fails after it started (e.g. overloaded)."""
    return sse(error_body(status, message), "error")


def models_body(model_ids: Iterable[str]) -> JsonObject:
    """The `GET /v1/models` listing, Anthropic-shaped."""
    data = [
        {
            "type": "model",
            "id": model_id,
            "display_name": model_id,
            "created_at": "2025-01-01T00:00:00Z",
        }
        for model_id in model_ids
    ]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return {"data": data, "has_more": False, "first_id": first, "last_id": last}
