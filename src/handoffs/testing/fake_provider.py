"""`FakeProvider`: an ASGI app that speaks the OpenAI and Anthropic wires with scripted models.

Routes:

- `POST /v1/chat/completions`: OpenAI Chat Completions, JSON or `stream: true` SSE.
- `POST /v1/messages`: Anthropic Messages (also `?beta=true`), JSON or SSE.
- `GET /v1/models`: the scripted model ids (Anthropic-shaped when `anthropic-version` is sent).

The request's `model` field picks a `ScriptedModel`; an unknown id gets a provider-shaped 404.
Every request is logged once in `FakeProvider.requests`, before its response body is sent, so a
client that has its answer can rely on the entry being there.

Tool output: when a request offers exactly one tool named `final_result…` (pydantic-ai's tool
output) and a script's `Reply` has text that parses as JSON and no tool calls, the reply goes back
as a call of that tool with the JSON as arguments. A non-object JSON value is wrapped as
`{"response": value}` when the tool's parameters are pydantic-ai's `response` wrapper. So
`Reply.json(obj)` works whether the agent asked for native (`response_format`) or tool output.
Agents with several output tools (`final_result_A`, `final_result_B`) get no such help: script
the `ToolCall` yourself.
"""

from __future__ import annotations

import inspect
import json
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import Any, Final

import anyio

from . import _anthropic_wire, _openai_wire
from ._json import JsonObject, WireError, as_object, dumps, object_or_none
from ._script import (
    Answer,
    FakeMessage,
    FakeRequest,
    FakeTool,
    Fault,
    Reply,
    ScriptedModel,
    ToolCall,
    Wire,
    estimate_tokens,
)

__all__ = [
    "FakeMessage",
    "FakeProvider",
    "FakeRequest",
    "FakeTool",
    "Fault",
    "LoggedRequest",
    "Reply",
    "ScriptedModel",
    "ToolCall",
]

ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]

CLIENT_CLOSED: Final = 499
"""The status logged for a request whose client hung up before it was answered."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedRequest:
    """One request the fake provider received, and what it answered."""

    wire: Wire
    """The dialect of the route it came to."""
    model: str
    """Its `model` field ('' when unreadable)."""
    stream: bool
    """Whether it asked for a stream."""
    status: int
    """The HTTP status answered (499: the client hung up first)."""
    input_tokens: int | None = None
    """Input tokens reported, for a successful reply."""
    output_tokens: int | None = None
    """Output tokens reported, for a successful reply."""
    request: FakeRequest | None = None
    """The normalised request, when it could be read."""
    body: JsonObject | None = None
    """The raw JSON body, for pinning wire details."""
    error: str | None = None
    """What went wrong, for an error answered by the fake itself (bad body, unknown model, a
    script that raised)."""


def settle(request: FakeRequest, reply: Reply) -> Reply:
    """Turn a JSON text reply into a call of the request's one output tool (see the module doc)."""
    tool = request.output_tool
    if tool is None or reply.tool_calls or reply.text is None:
        return reply
    try:
        value: object = json.loads(reply.text)
    except json.JSONDecodeError:
        return reply
    found = object_or_none(value)
    wrapper = object_or_none(tool.parameters.get("properties"))
    if (
        wrapper is not None
        and list(wrapper) == ["response"]
        and (found is None or "response" not in found)
    ):
        arguments: JsonObject = {"response": value}
    elif found is not None:
        arguments = found
    else:
        return reply
    return replace(reply, text=None, tool_calls=[ToolCall(name=tool.name, arguments=arguments)])


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _pause(seconds: float, receive: Receive) -> bool:
    """Sleep `seconds`, stopping early if the client hangs up; True if it is still there."""
    if seconds <= 0:
        return True
    hung_up = False
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            nonlocal hung_up
            while (await receive())["type"] != "http.disconnect":
                pass
            hung_up = True
            group.cancel_scope.cancel()

        group.start_soon(watch)
        await anyio.sleep(seconds)
        group.cancel_scope.cancel()
    return not hung_up


async def _send_json(
    send: Send, status: int, body: JsonObject, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    data = dumps(body).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*head, *headers]})
    await send({"type": "http.response.body", "body": data})


async def _send_stream(
    send: Send, frames: Iterable[bytes], headers: list[tuple[bytes, bytes]]
) -> None:
    head = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": [*head, *headers]})
    for frame in frames:
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _request_id_header(wire: Wire) -> tuple[bytes, bytes]:
    name = b"x-request-id" if wire == "openai" else b"request-id"
    return name, f"req_{uuid.uuid4().hex[:24]}".encode()


def _error_body(wire: Wire, status: int, message: str) -> JsonObject:
    if wire == "openai":
        return _openai_wire.error_body(status, message)
    return _anthropic_wire.error_body(status, message)


