"""The fake provider's batch APIs: Anthropic Message Batches and OpenAI's Batch API (with the
files it reads and writes), kept in memory.

Routes (served by `FakeProvider`):

- `POST /v1/messages/batches`: create a batch of `{"custom_id", "params"}` requests;
- `GET /v1/messages/batches/{id}`: its state; each such poll counts towards its end;
- `GET /v1/messages/batches/{id}/results`: its results as JSONL, once it has ended;
- `POST /v1/messages/batches/{id}/cancel`: end it now, its requests canceled;
- `POST /v1/files` (multipart, `purpose=batch`), `GET /v1/files/{id}/content`,
  `DELETE /v1/files/{id}`: OpenAI's files;
- `POST /v1/batches` (an input file of `/v1/responses` requests), `GET /v1/batches/{id}` (a
  poll, as above), `POST /v1/batches/{id}/cancel`: OpenAI batches, whose output and error
  files hold their results.

No time passes in a fake batch: it ends on its `polls`-th poll (`Batches.polls`, default 1), or
when a test calls `Batches.finish`, or never while `Batches.hold` is set. When it ends, each
request is answered by its model's script, as a live request would be; a script's `Fault` makes
that request `errored` (per-item failure), and `Batches.expire` makes every request of a batch
that ends `expired` instead (the provider's 24-hour window ran out).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from . import _anthropic_wire, _responses_wire
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
    wire: Literal["anthropic", "openai"] = "anthropic"
    input_file_id: str | None = None
    """OpenAI: the file of its requests."""
    output_file_id: str | None = None
    """OpenAI, once ended: the file of its answers."""
    error_file_id: str | None = None
    """OpenAI, once ended: the file of its errored requests."""
    polls: int = 0
    """How many times its state was asked for."""
    ended_at: datetime | None = None

    @property
    def ended(self) -> bool:
        """Whether it has ended (answered, expired or canceled)."""
        return self.ended_at is not None

    def counts(self) -> dict[str, int]:
        """Its requests by status, as the providers count them."""
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
    files: dict[str, bytes] = field(default_factory=dict[str, bytes])
    """OpenAI files by id: batch inputs, outputs and errors."""
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _due: set[str] = field(default_factory=set[str])

    def wait_for(self, what: Callable[[], bool], timeout_s: float) -> bool:
        """Block until `what()` holds, re-checked at every create and poll (from a test's
        thread: `anyio.to_thread.run_sync`); False if `timeout_s` passed first."""
        with self._lock:
            return self._lock.wait_for(what, timeout_s)

    def add_file(self, data: bytes) -> str:
        """Keep `data` as a new OpenAI file; returns its id."""
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        with self._lock:
            self.files[file_id] = data
        return file_id

    def get(self, batch_id: str) -> FakeBatch | None:
        """The batch of that id, if one was created."""
        with self._lock:
            return next((b for b in self.created if b.id == batch_id), None)

    def finish(self, batch_id: str | None = None) -> None:
        """End `batch_id` (default: every batch) at its next poll, whatever `polls` and `hold`
        say."""
        with self._lock:
            self._due |= {b.id for b in self.created if batch_id in (None, b.id)}

    def add(self, items: list[BatchItem], *, input_file_id: str | None = None) -> FakeBatch:
        """A new batch of `items`: OpenAI's when it has an input file, else Anthropic's."""
        prefix = "batch_" if input_file_id else "msgbatch_"
        batch = FakeBatch(
            id=f"{prefix}{uuid.uuid4().hex[:24]}",
            items=items,
            created_at=datetime.now(UTC),
            wire="openai" if input_file_id else "anthropic",
            input_file_id=input_file_id,
        )
        with self._lock:
            self.created.append(batch)
            self._lock.notify_all()
        return batch

    def due(self, batch: FakeBatch) -> bool:
        """Count a poll of `batch`; whether it ends now."""
        with self._lock:
            batch.polls += 1
            self._lock.notify_all()
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
        wire = _anthropic_wire if batch.wire == "anthropic" else _responses_wire
        item.status = "succeeded"
        item.result = wire.render(
            item.request.model, reply, input_tokens=tokens_in, output_tokens=tokens_out
        )
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


def parse_multipart(content_type: str, raw: bytes) -> bytes:
    """The `file` part of a `multipart/form-data` body."""
    marker = "boundary="
    if marker not in content_type:
        raise WireError("files: a multipart/form-data body is expected")
    boundary = content_type.split(marker, 1)[1].split(";")[0].strip().strip('"').encode()
    for part in raw.split(b"--" + boundary):
        head, _, data = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            return data.removesuffix(b"\r\n")
    raise WireError("files: no `file` part")


def parse_openai_create(body: JsonObject, files: Mapping[str, bytes]) -> list[BatchItem]:
    """The requests of an OpenAI batch: the lines of its input file."""
    file_id = as_str(body.get("input_file_id"), "input_file_id")
    data = files.get(file_id)
    if data is None:
        raise WireError(f"input_file_id: no file {file_id!r}")
    items: list[BatchItem] = []
    for n, line in enumerate(data.decode().splitlines()):
        if not line.strip():
            continue
        entry = as_object(json.loads(line), f"line {n + 1}")
        request = _responses_wire.parse(as_object(entry.get("body"), f"line {n + 1}.body"))
        items.append(
            BatchItem(custom_id=as_str(entry.get("custom_id"), "custom_id"), request=request)
        )
    if not items:
        raise WireError("input file: a batch needs at least one request")
    return items


def openai_end_files(batch: FakeBatch, batches: Batches) -> None:
    """Write an ended OpenAI batch's output and error files (requests it did not run are in
    neither: the client reads them from the input file)."""
    out: list[str] = []
    err: list[str] = []
    for item in batch.items:
        if item.status == "succeeded":
            response = {"status_code": 200, "request_id": uuid.uuid4().hex, "body": item.result}
            out.append(
                dumps(
                    {
                        "id": f"batch_req_{uuid.uuid4().hex[:16]}",
                        "custom_id": item.custom_id,
                        "response": response,
                        "error": None,
                    }
                )
            )
        elif item.status == "errored":
            inner = as_object((item.result or {}).get("error", {}), "error")
            body = {
                "error": {
                    "message": inner.get("message"),
                    "type": "server_error",
                    "code": None,
                    "param": None,
                }
            }
            response = {"status_code": 500, "request_id": uuid.uuid4().hex, "body": body}
            err.append(
                dumps(
                    {
                        "id": f"batch_req_{uuid.uuid4().hex[:16]}",
                        "custom_id": item.custom_id,
                        "response": response,
                        "error": None,
                    }
                )
            )
    if out:
        batch.output_file_id = batches.add_file(("\n".join(out) + "\n").encode())
    if err:
        batch.error_file_id = batches.add_file(("\n".join(err) + "\n").encode())


def openai_body(batch: FakeBatch) -> JsonObject:
    """The `batch` object of an OpenAI batch."""
    counts = batch.counts()
    if not batch.ended:
        status = "in_progress"
    elif counts["expired"]:
        status = "expired"
    elif counts["canceled"]:
        status = "cancelled"
    else:
        status = "completed"
    created = int(batch.created_at.timestamp())
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": "/v1/responses",
        "input_file_id": batch.input_file_id,
        "completion_window": "24h",
        "status": status,
        "created_at": created,
        "expires_at": created + 86400,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "errors": None,
        "request_counts": {
            "total": len(batch.items),
            "completed": counts["succeeded"],
            "failed": counts["errored"],
        },
    }
