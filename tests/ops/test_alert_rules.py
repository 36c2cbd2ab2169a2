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

import contextlib
import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel

pytest.importorskip(
    "opentelemetry.exporter.prometheus",
    reason="the OpenTelemetry Prometheus exporter is not installed (pip install -e '.[dev]')",
)

from handoffs import Budget, BudgetExceeded, Catalog, Session, Task, checks
from handoffs.handoff import HandoffRecord
from handoffs.health import BreakerSettings, Health
from handoffs.project import breaker_readings, budget_reading
from handoffs.routing import Policy, Rule
from handoffs.testing.scripted import ScriptCall, fail
from handoffs.tracing import Tracing

from ..conftest import Scripts, entry
from .scrape import DASHBOARD, PROMTOOL, RULES, Scrapes, expected, promtool_test

pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus; .ci/run does)"
)

SLOW_S = 1.4
"""How long the slowed-down mid model takes to answer in the incident (a slow provider)."""
JOB = "support-triage"
SMALL_ANSWER = 48
"""Output tokens a task may use: small, so the worst-case reservation fits under the budget."""
CATEGORIES = ("billing", "bug", "account")


class Ticket(BaseModel):
    text: str
    category: str


class Triage(BaseModel):
    category: str


class Fields(BaseModel):
    order: str


def right_category(output: Triage, ticket: Ticket) -> bool:
    return output.category == ticket.category


@dataclass
class Clock:
    """The breakers' clock: one round is one scrape interval."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    """What the scripted models do this round."""

    incident: bool = False
    wrong_cheap: set[int] = field(default_factory=set[int])
    wrong_mid: set[int] = field(default_factory=set[int])


def _ticket_number(call: ScriptCall) -> int:
    found = re.search(r"ticket (\d+)", call.prompt)
    return int(found.group(1)) if found else -1


def _category(call: ScriptCall) -> str:
    found = re.search(r"category=(\w+)", call.prompt)
    return found.group(1) if found else "other"


def scripted_models(world: World) -> Scripts:
    scripts = Scripts()

    def classify(wrong: set[int]) -> Any:
        def answer(call: ScriptCall) -> dict[str, str]:
            right = _category(call)
            return {"category": "other" if _ticket_number(call) in wrong else right}

        return answer

    def cheap(call: ScriptCall) -> dict[str, str]:
        return classify(world.wrong_cheap)(call)

    async def mid(call: ScriptCall) -> dict[str, str]:
        if world.incident:
            await anyio.sleep(SLOW_S)  # the provider is slow: this is its latency, not a wait
        return classify(world.wrong_mid)(call)

    def best(call: ScriptCall) -> Any:
        if world.incident:
            raise fail(503)
        return {"order": "ORD-1"} if "order" in call.prompt else {"category": _category(call)}

    def best_b(call: ScriptCall) -> Any:
        return {"order": "ORD-1"} if "order" in call.prompt else {"category": _category(call)}

    for model, answer in (("cheap", cheap), ("mid", mid), ("best", best), ("best-b", best_b)):
        scripts.on(model, answer)
    return scripts


CATALOG = Catalog(
    [
        entry("cheap", "small", "0.15", "0.60"),
        entry("mid", "mid", "1", "5"),
        entry("best", "frontier", "3", "15", failover=("best-b",)),
        entry("best-b", "frontier", "3", "15"),
    ]
)
POLICY = Policy(
    rules=(
        Rule(kind="classify", ladder=("cheap", "mid", "best")),
        Rule(kind="extract", ladder=("best",)),
    )
)
CHECK = checks.predicate(right_category, name="right_category")


async def one_round(session: Session, classify: int, extract: int) -> None:
    """One scrape interval's traffic; past its budget the job's handoffs are refused, as they
    are in a job (the budget alert is there to come before that)."""
    with contextlib.suppress(BudgetExceeded):
        await _traffic(session, classify, extract)


async def _traffic(session: Session, classify: int, extract: int) -> None:
    for i in range(classify):
        ticket = Ticket(text=f"ticket {i} category={CATEGORIES[i % 3]}", category=CATEGORIES[i % 3])
        await session.delegate(
            Task(
                kind="classify",
                input=ticket,
                output_type=Triage,
                checks=(CHECK,),
                max_output_tokens=SMALL_ANSWER,
            )
        )
    for i in range(extract):
        ticket = Ticket(text=f"ticket {100 + i} order", category="other")
        await session.delegate(
            Task(kind="extract", input=ticket, output_type=Fields, max_output_tokens=SMALL_ANSWER)
        )


def session_for(
    world: World,
    budget: Budget,
    *,
    scrapes: Scrapes | None,
    clock: Clock | None,
    on_record: Callable[[HandoffRecord], None] | None = None,
) -> Session:
    tracing = Tracing(
        tracer_provider=TracerProvider(),
        meter_provider=scrapes.provider if scrapes is not None else None,
    )
    health = Health(
        BreakerSettings(failure_threshold=1, cooldown_s=30, success_threshold=1), clock=clock
    )
    session = Session(
        catalog=CATALOG,
        models=scripted_models(world),
        policy=POLICY,
        budget=budget,
        tracing=tracing,
        health=health,
        on_record=on_record,
    )
    if tracing.metrics is not None:  # what run_job gives the job's gauges
        tracing.metrics.watch_breakers(breaker_readings(session))
        tracing.metrics.watch_budget(budget_reading(JOB, budget))
    return session


# -- the fast run: 2-minute scrapes -------------------------------------------------------------

FAST_INTERVAL_S = 120
HEALTHY_ROUNDS = 35  # scrapes at 0, 2, ..., 68 min
INCIDENT_ROUNDS = 10  # scrapes at 70, ..., 88 min


async def fast_run() -> Scrapes:
    world = World()
    probe = Budget(None)  # one healthy round's cost sets the budget: 70 % of it spent at 68 min
    await one_round(session_for(world, probe, scrapes=None, clock=None), 3, 1)
    budget = Budget(probe.spent_usd * HEALTHY_ROUNDS / Decimal("0.7"), name=f"job {JOB}")
    clock = Clock()
    scrapes = Scrapes("fast")
    session = session_for(world, budget, scrapes=scrapes, clock=clock)
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
    exported = fast.names()
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
    for path, count in ((RULES, 6), (board_rules, len(queries))):
        ran = subprocess.run(
            [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert f"{count} rules found" in ran.stdout


# -- the slow run: 15-minute scrapes --------------------------------------------------------------

SLOW_INTERVAL_S = 900
SLOW_HEALTHY = 29  # 7 hours
SLOW_SHIFTED = 7


async def premium_run() -> Scrapes:
    world = World()
    scrapes = Scrapes("premium")
    session = session_for(world, Budget(None), scrapes=scrapes, clock=Clock())
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
