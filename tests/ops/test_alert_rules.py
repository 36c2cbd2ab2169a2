"""The shipped Prometheus alert rules, tested with Prometheus's own `promtool test rules` against
series from real handoffs runs: a Session with scripted models (the engine, checks, breakers,
budget and metrics are the real ones), its metrics read through the OpenTelemetry Prometheus
exporter once per round, each round standing for one scrape interval.

The fast run is healthy for 70 minutes, then an incident starts: the primary frontier endpoint goes
down (its failover answers), the cheap model's classifications start failing their check, the mid
model slows down, and the job keeps spending towards its budget. Nothing fires during the healthy
part; each alert fires after the incident. The slow run (15-minute scrapes) moves classification
traffic to the frontier tier after 7 healthy hours: the premium-share alert fires then, not before.

Skips without promtool (Debian's `prometheus` package; `.ci/run` installs it) or without the
OpenTelemetry Prometheus exporter (the `dev` extra).
"""

from __future__ import annotations

import json
import re
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

pytest.importorskip(
    "opentelemetry.exporter.prometheus",
    reason="the OpenTelemetry Prometheus exporter is not installed (pip install -e '.[dev]')",
)

from handoffs import Budget
from handoffs.tracing import record_period_change

from .scenario import JOB, Clock, World, one_round, session_for
from .scrape import DASHBOARD, PROMTOOL, RULES, Scrapes, expected, promtool_test

pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus; .ci/run does)"
)

# -- the fast run: 2-minute scrapes -------------------------------------------------------------

FAST_INTERVAL_S = 120
HEALTHY_ROUNDS = 35  # scrapes at 0, 2, ..., 68 min
INCIDENT_ROUNDS = 10  # scrapes at 70, ..., 88 min


async def fast_run() -> Scrapes:
    world = World()
    # one healthy round's cost sets the budget: 60 % of it spent at 68 min, past 80 % at 86 min,
    # and room left all along for the frontier's worst-case reservation (a hard budget refuses a
    # call it could not pay in full: tighter, the failover calls the alerts watch are refused)
    probe = Budget(None)
    await one_round(session_for(world, probe, meters=None, clock=None), 3, 1)
    budget = Budget(probe.spent_usd * HEALTHY_ROUNDS / Decimal("0.6"), name=f"job {JOB}")
    clock = Clock()
    scrapes = Scrapes("fast")
    session = session_for(world, budget, meters=scrapes.provider, clock=clock)
    for n in range(HEALTHY_ROUNDS + INCIDENT_ROUNDS):
        if n == HEALTHY_ROUNDS:
            world.incident, world.wrong_cheap = True, {1}
        await one_round(session, 3, 1)
        scrapes.scrape()
        clock.now += FAST_INTERVAL_S
    return scrapes


ALERTS = (
    "HandoffsErrorRateSpike",
    "HandoffsLatencyP95Degraded",
    "HandoffsBudgetThreshold",
    "HandoffsPrimaryProviderDown",
    "HandoffsVerificationFailureRateUp",
    "HandoffsPremiumShareCreeping",
    "HandoffsPremiumShareUpOverPeriod",
)


def quiet(*minutes: int) -> list[dict[str, Any]]:
    return [
        {"eval_time": f"{m}m", "alertname": a, "exp_alerts": []} for m in minutes for a in ALERTS
    ]


def firing(minute: int, alert: str, **labels: str) -> dict[str, Any]:
    return {
        "eval_time": f"{minute}m",
        "alertname": alert,
        "exp_alerts": [expected(alert, **labels)],
    }


@pytest.fixture(scope="module")
def fast() -> Scrapes:
    return anyio.run(fast_run)


def test_nothing_fires_while_the_run_is_healthy_and_each_alert_fires_in_the_incident(
    fast: Scrapes, tmp_path: Path
) -> None:
    cases = quiet(20, 40, 60, 68)
    cases += [
        firing(80, "HandoffsErrorRateSpike", handoffs_model="best"),
        firing(82, "HandoffsLatencyP95Degraded", handoffs_task_kind="classify"),
        firing(88, "HandoffsBudgetThreshold", handoffs_job_name=JOB),
        firing(
            80,
            "HandoffsPrimaryProviderDown",
            handoffs_model="best",
            gen_ai_provider_name="openai-compatible",
        ),
        firing(
            88,
            "HandoffsVerificationFailureRateUp",
            handoffs_model="cheap",
            handoffs_task_kind="classify",
        ),
        {"eval_time": "88m", "alertname": "HandoffsPremiumShareCreeping", "exp_alerts": []},
    ]
    ran = promtool_test(tmp_path, fast, "2m", cases)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_the_rules_read_only_metrics_a_run_exports(fast: Scrapes) -> None:
    exported = fast.names() | weekly_scrapes().names()
    text = RULES.read_text() + DASHBOARD.read_text()
    used = set(re.findall(r"\b((?:handoffs|gen_ai)_[a-z_]+)\b", text))
    metrics = {n for n in used if not n.startswith(("handoffs_task", "handoffs_model",
        "handoffs_tier", "handoffs_status", "handoffs_job", "handoffs_primary",
        "handoffs_attempt", "handoffs_verification_result", "handoffs_breaker_state",
        "gen_ai_provider", "gen_ai_request"))}  # fmt: skip
    assert metrics and metrics <= exported, metrics - exported


