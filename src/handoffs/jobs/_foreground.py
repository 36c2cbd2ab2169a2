"""`run_in_foreground`: submit a job and run it in this process, now — `handoffs run`.

The job is a durable job like any other (same workflow, same journal, same database), started
here rather than queued, with the caller's open portfolio, tracing and progress callback. If this
process stops before the job ends (Ctrl-C, a crash), the job stays in the database and any
`handoffs worker` on it resumes it from its journal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from dbos import DBOS, SetWorkflowAttributes, SetWorkflowID

from handoffs.handoff import HandoffRecord
from handoffs.jobs._batch import PendingBatch
from handoffs.jobs._handle import JobQueue
from handoffs.jobs._worker import Worker
from handoffs.jobs._workflow import Attachment, attached, job_workflow
from handoffs.project import JobReport
from handoffs.providers import Portfolio
from handoffs.tracing import TRACE_DIR, Tracing

__all__ = ["run_in_foreground"]


async def run_in_foreground(
    job: Path,
    config: Path,
    *,
    job_id: str,
    portfolio: Portfolio,
    tracing: Tracing | None = None,
    on_record: Callable[[HandoffRecord], None] | None = None,
    on_batch: Callable[[PendingBatch], None] | None = None,
    trace_dir: Path | None = TRACE_DIR,
    database_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> JobReport:
    """Record `job` as job `job_id` in the jobs database and run it here to its report.

    Takes no other job from the queue. `on_record` is told of each finished handoff, `on_batch`
    of each provider batch the job waits for (the batch lane). Raises `ConfigError` (a bad job file) or
    `JobsDatabaseError` before anything is recorded.
    """
    with JobQueue(database_url, config=config, env=env) as queue:
        options, request = queue.prepare(job, trace_dir=trace_dir, job_id=job_id)
        async with Worker(queue.url, listen=False, supervise=False):
            attached[job_id] = Attachment(
                portfolio=portfolio, tracing=tracing, on_record=on_record, on_batch=on_batch
            )
            try:
                with SetWorkflowID(job_id), SetWorkflowAttributes(options.get("attributes")):
                    handle = await DBOS.start_workflow_async(
                        job_workflow, request.model_dump(mode="json")
                    )
                output = await handle.get_result()
            finally:
                attached.pop(job_id, None)
    return JobReport.model_validate(output)
