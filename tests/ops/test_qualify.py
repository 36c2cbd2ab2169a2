"""`handoffs qualify`: recorded tasks replayed on candidates and the incumbent route, offline on the
simulated tiers; the statistics and the sweep rule; where recorded tasks come from."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from handoffs.cli import app
from handoffs.errors import ConfigError
from handoffs.project import load_config, read_recorded, recorded_job
from handoffs.routing import INCUMBENT, Trial, qualification, wilson
from handoffs.tracing import TASK_INPUT

from ..test_cli import JOB, SIMULATED_CONFIG

LOGGED = SIMULATED_CONFIG.replace(
    '[[policy.rules]]\nkind = "classify"',
    '[tracing]\ncontent = true\n\n[policy]\noutcomes = "outcomes.jsonl"\noutcomes_input = true'
    '\n\n[[policy.rules]]\nkind = "classify"',
    1,
)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo-like run on the simulated portfolio (tickets delegated by reference) that logs its
    outcomes with their inputs and traces them with content capture on (`[tracing] content`)."""
    folder = tmp_path_factory.mktemp("demo")
    (folder / "handoffs.toml").write_text(LOGGED)
    with pytest.MonkeyPatch.context() as mp:
        for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            mp.delenv(name, raising=False)
        mp.setenv("HANDOFFS_DATABASE_URL", f"sqlite:///{folder / 'jobs.sqlite'}")
        ran = CliRunner().invoke(
            app,
            ["run", str(JOB), "-c", str(folder / "handoffs.toml"), "--trace-dir",
             str(folder / "traces"), "--json"],
        )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    return folder


def invoke(folder: Path, *args: str) -> Any:
    return CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["qualify", str(JOB), "-c", str(folder / "handoffs.toml"), *args]
    )


