"""Submitting jobs and following them: `JobQueue`, `JobHandle`, `JobInfo`.

```python
async with JobQueue() as queue:                     # SQLite under .handoffs/ by default
    handle = await queue.submit("examples/jobs/support-triage.toml", key="triage-monday")
    handle.status()                                 # JobInfo: queued / running / completed ...
    report = await handle.result()                  # the JobReport, once a worker finished it
    handle.cancel()                                 # stops spending; finished handoffs are kept
```
A queue is a client of the jobs database: it never runs jobs (a `Worker` does). Submitting
validates the job file first, so a bad file is a `ConfigError` and nothing is enqueued.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, cast

import anyio
from dbos import DBOSClient, EnqueueOptions, WorkflowStatus
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from handoffs.catalog import Label
from handoffs.errors import ConfigError, JobNotCompleted, UnknownJob, config_error
from handoffs.jobs._database import (
    APP_VERSION,
    HANDOFF_WORKFLOW,
    QUEUE,
    WORKFLOW,
    open_client,
    resolve_url,
)
from handoffs.jobs._progress import JobProgress, progress_of
from handoffs.jobs._supervisor import Handover, Presence, recover
from handoffs.jobs._workflow import JobRequest
from handoffs.project import JobReport, JobSnapshot
from handoffs.tracing import TRACE_DIR, default_trace_dir

__all__ = [
    "JobHandle",
    "JobInfo",
    "JobNotCompleted",
    "JobQueue",
    "JobState",
    "UnknownJob",
    "job_id_for",
]

JobState = Literal["queued", "running", "completed", "budget_exceeded", "failed", "cancelled"]
_ACTIVE: frozenset[JobState] = frozenset({"queued", "running"})
_KEY: TypeAdapter[str] = TypeAdapter(Label)


class JobInfo(BaseModel):
    """A job as the database knows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    job: str
    """The job's name (from its file)."""
    job_file: str
    key: str | None = None
    state: JobState
    worker: str | None = None
    """The worker running it, or that last ran it."""
    version: str | None = None
    """The application version it runs under (only workers of that version run it)."""
    submitted_at: datetime | None = None
    updated_at: datetime | None = None
    error: str | None = None
    progress: JobProgress | None = None
    """Filled in by `JobHandle.status()`; None in listings."""

    @property
    def active(self) -> bool:
        """Whether the job is still queued or running."""
        return self.state in _ACTIVE


