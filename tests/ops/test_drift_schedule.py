"""Drift as a DBOS scheduled workflow: a worker given a `handoffs.toml` with `[drift]` stores the
schedule in the jobs database; the scheduled workflow, called here directly with a time (no
waiting for the clock), replays the fixed sample through the live route, compares it with the
baseline and records the result; its journal makes a rerun for the same time replay nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dbos import DBOS, SetWorkflowID

from handoffs.errors import ConfigError
from handoffs.jobs import Worker
from handoffs.jobs._drift import DRIFT_WORKFLOW, SCHEDULE, drift_workflow
from handoffs.project import check_drift, load_config

from ..test_cli import JOB, SIMULATED_CONFIG
from .test_drift import TICKETS, dataset

DRIFT = f"""
[drift]
job = "{JOB}"
sample = "sample.jsonl"
baseline = "baseline.json"
schedule = "30 6 * * 1"
budget_usd = "1"
per_kind = 10
output = "drift"
"""

AT = datetime(2026, 12, 7, 6, 30, tzinfo=UTC)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "handoffs.toml").write_text(SIMULATED_CONFIG + DRIFT)
    tickets = [json.loads(line) for line in TICKETS.read_text().splitlines()][:10]
    # half the sample now asks for a refund *feature*: every rung's answer fails the check
    changed = tickets[:5] + [
        {**t, "subject": "Please add a refund button", "body": "I want a refund feature."}
        for t in tickets[5:]
    ]
    dataset(tmp_path / "sample.jsonl", changed)
    contender = {"pass_rate": 1.0, "pass_rate_ci95": [0.7225, 1.0]}  # 10 of 10 last quarter
    baseline = {"kinds": {"classify": {"contenders": {"incumbent": contender}}}}
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))
    return tmp_path


def test_the_drift_table_is_checked_as_it_is_read(project: Path) -> None:
    config = load_config(project / "handoffs.toml")
    assert config.drift is not None and config.drift.schedule == "0 30 6 * * 1"  # seconds first
    (project / "bad.toml").write_text(SIMULATED_CONFIG + DRIFT.replace("30 6 *", "61 6 *"))
    with pytest.raises(ConfigError, match=r"drift\.schedule"):
        load_config(project / "bad.toml")


async def test_a_worker_schedules_the_drift_workflow_which_records_its_result(
    project: Path,
) -> None:
    url = f"sqlite:///{project / 'jobs.sqlite'}"
    async with Worker(url, supervise=False, config=project / "handoffs.toml"):
        stored = DBOS.get_schedule(SCHEDULE)
        assert stored is not None
        assert (stored["schedule"], stored["workflow_name"]) == ("0 30 6 * * 1", DRIFT_WORKFLOW)
        with SetWorkflowID("drift-2026-12-07"):
            await drift_workflow(AT, {"config": str(project / "handoffs.toml")})
        [run] = await DBOS.list_workflows_async(workflow_ids=["drift-2026-12-07"])
        assert (run.name, run.status) == (DRIFT_WORKFLOW, "SUCCESS")
        assert [
            s["function_name"] for s in await DBOS.list_workflow_steps_async("drift-2026-12-07")
        ] == ["handoffs.drift.check"]
    doc = json.loads((project / "drift" / "20261207T063000Z.json").read_text())
    assert doc["scheduled_at"] == AT.isoformat() and doc["stopped"] is None
    incumbent = doc["kinds"]["classify"]["contenders"]["incumbent"]
    assert (incumbent["tasks"], incumbent["pass_rate"]) == (10, 0.5)
    [flag] = doc["drift"]
    assert (flag["kind"], flag["contender"], flag["baseline_pass_rate"]) == (
        "classify",
        "incumbent",
        1.0,
    )
    # a run resumed for the same scheduled time replays nothing: its journal has every trial
    journal = project / "drift" / "20261207T063000Z.journal.jsonl"
    assert len(journal.read_text().splitlines()) == 10
    again = await check_drift(project / "handoffs.toml", at=AT)
    assert again["spent_usd"] == "0" and again["drift"] == doc["drift"]
    # a worker whose config has no [drift] removes the schedule
    (project / "plain.toml").write_text(SIMULATED_CONFIG)
    async with Worker(url, supervise=False, config=project / "plain.toml"):
        assert DBOS.get_schedule(SCHEDULE) is None
