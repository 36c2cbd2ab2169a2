"""The recovery figure of `handoffs bench jobs`: a worker killed while it holds running jobs,
and how soon they are back on the queue and running on a survivor."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from handoffs_bench.harness import Bench

__all__ = ["Recovery", "measure_recovery"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Recovery:
    """A worker killed while it held running jobs: how soon they moved to a live worker."""

    backend: str
    jobs: int
    """Jobs running on the killed worker."""
    handed_over_s: float
    """From SIGKILL to the last of them being back on the queue (or running elsewhere)."""
    running_again_s: float
    """From SIGKILL to the last of them running (or done) on another worker."""


def measure_recovery(bench: Bench, backend: str, url: str, concurrency: int, jobs: int) -> Recovery:
    from handoffs.jobs import JobQueue
    from handoffs_bench.harness import finished, states, submit, until

    with JobQueue(url, config=bench.config) as queue, bench.workers(url, 2, concurrency) as procs:
        ids = set(submit(queue, bench.job, jobs))
        victim = procs[0]
        tag = f":{victim.pid}:"
        held: list[str] = []

        def victim_busy() -> bool:
            now = states(queue, ids)
            held[:] = [j for j, (s, owner) in now.items() if s == "PENDING" and tag in owner]
            return bool(held)

        until(victim_busy, 120, "a worker to hold running jobs")
        victim.kill()
        killed = time.perf_counter()
        victim.wait()
        handed_at: float | None = None

        def running_again() -> bool:
            nonlocal handed_at
            now = list(states(queue, held).values())
            if handed_at is None and not any(s == "PENDING" and tag in o for s, o in now):
                handed_at = time.perf_counter()
            return all(s != "ENQUEUED" and tag not in o for s, o in now)

        until(running_again, 120, "the killed worker's jobs to resume")
        back = time.perf_counter()
        assert handed_at is not None
        until(lambda: finished(queue, ids), 600, "the jobs to finish")
    return Recovery(
        backend=backend,
        jobs=len(held),
        handed_over_s=round(handed_at - killed, 3),
        running_again_s=round(back - killed, 3),
    )