def _when(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _state(status: WorkflowStatus) -> tuple[JobState, str | None]:
    raw = status.status
    if raw in ("ENQUEUED", "DELAYED"):
        return "queued", None
    if raw == "PENDING":
        return "running", None
    if raw == "CANCELLED":
        return "cancelled", None
    if raw == "SUCCESS":
        output = cast(dict[str, Any], status.output or {})
        state = output.get("status", "completed")
        return cast(JobState, state), cast(str | None, output.get("error"))
    if raw == "MAX_RECOVERY_ATTEMPTS_EXCEEDED":
        return "failed", "resumed too many times without finishing"
    error = status.error
    return "failed", " ".join(str(error).split()) if error is not None else "the job failed"


def _info(status: WorkflowStatus, progress: JobProgress | None = None) -> JobInfo:
    attrs = status.attributes or {}
    state, error = _state(status)
    return JobInfo(
        job_id=status.workflow_id,
        job=str(attrs.get("job", "?")),
        job_file=str(attrs.get("job_file", "?")),
        key=attrs.get("key"),
        state=state,
        worker=status.executor_id if status.status != "ENQUEUED" else None,
        version=status.app_version,
        submitted_at=_when(status.created_at),
        updated_at=_when(status.updated_at),
        error=error,
        progress=progress,
    )


def job_id_for(key: str) -> str:
    """The job id an idempotency key maps to (12 hex digits, like every job id)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class JobQueue:
    """A client of one jobs database: submit, look up, list and recover jobs."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        config: Path | str = "handoffs.toml",
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Connect (creating the database if needed); `JobsDatabaseError` if it is unreachable.

        The URL is `database_url`, else `HANDOFFS_DATABASE_URL` in `env`, else `[jobs]` in
        `config`, else SQLite under `.handoffs/`.
        """
        self.config = Path(config).resolve()
        self.url = resolve_url(
            database_url, config=self.config, env=os.environ if env is None else env
        )
        self.client: DBOSClient = open_client(self.url)

    def close(self) -> None:
        """Close the connection pool."""
        self.client.destroy()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def submit(
        self,
        job: Path | str,
        *,
        key: str | None = None,
        trace_dir: Path | None = TRACE_DIR,
    ) -> JobHandle:
        """Validate `job` and put it on the queue; returns at once.

        With `key`, submitting again returns the job that key already names (whatever its
        state) instead of adding one. A key reused for another job file is a `ConfigError`.
        """
        options, request = self.prepare(Path(job), key=key, trace_dir=trace_dir)

        def enqueue() -> None:
            self.client.enqueue(options, request.model_dump(mode="json"))

        await anyio.to_thread.run_sync(enqueue)
        handle = JobHandle(self, request.job_id)
        if key:
            existing = handle.status(progress=False)
            if existing.job_file != request.snapshot.job_path:
                raise ConfigError(
                    f"key {key!r} already names job {request.job_id} for {existing.job_file}"
                )
        return handle

    def prepare(
        self,
        job: Path,
        *,
        key: str | None = None,
        trace_dir: Path | None = TRACE_DIR,
        job_id: str | None = None,
    ) -> tuple[EnqueueOptions, JobRequest]:
        """Validate `job` (a `ConfigError` if it fails) and build what enqueueing it takes: a
        request holding the job as submitted (`JobSnapshot`), which the job runs with."""
        if key is not None:
            try:
                _KEY.validate_python(key)  # shown by `jobs list`: no control or bidi characters
            except ValidationError as exc:
                raise config_error(exc, within=("key",)) from None
        job_path = job.resolve()
        snapshot, _, spec = JobSnapshot.take(job_path, self.config)  # bad file: nothing enqueued
        job_id = job_id or (job_id_for(key) if key else uuid.uuid4().hex[:12])
        if trace_dir == TRACE_DIR:  # the default folder: unless HANDOFFS_TRACE_DIR moves it
            trace_dir = default_trace_dir()
        request = JobRequest(
            job_id=job_id,
            snapshot=snapshot,
            key=key,
            trace_dir=str(trace_dir.resolve()) if trace_dir is not None else None,
        )
        attributes: dict[str, Any] = {"job": spec.name, "job_file": str(job_path)}
        if key:
            attributes["key"] = key
        if spec.budget_usd is not None:
            attributes["budget_usd"] = str(spec.budget_usd)
        options: EnqueueOptions = {
            "workflow_name": WORKFLOW,
            "queue_name": QUEUE,
            "workflow_id": job_id,
            "app_version": APP_VERSION,
            "attributes": attributes,
        }
        return options, request

    def workflow(self, job_id: str) -> WorkflowStatus:
        """The DBOS workflow status of job `job_id`; `UnknownJob` if there is none."""
        found = self.client.list_workflows(workflow_ids=[job_id], name=WORKFLOW, load_input=False)
        if not found:
            raise UnknownJob(job_id=job_id)
        return found[0]

    def get(self, job_id: str) -> JobHandle:
        """The handle of an existing job; `UnknownJob` if there is none."""
        self.workflow(job_id)
        return JobHandle(self, job_id)

    def list(self, *, state: JobState | None = None, limit: int | None = 50) -> list[JobInfo]:
        """Jobs, newest first (without progress: `get(id).status()` has it)."""
        statuses = self.client.list_workflows(
            name=WORKFLOW, sort_desc=True, limit=None if state else limit, load_input=False
        )
        infos = [_info(s) for s in statuses]
        if state is not None:
            infos = [i for i in infos if i.state == state][:limit]
        return infos

    def recover(
        self, *, dead_after_s: float = 15.0, force: list[str] | None = None
    ) -> list[Handover]:
        """Put the jobs of dead workers (and of workers in `force`) back on the queue."""
        presence = Presence(self.url)
        try:
            return recover(self.client, presence, dead_after_s=dead_after_s, force=force or ())
        finally:
            presence.close()


class JobHandle:
    """One submitted job."""

    def __init__(self, queue: JobQueue, job_id: str) -> None:
        self.queue = queue
        self.job_id = job_id

    def __repr__(self) -> str:
        return f"JobHandle({self.job_id!r})"

    def status(self, *, progress: bool = True) -> JobInfo:
        """The job's state now; with `progress`, its handoffs and spending too."""
        status = self.queue.workflow(self.job_id)
        info = _info(status)
        if not progress:
            return info
        steps = self.queue.client.list_workflow_steps(self.job_id)
        budget = (status.attributes or {}).get("budget_usd")
        summary = progress_of(
            steps,
            budget_usd=Decimal(budget) if budget is not None else None,
            active=info.active,
        )
        return info.model_copy(update={"progress": summary})

    def cancel(self) -> JobInfo:
        """Cancel the job: queued, it never starts; running, its worker stops at once (the
        handoff in flight is abandoned). Finished handoffs stay in `status().progress`."""
        info = self.status(progress=False)
        if info.active:
            self.queue.client.cancel_workflow(self.job_id)
            self._cancel_children()
        return self.status()

    def _cancel_children(self) -> None:
        """Cancel the job's spread handoffs (`[jobs] spread`) still queued or running."""
        live = self.queue.client.list_workflows(
            name=HANDOFF_WORKFLOW,
            workflow_id_prefix=f"{self.job_id}-handoff-",
            status=["ENQUEUED", "PENDING"],
            load_input=False,
            load_output=False,
        )
        if live:
            self.queue.client.cancel_workflows([w.workflow_id for w in live])

    async def watch(self, *, poll_s: float = 0.25) -> AsyncIterator[JobInfo]:
        """The job's status (with progress) now and every `poll_s` until it is no longer active."""
        while True:
            info = await anyio.to_thread.run_sync(self.status)
            yield info
            if not info.active:
                return
            await anyio.sleep(poll_s)

    async def wait(self, *, poll_s: float = 0.25) -> JobInfo:
        """Wait until the job is completed, failed or cancelled; its final status."""
        last: JobInfo | None = None
        async for info in self.watch(poll_s=poll_s):
            last = info
        assert last is not None
        return last

    async def result(self, *, poll_s: float = 0.25) -> JobReport:
        """The job's report once it finished; `JobNotCompleted` if it was cancelled or failed
        before the orchestrator answered."""
        info = await self.wait(poll_s=poll_s)
        status = await anyio.to_thread.run_sync(self.queue.workflow, self.job_id)
        if status.status != "SUCCESS":
            raise JobNotCompleted(
                f"job {self.job_id} {info.state}" + (f": {info.error}" if info.error else ""),
                info=info,
            )
        return JobReport.model_validate(status.output)
