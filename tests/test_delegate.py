"""The delegation engine: delivery, feedback retry, escalation, failover, degraded results, budgets."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import anyio
import anyio.lowlevel
import pytest
from pydantic import BaseModel

from handoffs import checks
from handoffs.budget import Budget
from handoffs.catalog import Catalog
from handoffs.engine import RetryPolicy, Session
from handoffs.errors import BudgetExceeded, HandoffFailed, NoRouteAvailable, VerificationFailed
from handoffs.routing import Policy, Rule
from handoffs.task import Task
from handoffs.testing.scripted import fail

from .conftest import Scripts


class Ticket(BaseModel):
    text: str


class Triage(BaseModel):
    category: Literal["billing", "bug", "other"]
    urgent: bool


LADDER = Policy(rules=(Rule(kind="classify", ladder=("tiny", "cheap", "best")),))


def session(catalog: Catalog, scripts: Scripts, **kw: object) -> Session:
    return Session(catalog=catalog, models=scripts, policy=LADDER, **kw)  # type: ignore[arg-type]


def classify(**kw: object) -> Task[Triage]:
    return Task(kind="classify", input=Ticket(text="my invoice is wrong"), output_type=Triage, **kw)  # type: ignore[arg-type]


async def test_cheapest_rung_delivers_when_checks_pass(catalog: Catalog, scripts: Scripts) -> None:
    scripts.on("tiny", lambda c: {"category": "billing", "urgent": False})
    delivery = await session(catalog, scripts).delegate(classify())
    assert delivery.output == Triage(category="billing", urgent=False)
    assert delivery.model == "tiny" and delivery.tier == "local"
    assert [a.outcome for a in delivery.attempts] == ["accepted"]
    assert delivery.cost_usd > 0 and delivery.input_tokens > 0
    assert delivery.verdicts[0].check == "schema" and delivery.verdicts[0].passed
    assert not delivery.degraded and delivery.escalations == 0


async def test_failed_check_retries_with_feedback_then_escalates(
    catalog: Catalog, scripts: Scripts
) -> None:
    scripts.on("tiny", lambda c: {"category": "other", "urgent": False})
    scripts.on("cheap", lambda c: {"category": "billing", "urgent": False})
    is_billing = checks.predicate(
        lambda t: t.category == "billing", name="billing", feedback="invoices are billing"
    )
    delivery = await session(catalog, scripts).delegate(classify(checks=[is_billing]))
    assert delivery.model == "cheap"
    assert [(a.model, a.outcome, a.feedback) for a in delivery.attempts] == [
        ("tiny", "rejected", False),
        ("tiny", "rejected", True),
        ("cheap", "accepted", False),
    ]
    assert delivery.escalations == 1
    retry_prompt = scripts.calls["tiny"][1].prompt
    assert "invoices are billing" in retry_prompt and '"other"' in retry_prompt


async def test_feedback_retry_can_succeed_on_same_model(catalog: Catalog, scripts: Scripts) -> None:
    scripts.on(
        "tiny",
        lambda c: {"category": "billing" if "rejected" in c.prompt else "bug", "urgent": False},
    )
    is_billing = checks.predicate(lambda t: t.category == "billing", name="billing")
    delivery = await session(catalog, scripts).delegate(classify(checks=[is_billing]))
    assert delivery.model == "tiny" and len(delivery.attempts) == 2 and delivery.escalations == 0


async def test_provider_error_fails_over_without_feedback_retry(
    catalog: Catalog, scripts: Scripts
) -> None:
    def down(c: object) -> object:
        raise fail(503, "tiny")

    scripts.on("tiny", down)
    scripts.on("cheap", lambda c: {"category": "billing", "urgent": True})
    delivery = await session(catalog, scripts).delegate(classify())
    assert delivery.model == "cheap"
    assert [a.outcome for a in delivery.attempts] == ["provider_error", "accepted"]
    assert "503" in (delivery.attempts[0].error or "")
    assert delivery.escalations == 0  # failover is not escalation


async def test_invalid_output_is_retried_with_the_validation_error(
    catalog: Catalog, scripts: Scripts
) -> None:
    scripts.on(
        "tiny",
        lambda c: (
            {"category": "billing", "urgent": False}
            if c.number > 1
            else {"category": "refund", "urgent": "maybe"}
        ),
    )
    delivery = await session(catalog, scripts).delegate(classify())
    assert [a.outcome for a in delivery.attempts] == ["invalid_output", "accepted"]
    assert "did not validate" in scripts.calls["tiny"][1].prompt


async def test_every_rung_rejected_degrades_to_declared_fallback(
    catalog: Catalog, scripts: Scripts
) -> None:
    for model in ("tiny", "cheap", "best"):
        scripts.on(model, lambda c: {"category": "other", "urgent": False})
    never = checks.predicate(lambda t: False, name="never")
    fallback = Triage(category="other", urgent=True)
    s = session(catalog, scripts)
    delivery = await s.delegate(classify(checks=[never], fallback=fallback))
    assert delivery.degraded and delivery.output == fallback
    assert delivery.record.status == "degraded" and delivery.model is None
    assert len(delivery.attempts) == 6 and delivery.escalations == 2
    assert s.records[-1].degraded


async def test_every_rung_rejected_without_fallback_raises(
    catalog: Catalog, scripts: Scripts
) -> None:
    for model in ("tiny", "cheap", "best"):
        scripts.on(model, lambda c: {"category": "other", "urgent": False})
    never = checks.predicate(lambda t: False, name="never")
    s = session(catalog, scripts)
    with pytest.raises(VerificationFailed) as info:
        await s.delegate(classify(checks=[never]))
    assert len(info.value.attempts) == 6 and info.value.verdicts
    assert s.records[-1].status == "failed"


async def test_all_providers_down_raises_handoff_failed(catalog: Catalog, scripts: Scripts) -> None:
    def down(c: object) -> object:
        raise fail(502)

    for model in ("tiny", "cheap", "best"):
        scripts.on(model, down)
    with pytest.raises(HandoffFailed) as info:
        await session(catalog, scripts, retry=RetryPolicy(sweeps=1)).delegate(classify())
    assert [a.outcome for a in info.value.attempts] == ["provider_error"] * 3
    assert {a.fault for a in info.value.attempts} == {"unavailable"}


async def test_budget_refuses_before_the_call(catalog: Catalog, scripts: Scripts) -> None:
    scripts.on("tiny", lambda c: {"category": "billing", "urgent": False})
    with pytest.raises(BudgetExceeded):
        await session(catalog, scripts, budget=Budget("0.0000001")).delegate(classify())
    assert "tiny" not in scripts.calls


async def test_cost_ceiling_drops_expensive_rungs(catalog: Catalog, scripts: Scripts) -> None:
    scripts.on("tiny", lambda c: {"category": "bug", "urgent": False})
    never = checks.predicate(lambda t: False, name="never")
    s = session(catalog, scripts)
    task = classify(checks=[never], max_cost_usd=Decimal("0.0001"), fallback=None)
    decision = s.route(task)
    assert decision.ladder == ("tiny",)
    delivery = await s.delegate(task)
    assert delivery.degraded and delivery.cost_usd <= Decimal("0.0001")


async def test_no_route_raises_with_reasons(catalog: Catalog, scripts: Scripts) -> None:
    task = classify(max_cost_usd=Decimal("0"))
    with pytest.raises(NoRouteAvailable) as info:
        await session(catalog, scripts).delegate(task)
    assert all("ceiling" in r for r in info.value.reasons)


async def test_default_judge_is_the_cheapest_model_of_a_stronger_tier_and_is_charged(
    catalog: Catalog, scripts: Scripts
) -> None:
    scripts.on("tiny", lambda c: {"category": "billing", "urgent": False})
    scripts.on("cheap", lambda c: {"score": 0.9, "reasons": ["correct"]})
    delivery = await session(catalog, scripts).delegate(classify(checks=[checks.judge(0.8)]))
    judge = delivery.verdicts[-1]
    assert judge.check == "judge" and judge.model == "cheap" and judge.score == 0.9
    assert judge.cost_usd > 0
    assert delivery.cost_usd == delivery.attempts[0].cost_usd > judge.cost_usd
    assert "ANSWER" in scripts.calls["cheap"][0].prompt


async def test_judge_never_grades_its_own_answer(catalog: Catalog, scripts: Scripts) -> None:
    scripts.on("best", lambda c: {"category": "billing", "urgent": False})
    scripts.on("middle", lambda c: {"score": 1.0, "reasons": []})
    task = classify(checks=[checks.judge(0.8, model="best")], model="best")
    delivery = await session(catalog, scripts).delegate(task)
    assert delivery.model == "best" and delivery.verdicts[-1].model == "middle"


async def test_low_judge_score_escalates(catalog: Catalog, scripts: Scripts) -> None:
    scripts.on("tiny", lambda c: {"category": "bug", "urgent": False})
    scripts.on("cheap", lambda c: {"category": "billing", "urgent": False})
    scripts.on(
        "best",
        lambda c: {
            "score": 0.9 if '"billing"' in c.prompt.split("ANSWER")[1] else 0.2,
            "reasons": ["check the category"],
        },
    )
    judge = checks.judge(0.8, model="best")
    delivery = await session(catalog, scripts).delegate(classify(checks=[judge]))
    assert delivery.model == "cheap" and delivery.escalations == 1


async def test_agreement_needs_a_second_model_to_match(catalog: Catalog, scripts: Scripts) -> None:
    scripts.on("cheap", lambda c: {"category": "billing", "urgent": False})
    scripts.on("tiny", lambda c: {"category": "billing", "urgent": True})
    agree = checks.agreement(model="tiny", key=lambda t: t.category)
    task = classify(checks=[agree], model="cheap")
    delivery = await session(catalog, scripts).delegate(task)
    assert delivery.model == "cheap" and delivery.verdicts[-1].passed


async def test_concurrent_handoffs_never_overspend_the_job_budget(
    catalog: Catalog, scripts: Scripts
) -> None:
    scripts.on("tiny", lambda c: {"category": "billing", "urgent": False})
    budget = Budget("0.0001")
    s = session(catalog, scripts, budget=budget)
    outcomes: list[str] = []

    async def one() -> None:
        try:
            await s.delegate(classify(fallback=Triage(category="other", urgent=False)))
            outcomes.append(s.records[-1].status)
        except BudgetExceeded:
            outcomes.append("refused")

    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(one)
    assert budget.spent_usd <= Decimal("0.0001")
    assert budget.reserved_usd == 0
    assert "delivered" in outcomes and "degraded" in outcomes


async def test_input_failing_its_schema_is_refused_before_any_call(
    catalog: Catalog, scripts: Scripts
) -> None:
    from handoffs.errors import ConfigError

    unvalidated = Ticket.model_construct(text=123)  # built without validation: breaks the schema
    task = Task(kind="classify", input=unvalidated, output_type=Triage)
    with pytest.raises(ConfigError):
        await session(catalog, scripts).delegate(task)


async def test_judge_below_tier_trusts_stronger_answers_and_says_so(
    catalog: Catalog, scripts: Scripts
) -> None:
    scripts.on("tiny", lambda c: {"category": "bug", "urgent": False})
    scripts.on("cheap", lambda c: {"category": "billing", "urgent": False})
    scripts.on("middle", lambda c: {"score": 0.1, "reasons": ["wrong category"]})
    judge = checks.judge(0.8, model="middle", below_tier="small")
    delivery = await session(catalog, scripts).delegate(classify(checks=[judge]))
    assert delivery.model == "cheap"  # tiny was judged and rejected; cheap is trusted
    assert [a.verdicts[-1].passed for a in delivery.attempts] == [False, False, True]
    assert "not judged" in delivery.verdicts[-1].reasons[0]
    assert len(scripts.calls["middle"]) == 2


async def test_max_concurrency_queues_calls_in_process(catalog: Catalog, scripts: Scripts) -> None:
    from dataclasses import replace

    limited = Catalog(
        [replace(e, max_concurrency=1) if e.id == "tiny" else e for e in catalog.values()]
    )
    in_flight = peak = 0

    async def answer(c: object) -> dict[str, object]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.lowlevel.checkpoint()
        in_flight -= 1
        return {"category": "bug", "urgent": False}

    scripts.on("tiny", answer)
    s = session(limited, scripts)
    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(s.delegate, classify())
    assert len(s.records) == 5 and peak == 1
