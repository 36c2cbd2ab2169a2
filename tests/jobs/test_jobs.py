"""Durable jobs in one process on SQLite: submit, status transitions, result, cancel, idempotent
submit, lookup and listing, and the failures a caller can cause."""

from __future__ import annotations

from contextlib import aclosing
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from handoffs.errors import ConfigError
from handoffs.jobs import (
    JobNotCompleted,
    JobQueue,
    JobsDatabaseError,
    UnknownJob,
    Worker,
    job_id_for,
    running_jobs,
)

from .harness import TICKETS, Models, write_job


@pytest.fixture
def job(tmp_path: Path, models: Models) -> Path:
    return models.use(write_job(tmp_path, models.base_url, TICKETS[:4], "triage"))


@pytest.fixture
def queue(tmp_path: Path, sqlite_url: str) -> JobQueue:
    return JobQueue(sqlite_url, config=tmp_path / "handoffs.toml")


async def test_status_goes_queued_running_completed_and_result_is_the_report(
    tmp_path: Path, models: Models, job: Path, queue: JobQueue
) -> None:
    gate = models.gate("TicketFields", "T-002")
    with queue:
        handle = await queue.submit(job, trace_dir=tmp_path / "traces")
        assert handle.status().state == "queued"  # no worker yet
        async with Worker(queue.url, concurrency=2, poll_s=0.05):
            await gate.wait_arrived()
            held = handle.status()
            assert held.state == "running" and held.worker is not None
            assert held.progress is not None and held.progress.running >= 1
            assert held.progress.budget_usd == Decimal("1.00")
            gate.release.set()
            with anyio.fail_after(60):
                report = await handle.result(poll_s=0.05)
        final = handle.status()
    assert report.status == "completed" and report.job_id == handle.job_id
    assert {(r.task_kind, r.label) for r in report.handoffs} >= {
        (kind, t["id"]) for t in TICKETS[:4] for kind in ("classify", "extract")
    }
    assert final.state == "completed" and final.progress is not None
    assert final.progress.done == len(report.handoffs) and final.progress.running == 0
    assert final.progress.spent_usd == report.total_cost_usd > 0
    assert (tmp_path / "traces" / f"{handle.job_id}.jsonl").is_file()


async def test_submitting_a_key_again_returns_the_same_job(
    tmp_path: Path, models: Models, job: Path, queue: JobQueue
) -> None:
    other = write_job(tmp_path, models.base_url, TICKETS[4:6], "other")
    with queue:
        first = await queue.submit(job, key="monday-triage")
        again = await queue.submit(job, key="monday-triage")
        assert first.job_id == again.job_id == job_id_for("monday-triage")
        assert [i.job_id for i in queue.list()] == [first.job_id]
        assert queue.list()[0].key == "monday-triage"
        with pytest.raises(ConfigError, match="already names job"):
            await queue.submit(other, key="monday-triage")
        assert len(queue.list()) == 1


async def test_cancel_stops_spending_at_once_and_keeps_what_finished(
    models: Models, job: Path, queue: JobQueue
) -> None:
    gate = models.gate("TicketFields", "T-002")
    with queue:
        handle = await queue.submit(job)
        async with Worker(queue.url, concurrency=2, poll_s=0.05):
            await gate.wait_arrived()
            assert handle.cancel().state == "cancelled"
            with anyio.fail_after(30):  # the worker drops the job: its step is preempted
                while running_jobs():  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            asked = len(models.provider.requests)
            gate.release.set()  # the abandoned request is answered and logged; nothing follows it
            with anyio.fail_after(30):
                while len(models.provider.requests) == asked:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            info = handle.status()
            with pytest.raises(JobNotCompleted, match="cancelled") as raised:
                await handle.result()
    assert len(models.provider.requests) == asked + 1
    assert info.state == "cancelled" and info.progress is not None
    finished = {(r.task_kind, r.label) for r in info.progress.handoffs}
    assert {("classify", t["id"]) for t in TICKETS[:4]} <= finished
    assert ("extract", "T-002") not in finished
    assert info.progress.spent_usd > 0 and info.progress.running == 0
    assert raised.value.info.state == "cancelled"


async def test_lookup_and_listing_newest_first(job: Path, queue: JobQueue) -> None:
    with queue:
        first = await queue.submit(job)
        second = await queue.submit(job)
        assert [i.job_id for i in queue.list()] == [second.job_id, first.job_id]
        assert [i.job for i in queue.list(state="queued")] == ["triage", "triage"]
        assert queue.list(state="running") == []
        assert queue.get(first.job_id).job_id == first.job_id
        with pytest.raises(UnknownJob):
            queue.get("0123456789ab")
        cancelled = second.cancel()
        assert cancelled.state == "cancelled" and cancelled.progress is not None
        assert cancelled.progress.done == 0
        async with aclosing(first.watch()) as updates:
            async for info in updates:
                assert info.state == "queued"
                break


def _broken_copy(job: Path, to: Path) -> Path:
    to.write_text(job.read_text().replace('orchestrator = "orchestrator"', 'orchestrator = "nope"'))
    return to


async def test_a_job_file_that_fails_validation_enqueues_nothing(
    tmp_path: Path, job: Path, queue: JobQueue
) -> None:
    bad = _broken_copy(job, tmp_path / "bad.toml")
    with queue:
        with pytest.raises(ConfigError):
            await queue.submit(bad)
        with pytest.raises(ConfigError, match="not found"):
            await queue.submit(tmp_path / "missing.toml")
        with pytest.raises(ConfigError, match=r"^key: must not contain control .*'mon\\u202eday'"):
            await queue.submit(job, key="mon\u202eday")
        assert queue.list() == []


def test_an_unreachable_or_unsupported_database_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JobsDatabaseError, match=r"cannot reach the jobs database .*127\.0\.0\.1:1"):
        JobQueue("postgresql://handoffs:secret@127.0.0.1:1/jobs", config=tmp_path / "none.toml")
    with pytest.raises(JobsDatabaseError, match="unsupported jobs database"):
        JobQueue("mysql://127.0.0.1/jobs", config=tmp_path / "none.toml")
    with pytest.raises(JobsDatabaseError) as raised:
        JobQueue("postgresql://handoffs:secret@127.0.0.1:1/jobs")
    assert "secret" not in str(raised.value)


def test_the_database_url_comes_from_the_environment_then_the_config(tmp_path: Path) -> None:
    from handoffs.jobs import resolve_url

    config = tmp_path / "handoffs.toml"
    config.write_text('[jobs]\ndatabase_url = "sqlite:///from-config.sqlite"\n')
    env = {"HANDOFFS_DATABASE_URL": "sqlite:///from-env.sqlite"}
    assert resolve_url(config=config, env=env, cwd=tmp_path).endswith("/from-env.sqlite")
    assert resolve_url(config=config, env={}, cwd=tmp_path) == (
        f"sqlite:///{tmp_path / 'from-config.sqlite'}"
    )
    default = resolve_url(config=tmp_path / "absent.toml", env={}, cwd=tmp_path)
    assert default == f"sqlite:///{tmp_path / '.handoffs' / 'jobs.sqlite'}"
    assert not (tmp_path / ".handoffs").exists()  # made where the database is opened, not here
    config.write_text('[jobs]\ndatabase = "x"\n')
    with pytest.raises(ConfigError, match="unknown key"):
        resolve_url(config=config, env={})
