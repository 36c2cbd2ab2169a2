"""The OpenAI Chat Completions dialect: reading requests, writing replies, errors and streams."""

from __future__ import annotations

import json
import time
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
    object_or_none,
    parse_arguments,
    pieces,
    sse,
)
from ._script import FakeMessage, FakeRequest, FakeTool, Reply, ToolCall


def _content_text(content: object, what: str) -> str:
    """The text of a message's `content`: a string, or an array of parts whose text parts count."""
    if content is None or isinstance(content, str):
        return content or ""
    texts: list[str] = []
    for part in as_list(content, what):
        part_obj = as_object(part, what)
        if part_obj.get("type") == "text":
            texts.append(as_str(part_obj.get("text"), f"{what}.text"))
    return "".join(texts)


def _tool_calls(raw: object) -> list[ToolCall]:
    calls: list[ToolCall] = []
    for item in as_list(raw, "tool_calls"):
        call = as_object(item, "tool_calls[]")
        function = as_object(call.get("function"), "tool_calls[].function")
        calls.append(
            ToolCall(
                id=as_str(call.get("id"), "tool_calls[].id"),
                name=as_str(function.get("name"), "function.name"),
                arguments=parse_arguments(as_str(function.get("arguments"), "function.arguments")),
            )
        )
    return calls


def _messages(raw: object) -> tuple[str, list[FakeMessage]]:
    system: list[str] = []
    messages: list[FakeMessage] = []
    names: dict[str, str] = {}
    for index, item in enumerate(as_list(raw, "messages")):
        message = as_object(item, f"messages[{index}]")
        role = message.get("role")
        text = _content_text(message.get("content"), f"messages[{index}].content")
        match role:
            case "system" | "developer":
                system.append(text)
            case "user":
                messages.append(FakeMessage(role="user", text=text))
            case "assistant":
                calls = _tool_calls(message.get("tool_calls"))
                names.update((call.id, call.name) for call in calls)
                messages.append(FakeMessage(role="assistant", text=text, tool_calls=calls))
            case "tool":
                call_id = as_str(message.get("tool_call_id"), "tool_call_id")
                messages.append(
                    FakeMessage(
                        role="tool", text=text, tool_call_id=call_id, tool_name=names.get(call_id)
                    )
                )
            case _:
                raise WireError(f"messages[{index}].role {role!r} is not supported")
    return "\n\n".join(part for part in system if part), messages


def _tools(raw: object) -> list[FakeTool]:
    tools: list[FakeTool] = []
    for item in as_list(raw, "tools"):
        tool = as_object(item, "tools[]")
        if tool.get("type", "function") != "function":
            continue
        function = as_object(tool.get("function"), "tools[].function")
        parameters = function.get("parameters")
        tools.append(
            FakeTool(
                name=as_str(function.get("name"), "function.name"),
                description=as_str(function.get("description"), "function.description"),
                parameters=as_object(parameters, "parameters") if parameters is not None else {},
            )
        )
    return tools


def _tool_choice(raw: object) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    choice = as_object(raw, "tool_choice")
    return as_str(as_object(choice.get("function"), "tool_choice.function").get("name"), "name")


def _output_schema(raw: object) -> dict[str, Any] | None:
    if raw is None:
        return None
    response_format = as_object(raw, "response_format")
    if response_format.get("type") != "json_schema":
        return None
    json_schema = as_object(response_format.get("json_schema"), "response_format.json_schema")
    return as_object(json_schema.get("schema", {}), "json_schema.schema")


def parse(body: JsonObject) -> FakeRequest:
    """Read a Chat Completions request body."""
    system, messages = _messages(body.get("messages"))
    max_tokens = as_int(body.get("max_completion_tokens"), "max_completion_tokens")
    return FakeRequest(
        wire="openai",
        model=as_str(body.get("model"), "model"),
        system=system,
        messages=messages,
        tools=_tools(body.get("tools")),
        output_schema=_output_schema(body.get("response_format")),
        stream=body.get("stream") is True,
        max_tokens=max_tokens
        if max_tokens is not None
        else as_int(body.get("max_tokens"), "max_tokens"),
        tool_choice=_tool_choice(body.get("tool_choice")),
    )


def include_usage(body: JsonObject) -> bool:
    """Whether a streamed request asked for a final usage chunk."""
    options = object_or_none(body.get("stream_options"))
    return options is not None and options.get("include_usage") is True


