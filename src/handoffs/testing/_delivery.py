"""Writing an answer to the wire: a reply as the request's dialect renders it, or a fault.

A reply renders as one JSON body (plain) or as content frames and a tail (stream); faults work on
those bytes whatever the dialect: stall before them, cut them short, corrupt one, or replace the
tail with an error event.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Final, assert_never

from . import _anthropic_wire, _openai_wire
from ._asgi import Exchange
from ._json import JsonObject, dumps
from ._script import FakeRequest, Fault, Reply, Wire

NO_RESPONSE: Final = 0
"""The status logged for a request whose connection was dropped without an HTTP response."""

STOCK_REPLY: Final = Reply(
    text="This answer from the fake provider was interrupted by a scripted fault before it ended."
)
"""What a fault that sends part of an answer sends when it was given none."""

OFF_SCHEMA: Final = Reply.json({"unexpected": "fault"})
"""The answer of an `off_schema` fault."""

_GATEWAY_PAGE: Final = (
    "<html>\r\n<head><title>{status} Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>{status} Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Tokens:
    """The usage a reply reports."""

    input: int
    """All the prompt's tokens, the cache's reads and writes included."""
    output: int
    cache_read: int = 0
    """Of `input`, those read from the prompt cache."""
    cache_write: int = 0
    """Of `input`, those written to the prompt cache (Anthropic only)."""

    def counts(self) -> dict[str, int]:
        """The keyword arguments the wires' renderers take."""
        return {
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_read_tokens": self.cache_read,
            "cache_write_tokens": self.cache_write,
        }


def request_id_header(wire: Wire) -> tuple[bytes, bytes]:
    """The provider's request id header, freshly numbered."""
    name = b"x-request-id" if wire == "openai" else b"request-id"
    return name, f"req_{uuid.uuid4().hex[:24]}".encode()


def error_body(wire: Wire, status: int, message: str) -> JsonObject:
    """The dialect's error body for `status`."""
    if wire == "openai":
        return _openai_wire.error_body(status, message)
    return _anthropic_wire.error_body(status, message)


def status_of(fault: Fault, stream: bool) -> int:
    """The HTTP status the fault answers with (`NO_RESPONSE` when it answers none)."""
    match fault.kind:
        case "http":
            return fault.status
        case "stream_error":
            return 200 if stream else fault.status
        case "context_length" | "content_filter_error":
            return 400
        case "refuse":
            return NO_RESPONSE
        case (
            "content_filter"
            | "stall"
            | "stall_mid_stream"
            | "truncate"
            | "malformed"
            | "empty"
            | "off_schema"
        ):
            return 200
        case _:  # pragma: no cover
            assert_never(fault.kind)


def _plain(request: FakeRequest, reply: Reply, tokens: Tokens, refusal: str | None) -> bytes:
    counts = tokens.counts()
    if request.wire == "openai":
        finish = "content_filter" if refusal is not None else None
        body = _openai_wire.render(request.model, reply, finish_reason=finish, **counts)
    else:
        body = _anthropic_wire.render(request.model, reply, refusal=refusal, **counts)
    return dumps(body).encode()


def _frames(
    request: FakeRequest, body: JsonObject, reply: Reply, tokens: Tokens, refusal: str | None
) -> tuple[list[bytes], list[bytes]]:
    counts = tokens.counts()
    if request.wire == "openai":
        usage = _openai_wire.include_usage(body)
        finish = "content_filter" if refusal is not None else None
        return _openai_wire.stream_frames(
            request.model, reply, usage=usage, finish_reason=finish, **counts
        )
    return _anthropic_wire.stream_frames(request.model, reply, refusal=refusal, **counts)


