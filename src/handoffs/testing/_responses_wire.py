"""The OpenAI Responses dialect, as far as the fake's batches need it: reading a request line's
body (`input`, `instructions`, `text.format`, function `tools`) and writing a `response` object.
(Live requests go to Chat Completions; OpenAI's batch API takes Responses requests.)"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from ._json import JsonObject, as_int, as_list, as_object, as_str, object_or_none
from ._script import FakeMessage, FakeRequest, FakeTool, Reply, ToolCall


def _text(content: object, what: str) -> str:
    if isinstance(content, str):
        return content
    parts = [as_object(p, what) for p in as_list(content, what)]
    return "".join(
        as_str(p.get("text"), f"{what}.text")
        for p in parts
        if p.get("type") in ("input_text", "output_text")
    )


def parse(body: JsonObject) -> FakeRequest:
    """Read a Responses request body."""
    system = body.get("instructions")
    messages: list[FakeMessage] = []
    raw = body.get("input")
    items = [{"role": "user", "content": raw}] if isinstance(raw, str) else as_list(raw, "input")
    for n, item in enumerate(items):
        entry = as_object(item, f"input[{n}]")
        kind = entry.get("type", "message")
        if kind == "message":
            role = as_str(entry.get("role"), f"input[{n}].role")
            text = _text(entry.get("content"), f"input[{n}].content")
            if role in ("system", "developer"):
                system = f"{system}\n{text}" if system else text
            else:
                messages.append(FakeMessage(role=role, text=text))  # type: ignore[arg-type]
        elif kind == "function_call":
            arguments = json.loads(as_str(entry.get("arguments"), f"input[{n}].arguments"))
            call = ToolCall(
                name=as_str(entry.get("name"), f"input[{n}].name"),
                arguments=as_object(arguments, "arguments"),
                id=as_str(entry.get("call_id"), f"input[{n}].call_id"),
            )
            messages.append(FakeMessage(role="assistant", text="", tool_calls=[call]))
        elif kind == "function_call_output":
            output = entry.get("output")
            messages.append(
                FakeMessage(role="tool", text=output if isinstance(output, str) else "")
            )
    tools = [
        FakeTool(
            name=as_str(t.get("name"), "tools[].name"),
            description=str(t.get("description") or ""),
            parameters=as_object(t.get("parameters", {}), "tools[].parameters"),
        )
        for t in (as_object(x, "tools[]") for x in as_list(body.get("tools", []), "tools"))
        if t.get("type") == "function"
    ]
    text_format = object_or_none(object_or_none(body.get("text") or {}).get("format"))  # type: ignore[union-attr]
    schema: dict[str, Any] | None = None
    if text_format is not None and text_format.get("type") == "json_schema":
        schema = as_object(text_format.get("schema", {}), "text.format.schema")
    choice = body.get("tool_choice")
    return FakeRequest(
        wire="openai",
        model=as_str(body.get("model"), "model"),
        system=str(system or ""),
        messages=messages,
        tools=tools,
        output_schema=schema,
        stream=False,
        max_tokens=as_int(body.get("max_output_tokens"), "max_output_tokens"),
        tool_choice=choice if isinstance(choice, str) else None,
    )


def render(model: str, reply: Reply, *, input_tokens: int, output_tokens: int) -> JsonObject:
    """A completed `response` object."""
    output: list[JsonObject] = []
    if reply.text:
        output.append(
            {
                "type": "message",
                "id": f"msg_{uuid.uuid4().hex[:24]}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
            }
        )
    output.extend(
        {
            "type": "function_call",
            "id": f"fc_{uuid.uuid4().hex[:24]}",
            "call_id": call.id,
            "name": call.name,
            "arguments": json.dumps(call.arguments),
            "status": "completed",
        }
        for call in reply.tool_calls
    )
    return {
        "id": f"resp_{uuid.uuid4().hex[:24]}",
        "object": "response",
        "created_at": int(time.time()),
        "model": model,
        "status": "completed",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }
