"""One HTTP exchange over ASGI, with the socket underneath when the server hands it over."""

from __future__ import annotations

import socket
import struct
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import anyio

from ._json import JsonObject, dumps, object_or_none

ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]
Headers = Iterable[tuple[bytes, bytes]]

TRANSPORT_KEY: Final = "handoffs.transport"
"""The key under which `LoopbackServer` puts each connection's asyncio transport in the ASGI
scope's `state`, so that a fault can close or reset the connection itself."""


class Transport:
    """The part of an asyncio transport a fault needs to end a connection."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def close(self, *, reset: bool) -> None:
        if reset:
            sock: Any = self._inner.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._inner.abort()
        else:
            self._inner.close()


def transport_of(scope: Mapping[str, Any]) -> Transport | None:
    """The connection's transport, when the server put it in the scope's state."""
    state = object_or_none(scope.get("state"))
    found: object = state.get(TRANSPORT_KEY) if state is not None else None
    return Transport(found) if found is not None else None


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client hung up first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """Answering one request: JSON, a stream of frames, a pause, or a cut connection."""

    receive: Receive
    send: Send
    transport: Transport | None

    async def pause(self, seconds: float) -> bool:
        """Sleep `seconds`, stopping early if the client hangs up; True if it is still there."""
        if seconds <= 0:
            return True
        hung_up = False
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                nonlocal hung_up
                while (await self.receive())["type"] != "http.disconnect":
                    pass
                hung_up = True
                group.cancel_scope.cancel()

            group.start_soon(watch)
            await anyio.sleep(seconds)
            group.cancel_scope.cancel()
        return not hung_up

    async def start(
        self, status: int, content_type: bytes, headers: Headers, length: int | None = None
    ) -> None:
        """Send the status line and headers; without `length`, the body is chunked."""
        head = [(b"content-type", content_type)]
        if length is not None:
            head.append((b"content-length", str(length).encode()))
        else:
            head.append((b"cache-control", b"no-cache"))
        await self.send(
            {"type": "http.response.start", "status": status, "headers": [*head, *headers]}
        )

    async def write(self, data: bytes) -> None:
        """Send part of the body; more follows."""
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self, data: bytes = b"") -> None:
        """Send the last part of the body."""
        await self.send({"type": "http.response.body", "body": data})

    async def json(self, status: int, body: JsonObject, headers: Headers = ()) -> None:
        """A whole JSON response."""
        data = dumps(body).encode()
        await self.start(status, b"application/json", headers, len(data))
        await self.end(data)

    async def stream(self, frames: Iterable[bytes], headers: Headers) -> None:
        """A whole 200 server-sent-event response."""
        await self.start(200, b"text/event-stream; charset=utf-8", headers)
        for frame in frames:
            await self.write(frame)
        await self.end()

    async def cut(self, how: Literal["close", "reset"]) -> None:
        """End the connection now, whatever was sent: `close` (FIN) or `reset` (RST)."""
        if self.transport is None:
            raise RuntimeError(
                "cutting a connection needs a real socket: serve with LoopbackServer"
            )
        self.transport.close(reset=how == "reset")
        while (await self.receive())["type"] != "http.disconnect":
            pass