def _broken(frame: bytes) -> bytes:
    """The frame with its JSON cut in half: an event that does not parse."""
    start = frame.index(b"data: ") + len(b"data: ")
    data = frame[start:].rstrip(b"\n")
    return frame[:start] + data[: max(1, len(data) // 2)] + b"\n\n"


def _stream_error_frame(request: FakeRequest, fault: Fault) -> bytes:
    if request.wire == "openai":
        return _openai_wire.stream_error_frame(fault.status, fault.message)
    return _anthropic_wire.stream_error_frame(fault.status, fault.message)


async def deliver(
    exchange: Exchange,
    request: FakeRequest,
    body: JsonObject,
    reply: Reply,
    tokens: Tokens,
    *,
    refusal: str | None = None,
) -> None:
    """Send `reply` whole, as the request asked (with `refusal`: stopped by a safety system)."""
    headers = [request_id_header(request.wire)]
    if request.stream:
        content, tail = _frames(request, body, reply, tokens, refusal)
        await exchange.stream([*content, *tail], headers)
    else:
        data = _plain(request, reply, tokens, refusal)
        await exchange.start(200, b"application/json", headers, len(data))
        await exchange.end(data)


async def _error(exchange: Exchange, request: FakeRequest, fault: Fault) -> None:
    headers = [request_id_header(request.wire)]
    if fault.retry_after_s is not None:
        seconds = fault.retry_after_s
        headers.append((b"retry-after", str(math.ceil(seconds)).encode()))
        headers.append((b"retry-after-ms", str(round(seconds * 1000)).encode()))
    if fault.html:
        page = _GATEWAY_PAGE.format(status=fault.status).encode()
        await exchange.start(fault.status, b"text/html", headers, len(page))
        await exchange.end(page)
        return
    await exchange.json(
        fault.status, error_body(request.wire, fault.status, fault.message), headers
    )


async def inject(
    exchange: Exchange,
    request: FakeRequest,
    body: JsonObject,
    fault: Fault,
    reply: Reply,
    tokens: Tokens,
) -> None:
    """Answer with `fault`; `reply` is the (settled) answer a carrying fault sends part of."""
    headers = [request_id_header(request.wire)]
    match fault.kind:
        case "http":
            if await exchange.pause(fault.stall_s):
                await _error(exchange, request, fault)
        case "stream_error" if not request.stream:
            await _error(exchange, request, fault)
        case "context_length" | "content_filter_error":
            wire = _openai_wire if request.wire == "openai" else _anthropic_wire
            bad = (
                wire.context_length_body(tokens.input)
                if fault.kind == "context_length"
                else wire.content_filter_body()
            )
            await exchange.json(400, bad, headers)
        case "content_filter":
            await deliver(exchange, request, body, reply, tokens, refusal=fault.message)
        case "refuse":
            await exchange.cut("reset" if fault.cut == "reset" else "close")
        case "stall":
            if await exchange.pause(fault.stall_s):
                await deliver(exchange, request, body, reply, tokens)
        case "empty" | "off_schema":
            await deliver(exchange, request, body, reply, tokens)
        case "stall_mid_stream" | "truncate" | "malformed" | "stream_error":
            if request.stream:
                await _break_stream(exchange, request, body, fault, reply, tokens)
            else:
                await _break_body(exchange, request, fault, reply, tokens)
        case _:  # pragma: no cover
            assert_never(fault.kind)


async def _break_stream(
    exchange: Exchange,
    request: FakeRequest,
    body: JsonObject,
    fault: Fault,
    reply: Reply,
    tokens: Tokens,
) -> None:
    content, tail = _frames(request, body, reply, tokens, None)
    split = min(fault.after_frames, len(content))
    head, rest = content[:split], content[split:]
    await exchange.start(
        200, b"text/event-stream; charset=utf-8", [request_id_header(request.wire)]
    )
    for frame in head:
        await exchange.write(frame)
    match fault.kind:
        case "stall_mid_stream":
            if not await exchange.pause(fault.stall_s):
                return
            for frame in [*rest, *tail]:
                await exchange.write(frame)
            await exchange.end()
        case "truncate":
            if fault.cut == "end":
                await exchange.end()
            else:
                await exchange.cut(fault.cut)
        case "malformed":
            following = [*rest, *tail]
            await exchange.write(_broken(following[0]))
            for frame in following[1:]:
                await exchange.write(frame)
            await exchange.end()
        case _:
            await exchange.end(_stream_error_frame(request, fault))


async def _break_body(
    exchange: Exchange, request: FakeRequest, fault: Fault, reply: Reply, tokens: Tokens
) -> None:
    data = _plain(request, reply, tokens, None)
    half = len(data) // 2
    headers = [request_id_header(request.wire)]
    if fault.kind == "malformed" or (fault.kind == "truncate" and fault.cut == "end"):
        await exchange.start(200, b"application/json", headers, half)
        await exchange.end(data[:half])
        return
    await exchange.start(200, b"application/json", headers, len(data))
    await exchange.write(data[:half])
    if fault.kind == "truncate":
        await exchange.cut("reset" if fault.cut == "reset" else "close")
    elif await exchange.pause(fault.stall_s):
        await exchange.end(data[half:])
