"""The delegation engine over the wire: real SDKs, both wire formats, provider faults → failover."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Literal

import pytest
from pydantic import BaseModel

from handoffs import Budget, Catalog, Policy, Portfolio, Rule, Session, Task, checks
from handoffs.testing import FakeProvider, FakeRequest, Fault, LoopbackServer, Reply, ScriptedModel

CATALOG = Catalog.from_dict(
    {
        "haiku": {"provider": "anthropic", "name": "claude-haiku-4-5", "tier": "small",
                  "context_window": 200000, "typical_latency_s": 0.5},
        "mini": {"provider": "openai", "name": "gpt-4.1-mini", "tier": "mid",
                 "context_window": 128000, "structured_output": "native", "typical_latency_s": 0.5},
        "sonnet": {"provider": "anthropic", "name": "claude-sonnet-4-6", "tier": "frontier",
                   "context_window": 200000, "prompt_variant": "xml", "typical_latency_s": 0.5},
    }
)  # fmt: skip


class Ticket(BaseModel):
    text: str


class Triage(BaseModel):
    category: Literal["billing", "bug"]


def answer(request: FakeRequest) -> Reply:
    return Reply.json({"category": "billing" if "invoice" in request.last_user_text else "bug"})


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider({m.name: ScriptedModel(answer=answer) for m in CATALOG.values()})


@pytest.fixture
def server(provider: FakeProvider) -> Iterator[LoopbackServer]:
    with LoopbackServer(provider) as srv:
        yield srv


def session(server: LoopbackServer, budget: Budget | None = None) -> tuple[Session, Portfolio]:
    portfolio = Portfolio(CATALOG, env={}, simulated_base_url=server.base_url, timeout_s=5)
    policy = Policy(rules=(Rule(ladder=("haiku", "mini", "sonnet")),))
    return Session(catalog=CATALOG, models=portfolio, policy=policy, budget=budget), portfolio


TASK = dict(kind="classify", input=Ticket(text="my invoice is wrong"), output_type=Triage)


@pytest.mark.parametrize("status", [500, 502, 503, 529, 429])
async def test_a_provider_fault_on_the_anthropic_wire_fails_over_to_the_openai_wire(
    provider: FakeProvider, server: LoopbackServer, status: int
) -> None:
    provider.add("claude-haiku-4-5", ScriptedModel(answer=lambda r: Fault(status=status)))
    s, portfolio = session(server)
    async with portfolio:
        delivery = await s.delegate(Task(**TASK))  # type: ignore[arg-type]
    assert delivery.output == Triage(category="billing")
    assert [(a.model, a.outcome) for a in delivery.attempts] == [
        ("haiku", "provider_error"),
        ("mini", "accepted"),
    ]
    assert str(status) in (delivery.attempts[0].error or "")
    assert delivery.attempts[0].cost_usd == 0  # a failed request is not charged
    served = [(r.model, r.status) for r in provider.requests]
    assert served == [("claude-haiku-4-5", status), ("gpt-4.1-mini", 200)]


async def test_a_stalled_provider_times_out_and_fails_over(
    provider: FakeProvider, server: LoopbackServer
) -> None:
    provider.add("claude-haiku-4-5", ScriptedModel(answer=lambda r: Fault(stall_s=30)))
    s, portfolio = session(server)
    async with portfolio:
        delivery = await s.delegate(Task(**TASK, deadline_s=1.0))  # type: ignore[arg-type]
    assert [a.outcome for a in delivery.attempts] == ["provider_error", "accepted"]


async def test_costs_are_the_tokens_the_provider_reported_at_catalog_prices(
    provider: FakeProvider, server: LoopbackServer
) -> None:
    provider.add(
        "claude-haiku-4-5",
        ScriptedModel(answer=lambda r: Reply(text='{"category": "billing"}', input_tokens=1000,
                                             output_tokens=100)),
    )  # fmt: skip
    budget = Budget("1")
    s, portfolio = session(server, budget)
    async with portfolio:
        delivery = await s.delegate(Task(**TASK))  # type: ignore[arg-type]
    expected = (1000 * Decimal(1) + 100 * Decimal(5)) / 1_000_000  # haiku: $1 / $5 per M
    assert delivery.input_tokens == 1000 and delivery.output_tokens == 100
    assert delivery.cost_usd == expected == budget.spent_usd


async def test_judge_on_the_openai_wire_rejects_and_escalates_to_the_frontier(
    provider: FakeProvider, server: LoopbackServer
) -> None:
    provider.add(
        "claude-haiku-4-5", ScriptedModel(answer=lambda r: Reply.json({"category": "bug"}))
    )

    def grade(request: FakeRequest) -> Reply:
        wrong = '"bug"' in request.last_user_text.split("ANSWER")[-1]
        return Reply.json({"score": 0.1 if wrong else 0.95, "reasons": ["invoices are billing"]})

    provider.add("gpt-4.1-mini", ScriptedModel(answer=grade))
    s, portfolio = session(server)
    s.policy = Policy(rules=(Rule(ladder=("haiku", "sonnet")),))
    async with portfolio:
        delivery = await s.delegate(Task(**TASK, checks=[checks.judge(0.8, model="mini")]))  # type: ignore[arg-type]
    assert delivery.model == "sonnet" and delivery.escalations == 1
    assert [a.outcome for a in delivery.attempts] == ["rejected", "rejected", "accepted"]
    assert "invoices are billing" in delivery.attempts[0].verdicts[-1].reasons
