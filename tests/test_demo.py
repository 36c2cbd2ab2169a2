"""`make demo`'s job on the default offline portfolio: the real SmolLM2 tier answers, checks
escalate its mistakes, and the job costs less than sending every subtask to the frontier."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from handoffs.cli import app
from handoffs.providers import local_available

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.local
@pytest.mark.skipif(not local_available(), reason="needs the [local] extra (SmolLM2)")
def test_bundled_job_escalates_local_mistakes_and_beats_all_frontier(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(ROOT)
    args = ["run", "examples/jobs/support-triage.toml", "--json", "--trace-dir", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["models"] == {
        "frontier": "simulated",
        "frontier-openai": "simulated",
        "mid": "simulated",
        "mid-anthropic": "simulated",
        "local": "local",
    }
    assert report["status"] == "completed"
    kinds = Counter(h["task_kind"] for h in report["handoffs"])
    assert kinds["classify"] == 30 and kinds["extract"] == 30  # every ticket, once each
    # a reply is drafted for each ticket whose delivered triage says urgent: 10 by the gold labels,
    # fewer or more when SmolLM2's (sampled) triage passed its checks with a different urgency
    urgent = sum(
        1 for h in report["handoffs"] if h["task_kind"] == "classify" and h["output"]["urgent"]
    )
    assert kinds["draft"] == urgent
    local = [a for h in report["handoffs"] for a in h["attempts"] if a["model"] == "local"]
    # SmolLM2 answered (its attempts skipped for its queue, `refused`, sent nothing), and what it
    # got wrong was escalated; a loaded machine may send more of the classifications past it
    answered = [a for a in local if a["outcome"] not in ("provider_error", "refused")]
    assert answered and all(a["input_tokens"] > 0 for a in answered)
    if any(a["outcome"] in ("rejected", "invalid_output") for a in local):
        assert report["escalations"] >= 1
    assert Decimal(report["total_cost_usd"]) < Decimal(report["repriced_frontier_cost_usd"])
    # by reference: the orchestrator planned over handles, and its own calls are the smaller part
    assert Decimal(report["orchestrator_cost_usd"]) < Decimal(report["total_cost_usd"]) / 2
