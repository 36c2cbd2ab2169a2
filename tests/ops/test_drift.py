"""Drift: a scheduled `handoffs qualify --route-only --baseline` flags a pass-rate drop beyond the
baseline's interval (exit 1); `handoffs report --since 7d --compare -o FILE` writes the weekly
route and spend diff as a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from handoffs.cli import app
from handoffs.routing import drift

from ..test_cli import JOB
from .test_qualify import recorded  # noqa: F401 (the fixture)

TICKETS = Path(__file__).resolve().parents[2] / "examples" / "data" / "tickets.jsonl"


def dataset(path: Path, tickets: list[dict[str, str]]) -> Path:
    path.write_text(
        "".join(json.dumps({"kind": "classify", "id": t["id"], "input": t}) + "\n" for t in tickets)
    )
    return path


def route_only(folder: Path, source: Path, *extra: str) -> tuple[int, dict[str, object], str]:
    ran = CliRunner().invoke(
        app,
        ["qualify", str(JOB), "-c", str(folder / "handoffs.toml"), "--from", str(source),
         "--route-only", "--json", "-o", str(source.with_suffix(".toml")), *extra],
    )  # fmt: skip
    return ran.exit_code, json.loads(ran.stdout), ran.stderr


def test_a_drop_beyond_the_baseline_interval_is_flagged(
    recorded: Path,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    tickets = [json.loads(line) for line in TICKETS.read_text().splitlines()][:10]
    code, week1, _ = route_only(recorded, dataset(tmp_path / "week1.jsonl", tickets))
    assert code == 0 and week1["kinds"]["classify"]["contenders"]["incumbent"]["pass_rate"] == 1.0
    (tmp_path / "baseline.json").write_text(json.dumps(week1))
    # the same sample again: no drift
    code, again, _ = route_only(
        recorded,
        dataset(tmp_path / "again.jsonl", tickets),
        "--baseline",
        str(tmp_path / "baseline.json"),
    )
    assert code == 0 and again["drift"] == []
    # half the sample now asks for a refund *feature*: the classifier's own check rejects the
    # (simulated) answers on every rung, and the route's pass rate falls to 0.5
    changed = tickets[:5] + [
        {
            **t,
            "subject": "Please add a refund button",
            "body": "Would love a refund feature in the app.",
        }
        for t in tickets[5:]
    ]
    code, week2, stderr = route_only(
        recorded,
        dataset(tmp_path / "week2.jsonl", changed),
        "--baseline",
        str(tmp_path / "baseline.json"),
    )
    assert code == 1, stderr
    [flag] = week2["drift"]
    assert (flag["kind"], flag["contender"], flag["pass_rate"]) == ("classify", "incumbent", 0.5)
    assert flag["baseline_ci95"][0] > 0.5
    assert "drift: classify on incumbent" in stderr


def test_drift_compares_with_the_lower_end_of_the_baseline_interval() -> None:
    def doc(rate: float, low: float) -> dict[str, object]:
        contender = {"pass_rate": rate, "pass_rate_ci95": [low, 1.0]}
        return {"kinds": {"k": {"contenders": {"incumbent": contender}}}}

    assert drift(doc(0.80, 0.7), doc(0.95, 0.80)) == []  # within the interval
    [flag] = drift(doc(0.70, 0.6), doc(0.95, 0.80))
    assert flag["baseline_pass_rate"] == 0.95 and flag["pass_rate"] == 0.70
    assert drift(doc(0.1, 0.0), {"kinds": {}}) == []  # a kind without a baseline


def test_the_weekly_report_is_written_as_a_file(recorded: Path, tmp_path: Path) -> None:  # noqa: F811
    weekly = tmp_path / "reports" / "week.json"
    ran = CliRunner().invoke(
        app,
        [
            "report",
            "--dir",
            str(recorded / "traces"),
            "--since",
            "7d",
            "--compare",
            "-o",
            str(weekly),
        ],
    )
    assert ran.exit_code == 0, ran.output
    doc = json.loads(weekly.read_text())
    assert doc["handoffs"] == 70 and doc["previous"]["handoffs"] == 0
    assert set(doc["change"]["routes"]["by_tier"]) >= {"small"}
    assert doc["change"]["routes"]["by_tier"]["small"]["share"] > 0
    # ... and as metrics, where a job's metrics go (beside the traces; OTLP when configured)
    [written] = (recorded / "traces").glob("report-*.metrics.jsonl")
    assert f"period change as metrics: {written}" in ran.stderr
    metrics = {m["name"]: m for m in map(json.loads, written.read_text().splitlines())}
    assert {m["kind"] for m in metrics.values()} == {"gauge"}
    tiers = {
        (p["attributes"]["handoffs.tier"], p["attributes"]["handoffs.period"]): p["value"]
        for p in metrics["handoffs.route.tier_share"]["points"]
    }
    assert tiers[("small", "current")] == doc["routes"]["by_tier"]["small"]["share"]
    assert tiers[("small", "previous")] == 0
    [change] = metrics["handoffs.spend.change"]["points"]
    assert change["value"] == pytest.approx(float(doc["change"]["total_cost_usd"]))
    shares = metrics["handoffs.route.share"]["points"]
    assert {p["attributes"]["handoffs.task.kind"] for p in shares} == {
        "classify",
        "extract",
        "draft",
    }
    written.unlink()  # the other tests read this folder as traces
