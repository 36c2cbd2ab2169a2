"""Scale-out on PostgreSQL: two workers share one queue; one is killed mid-job; the other finishes
every job, and no handoff runs twice except the one that was in flight."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path

import anyio

from handoffs.jobs import JobQueue, Presence
from handoffs.testing.postgres import TemporaryPostgres

from .harness import TICKETS, Models, WorkerProcess, write_job


async def test_survivor_finishes_the_killed_workers_job_without_rerunning_finished_handoffs(
    tmp_path: Path,
    models: Models,
    postgres: TemporaryPostgres,
    spawn: Callable[..., WorkerProcess],
) -> None:
    url = postgres.url("two_workers")
    config = tmp_path / "handoffs.toml"
    job_a = models.use(write_job(tmp_path, models.base_url, TICKETS[:3], "a"))
    job_b = write_job(tmp_path, models.base_url, TICKETS[3:6], "b")
    gate = models.gate("TicketFields", "T-002")  # a handoff of job a
    with JobQueue(url, config=config) as queue:
        workers = [spawn(url, config, concurrency=1), spawn(url, config, concurrency=1)]
        presence = Presence(url)
        try:
            with anyio.fail_after(90):
                while len(presence.alive(dead_after_s=30)) < 2:  # noqa: ASYNC110
                    await anyio.sleep(0.1)
        except TimeoutError:
            raise AssertionError("\n".join(w.output() for w in workers)) from None
        finally:
            presence.close()
        a = await queue.submit(job_a)
        b = await queue.submit(job_b)
        await gate.wait_arrived()
        # Job a holds its worker (concurrency 1), so job b runs on the other one.
        with anyio.fail_after(60):
            async with aclosing(a.watch(poll_s=0.05)) as updates:
                async for info in updates:
                    assert info.progress is not None
                    if info.progress.done == 3 + 3 + 2 - 1:  # all but the held handoff
                        break
        owner = a.status().worker
        assert owner is not None
        victim = next(w for w in workers if f":{w.proc.pid}:" in owner)
        survivor = next(w for w in workers if w is not victim)
        victim.kill()
        gate.release.set()
        try:
            with anyio.fail_after(90):
                report_a = await a.result(poll_s=0.1)
                report_b = await b.result(poll_s=0.1)
        except TimeoutError:
            raise AssertionError(survivor.output()) from None
        finished_by = {a.status().worker, b.status().worker}

    assert report_a.status == report_b.status == "completed"
    assert len(finished_by) == 1 and f":{survivor.proc.pid}:" in finished_by.pop()
    calls = models.calls()
    assert calls[("TicketFields", "T-002")] == 2  # the handoff in flight when its worker died
    assert {k: n for k, n in calls.items() if n != 1} == {("TicketFields", "T-002"): 2}
    labels = {(r.task_kind, r.label) for r in [*report_a.handoffs, *report_b.handoffs]}
    assert {("extract", t["id"]) for t in TICKETS[:6]} <= labels
