"""The scenario the alert tests run: a Session with scripted models on a small catalog (a cheap,
a mid and a frontier model whose primary has a failover), one round of traffic per scrape
interval, and a `World` that turns the incident on: the primary frontier endpoint down, the cheap
model's classifications failing their check, the mid model slow."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel

from handoffs import Budget, BudgetExceeded, Catalog, Session, Task, checks
from handoffs.handoff import HandoffRecord
from handoffs.health import BreakerSettings, Health
from handoffs.project import breaker_readings, budget_reading
from handoffs.routing import Policy, Rule
from handoffs.testing.scripted import ScriptCall, fail
from handoffs.tracing import Tracing

from ..conftest import Scripts, entry

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
    meters: MeterProvider | None,
    clock: Clock | None,
    on_record: Callable[[HandoffRecord], None] | None = None,
) -> Session:
    tracing = Tracing(
        tracer_provider=TracerProvider(),
        meter_provider=meters,
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
