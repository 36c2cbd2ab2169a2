"""Durable jobs: submit the bundled ticket job, stop its worker halfway, let another finish it.

Shows: `JobQueue.submit` returns at once with a job id (an idempotency key makes resubmitting
harmless); a `Worker` runs it; the job's status says what is done, running and spent. The first
worker is stopped mid-job (as a crash would): the job stays in the database, a second worker hands
it to itself and finishes it from the journal — every handoff that had finished is replayed, not
run (or paid for) again. Then a second job is cancelled: spending stops, finished handoffs stay.

Runs offline: the jobs database is SQLite in a temporary folder; frontier and mid models are
simulated on handoffs' fake provider (reached through the real SDKs) by the worker running the job.

    .venv/bin/python examples/05_durable_jobs.py
"""

from __future__ import annotations

import tempfile
from contextlib import aclosing
from pathlib import Path

import anyio

from handoffs.jobs import JobHandle, JobQueue, Worker

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "examples" / "jobs" / "support-triage.toml"
CONFIG = """
[models.frontier]
provider = "anthropic"
name = "claude-sonnet-4-6"
tier = "frontier"
context_window = 200000
prompt_variant = "xml"

[models.mid]
provider = "openai"
name = "gpt-4.1-mini"
tier = "mid"
context_window = 128000
structured_output = "native"

[[policy.rules]]
kind = "classify"
ladder = ["mid", "frontier"]

[[policy.rules]]
kind = "extract"
ladder = ["mid", "frontier"]

[[policy.rules]]
kind = "draft"
ladder = ["mid", "frontier"]
"""


def handoff_steps(queue: JobQueue, handle: JobHandle) -> int:
    """How many handoff steps the job's journal holds."""
    steps = queue.client.list_workflow_steps(handle.job_id)
    return sum(1 for s in steps if s["function_name"] == "handoffs.handoff")


async def run_until(handle: JobHandle, done: int) -> None:
    """Follow the job until `done` handoffs have finished."""
    async with aclosing(handle.watch(poll_s=0.1)) as updates:
        async for info in updates:
            if info.progress is not None and info.progress.done >= done:
                return


async def main(folder: Path) -> None:
    (folder / "handoffs.toml").write_text(CONFIG)
    url = f"sqlite:///{folder / 'jobs.sqlite'}"
    print(f"jobs database: {url}")
    with JobQueue(url, config=folder / "handoffs.toml") as queue:
        handle = await queue.submit(JOB, key="example-triage", trace_dir=folder / "traces")
        print(f"submitted {handle.job_id} (key 'example-triage'): {handle.status().state}")

        async with Worker(url, concurrency=2, poll_s=0.05) as first:
            await run_until(handle, 20)
        info = handle.status()
        assert info.progress is not None
        journaled = handoff_steps(queue, handle)
        print(
            f"worker {first.worker_id} stopped mid-job: the job is still {info.state} in the "
            f"database, {journaled} handoffs journaled"
        )

        async with Worker(url, concurrency=2, poll_s=0.05) as second:
            report = await handle.result(poll_s=0.1)
            print(
                f"worker {second.worker_id} took it over "
                f"({len(second.handovers)} job handed over): {report.status}, "
                f"{len(report.handoffs)} handoffs, {handoff_steps(queue, handle)} handoff steps "
                "in the journal (none ran twice)"
            )
            print(f"spent ${report.total_cost_usd:.4f} of a ${report.budget_usd} budget")
            again = await queue.submit(JOB, key="example-triage")
            print(f"submitted again with the same key: job {again.job_id}, {again.status().state}")

            other = await queue.submit(JOB)
            await run_until(other, 5)
            stopped = other.cancel()
            assert stopped.progress is not None
            print(
                f"cancelled job {other.job_id}: {stopped.state}, {stopped.progress.done} finished "
                f"handoffs kept, ${stopped.progress.spent_usd:.4f} spent"
            )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="handoffs-jobs-") as tmp:
        anyio.run(main, Path(tmp))
