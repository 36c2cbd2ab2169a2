"""`handoffs bench failover` end to end, small: the document's fields and the invariants that do not
depend on timing (no handoff lost, at most the threshold's worth of requests paid)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from handoffs.cli import app


def test_bench_failover_json_reports_every_field_and_loses_nothing() -> None:
    result = CliRunner().invoke(
        app, ["bench", "failover", "--handoffs", "40", "--outage-s", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    for key in (
        "rounds",
        "min_added_ms",
        "max_added_ms",
        "median_added_ms",
        "p99_added_ms",
        "paid_failures",
        "breaker_threshold",
        "recovery_s",
        "lost",
    ):
        assert key in doc
    assert doc["lost"] == 0
    assert doc["min_added_ms"] <= doc["median_added_ms"] <= doc["max_added_ms"]
    assert doc["breaker_threshold"] == 3
    assert 0 <= doc["paid_failures"] <= doc["breaker_threshold"]
    assert doc["recovery_s"] is not None and doc["recovery_s"] >= 0


def test_bench_failover_refuses_nonsense_in_one_line() -> None:
    result = CliRunner().invoke(app, ["bench", "failover", "--handoffs", "3"])
    assert result.exit_code == 2
    assert "--handoffs must be >= 10" in result.stderr
