"""Durable asynchronous jobs on DBOS: submit, watch, cancel, resume after a crash.

```python
from handoffs import jobs

async with jobs.JobQueue() as queue:              # SQLite under .handoffs/, or Postgres
    handle = await queue.submit("examples/jobs/support-triage.toml", key="monday")
    print(handle.status().state)                  # queued -> running -> completed
    report = await handle.result()                # needs a worker: `handoffs worker`
```
A job is one DBOS workflow; each handoff and each orchestrator request in it is a journaled step,
so a job resumed after its worker died does not run (or pay for) a finished handoff again.
`submit` is the module-level shortcut for a one-off submission. See docs/jobs.md.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handoffs.errors import JobNotCompleted, JobsDatabaseError, UnknownJob
from handoffs.tracing import TRACE_DIR

if TYPE_CHECKING:
    from handoffs.jobs._batch import BatchLane, PendingBatch
    from handoffs.jobs._database import (
        APP_VERSION,
        HANDOFF_WORKFLOW,
        describe,
        exists,
        open_client,
        resolve_url,
    )
    from handoffs.jobs._durable import durable_step
    from handoffs.jobs._foreground import run_in_foreground
    from handoffs.jobs._handle import (
        JobHandle,
        JobInfo,
        JobQueue,
        JobState,
        job_id_for,
    )
    from handoffs.jobs._progress import JobProgress
    from handoffs.jobs._supervisor import Handover, Presence
    from handoffs.jobs._worker import Worker
    from handoffs.jobs._workflow import running_jobs

__all__ = [
    "APP_VERSION",
    "HANDOFF_WORKFLOW",
    "BatchLane",
    "Handover",
    "JobHandle",
    "JobInfo",
    "JobNotCompleted",
    "JobProgress",
    "JobQueue",
    "JobState",
    "JobsDatabaseError",
    "PendingBatch",
    "Presence",
    "UnknownJob",
    "Worker",
    "describe",
    "durable_step",
    "exists",
    "job_id_for",
    "open_client",
    "resolve_url",
    "run_in_foreground",
    "running_jobs",
    "submit",
]

_HOME = {
    "BatchLane": "batch",
    "PendingBatch": "batch",
    "exists": "database",
    "running_jobs": "workflow",
    "run_in_foreground": "foreground",
    "open_client": "database",
    "describe": "database",
    "HANDOFF_WORKFLOW": "database",
    "Presence": "supervisor",
    "APP_VERSION": "database",
    "resolve_url": "database",
    "durable_step": "durable",
    "JobHandle": "handle",
    "JobInfo": "handle",
    "JobQueue": "handle",
    "JobState": "handle",
    "job_id_for": "handle",
    "JobProgress": "progress",
    "Handover": "supervisor",
    "Worker": "worker",
}
"""Where each public name lives: imported on first use, so `handoffs` commands that do not touch
jobs do not pay for importing DBOS. (The errors live in `handoffs.errors`, imported above.)"""


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'handoffs.jobs' has no attribute {name!r}")
    return getattr(importlib.import_module(f"handoffs.jobs._{home}"), name)


async def submit(
    job: Path | str,
    *,
    key: str | None = None,
    database_url: str | None = None,
    config: Path | str = "handoffs.toml",
    trace_dir: Path | None = TRACE_DIR,
) -> JobHandle:
    """Submit `job` and return its handle at once (see `JobQueue.submit`).

    The handle keeps its own `JobQueue` open; `handle.queue.close()` when done with it.
    """
    from handoffs.jobs._handle import JobQueue

    queue = JobQueue(database_url, config=config)
    try:
        return await queue.submit(job, key=key, trace_dir=trace_dir)
    except BaseException:
        queue.close()
        raise
