"""The job workflow: one DBOS workflow per submitted job, run by whichever worker dequeues it.

```
job_workflow(request)
  restore the job from its snapshot          (workflow code: runs again on resume)
  open the portfolio (fake provider, local model), tracing to TRACE_DIR/<job id>.jsonl
  run_job(..., runner=DurableRunner(),        handoffs are steps (DurableRunner) and so are
          models=JournaledModels(portfolio))  orchestrator requests (JournaledModels)
                                              ([jobs] spread: handoffs are child workflows, the
                                              SpreadingRunner of _child.py)
  -> JobReport as JSON                        (DBOS stores it as the workflow's output)
```
The request holds the job as submitted (`JobSnapshot`: `handoffs.toml` and the job file
validated, the input data, digests of the roster files), journaled by DBOS as the workflow's
input: the job runs and resumes with that, whatever the files say by then. Only the roster (Python
files, loaded by path) is read again where the job runs, and refused if it changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from dbos import DBOS
from pydantic import BaseModel, ConfigDict

from handoffs.engine import HandoffRunner
from handoffs.handoff import HandoffRecord
from handoffs.jobs._batch import BatchLane, PendingBatch
from handoffs.jobs._cache import job_cache_store
from handoffs.jobs._child import Spread, SpreadingRunner, running_children, stop_running_children
from handoffs.jobs._database import WORKFLOW
from handoffs.jobs._durable import DurableRunner, JournaledModels
from handoffs.project import (
    JobSnapshot,
    JobSpec,
    job_simulation,
    open_portfolio,
    run_job,
)
from handoffs.providers import Portfolio
from handoffs.tracing import Tracing, job_meter_provider, job_tracer_provider

__all__ = [
    "Attachment",
    "JobRequest",
    "attached",
    "job_workflow",
    "running_jobs",
    "stop_running_jobs",
]

_running: set[anyio.CancelScope] = set()
"""One cancel scope per job running in this process, so a stopping worker can stop them."""


class JobRequest(BaseModel):
    """What a submitted job asks a worker to run: the workflow's one input."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    snapshot: JobSnapshot
    """The job file, `handoffs.toml` and the job's data as submitted."""
    key: str | None = None
    """The client's idempotency key, if it gave one."""
    trace_dir: str | None = None
    """Where the job's trace is written (absolute), or None for no trace file."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """What a job run in the foreground (`handoffs run`) uses instead of building its own: the
    caller's open portfolio, its tracing and its progress callback. In this process only: a
    worker that resumes the job elsewhere builds its own."""

    portfolio: Portfolio
    tracing: Tracing | None = None
    on_record: Callable[[HandoffRecord], None] | None = None
    on_batch: Callable[[PendingBatch], None] | None = None
    """Told of each batch the job waits for (`handoffs run` shows it as pending)."""


attached: dict[str, Attachment] = {}
"""Attachments of the foreground jobs of this process, by job id."""


def running_jobs() -> int:
    """How many jobs (and spread handoffs) this process is running now."""
    return len(_running) + running_children()


def stop_running_jobs() -> None:
    """Cancel every job running in this process. They stay PENDING in the database, where
    another worker (or this one, restarted) resumes them from their journaled steps."""
    for scope in list(_running):
        scope.cancel()
    stop_running_children()


@DBOS.workflow(name=WORKFLOW)
async def job_workflow(request: dict[str, Any]) -> dict[str, Any]:
    """Run one submitted job to its report; finished handoffs are journaled steps."""
    req = JobRequest.model_validate(request)
    with anyio.CancelScope() as scope:
        _running.add(scope)
        try:
            return await _run(req)
        finally:
            _running.discard(scope)
    # Stopped by its worker: raise a cancellation, which DBOS leaves unrecorded (still PENDING).
    raise anyio.get_cancelled_exc_class()()


async def _run(req: JobRequest) -> dict[str, Any]:
    config, spec = req.snapshot.restore()
    store = await anyio.to_thread.run_sync(job_cache_store, config)
    here = attached.get(req.job_id)
    if here is not None:
        report = await run_job(
            spec,
            config,
            here.portfolio,
            job_id=req.job_id,
            tracing=here.tracing,
            on_record=here.on_record,
            runner=_lane(spec, here.portfolio, DurableRunner(), here.on_batch),
            models=JournaledModels(here.portfolio),
            cache_store=store,
        )
        return report.model_dump(mode="json")
    directory = Path(req.trace_dir) if req.trace_dir else None
    provider = job_tracer_provider(req.job_id, directory=directory, env=os.environ)
    meters = job_meter_provider(req.job_id, directory=directory, env=os.environ)
    runner: HandoffRunner = DurableRunner()
    if config.spread:
        spread = Spread(
            job_id=req.job_id,
            snapshot=req.snapshot.model_copy(
                update={"data": None}
            ),  # a handoff's task has its input
            trace_dir=req.trace_dir,
            subordinates=tuple(spec.subordinates),
        )
        runner = SpreadingRunner(spread, runner)
    try:
        with open_portfolio(config, simulation=job_simulation(spec)) as portfolio:
            report = await run_job(
                spec,
                config,
                portfolio,
                job_id=req.job_id,
                tracing=Tracing(
                    tracer_provider=provider,
                    meter_provider=meters,
                    include_content=config.trace_content,
                ),
                # a spread job's handoffs are child workflows, made from the task alone: the
                # batch lane's answer would not reach them, so its batch tasks go the ordinary way
                runner=runner if config.spread else _lane(spec, portfolio, runner),
                models=JournaledModels(portfolio),
                cache_store=store,
            )
    finally:
        provider.shutdown()
        meters.shutdown()
    return report.model_dump(mode="json")


def _lane(
    spec: JobSpec,
    portfolio: Portfolio,
    runner: HandoffRunner,
    on_batch: Callable[[PendingBatch], None] | None = None,
) -> HandoffRunner:
    """`runner` behind the job's batch lane (every job has one: tasks with `urgency="batch"`
    use it, and so do the kinds its job file lists under `batch`)."""
    return BatchLane(
        runner,
        portfolio.batch_model,
        kinds=spec.batch_kinds,
        poll_s=spec.batch_poll_s,
        on_pending=on_batch,
    )