class FakeProvider:
    """An ASGI app serving scripted models over the OpenAI and Anthropic wires."""

    def __init__(self, models: Mapping[str, ScriptedModel] | None = None) -> None:
        """Serve `models`, keyed by the model id clients send."""
        self.models: dict[str, ScriptedModel] = dict(models or {})
        """The scripted models by id; mutable, so a test can swap behaviour between requests."""
        self.requests: list[LoggedRequest] = []
        """Every request received, in arrival order."""
        self._lock = threading.Lock()

    def add(self, model_id: str, scripted: ScriptedModel) -> None:
        """Serve `scripted` as `model_id`, replacing any model of that id."""
        self.models[model_id] = scripted

    def _log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(entry)

    async def __call__(self, scope: Mapping[str, Any], receive: Receive, send: Send) -> None:
        """Answer one ASGI connection scope."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        anthropic = any(name.lower() == b"anthropic-version" for name, _ in headers)
        method, path = scope["method"], scope["path"]
        if (method, path) == ("POST", "/v1/chat/completions"):
            await self._complete("openai", receive, send)
        elif (method, path) == ("POST", "/v1/messages"):
            await self._complete("anthropic", receive, send)
        elif (method, path) == ("GET", "/v1/models"):
            wire = _anthropic_wire if anthropic else _openai_wire
            await _send_json(send, 200, wire.models_body(list(self.models)))
        else:
            wire_name: Wire = "anthropic" if anthropic else "openai"
            body = _error_body(wire_name, 404, f"no route for {method} {path}")
            await _send_json(send, 404, body)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _refuse(
        self, wire: Wire, send: Send, status: int, message: str, body: JsonObject | None
    ) -> None:
        model = body.get("model") if body else None
        self._log(
            LoggedRequest(
                wire=wire,
                model=model if isinstance(model, str) else "",
                stream=bool(body and body.get("stream") is True),
                status=status,
                body=body,
                error=message,
            )
        )
        await _send_json(
            send, status, _error_body(wire, status, message), [_request_id_header(wire)]
        )

    async def _complete(self, wire: Wire, receive: Receive, send: Send) -> None:
        raw = await _read_body(receive)
        if raw is None:
            return
        body: JsonObject | None = None
        try:
            body = as_object(json.loads(raw), "body")
            request = (_openai_wire if wire == "openai" else _anthropic_wire).parse(body)
        except (ValueError, WireError) as exc:  # JSONDecodeError is a ValueError
            await self._refuse(wire, send, 400, f"invalid request: {exc}", body)
            return
        scripted = self.models.get(request.model)
        if scripted is None:
            await self._refuse(wire, send, 404, f"model {request.model!r} not found", body)
            return
        if not await _pause(scripted.latency_s, receive):
            self._log(self._entry(request, body, CLIENT_CLOSED))
            return
        try:
            answer = await self._ask(scripted, request)
        except Exception as exc:
            await self._refuse(
                wire, send, 500, f"script for {request.model!r} raised {exc!r}", body
            )
            return
        if isinstance(answer, Fault):
            await self._fail(request, body, answer, receive, send)
        else:
            await self._reply(request, body, settle(request, answer), send)

    @staticmethod
    async def _ask(scripted: ScriptedModel, request: FakeRequest) -> Answer:
        answer = scripted.answer(request)
        if inspect.isawaitable(answer):
            return await answer
        return answer

    @staticmethod
    def _entry(
        request: FakeRequest,
        body: JsonObject,
        status: int,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> LoggedRequest:
        return LoggedRequest(
            wire=request.wire,
            model=request.model,
            stream=request.stream,
            status=status,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            request=request,
            body=body,
        )

    async def _fail(
        self, request: FakeRequest, body: JsonObject, fault: Fault, receive: Receive, send: Send
    ) -> None:
        self._log(self._entry(request, body, fault.status))
        if not await _pause(fault.stall_s, receive):
            return
        headers = [_request_id_header(request.wire)]
        if fault.retry_after_s is not None:
            headers.append((b"retry-after", f"{fault.retry_after_s:g}".encode()))
        error = _error_body(request.wire, fault.status, fault.message)
        await _send_json(send, fault.status, error, headers)

    async def _reply(
        self, request: FakeRequest, body: JsonObject, reply: Reply, send: Send
    ) -> None:
        input_tokens = reply.input_tokens
        if input_tokens is None:
            input_tokens = estimate_tokens(request.all_text)
        output_tokens = reply.output_tokens
        if output_tokens is None:
            output_tokens = estimate_tokens(reply.output_text)
        self._log(
            self._entry(request, body, 200, input_tokens=input_tokens, output_tokens=output_tokens)
        )
        headers = [_request_id_header(request.wire)]
        tokens = {"input_tokens": input_tokens, "output_tokens": output_tokens}
        if request.wire == "openai":
            if request.stream:
                usage = _openai_wire.include_usage(body)
                frames = _openai_wire.render_stream(request.model, reply, usage=usage, **tokens)
                await _send_stream(send, frames, headers)
            else:
                await _send_json(
                    send, 200, _openai_wire.render(request.model, reply, **tokens), headers
                )
        elif request.stream:
            frames = _anthropic_wire.render_stream(request.model, reply, **tokens)
            await _send_stream(send, frames, headers)
        else:
            await _send_json(
                send, 200, _anthropic_wire.render(request.model, reply, **tokens), headers
            )
