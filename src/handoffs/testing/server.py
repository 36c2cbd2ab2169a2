"""Serve an ASGI app (usually a `FakeProvider`) on a real loopback socket, from a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Generator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ._asgi import TRANSPORT_KEY

__all__ = ["ASGIApp", "LoopbackServer", "refused_url", "serve"]

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
"""An ASGI application: `await app(scope, receive, send)`."""

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0
_GRACE_S = 2
"""Seconds uvicorn waits for unfinished requests at shutdown before cancelling them."""


class _Server(uvicorn.Server):
    """A uvicorn server that says when it listens, and never touches signal handlers."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self._ready.set()


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol, handing each connection's transport to the app in `scope["state"]`,
    so that a fault can drop the connection without an HTTP response."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # pyright: ignore[reportIncompatibleMethodOverride]
        super().connection_made(transport)  # pyright: ignore[reportArgumentType]
        self.app_state = {**self.app_state, TRANSPORT_KEY: transport}


class LoopbackServer:
    """uvicorn serving `app` on 127.0.0.1 at an OS-chosen port, in a daemon thread."""

    def __init__(self, app: ASGIApp) -> None:
        """Prepare to serve `app`, an ASGI callable; `start` starts it."""
        self._app = app
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    def start(self) -> str:
        """Start serving and return the base URL once the socket listens."""
        if self._thread is not None:
            raise RuntimeError("LoopbackServer is already started")
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            log_config=None,
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http=_Protocol,
            timeout_graceful_shutdown=_GRACE_S,
        )
        ready = threading.Event()
        server = _Server(config, ready)
        thread = threading.Thread(target=server.run, name="handoffs-loopback-server", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        if not ready.wait(_START_TIMEOUT_S) or not server.started:
            self.stop()
            raise RuntimeError("LoopbackServer did not start listening")
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        self._base_url = f"http://{host}:{port}"
        return self._base_url

    def stop(self) -> None:
        """Stop serving and wait for the thread to end; does nothing when not started."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(_STOP_TIMEOUT_S)
        self._server = self._thread = self._base_url = None
        if thread.is_alive():
            raise RuntimeError("LoopbackServer did not stop")

    @property
    def base_url(self) -> str:
        """The server's root URL, like `http://127.0.0.1:54321`."""
        if self._base_url is None:
            raise RuntimeError("LoopbackServer is not started")
        return self._base_url

    @property
    def openai_base_url(self) -> str:
        """The `base_url` to give an OpenAI client."""
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The `base_url` to give an Anthropic client."""
        return self.base_url

    def __enter__(self) -> Self:
        """Start serving (if not yet started)."""
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop serving."""
        self.stop()


def serve(app: ASGIApp) -> LoopbackServer:
    """Start serving `app` on a loopback port and return the running server."""
    server = LoopbackServer(app)
    server.start()
    return server


@contextmanager
def refused_url() -> Generator[str]:
    """A loopback base URL where connections are refused: its port is bound but never listens.

    A client sees a connection error before sending anything (pydantic-ai: `ModelConnectionError`
    with `phase == "connect"`). The port stays reserved until the block ends.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        host, port = sock.getsockname()[:2]
        yield f"http://{host}:{port}"