def _usage(input_tokens: int, output_tokens: int, cached: int = 0) -> JsonObject:
    """OpenAI's usage: `cached_tokens` is the part of `prompt_tokens` read from the cache."""
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
    }


def _finish_reason(reply: Reply) -> str:
    return "tool_calls" if reply.tool_calls else "stop"


def render(
    model: str,
    reply: Reply,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    finish_reason: str | None = None,
) -> JsonObject:
    """A non-streamed `chat.completion` body; `finish_reason` overrides the reply's own.
    OpenAI reports no cache writes (`cache_write_tokens` is ignored)."""
    message: JsonObject = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": json.dumps(call.arguments, ensure_ascii=False),
                },
            }
            for call in reply.tool_calls
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason or _finish_reason(reply),
            }
        ],
        "usage": _usage(input_tokens, output_tokens, cache_read_tokens),
    }


def _deltas(reply: Reply) -> Iterator[JsonObject]:
    yield {"role": "assistant", "content": ""}
    for piece in pieces(reply.text or ""):
        yield {"content": piece}
    for index, call in enumerate(reply.tool_calls):
        head = {"name": call.name, "arguments": ""}
        yield {
            "tool_calls": [{"index": index, "id": call.id, "type": "function", "function": head}]
        }
        for piece in pieces(json.dumps(call.arguments, ensure_ascii=False)):
            yield {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}


def stream_frames(
    model: str,
    reply: Reply,
    *,
    input_tokens: int,
    output_tokens: int,
    usage: bool,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    finish_reason: str | None = None,
) -> tuple[list[bytes], list[bytes]]:
    """The server-sent events of a streamed reply: its content frames, and the tail that ends it
    (the `finish_reason` chunk, the usage chunk if asked for, `data: [DONE]`)."""
    head: JsonObject = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    extra: JsonObject = {"usage": None} if usage else {}

    def chunk(delta: JsonObject, finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**head, "choices": [choice], **extra})

    content = [chunk(delta, None) for delta in _deltas(reply)]
    tail = [chunk({}, finish_reason or _finish_reason(reply))]
    if usage:
        counted = _usage(input_tokens, output_tokens, cache_read_tokens)
        tail.append(sse({**head, "choices": [], "usage": counted}))
    tail.append(sse("[DONE]"))
    return content, tail


def render_stream(
    model: str, reply: Reply, *, input_tokens: int, output_tokens: int, usage: bool
) -> Iterable[bytes]:
    """The server-sent events of a streamed reply, ending in `data: [DONE]`."""
    content, tail = stream_frames(
        model, reply, input_tokens=input_tokens, output_tokens=output_tokens, usage=usage
    )
    return [*content, *tail]


_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def error_body(status: int, message: str, *, code: str | None = None) -> JsonObject:
    """An OpenAI-shaped error body; `code` overrides the status's usual one."""
    kind, usual = _ERROR_TYPES.get(status, ("server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code or usual}}


def context_length_body(input_tokens: int) -> JsonObject:
    """The 400 body OpenAI sends for a prompt over the context window."""
    message = (
        f"This model's maximum context length is 128000 tokens. However, your messages resulted "
        f"in {max(input_tokens, 128001)} tokens. Please reduce the length of the messages."
    )
    body = error_body(400, message, code="context_length_exceeded")
    body["error"]["param"] = "messages"
    return body


def content_filter_body() -> JsonObject:
    """The 400 body an OpenAI deployment with a content filter (Azure) sends for a blocked prompt."""
    verdict = {"filtered": True, "severity": "high"}
    safe = {"filtered": False, "severity": "safe"}
    return {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
            "content management policy.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {
                    "hate": safe,
                    "self_harm": safe,
                    "sexual": safe,
                    "violence": verdict,
                },
            },
        }
    }


def stream_error_frame(status: int, message: str) -> bytes:
    """The frame OpenAI sends when a stream fails after it started: an `error` object."""
    return sse(error_body(status, message))


def models_body(model_ids: Iterable[str]) -> JsonObject:
    """The `GET /v1/models` listing."""
    data = [
        {"id": model_id, "object": "model", "created": 0, "owned_by": "handoffs-fake"}
        for model_id in model_ids
    ]
    return {"object": "list", "data": data}