def test_the_incident_checks_fail_against_the_wrong_expectation(
    fast: Scrapes, tmp_path: Path
) -> None:
    """The checks above can fail: expecting silence during the incident does."""
    ran = promtool_test(tmp_path, fast, "2m", quiet(88))
    assert ran.returncode != 0 and "HandoffsPrimaryProviderDown" in ran.stdout + ran.stderr


def test_the_rules_and_the_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    board = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in board["panels"] for t in p["targets"]]
    assert len(queries) >= 12
    # promtool checks PromQL in rule files: the dashboard's queries as recording rules
    recorded = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{i}", "expr": q} for i, q in enumerate(queries)],
            }
        ]
    }
    board_rules = tmp_path / "dashboard.rules.yml"
    board_rules.write_text(yaml.safe_dump(recorded))
    for path, count in ((RULES, 7), (board_rules, len(queries))):
        ran = subprocess.run(
            [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert f"{count} rules found" in ran.stdout


# -- the period report: `handoffs report --since 7d --compare` as gauges, daily scrapes -------------


def report(frontier: float, before: float, cost: str = "1.00") -> dict[str, Any]:
    """A `report_document(..., compare=True)` document with the frontier tier's share of
    classification now and in the period before (the rest delivered locally)."""

    def period(share: float, usd: str) -> dict[str, Any]:
        models = {"frontier": round(share * 100), "local": 100 - round(share * 100)}
        tiers = {"frontier": {"share": share}, "local": {"share": round(1 - share, 4)}}
        return {
            "task_kinds": {"classify": {"handoffs": 100, "models": models}},
            "routes": {"by_tier": tiers},
            "total_cost_usd": usd,
        }

    return {**period(frontier, cost), "previous": period(before, "0.80")}


def weekly_scrapes() -> Scrapes:
    """Four daily scrapes after a report where the premium share barely moved, then three after
    one where it rose by 20 points."""
    scrapes = Scrapes("report")
    record_period_change(report(0.10, 0.08), scrapes.provider)
    for _ in range(4):
        scrapes.scrape()
    record_period_change(report(0.30, 0.10, "1.40"), scrapes.provider)
    for _ in range(3):
        scrapes.scrape()
    return scrapes


def test_premium_share_up_over_the_report_period_fires_from_the_report_that_found_it(
    tmp_path: Path,
) -> None:
    scrapes = weekly_scrapes()
    assert scrapes.samples[-1][
        'handoffs_spend_change{otel_scope_name="handoffs",otel_scope_schema_url="",'
        'otel_scope_version=""}'
    ] == pytest.approx(0.6)
    cases = quiet(0, 24 * 60, 3 * 24 * 60)  # at scrape times: a daily sample is stale 5 min on
    cases.append(firing(4 * 24 * 60, "HandoffsPremiumShareUpOverPeriod", handoffs_tier="frontier"))
    ran = promtool_test(tmp_path, scrapes, "1d", cases)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    wrong = promtool_test(tmp_path, scrapes, "1d", quiet(6 * 24 * 60))
    assert wrong.returncode != 0  # the check can fail


# -- the slow run: 15-minute scrapes --------------------------------------------------------------

SLOW_INTERVAL_S = 900
SLOW_HEALTHY = 29  # 7 hours
SLOW_SHIFTED = 7


async def premium_run() -> Scrapes:
    world = World()
    scrapes = Scrapes("premium")
    session = session_for(world, Budget(None), meters=scrapes.provider, clock=Clock())
    for n in range(SLOW_HEALTHY + SLOW_SHIFTED):
        if n == SLOW_HEALTHY:  # cheap and mid get the same three tickets wrong: frontier answers
            world.wrong_cheap = world.wrong_mid = {0, 1, 2}
        await one_round(session, 4, 0)
        scrapes.scrape()
    return scrapes


def test_premium_share_creeping_up_fires_only_after_traffic_moves_to_the_frontier(
    tmp_path: Path,
) -> None:
    scrapes = anyio.run(premium_run)
    cases = quiet(60, 240, 420)
    cases.append(firing(510, "HandoffsPremiumShareCreeping"))
    ran = promtool_test(tmp_path, scrapes, "15m", cases)
    assert ran.returncode == 0, ran.stdout + ran.stderr
