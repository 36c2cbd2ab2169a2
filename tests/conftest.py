"""Shared fixtures: a small catalog of scripted models covering every tier."""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic_ai.models import Model

from handoffs.catalog import Catalog, ModelEntry, Tier
from handoffs.testing.scripted import ScriptCall, scripted


def entry(model_id: str, tier: Tier, price_in: str, price_out: str, **kw: Any) -> ModelEntry:
    """A catalog entry priced per million tokens."""
    return ModelEntry(
        id=model_id,
        provider=kw.pop("provider", "openai-compatible"),
        name=model_id,
        tier=tier,
        input_usd_per_mtok=Decimal(price_in),
        output_usd_per_mtok=Decimal(price_out),
        context_window=kw.pop("context_window", 8192),
        base_url=kw.pop("base_url", "http://127.0.0.1:9/v1"),
        **kw,
    )


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(
        [
            entry("tiny", "local", "0.02", "0.02"),
            entry("cheap", "small", "0.15", "0.60"),
            entry("middle", "mid", "1", "5"),
            entry("best", "frontier", "3", "15"),
        ]
    )


class Scripts:
    """Per-model answer functions; `models(entry)` is the `ModelSource` a Session takes."""

    def __init__(self) -> None:
        self.answers: dict[str, Callable[[ScriptCall], Any]] = {}
        self.calls: dict[str, list[ScriptCall]] = {}
        self._models: dict[str, Model] = {}

    def on(self, model_id: str, answer: Callable[[ScriptCall], Any]) -> None:
        self.answers[model_id] = answer

    def __call__(self, e: ModelEntry) -> Model:
        if e.id not in self._models:

            def answer(call: ScriptCall, model_id: str = e.id) -> Any:
                self.calls.setdefault(model_id, []).append(call)
                if model_id not in self.answers:
                    raise AssertionError(f"model {model_id} was not expected to be called")
                return self.answers[model_id](call)

            self._models[e.id] = scripted(answer, name=e.id)
        return self._models[e.id]


@pytest.fixture
def scripts() -> Scripts:
    return Scripts()


@pytest.fixture(autouse=True)
def _jobs_database(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep `handoffs run`'s durable job records out of the checkout: one SQLite file per test."""
    if "HANDOFFS_DATABASE_URL" not in os.environ:
        path = tmp_path_factory.mktemp("jobs") / "jobs.sqlite"
        monkeypatch.setenv("HANDOFFS_DATABASE_URL", f"sqlite:///{path}")


@pytest.fixture(autouse=True, scope="session")
def _traces_out_of_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Sessions, scripts and the CLI trace by default (to `.handoffs/traces`): the suite's traces
    go to a temporary folder instead (`HANDOFFS_TRACE_DIR`), never into the checkout."""
    if "HANDOFFS_TRACE_DIR" not in os.environ:
        os.environ["HANDOFFS_TRACE_DIR"] = str(tmp_path_factory.mktemp("default-traces"))


class Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver: keeps every body POSTed, by path (/v1/traces, /v1/metrics)."""

    bodies: dict[str, list[bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.bodies[self.path].append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, dict[str, list[bytes]]]]:
    bodies: defaultdict[str, list[bytes]] = defaultdict(list)
    handler = type("Handler", (Receiver,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
