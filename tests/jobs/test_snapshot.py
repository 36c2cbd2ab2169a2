"""A durable job runs with what it was submitted with: `handoffs.toml`, the job file and its data
are journaled as data, so editing them between submit and the run (or between a stop and the
resume) changes nothing; a roster file, which can only be fingerprinted, refuses the job instead."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from handoffs.cli import app
from handoffs.jobs import JobHandle, JobNotCompleted, JobQueue, Worker
from handoffs.jobs._workflow import JobRequest

from .harness import ROOT, TICKETS, Models, all_but_one_done, write_job

MID = (Decimal("0.4"), Decimal("1.6"))
"""The harness's `mid` prices per million tokens (input, output)."""


def sabotage(job: Path) -> None:
    """Edit everything a job reads as data: a thousandfold dearer catalog, a budget of a tenth of a
    cent, one ticket instead of four. A run that read them would stop at once on its budget."""
    config = job.parent / "handoffs.toml"
    text = config.read_text()
    for price, dearer in (("0.4", "400"), ("1.6", "1600"), ("3", "3000"), ("15", "15000")):
        assert f'usd_per_mtok = "{price}"' in text
        text = text.replace(f'usd_per_mtok = "{price}"', f'usd_per_mtok = "{dearer}"')
    config.write_text(text)
    assert 'budget_usd = "1.00"' in job.read_text()
    job.write_text(job.read_text().replace('budget_usd = "1.00"', 'budget_usd = "0.001"'))
    data = job.parent / f"{job.stem}.jsonl"
    data.write_text(json.dumps(TICKETS[0]) + "\n")


async def run_to_the_end(
    handle: JobHandle, url: str, models: Models, *, resume: bool, between: Callable[[], None]
) -> None:
    """Run the job on a worker until it ends; with `resume`, stop that worker with one handoff in
    flight and finish on a second one. `between` is called where the files are edited: before
    any worker starts, or while the job is stopped."""
    if not resume:
        between()
        async with Worker(url, concurrency=2, poll_s=0.05):
            with anyio.fail_after(90):
                await handle.wait(poll_s=0.05)
        return
    gate = models.gate("TicketFields", "T-002")
    async with Worker(url, concurrency=2, poll_s=0.05):
        await gate.wait_arrived()
        await all_but_one_done(handle)
    assert handle.status().state == "running"  # stopped, not finished: the journal stays
    between()
    gate.release.set()
    async with Worker(url, concurrency=2, poll_s=0.05):
        with anyio.fail_after(90):
            await handle.wait(poll_s=0.05)


@pytest.mark.parametrize("resume", [False, True], ids=["start", "resume"])
async def test_a_job_runs_with_the_config_job_file_and_data_it_was_submitted_with(
    resume: bool, tmp_path: Path, models: Models, sqlite_url: str
) -> None:
    job = models.use(write_job(tmp_path, models.base_url, TICKETS[:4], "triage"))
    with JobQueue(sqlite_url, config=tmp_path / "handoffs.toml") as queue:
        handle = await queue.submit(job, trace_dir=None)
        await run_to_the_end(
            handle, sqlite_url, models, resume=resume, between=lambda: sabotage(job)
        )
        report = await handle.result()

    assert report.status == "completed", report.error
    assert report.budget_usd == Decimal("1.00")  # the budget submitted, not the edited one
    assert {t["id"] for t in TICKETS[:4]} <= {r.label for r in report.handoffs}  # all 4 tickets
    on_mid = [a for r in report.handoffs for a in r.attempts if a.model == "mid"]
    assert on_mid and all(a.input_tokens for a in on_mid)
    for attempt in on_mid:  # priced as submitted, live or replayed
        expected = (attempt.input_tokens * MID[0] + attempt.output_tokens * MID[1]) / 1_000_000
        judged = sum((v.cost_usd for v in attempt.verdicts), Decimal(0))  # frontier's, checked
        assert attempt.cost_usd - judged == expected
    assert report.total_cost_usd < Decimal("0.5")


def test_the_request_journals_the_files_as_data_not_paths(
    tmp_path: Path, models: Models, sqlite_url: str
) -> None:
    job = models.use(write_job(tmp_path, models.base_url, TICKETS[:2], "triage"))
    with JobQueue(sqlite_url, config=tmp_path / "handoffs.toml") as queue:
        _, request = queue.prepare(job)
    journaled = json.loads(json.dumps(request.model_dump(mode="json")))  # what DBOS stores
    snapshot = JobRequest.model_validate(journaled).snapshot
    assert snapshot == request.snapshot
    assert snapshot.job.budget_usd == Decimal("1.00") and snapshot.data == TICKETS[:2]
    assert snapshot.config.models["mid"].input_usd_per_mtok == Decimal("0.4")
    files = {Path(f).name for f in snapshot.files}
    assert {"orchestrator.py", "classifier.py", "support.py", "tickets.py"} <= files
    assert {"simulation.py", "judge.py"} <= files  # loaded by the job, or by what it loads


@pytest.mark.parametrize("resume", [False, True], ids=["start", "resume"])
async def test_a_changed_roster_file_ends_the_job_failed_with_one_clear_message(
    resume: bool, tmp_path: Path, models: Models, sqlite_url: str
) -> None:
    roster, tools = tmp_path / "agents", tmp_path / "tools"
    shutil.copytree(ROOT / "agents", roster, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tools", tools, ignore=shutil.ignore_patterns("__pycache__"))
    job = models.use(
        write_job(tmp_path, models.base_url, TICKETS[:4], "triage", roster=roster, tools=tools)
    )
    support = roster / "support.py"  # imported by the classifier, not named by the job

    def edit_the_roster() -> None:
        support.write_text(support.read_text() + "\nURGENT_WORDS = ()\n")

    with JobQueue(sqlite_url, config=tmp_path / "handoffs.toml") as queue:
        handle = await queue.submit(job, trace_dir=None)
        await run_to_the_end(handle, sqlite_url, models, resume=resume, between=edit_the_roster)
        info = handle.status()
        with pytest.raises(JobNotCompleted) as raised:
            await handle.result()

    message = (
        f"{support} has changed since the job was submitted, and a durable job runs only with "
        "the roster it was submitted with: submit the job again to run it with the new one"
    )
    assert info.state == "failed" and info.error is not None
    assert message in info.error and "\n" not in info.error
    assert message in str(raised.value)
    config = str(tmp_path / "handoffs.toml")
    runner = CliRunner(env={"COLUMNS": "400"})
    for command, code in (("status", 0), ("watch", 1)):  # in a thread: the CLI runs its own loop
        args = ["jobs", command, handle.job_id, "--json", "--database-url", sqlite_url]
        shown = await anyio.to_thread.run_sync(runner.invoke, app, [*args, "--config", config])
        assert shown.exit_code == code, (shown.stdout, shown.stderr)
        status = json.loads(shown.stdout)
        assert status["state"] == "failed" and message in status["error"]
