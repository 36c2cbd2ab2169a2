"""`handoffs jobs ...` and `handoffs worker`: `--json` documents, and bad input as one line, exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from handoffs.cli import app

from .harness import TICKETS, Models, write_job

UNREACHABLE = "postgresql://handoffs:secret@127.0.0.1:1/jobs"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("HANDOFFS_DATABASE_URL", raising=False)
    return CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def job(tmp_path: Path, models: Models) -> Path:
    return models.use(write_job(tmp_path, models.base_url, TICKETS[:2], "triage"))


def one_error_line(result: Result, code: int = 2) -> str:
    stderr: str = result.stderr
    assert result.exit_code == code, (result.stdout, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    return lines[0]


def invoke(runner: CliRunner, tmp_path: Path, url: str, *args: str) -> Result:
    return runner.invoke(
        app, [*args, "--database-url", url, "--config", str(tmp_path / "handoffs.toml")]
    )


def test_submit_status_cancel_result_as_json(
    runner: CliRunner, tmp_path: Path, job: Path, sqlite_url: str
) -> None:
    submitted = invoke(runner, tmp_path, sqlite_url, "jobs", "submit", str(job), "--json")
    assert submitted.exit_code == 0, submitted.stderr
    info = json.loads(submitted.stdout)
    assert info["state"] == "queued" and info["job"] == "triage"
    job_id = info["job_id"]

    plain = invoke(runner, tmp_path, sqlite_url, "jobs", "submit", str(job), "--key", "k")
    again = invoke(runner, tmp_path, sqlite_url, "jobs", "submit", str(job), "--key", "k")
    assert plain.stdout.strip() == again.stdout.strip() != job_id

    listed = json.loads(invoke(runner, tmp_path, sqlite_url, "jobs", "list", "--json").stdout)
    assert {j["job_id"] for j in listed} == {job_id, plain.stdout.strip()}

    status = invoke(runner, tmp_path, sqlite_url, "jobs", "status", job_id, "--json")
    assert json.loads(status.stdout)["progress"]["done"] == 0

    early = invoke(runner, tmp_path, sqlite_url, "jobs", "result", job_id)
    assert "is queued" in one_error_line(early, 1)

    cancelled = invoke(runner, tmp_path, sqlite_url, "jobs", "cancel", job_id, "--json")
    assert json.loads(cancelled.stdout)["state"] == "cancelled"

    watched = invoke(runner, tmp_path, sqlite_url, "jobs", "watch", job_id, "--json")
    assert watched.exit_code == 1 and json.loads(watched.stdout)["state"] == "cancelled"

    result = invoke(runner, tmp_path, sqlite_url, "jobs", "result", job_id, "--json")
    assert "cancelled" in one_error_line(result, 1)
    assert json.loads(result.stdout)["progress"]["handoffs"] == []

    recovered = invoke(runner, tmp_path, sqlite_url, "jobs", "recover", "--json")
    assert recovered.exit_code == 0 and json.loads(recovered.stdout) == []


def test_bad_input_is_one_line_exit_2_and_creates_nothing(
    runner: CliRunner, tmp_path: Path, job: Path, sqlite_url: str
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(job.read_text().replace("subordinates = [", "subordinates = ['nobody', "))
    assert "nobody" in one_error_line(
        invoke(runner, tmp_path, sqlite_url, "jobs", "submit", str(broken))
    )
    one_error_line(invoke(runner, tmp_path, sqlite_url, "jobs", "submit", "missing.toml"))
    listed = invoke(runner, tmp_path, sqlite_url, "jobs", "list", "--json")
    assert json.loads(listed.stdout) == []

    assert "no job" in one_error_line(
        invoke(runner, tmp_path, sqlite_url, "jobs", "status", "0123456789ab")
    )
    one_error_line(invoke(runner, tmp_path, sqlite_url, "jobs", "cancel", "0123456789ab"))
    one_error_line(invoke(runner, tmp_path, sqlite_url, "jobs", "list", "--state", "done"))

    unreachable = one_error_line(invoke(runner, tmp_path, UNREACHABLE, "jobs", "submit", str(job)))
    assert "cannot reach the jobs database" in unreachable and "secret" not in unreachable
    one_error_line(invoke(runner, tmp_path, "mysql://127.0.0.1/jobs", "jobs", "list"))
    one_error_line(invoke(runner, tmp_path, sqlite_url, "worker", "--concurrency", "0"))
    assert "cannot reach" in one_error_line(invoke(runner, tmp_path, UNREACHABLE, "worker"))


@pytest.mark.parametrize("command", [["status", "nosuchjob"], ["result", "nosuchjob"], ["list"]])
def test_reading_a_database_that_does_not_exist_creates_nothing(
    runner: CliRunner, tmp_path: Path, command: list[str]
) -> None:
    folder = tmp_path / "never"
    url = f"sqlite:///{folder}/jobs.sqlite"
    line = one_error_line(invoke(runner, tmp_path, url, "jobs", *command))
    assert "no jobs database" in line
    assert not folder.exists()


def test_list_prints_whole_ids_outside_a_terminal(
    tmp_path: Path, job: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    runner = CliRunner()  # no COLUMNS: not a terminal, so no width to cut at
    submitted = invoke(runner, tmp_path, sqlite_url, "jobs", "submit", str(job))
    job_id = submitted.stdout.strip()
    listed = invoke(runner, tmp_path, sqlite_url, "jobs", "list")
    assert listed.exit_code == 0, listed.stderr
    assert re.search(rf"│ {job_id} +│ triage +│ queued", listed.stdout), listed.stdout
    assert "…" not in listed.stdout


def test_a_handoff_line_says_why_it_was_degraded_not_by_whom() -> None:
    from decimal import Decimal

    from handoffs import HandoffRecord
    from handoffs.cli._render import handoff_line

    base = {"task_id": "t1", "task_kind": "classify", "risk": "low", "route": ("local", "mid")}
    degraded = HandoffRecord(
        **base, status="degraded", label="T-2", cause="verification", cost_usd=Decimal("9E-7")
    )
    assert handoff_line(degraded) == "classify T-2: degraded (verification) $0.000001"
    delivered = HandoffRecord(**base, status="delivered", model="mid", cost_usd=Decimal("0.0012"))
    assert handoff_line(delivered) == "classify t1: delivered by mid $0.001200"


def test_a_degraded_handoff_is_never_shown_as_escalated() -> None:
    from decimal import Decimal

    from rich.console import Console

    from handoffs import HandoffRecord
    from handoffs.cli._render import job_table
    from handoffs.project import JobReport

    base = {"task_id": "t1", "task_kind": "classify", "risk": "low", "route": ("local", "mid")}
    degraded = HandoffRecord(
        **base, status="degraded", degraded=True, cause="deadline", escalations=1
    )
    escalated = HandoffRecord(**{**base, "task_id": "t2"}, status="delivered", model="mid", escalations=1)  # fmt: skip
    report = JobReport(
        job_id="j",
        job="triage",
        status="completed",
        models={},
        handoffs=[degraded, escalated],
        orchestrator_cost_usd=Decimal(0),
        total_cost_usd=Decimal(0),
        repriced_frontier_cost_usd=Decimal(0),
        escalations=1,
        degraded=1,
    )
    console = Console(width=200, record=True)
    console.print(job_table(report))
    rows = {line.split("│")[1].strip(): line for line in console.export_text().splitlines() if "classify t" in line}  # fmt: skip
    assert "↑" not in rows["classify t1"] and "degraded" in rows["classify t1"]
    assert "mid (↑1)" in rows["classify t2"]
