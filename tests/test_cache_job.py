"""A job with `[cache]`: run twice for one tenant, the second run is served from the cache and
says what that saved; a job scoped to itself reuses nothing from the first."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import Result
from rich.console import Console
from typer.testing import CliRunner

from handoffs.cli import app
from handoffs.cli._render import job_summary, job_table
from handoffs.project import JobReport

from .test_cli import JOB, SIMULATED_CONFIG


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return CliRunner(env={"COLUMNS": "200"})


def _run(runner: CliRunner, config: Path, tmp_path: Path, *extra: str) -> Result:
    args = ["run", str(JOB), "--config", str(config), "--trace-dir", str(tmp_path / "traces")]
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == 0, result.output
    return result


def test_a_second_run_for_the_same_tenant_is_served_from_the_cache(
    runner: CliRunner, tmp_path: Path
) -> None:
    config = tmp_path / "handoffs.toml"
    config.write_text(SIMULATED_CONFIG + '\n[cache]\nkinds = ["extract"]\ntenant = "acme"\n')
    first = json.loads(_run(runner, config, tmp_path, "--json").stdout)
    extracts = [h for h in first["handoffs"] if h["task_kind"] == "extract"]
    assert {h["cache"] for h in extracts} == {"miss"}
    assert all(h["cache"] is None for h in first["handoffs"] if h["task_kind"] != "extract")
    assert first["cache_hits"] == 0 and (tmp_path / ".handoffs" / "cache.sqlite").is_file()
    again = json.loads(_run(runner, config, tmp_path, "--json").stdout)
    hits = [h for h in again["handoffs"] if h["cache"] == "exact"]
    assert len(hits) == again["cache_hits"] == 30
    assert all(h["attempts"] == [] and h["cost_usd"] == "0" for h in hits)
    assert Decimal(again["cache_saved_usd"]) == sum(
        (
            Decimal(h["cost_usd"])
            for h in extracts
            if h["status"] == "delivered" and not h["degraded"]
        ),
        Decimal(0),
    )
    report = JobReport.model_validate(again)
    assert "cache: 30 exact, 0 verified near-duplicate, 0 missed" in job_summary(report)
    console = Console(width=200, record=True)
    console.print(job_table(report))
    assert "cache:exact 1.00" in console.export_text()
