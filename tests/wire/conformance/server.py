"""An independent HTTP/1.1 loopback server for the conformance suite.

Written from the wire specs, not from `handoffs.testing`: it shares none of the engine's (or the
project's fake provider's) assumptions. Each request is answered by a `Responder` the test sets,
which returns a `Reply`: a status, headers, a body as segments (each optionally preceded by a
stall), a framing (Content-Length declaring the full body or only what is sent, EOF-delimited, or
chunked), an optional cut at any body byte, and how the connection ends (kept alive, closed
cleanly with a FIN, or reset with an RST).

Every exchange is logged with the request as parsed and the body bytes really written before the
connection ended, so a test can re-parse exactly what the client could have received.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

__all__ = ["Exchange", "Reply", "Request", "Segment", "WireServer"]

Framing = Literal["length", "length-sent", "close", "chunked"]
"""`length`: Content-Length of the whole body (a cut is an incomplete message); `length-sent`:
Content-Length of what is really sent (a cut looks complete to HTTP); `close`: no length, the body
ends at EOF; `chunked`: chunked transfer-coding, one chunk per segment."""

Ending = Literal["keep", "clean", "abrupt"]
"""After the reply: keep the connection for the next request, close it with a FIN, or reset it."""


@dataclass(frozen=True, slots=True)
class Segment:
    data: bytes
    stall_s: float = 0.0
    """Wait this long before sending `data` (ends early if the client hangs up)."""


@dataclass(frozen=True, kw_only=True)
class Reply:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    segments: tuple[Segment, ...] = ()
    framing: Framing = "length"
    cut_at: int | None = None
    """Stop after this many body bytes (None: send the whole body)."""
    ending: Ending = "keep"
    stall_headers_s: float = 0.0
    """Wait this long before sending the status line."""
    meta: Any = None
    """Whatever the responder wants to find again in the log (e.g. the plan it built)."""

    @property
    def body(self) -> bytes:
        return b"".join(s.data for s in self.segments)

    @property
    def complete(self) -> bool:
        """Whether the whole body is sent (no cut inside it)."""
        return self.cut_at is None or self.cut_at >= len(self.body)


@dataclass(frozen=True, kw_only=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any

    @property
    def model(self) -> str | None:
        return self.json.get("model") if isinstance(self.json, dict) else None

    @property
    def stream(self) -> bool:
        return bool(isinstance(self.json, dict) and self.json.get("stream"))

    @property
    def max_tokens(self) -> int | None:
        if not isinstance(self.json, dict):
            return None
        value = self.json.get("max_completion_tokens", self.json.get("max_tokens"))
        return value if isinstance(value, int) else None


@dataclass(kw_only=True)
class Exchange:
    request: Request
    reply: Reply
    sent: bytearray = field(default_factory=bytearray)
    """Body bytes written before the reply ended (or the client hung up)."""
    headers_sent: bool = False
    client_gone: bool = False
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)


Responder = Callable[[Request], Reply]


class _Gone(Exception):
    """The client hung up."""


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


class WireServer:
    """A threaded HTTP/1.1 server on 127.0.0.1; use as a context manager."""

    def __init__(self, responder: Responder | None = None, *, name: str = "wire") -> None:
        self.name = name
        self.responder: Responder = responder or (lambda r: Reply(status=404))
        self.log: list[Exchange] = []
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._stop = threading.Event()
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> WireServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.settimeout(0.05)
        self._sock = sock
        self.port = sock.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name=f"{self.name}-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self, responder: Responder | None = None) -> None:
        with self._lock:
            self.log = []
        if responder is not None:
            self.responder = responder

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until every logged exchange has finished writing (the server side of a stall)."""
        end = time.monotonic() + timeout
        for exchange in list(self.log):
            exchange.done.wait(max(0.0, end - time.monotonic()))

    # -- serving -----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        buf = bytearray()
        try:
            conn.settimeout(10)
            while not self._stop.is_set():
                request = self._read_request(conn, buf)
                if request is None:
                    return
                try:
                    reply = self.responder(request)
                except Exception as exc:  # a broken responder is a 599 the test will see
                    reply = Reply(status=599, segments=(Segment(repr(exc).encode()),))
                exchange = Exchange(request=request, reply=reply)
                with self._lock:
                    self.log.append(exchange)
                try:
                    keep = self._write(conn, exchange)
                except (_Gone, OSError):
                    exchange.client_gone = True
                    keep = False
                finally:
                    exchange.done.set()
                if not keep:
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _read_request(self, conn: socket.socket, buf: bytearray) -> Request | None:
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            buf += chunk
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        body = bytearray(rest)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            raw = body
            body = bytearray()
            while True:
                while b"\r\n" not in raw:
                    more = conn.recv(65536)
                    if not more:
                        return None
                    raw += more
                size_line, _, raw = bytes(raw).partition(b"\r\n")
                raw = bytearray(raw)
                size = int(size_line.split(b";")[0], 16)
                while len(raw) < size + 2:
                    more = conn.recv(65536)
                    if not more:
                        return None
                    raw += more
                body += raw[:size]
                raw = raw[size + 2 :]
                if size == 0:
                    break
            buf[:] = raw
        else:
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                more = conn.recv(65536)
                if not more:
                    return None
                body += more
            buf[:] = body[length:]
            body = body[:length]
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        return Request(method=method, path=path, headers=headers, body=bytes(body), json=parsed)

    def _stall(self, conn: socket.socket, seconds: float) -> None:
        """Sleep, but notice a client that hangs up meanwhile."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self._stop.is_set():
                raise _Gone
            readable, _, _ = select.select([conn], [], [], min(left, 0.05))
            if readable:
                try:
                    peek = conn.recv(1, socket.MSG_PEEK)
                except OSError:
                    raise _Gone from None
                if not peek:
                    raise _Gone
                time.sleep(min(left, 0.01))  # pipelined data: keep sleeping

    def _write(self, conn: socket.socket, exchange: Exchange) -> bool:
        reply = exchange.reply
        body = reply.body
        cut = len(body) if reply.cut_at is None else min(reply.cut_at, len(body))
        if reply.stall_headers_s:
            self._stall(conn, reply.stall_headers_s)
        lines = [f"HTTP/1.1 {reply.status} {_reason(reply.status)}"]
        names = {k.lower() for k, _ in reply.headers}
        lines += [f"{k}: {v}" for k, v in reply.headers]
        if reply.framing == "length":
            lines.append(f"content-length: {len(body)}")
        elif reply.framing == "length-sent":
            lines.append(f"content-length: {cut}")
        elif reply.framing == "chunked":
            lines.append("transfer-encoding: chunked")
        closing = reply.framing == "close" or reply.ending != "keep" or cut < len(body)
        if closing and "connection" not in names:
            lines.append("connection: close")
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        exchange.headers_sent = True
        left = cut
        for segment in reply.segments:
            if left <= 0 and segment.data:
                break
            if segment.stall_s:
                self._stall(conn, segment.stall_s)
            data = segment.data[:left]
            left -= len(data)
            if not data:
                continue
            if reply.framing == "chunked":
                conn.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
            else:
                conn.sendall(data)
            exchange.sent += data
        complete = cut >= len(body)
        if complete and reply.framing == "chunked":
            conn.sendall(b"0\r\n\r\n")
        if reply.ending == "abrupt":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if closing:
            try:
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            exchange.done.set()
            self._drain(conn)  # let the client read to EOF before the socket goes away
            return False
        return True

    def _drain(self, conn: socket.socket) -> None:
        end = time.monotonic() + 2.0
        while time.monotonic() < end and not self._stop.is_set():
            readable, _, _ = select.select([conn], [], [], 0.05)
            if readable:
                try:
                    if not conn.recv(65536):
                        return
                except OSError:
                    return
