"""The fake provider's batch APIs: Anthropic Message Batches, kept in memory.

Routes (served by `FakeProvider`):

- `POST /v1/messages/batches`: create a batch of `{"custom_id", "params"}` requests;
- `GET /v1/messages/batches/{id}`: its state; each such poll counts towards its end;
- `GET /v1/messages/batches/{id}/results`: its results as JSONL, once it has ended;
- `POST /v1/messages/batches/{id}/cancel`: end it now, its requests canceled.

No time passes in a fake batch: it ends on its `polls`-th poll (`Batches.polls`, default 1), or
when a test calls `Batches.finish`, or never while `Batches.hold` is set. When it ends, each
request is answered by its model's script, as a live request would be; a script's `Fault` makes
that request `errored` (per-item failure), and `Batches.expire` makes every request of a batch
that ends `expired` instead (the provider's 24-hour window ran out).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from . import _anthropic_wire
from ._json import JsonObject, WireError, as_list, as_object, as_str, dumps
from ._script import Answer, FakeRequest, Fault, Reply, ScriptedModel, estimate_tokens
from .fault import ask

__all__ = ["BatchItem", "Batches", "FakeBatch"]

ItemStatus = Literal["processing", "succeeded", "errored", "expired", "canceled"]


@dataclass(slots=True, kw_only=True)
class BatchItem:
    """One request of a fake batch, and how it ended."""

    custom_id: str
    request: FakeRequest
    status: ItemStatus = "processing"
    result: JsonObject | None = None
    """The message answered (`succeeded`) or the error body (`errored`)."""


@dataclass(slots=True, kw_only=True)
class FakeBatch:
    """One batch the fake provider holds."""

    id: str
    items: list[BatchItem]
    created_at: datetime
    polls: int = 0
    """How many times its state was asked for."""
    ended_at: datetime | None = None

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = dict.fromkeys(
            ("processing", "succeeded", "errored", "canceled", "expired"), 0
        )
        for item in self.items:
            found[item.status] += 1
        return found


@dataclass
class Batches:
    """Every batch the fake provider was sent, and the switches that decide how they end."""

    polls: int | None = 1
    """The poll on which a batch ends (None: only when `finish` is called)."""
    hold: bool = False
    """While set, no batch ends by being polled (`finish` still ends one)."""
    expire: bool = False
    """A batch that ends now has every request `expired`, none answered."""
    created: list[FakeBatch] = field(default_factory=list[FakeBatch])
    """Every batch created, in order: `len(created)` is how many creates the fake saw."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _due: set[str] = field(default_factory=set[str])

    def get(self, batch_id: str) -> FakeBatch | None:
        with self._lock:
            return next((b for b in self.created if b.id == batch_id), None)

    def finish(self, batch_id: str | None = None) -> None:
        """End `batch_id` (default: every batch) at its next poll, whatever `polls` and `hold`
        say."""
        with self._lock:
            self._due |= {b.id for b in self.created if batch_id in (None, b.id)}

    def add(self, items: list[BatchItem]) -> FakeBatch:
        batch = FakeBatch(
            id=f"msgbatch_{uuid.uuid4().hex[:24]}", items=items, created_at=datetime.now(UTC)
        )
        with self._lock:
            self.created.append(batch)
        return batch

    def due(self, batch: FakeBatch) -> bool:
        """Count a poll of `batch`; whether it ends now."""
        with self._lock:
            batch.polls += 1
            if batch.id in self._due:
                return True
            return not self.hold and self.polls is not None and batch.polls >= self.polls


async def end(
    batch: FakeBatch,
    models: Mapping[str, ScriptedModel],
    *,
    settle: Callable[[FakeRequest, Reply], Reply],
    expire: bool,
) -> None:
    """Answer every request of `batch` (or expire them all) and mark it ended; `settle` is the
    fake's tool-output help, as for a live request."""
    for item in batch.items:
        if expire:
            item.status = "expired"
            continue
        scripted = models.get(item.request.model)
        if scripted is None:
            item.status = "errored"
            item.result = _error("not_found_error", f"model {item.request.model!r} not found")
            continue
        try:
            found: Answer = await ask(scripted.answer, item.request)
        except Exception as exc:
            item.status = "errored"
            item.result = _error("api_error", f"script raised {exc!r}")
            continue
        if isinstance(found, Fault):
            item.status = "errored"
            kind = "overloaded_error" if found.status in (529, 503) else "api_error"
            item.result = _error(kind, f"scripted fault {found.kind}")
            continue
        reply: Reply = settle(item.request, found)
        tokens_in = reply.input_tokens or estimate_tokens(item.request.all_text)
        tokens_out = reply.output_tokens or estimate_tokens(reply.output_text)
        message = _anthropic_wire.render(
            item.request.model, reply, input_tokens=tokens_in, output_tokens=tokens_out
        )
        item.status = "succeeded"
        item.result = message
    batch.ended_at = datetime.now(UTC)


def _error(kind: str, message: str) -> JsonObject:
    return {"type": "error", "error": {"type": kind, "message": message}}


def parse_create(body: JsonObject) -> list[BatchItem]:
    """The requests of an Anthropic create body."""
    items: list[BatchItem] = []
    for n, raw in enumerate(as_list(body.get("requests"), "requests")):
        entry = as_object(raw, f"requests[{n}]")
        custom_id = as_str(entry.get("custom_id"), f"requests[{n}].custom_id")
        params = as_object(entry.get("params"), f"requests[{n}].params")
        items.append(BatchItem(custom_id=custom_id, request=_anthropic_wire.parse(params)))
    if not items:
        raise WireError("requests: a batch needs at least one request")
    return items


def anthropic_body(batch: FakeBatch, base_url: str) -> JsonObject:
    """The `message_batch` object of `batch`."""
    ended = batch.ended_at
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": "ended" if ended else "in_progress",
        "request_counts": batch.counts(),
        "created_at": batch.created_at.isoformat(),
        "expires_at": (batch.created_at + timedelta(days=1)).isoformat(),
        "ended_at": ended.isoformat() if ended else None,
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": f"{base_url}/v1/messages/batches/{batch.id}/results" if ended else None,
    }


def anthropic_results(batch: FakeBatch) -> bytes:
    """The results file of an ended batch: one JSON line per request."""
    lines: list[str] = []
    for item in batch.items:
        result: JsonObject
        match item.status:
            case "succeeded":
                result = {"type": "succeeded", "message": item.result}
            case "errored":
                result = {"type": "errored", "error": item.result}
            case "expired" | "canceled" | "processing":
                result = {"type": "expired" if item.status == "processing" else item.status}
        lines.append(dumps({"custom_id": item.custom_id, "result": result}))
    return ("\n".join(lines) + "\n").encode()
