"""Handles across a crash: a job whose roster passes tickets by reference is killed while a reply
is being drafted from an item's handle and a result's handle (both written into the journaled
orchestrator request); a new worker resolves the very same handles and finishes the job."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio

from handoffs.jobs import JobQueue

from .harness import TICKETS, Models, WorkerProcess, all_but_one_done, write_job


async def test_a_resumed_job_resolves_the_handles_its_journal_holds(
    tmp_path: Path, models: Models, sqlite_url: str, spawn: Callable[..., WorkerProcess]
) -> None:
    job = write_job(tmp_path, models.base_url, TICKETS[:4], "byref")
    job.write_text(job.read_text() + 'describe = ["id"]\n')
    models.use(job)
    config = tmp_path / "handoffs.toml"
    gate = models.gate("ReplyDraft", "T-003")  # in flight, from handles, when the worker dies
    with JobQueue(sqlite_url, config=config) as queue:
        await queue.submit(job, trace_dir=tmp_path / "traces")
        processes = [spawn(sqlite_url, config), spawn(sqlite_url, config)]
        try:
            await gate.wait_arrived()
        except TimeoutError:
            raise AssertionError("\n".join(p.output() for p in processes)) from None
        (listed,) = queue.list()
        handle = queue.get(listed.job_id)
        owner = handle.status().worker or ""
        process = next(p for p in processes if f":{p.proc.pid}:" in owner)
        second = next(p for p in processes if p is not process)
        await all_but_one_done(handle)
        process.kill()
        gate.release.set()
        try:
            with anyio.fail_after(90):
                report = await handle.result()
        except TimeoutError:
            raise AssertionError(second.output()) from None

    assert report.status == "completed", report.error
    drafts = sorted(r.label or "" for r in report.handoffs if r.task_kind == "draft")
    assert "T-003" in drafts and all(
        r.status == "delivered" for r in report.handoffs if r.task_kind == "draft"
    )
    assert "unknown handle" not in str(report.output)
    # the orchestrator was never shown a ticket's text, before the crash or after it
    orchestrator = [r for r in models.answered() if models.key(r) is None and r.model == "frontier"]
    assert orchestrator
    for request in orchestrator:
        for ticket in TICKETS[:4]:
            assert ticket["body"] not in str(request.messages)
    calls = models.calls()
    assert calls[("ReplyDraft", "T-003")] == 2  # the one in flight ran again; nothing else did
    assert all(n == 1 for key, n in calls.items() if key != ("ReplyDraft", "T-003")), calls