def test_qualify_reports_pass_rates_costs_latency_and_writes_a_policy_shadow_accepts(
    recorded: Path, tmp_path: Path
) -> None:
    rows = [json.loads(line) for line in (recorded / "outcomes.jsonl").read_text().splitlines()]
    assert rows and all("input" in r for r in rows)
    assert all(r["input"]["id"].startswith("T-") for r in rows if r["task"] == "classify")
    candidate = tmp_path / "candidate.toml"
    ran = invoke(
        recorded, "--kinds", "classify", "--candidates", "small,mid", "--from",
        str(recorded / "outcomes.jsonl"), "--sample", "8", "--json", "-o", str(candidate),
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    doc = json.loads(ran.stdout)
    assert doc["models"] == {"small": "simulated", "frontier": "simulated", "mid": "simulated"}
    classify = doc["kinds"]["classify"]
    assert set(classify["contenders"]) == {"small", "mid", INCUMBENT}
    for name, c in classify["contenders"].items():
        assert c["tasks"] == 8 and c["setting"] == ("route" if name == INCUMBENT else "simulated")
        low, high = c["pass_rate_ci95"]
        assert 0 <= low <= c["pass_rate"] <= high <= 1
        assert set(c["latency_s"]) == {"p50", "p95"} and c["latency_s"]["p50"] > 0
    assert classify["sweep"][0]["model"] == "mid"  # the costliest candidate first
    chosen = classify["cheapest_adequate"]
    assert chosen in {"small", "mid"}
    assert Decimal(doc["spent_usd"]) > 0 and doc["stopped"] is None
    # the candidate config loads, starts classify at the chosen model, and shadow replays it
    config = load_config(candidate)
    [rule] = [r for r in config.policy.rules if r.kind == "classify"]
    assert rule.ladder[0] == chosen and rule.ladder[-1] == "frontier"
    shadow = CliRunner().invoke(
        app,
        [
            "report",
            "shadow",
            "--policy",
            str(candidate),
            "--dir",
            str(recorded / "traces"),
            "--json",
        ],
    )
    assert shadow.exit_code == 0, shadow.output
    assert json.loads(shadow.stdout)["handoffs"] == 70


def test_a_budget_stops_the_run_and_a_journal_resumes_it(recorded: Path, tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    source = str(recorded / "outcomes.jsonl")
    common = ["--kinds", "classify", "--candidates", "small", "--from", source, "--sample", "4",
              "--resume", str(journal), "-o", str(tmp_path / "c.toml"), "--json"]  # fmt: skip
    stopped = invoke(recorded, *common, "--budget", "0.0004")
    assert stopped.exit_code == 1, stopped.output
    first = json.loads(stopped.stdout)
    assert first["stopped"] == "budget" and Decimal(first["spent_usd"]) <= Decimal("0.0004")
    done = len(journal.read_text().splitlines())
    assert 0 < done < 8
    finished = invoke(recorded, *common)
    assert finished.exit_code == 0, finished.output
    assert len(journal.read_text().splitlines()) == 8  # the rest, not the first ones again
    assert json.loads(finished.stdout)["kinds"]["classify"]["contenders"]["small"]["tasks"] == 4


def test_recorded_tasks_come_from_an_outcome_log_with_inputs_or_a_dataset(
    recorded: Path, tmp_path: Path
) -> None:
    tasks = read_recorded(recorded / "outcomes.jsonl")
    assert {t.kind for t in tasks} == {"classify", "extract", "draft"}
    assert len({t.task_id for t in tasks}) == len(tasks) == 70
    dataset = tmp_path / "set.jsonl"
    dataset.write_text('{"kind": "classify", "id": "a", "input": {"text": "x"}}\n')
    assert [t.task_id for t in read_recorded(dataset)] == ["a"]
    bare_traces = tmp_path / "traces"
    bare_traces.mkdir()
    for trace in (recorded / "traces").glob("*.jsonl"):  # the same spans, without the inputs
        kept = trace.read_text().replace(f'"{TASK_INPUT}"', '"handoffs.elsewhere"')
        (bare_traces / trace.name).write_text(kept)
    with pytest.raises(ConfigError, match=r"kept no task inputs; capture them with \[tracing\]"):
        read_recorded(bare_traces)
    ran = invoke(recorded, "--from", str(bare_traces))
    assert ran.exit_code == 2 and "[tracing] content = true" in ran.output
    with pytest.raises(ConfigError, match="name the job file to qualify with"):
        recorded_job(dataset)
    bare = tmp_path / "bare.jsonl"
    bare.write_text(
        '{"prompt_id": "1", "task": "classify", "prompt": "p", "model": "m", "correct": true}\n'
    )
    with pytest.raises(ConfigError, match="outcomes_input = true"):
        read_recorded(bare)
    ran = invoke(recorded, "--from", str(bare))
    assert ran.exit_code == 2 and "outcomes_input" in ran.output


def test_qualify_replays_the_resolved_inputs_its_traces_kept(
    recorded: Path, tmp_path: Path
) -> None:
    """The issue's check: `handoffs qualify --kinds classify --candidates ... --from
    .handoffs/traces --json` after a demo run whose traces captured content."""
    traced = read_recorded(recorded / "traces")
    logged = read_recorded(recorded / "outcomes.jsonl")
    assert {t.kind for t in traced} == {"classify", "extract", "draft"}
    key = lambda t: (t.kind, json.dumps(t.input, sort_keys=True))  # noqa: E731
    assert sorted(map(key, traced)) == sorted(map(key, logged))  # the inputs the handoffs had
    tickets = [t.input for t in traced if t.kind == "classify"]
    assert len(tickets) == 30 and all(
        t["id"].startswith("T-") and t["body"] and "⟦q:" not in json.dumps(t) for t in tickets
    )  # the tickets themselves, not the handles the orchestrator planned over
    assert recorded_job(recorded / "traces") == JOB.resolve()  # the job its workflow span names
    ran = CliRunner().invoke(  # no job named: the one the traces ran
        app,
        ["qualify", "-c", str(recorded / "handoffs.toml"), "--kinds", "classify", "--candidates",
         "small,mid", "--from", str(recorded / "traces"), "--sample", "4", "--json", "-o",
         str(tmp_path / "c.toml")],
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    doc = json.loads(ran.stdout)
    assert doc["job"] == "support-triage"
    contenders = doc["kinds"]["classify"]["contenders"]
    assert {n: c["tasks"] for n, c in contenders.items()} == {"small": 4, "mid": 4, INCUMBENT: 4}
    assert doc["skipped"] == [] and doc["source"] == str(recorded / "traces")


def trial(
    kind: str, task: int, contender: str, passed: bool, cost: str = "0.01", out: Any = 1
) -> Trial:
    return Trial(kind=kind, task_id=str(task), contender=contender, passed=passed,
                 delivered_by=contender, cost_usd=Decimal(cost), latency_s=0.5,
                 output=out if passed else None, reasons=() if passed else ("wrong",))  # fmt: skip


def test_wilson_interval() -> None:
    assert wilson(0, 10) == (0.0, 0.2775)
    assert wilson(10, 10) == (0.7225, 1.0)
    assert wilson(5, 10) == (0.2366, 0.7634)
    assert wilson(0, 0) == (0.0, 1.0)


def test_the_sweep_names_the_model_one_tier_above_where_quality_degrades() -> None:
    prices = {"local": Decimal("0.0001"), "small": Decimal("0.001"), "mid": Decimal("0.01")}
    trials = [trial("k", i, INCUMBENT, True, "0.05") for i in range(20)]
    trials += [trial("k", i, "mid", True, "0.01") for i in range(20)]
    trials += [trial("k", i, "small", i != 0, "0.002") for i in range(20)]  # 0.95: adequate
    trials += [trial("k", i, "local", i % 2 == 0, "0.0001") for i in range(20)]  # 0.50: degrades
    doc = qualification(trials, prices=prices, labels={}, margin=0.05)["kinds"]["k"]
    assert [s["model"] for s in doc["sweep"]] == ["mid", "small", "local"]
    assert doc["degrades_at"] == "local" and doc["cheapest_adequate"] == "small"
    assert doc["contenders"]["small"]["cost_per_verified_usd"] == "0.00210526"
    [d] = doc["contenders"]["small"]["disagreements"]
    assert (d["task_id"], d["candidate_passed"], d["incumbent_passed"]) == ("0", False, True)
    assert len(doc["contenders"]["local"]["disagreements"]) == 5  # capped


def test_when_even_the_costliest_candidate_degrades_none_is_named() -> None:
    trials = [trial("k", i, INCUMBENT, True) for i in range(10)]
    trials += [trial("k", i, "mid", i < 5) for i in range(10)]
    doc = qualification(trials, prices={"mid": Decimal(1)}, labels={})["kinds"]["k"]
    assert doc["cheapest_adequate"] is None and doc["degrades_at"] == "mid"
