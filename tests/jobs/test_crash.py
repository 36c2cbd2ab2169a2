"""Crash and resume: the process running a job — a worker, or `handoffs run` — killed with SIGKILL
in the middle of it; a new worker finishes it without calling any finished handoff (or any
orchestrator request) a second time."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from handoffs.jobs import JobQueue

from .harness import KIND, TICKETS, Models, WorkerProcess, all_but_one_done, write_job


@pytest.mark.parametrize("first", ["worker", "run"])
async def test_killed_job_resumes_on_a_new_worker_without_rerunning_finished_handoffs(
    first: str,
    tmp_path: Path,
    models: Models,
    sqlite_url: str,
    spawn: Callable[..., WorkerProcess],
) -> None:
    job = models.use(write_job(tmp_path, models.base_url, TICKETS[:4], "crash"))
    config = tmp_path / "handoffs.toml"
    gate = models.gate("TicketFields", "T-002")  # held: in flight when the process dies
    with JobQueue(sqlite_url, config=config) as queue:
        # Two processes start together; whichever runs the job is killed, the other finishes it.
        if first == "worker":
            await queue.submit(job, trace_dir=tmp_path / "traces")
            processes = [spawn(sqlite_url, config), spawn(sqlite_url, config)]
        else:
            processes = [spawn(sqlite_url, config, run=job), spawn(sqlite_url, config)]
        try:
            await gate.wait_arrived()
        except TimeoutError:
            raise AssertionError("\n".join(p.output() for p in processes)) from None
        (listed,) = queue.list()
        handle = queue.get(listed.job_id)
        owner = handle.status().worker or ""
        process = next(p for p in processes if f":{p.proc.pid}:" in owner)
        second = next(p for p in processes if p is not process)
        # Let every other handoff of the step finish, so the crash leaves exactly one in flight.
        await all_but_one_done(handle)
        process.kill()
        before = handle.status()
        # running, or already queued again if the survivor's supervisor saw the worker die
        assert before.state == "queued" or (before.state == "running" and before.worker)
        assert before.progress is not None
        journaled = {(r.task_kind, r.label) for r in before.progress.handoffs}
        assert {("classify", t["id"]) for t in TICKETS[:4]} <= journaled
        assert {("extract", t["id"]) for t in TICKETS[:4]} - journaled == {("extract", "T-002")}
        gate.release.set()
        try:
            with anyio.fail_after(90):
                report = await handle.result()
        except TimeoutError:
            raise AssertionError(second.output()) from None
        after = handle.status()

    assert report.status == "completed"
    done = sorted((r.task_kind, r.label) for r in report.handoffs)
    assert len(done) == len(set(done)), "a handoff was delivered twice"
    assert {("classify", t["id"]) for t in TICKETS[:4]} | {
        ("extract", t["id"]) for t in TICKETS[:4]
    } <= set(done)
    assert after.worker and f":{second.proc.pid}:" in after.worker  # the survivor finished it

    calls = models.calls()
    for (title, ticket), n in calls.items():
        if (KIND[title], ticket) in journaled:
            assert n == 1, f"{title} for {ticket} was finished before the crash yet asked {n} times"
        else:
            assert n <= 2, f"{title} for {ticket} asked {n} times"
    assert calls[("TicketFields", "T-002")] == 2  # the one in flight ran again
    assert sum(calls.values()) == len(calls) + 1  # and nothing else
    assert after.progress is not None
    assert models.orchestrator_calls() == after.progress.orchestrator_requests
    # what the cut-off run of that handoff may have been billed (its call was in flight: its
    # reservation, journaled before the request went out) is on the job's ledger, besides the
    # record of the run that finished it
    assert before.progress.possibly_billed_usd == 0
    possibly = after.progress.possibly_billed_usd
    rerun = next(
        r for r in after.progress.handoffs if (r.task_kind, r.label) == ("extract", "T-002")
    )
    assert 0 < rerun.cost_usd <= possibly  # a reservation covers the worst case of the same call
    recorded = sum((r.cost_usd for r in after.progress.handoffs), Decimal(0))
    assert after.progress.spent_usd >= recorded + possibly
