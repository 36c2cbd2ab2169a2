"""`FakeProvider`: an ASGI app that speaks the OpenAI and Anthropic wires with scripted models.

Routes:

- `POST /v1/chat/completions`: OpenAI Chat Completions, JSON or `stream: true` SSE.
- `POST /v1/messages`: Anthropic Messages (also `?beta=true`), JSON or SSE.
- `GET /v1/models`: the scripted model ids (Anthropic-shaped when `anthropic-version` is sent).
- `/v1/messages/batches...`: Anthropic Message Batches (create, poll, results, cancel);
  `/v1/files...` and `/v1/batches...`: OpenAI's Batch API (of Responses requests). Both kept in
  `FakeProvider.batches`, whose switches say when a batch ends and how (`handoffs.testing._batch`).

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

Prompt caching: each model remembers the prefixes it has seen (`PromptCache`), and a reply reports
what it read and wrote the way its wire does (Anthropic `cache_read_input_tokens` and
`cache_creation_input_tokens` at `cache_control` breakpoints; OpenAI `cached_tokens` for shared
prefixes of 1024 tokens and more), so a client sees what caching saves.

Faults: a script may answer with a `Fault` instead of a `Reply`; `FakeProvider.outage` fails a
model for a while. `handoffs.testing.fault` tables what a client sees for each kind.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from . import _anthropic_wire, _batch, _openai_wire
from ._asgi import Exchange, Receive, Send, read_body, transport_of
from ._delivery import (
    NO_RESPONSE,
    OFF_SCHEMA,
    STOCK_REPLY,
    Tokens,
    deliver,
    error_body,
    inject,
    request_id_header,
    status_of,
)
from ._json import JsonObject, WireError, as_object, object_or_none
from ._prompt_cache import PromptCache
from ._script import (
    Answer,
    FakeMessage,
    FakeRequest,
    FakeTool,
    Fault,
    FaultKind,
    Reply,
    ScriptedModel,
    ToolCall,
    Wire,
    estimate_tokens,
)
from .fault import Outage, ask, resolve

__all__ = [
    "CLIENT_CLOSED",
    "NO_RESPONSE",
    "FakeMessage",
    "FakeProvider",
    "FakeRequest",
    "FakeTool",
    "Fault",
    "LoggedRequest",
    "PromptCache",
    "Reply",
    "ScriptedModel",
    "ToolCall",
]

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
    """The HTTP status answered (`CLIENT_CLOSED` 499: the client hung up first; `NO_RESPONSE` 0:
    the connection was dropped without one)."""
    input_tokens: int | None = None
    """Input tokens reported, for a 200 answer (faulted ones included)."""
    output_tokens: int | None = None
    """Output tokens reported, for a 200 answer (faulted ones included)."""
    cache_read_tokens: int = 0
    """Of `input_tokens`, those reported read from the prompt cache."""
    cache_write_tokens: int = 0
    """Of `input_tokens`, those reported written to the prompt cache (Anthropic)."""
    request: FakeRequest | None = None
    """The normalised request, when it could be read."""
    body: JsonObject | None = None
    """The raw JSON body, for pinning wire details."""
    error: str | None = None
    """What went wrong, for an error answered by the fake itself (bad body, unknown model, a
    script that raised)."""
    fault: FaultKind | None = None
    """The kind of the scripted fault this request got, if any."""


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


class FakeProvider:
    """An ASGI app serving scripted models over the OpenAI and Anthropic wires."""

    def __init__(
        self, models: Mapping[str, ScriptedModel] | None = None, *, cache_min_tokens: int = 1024
    ) -> None:
        """Serve `models`, keyed by the model id clients send; prefixes of `cache_min_tokens`
        and more are prompt-cached."""
        self.models: dict[str, ScriptedModel] = dict(models or {})
        self.prompt_cache = PromptCache(min_tokens=cache_min_tokens)
        """The prefixes each model has seen (`clear()` it to start cold)."""
        """The scripted models by id; mutable, so a test can swap behaviour between requests."""
        self.requests: list[LoggedRequest] = []
        """Every request received, in arrival order."""
        self._outages: dict[str, list[tuple[Outage, Fault]]] = {}
        self._lock = threading.Lock()
        self.batches = _batch.Batches()
        """The batches created on the batch routes, and when and how they end."""

    def add(self, model_id: str, scripted: ScriptedModel) -> None:
        """Serve `scripted` as `model_id`, replacing any model of that id."""
        self.models[model_id] = scripted

    def outage(self, model_id: str, fault: Fault | None = None) -> Outage:
        """A switch that makes every request for `model_id` fail with `fault` (default: a 503)
        while it is on; it starts off. `with provider.outage("m"): ...`, or `start()`/`end()`,
        or `start(for_s=...)` for a timed window. It outlives `add()` replacing the model."""
        switch = Outage()
        with self._lock:
            self._outages.setdefault(model_id, []).append((switch, fault or Fault.http(503)))
        return switch

    def reset(self) -> None:
        """Forget every model, outage and logged request, e.g. between tests sharing a server."""
        with self._lock:
            self.models.clear()
            self._outages.clear()
            self.requests.clear()
        self.prompt_cache.clear()
        self.batches = _batch.Batches()

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
        exchange = Exchange(receive=receive, send=send, transport=transport_of(scope))
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        anthropic = any(name.lower() == b"anthropic-version" for name, _ in headers)
        method, path = scope["method"], scope["path"]
        if (method, path) == ("POST", "/v1/chat/completions"):
            await self._complete("openai", exchange)
        elif (method, path) == ("POST", "/v1/messages"):
            await self._complete("anthropic", exchange)
        elif path.startswith("/v1/messages/batches"):
            await self._batch(method, path, scope, exchange)
        elif path.startswith(("/v1/files", "/v1/batches")):
            await self._openai_batch(method, path, headers, exchange)
        elif (method, path) == ("GET", "/v1/models"):
            wire = _anthropic_wire if anthropic else _openai_wire
            await exchange.json(200, wire.models_body(list(self.models)))
        else:
            wire_name: Wire = "anthropic" if anthropic else "openai"
            body = error_body(wire_name, 404, f"no route for {method} {path}")
            await exchange.json(404, body)

    async def _batch(
        self, method: str, path: str, scope: Mapping[str, Any], exchange: Exchange
    ) -> None:
        """The Anthropic Message Batches routes."""
        rest = path.removeprefix("/v1/messages/batches").strip("/").split("/")
        if method == "POST" and rest == [""]:
            raw = await read_body(exchange.receive)
            if raw is None:
                return
            try:
                items = _batch.parse_create(as_object(json.loads(raw), "body"))
            except (ValueError, WireError) as exc:
                body = error_body("anthropic", 400, f"invalid request: {exc}")
                await exchange.json(400, body)
                return
            batch = self.batches.add(items)
            await exchange.json(200, _batch.anthropic_body(batch, _base_url(scope)))
            return
        batch = self.batches.get(rest[0])
        if batch is None:
            await exchange.json(404, error_body("anthropic", 404, f"no batch {rest[0]!r}"))
            return
        if method == "GET" and len(rest) == 1:
            if not batch.ended and self.batches.due(batch):
                await _batch.end(batch, self.models, settle=settle, expire=self.batches.expire)
        elif method == "POST" and rest[1:] == ["cancel"]:
            for item in batch.items:
                item.status = "canceled"
            batch.ended_at = batch.ended_at or batch.created_at
        elif method == "GET" and rest[1:] == ["results"] and batch.ended:
            data = _batch.anthropic_results(batch)
            await exchange.start(200, b"application/binary", [], len(data))
            await exchange.end(data)
            return
        else:
            body = error_body("anthropic", 404, f"no route for {method} {path}")
            await exchange.json(404, body)
            return
        await exchange.json(200, _batch.anthropic_body(batch, _base_url(scope)))

    async def _openai_batch(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]], exchange: Exchange
    ) -> None:
        """OpenAI's files and Batch API routes."""
        batches = self.batches
        parts = path.strip("/").split("/")[1:]  # ["files", id?, "content"?] / ["batches", ...]
        try:
            if method == "POST" and parts == ["files"]:
                raw = await read_body(exchange.receive)
                if raw is None:
                    return
                kind = next((v.decode() for k, v in headers if k.lower() == b"content-type"), "")
                data = _batch.parse_multipart(kind, raw)
                file_id = batches.add_file(data)
                await exchange.json(200, _file_body(file_id, len(data)))
                return
            if parts[0] == "files" and len(parts) >= 2:
                data = batches.files.get(parts[1])
                if data is None:
                    raise KeyError(parts[1])
                if method == "GET" and parts[2:] == ["content"]:
                    await exchange.start(200, b"application/octet-stream", [], len(data))
                    await exchange.end(data)
                elif method == "DELETE" and len(parts) == 2:
                    del batches.files[parts[1]]
                    await exchange.json(200, {"id": parts[1], "object": "file", "deleted": True})
                else:
                    raise KeyError(path)
                return
            if method == "POST" and parts == ["batches"]:
                raw = await read_body(exchange.receive)
                if raw is None:
                    return
                body = as_object(json.loads(raw), "body")
                items = _batch.parse_openai_create(body, batches.files)
                batch = batches.add(items, input_file_id=str(body["input_file_id"]))
                await exchange.json(200, _batch.openai_body(batch))
                return
            batch = batches.get(parts[1]) if len(parts) >= 2 else None
            if batch is None:
                raise KeyError(path)
            if method == "GET" and len(parts) == 2:
                if not batch.ended and batches.due(batch):
                    await _batch.end(batch, self.models, settle=settle, expire=batches.expire)
                    _batch.openai_end_files(batch, batches)
            elif method == "POST" and parts[2:] == ["cancel"]:
                for item in batch.items:
                    item.status = "canceled"
                batch.ended_at = batch.ended_at or batch.created_at
            else:
                raise KeyError(path)
            await exchange.json(200, _batch.openai_body(batch))
        except KeyError:
            await exchange.json(404, error_body("openai", 404, f"no route for {method} {path}"))
        except (ValueError, WireError) as exc:
            await exchange.json(400, error_body("openai", 400, f"invalid request: {exc}"))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _refuse(
        self, wire: Wire, exchange: Exchange, status: int, message: str, body: JsonObject | None
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
        await exchange.json(status, error_body(wire, status, message), [request_id_header(wire)])

    async def _complete(self, wire: Wire, exchange: Exchange) -> None:
        raw = await read_body(exchange.receive)
        if raw is None:
            return
        body: JsonObject | None = None
        try:
            body = as_object(json.loads(raw), "body")
            request = (_openai_wire if wire == "openai" else _anthropic_wire).parse(body)
        except (ValueError, WireError) as exc:  # JSONDecodeError is a ValueError
            await self._refuse(wire, exchange, 400, f"invalid request: {exc}", body)
            return
        scripted = self.models.get(request.model)
        if scripted is None:
            await self._refuse(wire, exchange, 404, f"model {request.model!r} not found", body)
            return
        if not await exchange.pause(scripted.latency_s):
            self._log(self._entry(request, body, CLIENT_CLOSED))
            return
        try:
            answer = await self._answer(scripted, request)
        except Exception as exc:
            message = f"script for {request.model!r} raised {exc!r}"
            await self._refuse(wire, exchange, 500, message, body)
            return
        if isinstance(answer, Fault):
            await self._fail(request, body, answer, exchange)
        else:
            await self._reply(request, body, settle(request, answer), exchange)

    async def _answer(self, scripted: ScriptedModel, request: FakeRequest) -> Answer:
        """The answer of the first outage that is on, else of the script."""
        with self._lock:
            outages = list(self._outages.get(request.model, ()))
        for switch, fault in outages:
            if switch.active:
                return await resolve(fault, scripted.answer, request)
        return await ask(scripted.answer, request)

    @staticmethod
    def _entry(
        request: FakeRequest,
        body: JsonObject,
        status: int,
        tokens: Tokens | None = None,
        fault: FaultKind | None = None,
    ) -> LoggedRequest:
        return LoggedRequest(
            wire=request.wire,
            model=request.model,
            stream=request.stream,
            status=status,
            input_tokens=tokens.input if tokens else None,
            output_tokens=tokens.output if tokens else None,
            cache_read_tokens=tokens.cache_read if tokens else 0,
            cache_write_tokens=tokens.cache_write if tokens else 0,
            request=request,
            body=body,
            fault=fault,
        )

    @staticmethod
    def _tokens(request: FakeRequest, reply: Reply) -> Tokens:
        input_tokens = reply.input_tokens
        if input_tokens is None:
            input_tokens = estimate_tokens(request.all_text)
        output_tokens = reply.output_tokens
        if output_tokens is None:  # an estimate: a provider never reports more than max_tokens
            output_tokens = estimate_tokens(reply.output_text)
            if request.max_tokens is not None:
                output_tokens = min(output_tokens, request.max_tokens)
        return Tokens(input=input_tokens, output=output_tokens)

    async def _fail(
        self, request: FakeRequest, body: JsonObject, fault: Fault, exchange: Exchange
    ) -> None:
        match fault.kind:
            case "empty":
                reply = Reply()
            case "off_schema":
                reply = settle(request, OFF_SCHEMA)
            case "content_filter":
                reply = fault.reply or Reply()
            case _:
                reply = settle(request, fault.reply or STOCK_REPLY)
        tokens = self._tokens(request, reply)
        status = status_of(fault, request.stream)
        billed = tokens if status == 200 else None
        self._log(self._entry(request, body, status, billed, fault.kind))
        await inject(exchange, request, body, fault, reply, tokens)

    async def _reply(
        self, request: FakeRequest, body: JsonObject, reply: Reply, exchange: Exchange
    ) -> None:
        tokens = self._tokens(request, reply)
        use = self.prompt_cache.use(request, body, tokens.input)
        tokens = replace(tokens, cache_read=use.read, cache_write=use.written)
        self._log(self._entry(request, body, 200, tokens))
        await deliver(exchange, request, body, reply, tokens)


def _base_url(scope: Mapping[str, Any]) -> str:
    """The address the request was sent to, for the absolute URLs a batch object carries."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    host = next((v.decode() for k, v in headers if k.lower() == b"host"), "127.0.0.1")
    return f"{scope.get('scheme', 'http')}://{host}"


def _file_body(file_id: str, size: int) -> JsonObject:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": 0,
        "filename": "batch.jsonl",
        "purpose": "batch",
        "status": "processed",
    }
