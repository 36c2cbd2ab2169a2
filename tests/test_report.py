"""`handoffs report` and `report shadow` over JSONL traces written by a small traced job."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from pydantic import BaseModel
from typer.testing import CliRunner

from handoffs import Catalog, Session, Task, checks
from handoffs.cli import app
from handoffs.routing import Policy, Rule
from handoffs.tracing import (
    JsonlSpanExporter,
    Tracing,
    job_meter_provider,
    parse_since,
    percentile,
    span_to_json,
)

from .conftest import Scripts
from .test_tracing import traced_job

HOUR_NS = 3600 * 10**9

CATALOG = """
[models.tiny]
provider = "openai-compatible"
name = "tiny"
tier = "local"
context_window = 8192
base_url = "http://127.0.0.1:9/v1"
input_usd_per_mtok = "0.02"
output_usd_per_mtok = "0.02"

[models.cheap]
provider = "openai-compatible"
name = "cheap"
tier = "small"
context_window = 8192
base_url = "http://127.0.0.1:9/v1"
input_usd_per_mtok = "0.15"
output_usd_per_mtok = "0.60"

[models.best]
provider = "openai-compatible"
name = "best"
tier = "frontier"
context_window = 8192
base_url = "http://127.0.0.1:9/v1"
input_usd_per_mtok = "3"
output_usd_per_mtok = "15"
"""


def shift(path: Path, ago_ns: int) -> None:
    """Move every span of a trace so that it starts about `ago_ns` before now (durations kept)."""
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    first = min(s["start_time_unix_nano"] for s in spans)
    offset = time.time_ns() - ago_ns - first
    for s in spans:
        s["start_time_unix_nano"] += offset
        s["end_time_unix_nano"] += offset
    path.write_text("".join(json.dumps(s) + "\n" for s in spans))


def handoff_spans(path: Path) -> list[dict[str, Any]]:
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    return [s for s in spans if s["name"] == "handoff classify"]


@pytest.fixture
async def traces(tmp_path: Path, catalog: Catalog, scripts: Scripts) -> Path:
    """`job1` ran an hour ago, `job0` 30 hours ago: six tickets each, T2 and T5 escalate to cheap."""
    directory = tmp_path / "traces"
    directory.mkdir()
    spans = await traced_job(catalog, scripts)
    for job_id, ago in (("job1", HOUR_NS), ("job0", 30 * HOUR_NS)):
        path = directory / f"{job_id}.jsonl"
        path.write_text("".join(json.dumps(span_to_json(s)) + "\n" for s in spans))
        shift(path, ago)
    (directory / "half.jsonl.part").write_text("{not json")  # an unfinished trace is ignored
    return directory


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "200"})


def report(runner: CliRunner, *args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["report", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_percentile_on_a_known_list() -> None:
    xs = [float(x) for x in range(1, 11)]
    assert percentile(xs, 50) == 5.5
    assert percentile(xs, 95) == pytest.approx(9.55)
    assert percentile(xs, 99) == pytest.approx(9.91)
    assert percentile([], 50) is None


def test_since_parses_days_hours_minutes() -> None:
    assert parse_since("7d").total_seconds() == 7 * 86400
    assert parse_since("24h").total_seconds() == 86400
    assert parse_since("30m").total_seconds() == 1800
    for bad in ("7", "d", "7w", "-1d", "0h", ""):
        with pytest.raises(ValueError):
            parse_since(bad)


def test_report_figures_per_model_kind_and_route(runner: CliRunner, traces: Path) -> None:
    doc = report(runner, "--dir", str(traces), "--since", "24h")
    job = handoff_spans(traces / "job1.jsonl")
    paid = sum(Decimal(s["attributes"]["handoffs.cost_usd_decimal"]) for s in job)
    # each attempt is charged to the model it called: T2's and T5's rejected tiny attempts to tiny
    by_model = {
        m: sum(
            (
                Decimal(cost)
                for s in job
                for model, cost in zip(
                    s["attributes"]["handoffs.attempt.models"],
                    s["attributes"]["handoffs.attempt.costs_usd"],
                    strict=True,
                )
                if model == m
            ),
            Decimal(0),
        )
        for m in ("tiny", "cheap")
    }
    assert by_model["tiny"] + by_model["cheap"] == paid
    assert doc["jobs"] == 1 and doc["handoffs"] == 6
    assert Decimal(doc["cost_usd"]) == paid > 0
    # 4 tickets: one tiny attempt; T2 and T5: tiny, tiny (with feedback), then cheap
    tiny, cheap = doc["models"]["tiny"], doc["models"]["cheap"]
    assert (tiny["attempts"], cheap["attempts"]) == (8, 2)
    assert tiny["error_rate"] == cheap["error_rate"] == 0.0
    assert Decimal(tiny["cost_usd"]) == by_model["tiny"]
    assert Decimal(cheap["cost_usd"]) == by_model["cheap"]
    lat = tiny["latency_s"]
    assert lat["p50"] is not None and lat["p50"] <= lat["p95"] <= lat["p99"]
    classify = doc["task_kinds"]["classify"]
    assert classify == {
        "handoffs": 6,
        "cost_usd": classify["cost_usd"],
        "models": {"tiny": 4, "cheap": 2},
    }
    assert Decimal(classify["cost_usd"]) == paid
    assert doc["routes"]["by_model"]["tiny"] == {"handoffs": 4, "share": 0.6667}
    assert doc["routes"]["by_tier"]["small"] == {"handoffs": 2, "share": 0.3333}

    everything = report(runner, "--dir", str(traces))
    assert everything["jobs"] == 2 and everything["handoffs"] == 12
    assert Decimal(everything["cost_usd"]) == 2 * paid
    recent = report(runner, "--dir", str(traces), "--since", "30m")
    assert recent["handoffs"] == 0 and recent["models"] == {}

    text = runner.invoke(app, ["report", "--dir", str(traces), "--since", "7d", "--compare"])
    assert text.exit_code == 0, text.output
    assert "12 handoffs in 2 jobs" in text.stdout and "per model" in text.stdout


def test_compare_reports_the_previous_period_and_the_change(
    runner: CliRunner, traces: Path
) -> None:
    # the earlier job moves to the frontier: premium usage creeping up, seen as a route diff
    path = traces / "job1.jsonl"
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    for s in spans:
        a = s["attributes"]
        if s["name"] == "handoff classify" and a["handoffs.task.label"] in ("T0", "T1", "T3"):
            a.update({"handoffs.model": "best", "handoffs.tier": "frontier"})
            a["handoffs.cost_usd"], a["handoffs.cost_usd_decimal"] = 0.01, "0.01"
            # as an older trace would: no cost per attempt, so all of it goes to the final model
            del a["handoffs.attempt.costs_usd"]
    path.write_text("".join(json.dumps(s) + "\n" for s in spans))
    old = sum(
        Decimal(s["attributes"]["handoffs.cost_usd_decimal"])
        for s in handoff_spans(traces / "job0.jsonl")
    )
    new = sum(Decimal(s["attributes"]["handoffs.cost_usd_decimal"]) for s in handoff_spans(path))

    doc = report(runner, "--dir", str(traces), "--since", "24h", "--compare")
    assert doc["handoffs"] == doc["previous"]["handoffs"] == 6
    assert Decimal(doc["previous"]["cost_usd"]) == old
    change = doc["change"]
    assert change["handoffs"] == 0
    assert Decimal(change["cost_usd"]) == new - old > 0
    assert change["routes"]["by_tier"]["frontier"] == {"handoffs": 3, "share": 0.5}
    assert change["routes"]["by_model"]["tiny"] == {"handoffs": -3, "share": -0.5}
    assert Decimal(change["models"]["best"]["cost_usd"]) == Decimal("0.03")
    assert change["models"]["best"]["attempts"] == 0  # attempts as recorded: still tiny


def test_bad_since_missing_dir_and_compare_without_since_are_one_line_exit_2(
    runner: CliRunner, tmp_path: Path
) -> None:
    for args in (
        ["--dir", str(tmp_path), "--since", "7x"],
        ["--dir", str(tmp_path / "nope")],
        ["--dir", str(tmp_path), "--compare"],
        ["shadow", "--policy", str(tmp_path / "nope.toml"), "--dir", str(tmp_path)],
    ):
        result = runner.invoke(app, ["report", *args])
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), args


def test_shadow_moving_classify_to_the_frontier_changes_decisions_and_cost(
    runner: CliRunner, traces: Path, tmp_path: Path
) -> None:
    candidate = tmp_path / "candidate.toml"
    candidate.write_text(CATALOG + '\n[[policy.rules]]\nkind = "classify"\nladder = ["best"]\n')
    doc = report(runner, "shadow", "--policy", str(candidate), "--dir", str(traces))
    assert doc["estimate"] is True and doc["approximations"]
    assert doc["handoffs"] == doc["decisions_changed"] == 12
    assert doc["changes"] == [{"before": "tiny", "after": "best", "handoffs": 12}]
    assert doc["examples"][0]["after"] == ["best"]
    # by hand: the delivered attempt's tokens priced at best ($3 / $15 per M) vs what was paid
    spans = [
        json.loads(line) for p in traces.glob("*.jsonl") for line in p.read_text().splitlines()
    ]
    ids = {s["span_id"]: s for s in spans}
    expected = Decimal(0)
    for h in (s for s in spans if s["name"] == "handoff classify"):
        runs = [s for s in spans if s["parent_span_id"] == h["span_id"]]
        delivered = h["attributes"]["handoffs.model"]
        last = max(
            (r for r in runs if r["name"] == f"invoke_agent subordinate:{delivered}"),
            key=lambda r: r["start_time_unix_nano"],
        )
        a = last["attributes"]
        expected += (
            Decimal(a["gen_ai.aggregated_usage.input_tokens"]) * 3
            + Decimal(a["gen_ai.aggregated_usage.output_tokens"]) * 15
        ) / 1_000_000
        assert h["parent_span_id"] in ids
    paid = sum(
        Decimal(s["attributes"]["handoffs.cost_usd_decimal"])
        for s in spans
        if s["name"] == "handoff classify"
    )
    cost = doc["cost_usd"]
    assert Decimal(cost["actual"]) == paid
    assert Decimal(cost["estimated"]) == expected
    assert Decimal(cost["change"]) == expected - paid > 0

    text = runner.invoke(
        app, ["report", "shadow", "--policy", str(candidate), "--dir", str(traces)]
    )
    assert text.exit_code == 0, text.output
    assert "ESTIMATE" in text.stdout and "12 of 12 decisions change" in text.stdout


def test_shadow_with_the_same_policy_changes_nothing(
    runner: CliRunner, traces: Path, tmp_path: Path
) -> None:
    same = tmp_path / "same.toml"
    same.write_text(CATALOG + '\n[[policy.rules]]\nkind = "classify"\nladder = ["tiny", "cheap"]\n')
    doc = report(runner, "shadow", "--policy", str(same), "--dir", str(traces))
    assert doc["decisions_changed"] == 0 and doc["changes"] == [] and doc["examples"] == []
    assert Decimal(doc["cost_usd"]["change"]) == 0
    assert doc["cost_usd"]["estimated"] == doc["cost_usd"]["actual"]


async def test_a_failed_frontier_attempt_is_charged_to_the_frontier(
    runner: CliRunner, tmp_path: Path, catalog: Catalog, scripts: Scripts
) -> None:
    """The frontier's answers fail the check twice, then `cheap` delivers: the frontier is charged
    for its two attempts, `cheap` for its one (not the whole handoff, as older reports did)."""

    class Ticket(BaseModel):
        text: str

    class Triage(BaseModel):
        category: str

    scripts.on("best", lambda c: {"category": "other"})
    scripts.on("cheap", lambda c: {"category": "billing"})
    directory = tmp_path / "traces"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter(directory / "j.jsonl")))
    meters = job_meter_provider("j", directory=directory, env={})
    tracing = Tracing(tracer_provider=provider, meter_provider=meters)
    policy = Policy(rules=(Rule(kind="classify", ladder=("best", "cheap")),))
    session = Session(catalog=catalog, models=scripts, policy=policy, tracing=tracing)
    specific = checks.predicate(lambda t, i: t.category != "other", name="specific")
    task = Task(kind="classify", input=Ticket(text="hi"), output_type=Triage, checks=(specific,))
    delivery = await session.delegate(task)
    provider.shutdown()
    meters.shutdown()
    assert sorted(p.name for p in directory.iterdir()) == ["j.jsonl", "j.metrics.jsonl"]
    assert delivery.model == "cheap" and delivery.escalations == 1
    assert [a.model for a in delivery.attempts] == ["best", "best", "cheap"]
    spent = {
        m: sum((a.cost_usd for a in delivery.attempts if a.model == m), Decimal(0))
        for m in ("best", "cheap")
    }
    assert spent["best"] > spent["cheap"] > 0

    doc = report(runner, "--dir", str(directory))  # the metrics file is not read as a trace
    assert doc["jobs"] == doc["handoffs"] == 1
    models = doc["models"]
    assert Decimal(models["best"]["cost_usd"]) == spent["best"]
    assert Decimal(models["cheap"]["cost_usd"]) == spent["cheap"]
    assert Decimal(doc["cost_usd"]) == delivery.cost_usd == spent["best"] + spent["cheap"]
    assert doc["routes"]["by_model"] == {"cheap": {"handoffs": 1, "share": 1.0}}  # who delivered


def test_shadow_replays_the_breakers_that_were_open(
    runner: CliRunner, traces: Path, tmp_path: Path
) -> None:
    # T0 and T1 of job1 were routed while tiny's breaker was open: the same policy, replayed,
    # routes them to cheap; every other decision stays
    path = traces / "job1.jsonl"
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    for s in spans:
        a = s["attributes"]
        assert s["name"] != "handoff classify" or a["handoffs.breakers"] == [
            "tiny:closed",
            "cheap:closed",
        ]
        if s["name"] == "handoff classify" and a["handoffs.task.label"] in ("T0", "T1"):
            a["handoffs.breakers"] = ["tiny:open", "cheap:closed"]
    path.write_text("".join(json.dumps(s) + "\n" for s in spans))
    same = tmp_path / "same.toml"
    same.write_text(CATALOG + '\n[[policy.rules]]\nkind = "classify"\nladder = ["tiny", "cheap"]\n')
    doc = report(runner, "shadow", "--policy", str(same), "--dir", str(traces))
    assert doc["handoffs"] == 12 and doc["decisions_changed"] == 2
    assert doc["changes"] == [{"before": "tiny", "after": "cheap", "handoffs": 2}]
    assert {e["label"] for e in doc["examples"]} == {"T0", "T1"}
    assert {e["job_id"] for e in doc["examples"]} == {"job1"}


def test_gauntlet_runs_are_left_out_and_the_total_adds_the_orchestrators(
    runner: CliRunner, traces: Path
) -> None:
    """Gauntlet runs write to their own folder, and a trace marked as one (its workflow names the
    attack it played) is not traffic even in this one; the orchestrators' cost is in the total."""
    path = traces / "job1.jsonl"
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    for s in spans:
        if s["name"] == "invoke_workflow triage":  # as `run_job` finishes a job's span
            s["attributes"]["handoffs.orchestrator.cost_usd"] = 0.25
            s["attributes"]["handoffs.orchestrator.cost_usd_decimal"] = "0.25"
    path.write_text("".join(json.dumps(s) + "\n" for s in spans))
    for s in spans:
        if s["name"] == "invoke_workflow triage":
            s["attributes"]["handoffs.gauntlet.attack"] = "confident_lie"
    (traces / "attack.jsonl").write_text("".join(json.dumps(s) + "\n" for s in spans))
    handoffs = sum(
        Decimal(s["attributes"]["handoffs.cost_usd_decimal"]) for s in handoff_spans(path)
    )

    doc = report(runner, "--dir", str(traces), "--since", "24h")
    assert doc["jobs"] == 1 and doc["handoffs"] == 6  # the attack run is not counted
    assert doc["left_out"] == {"gauntlet_runs": 1}
    assert Decimal(doc["cost_usd"]) == handoffs
    assert Decimal(doc["orchestrator_cost_usd"]) == Decimal("0.25")
    assert Decimal(doc["total_cost_usd"]) == handoffs + Decimal("0.25")
    counted = report(runner, "--dir", str(traces), "--since", "24h", "--gauntlet")
    assert counted["jobs"] == 2 and counted["handoffs"] == 12
    assert counted["left_out"] == {"gauntlet_runs": 0}

    text = runner.invoke(app, ["report", "--dir", str(traces), "--since", "24h"])
    assert text.exit_code == 0, text.output
    first, second = text.stdout.splitlines()[:2]
    assert first.startswith(f"6 handoffs in 1 job · ${doc['total_cost_usd']} = handoffs $")
    assert "+ orchestrators $0.25 " in first
    assert second == "left out: 1 Gauntlet run (--gauntlet to count them)"
    shadow_same = traces.parent / "same.toml"
    shadow_same.write_text(CATALOG + '\n[[policy.rules]]\nkind = "classify"\nladder = ["tiny"]\n')
    shadow = report(runner, "shadow", "--policy", str(shadow_same), "--dir", str(traces))
    assert shadow["handoffs"] == 12  # job0 and job1; not the attack run
