"""The batch lane in process (`BatchLane` around `run_here`): batch-urgent tasks answered by the
fake provider's batch APIs (Anthropic Message Batches; OpenAI's Batch API of Responses requests)
through the real SDKs, at the batch price; failures escalate by the ordinary route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import anyio
import pytest
from pydantic import BaseModel

from handoffs import Session, Task, checks
from handoffs.catalog import Catalog, ModelEntry
from handoffs.engine import run_here
from handoffs.jobs import BatchLane, PendingBatch
from handoffs.providers import Portfolio
from handoffs.testing import FakeProvider, Fault, LoopbackServer, Reply, ScriptedModel


class Draft(BaseModel):
    body: str


def _entry(
    model_id: str, name: str, tier: str, base_url: str, wire: str, **extra: object
) -> ModelEntry:
    return ModelEntry(
        id=model_id,
        provider=wire,  # type: ignore[arg-type]
        name=name,
        tier=tier,  # type: ignore[arg-type]
        input_usd_per_mtok=Decimal("1"),
        output_usd_per_mtok=Decimal("5"),
        context_window=200_000,
        base_url=base_url if wire == "anthropic" else f"{base_url}/v1",
        api_key_env="HANDOFFS_TEST_KEY",
        structured_output="tool" if wire == "anthropic" else "native",
        **extra,  # type: ignore[arg-type]
    )


class World:
    def __init__(self, fake: FakeProvider, base_url: str, wire: str) -> None:
        self.fake = fake
        self.catalog = Catalog(
            [
                _entry("mid", "claude-haiku-4-5", "mid", base_url, wire),
                _entry("frontier", "claude-sonnet-4-6", "frontier", base_url, wire),
            ]
        )
        self.portfolio = Portfolio(self.catalog, env={"HANDOFFS_TEST_KEY": "test"})
        self.pending: list[PendingBatch] = []

    def session(self, **lane: object) -> Session:
        runner = BatchLane(
            run_here,
            self.portfolio.batch_model,
            poll_s=0.001,
            on_pending=self.pending.append,
            **lane,  # type: ignore[arg-type]
        )
        return Session(catalog=self.catalog, models=self.portfolio, runner=runner, tracing=False)

    def live(self, model: str) -> int:
        """Ordinary (non-batch) requests the fake answered for `model`."""
        return sum(1 for r in self.fake.requests if r.model == model)


def _answer(body: str) -> Reply:
    return Reply.json({"body": body})


@pytest.fixture(params=["anthropic", "openai"])
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    fake = FakeProvider(
        {
            "claude-haiku-4-5": ScriptedModel(
                answer=lambda r: _answer(f"Hi, {r.last_user_text[-8:]}")
            ),
            "claude-sonnet-4-6": ScriptedModel(answer=lambda r: _answer("Hi from the frontier")),
        }
    )
    with LoopbackServer(fake) as server:
        made = World(fake, server.base_url, request.param)
        async with made.portfolio:
            yield made


def _task(n: int, **extra: object) -> Task[Draft]:
    return Task(
        kind="draft",
        input={"ticket": f"T-{n:03d}"},
        output_type=Draft,
        instructions="Draft a reply.",
        urgency="batch",
        max_output_tokens=100,
        **extra,  # type: ignore[arg-type]
    )


async def _all(session: Session, tasks: list[Task[Draft]]) -> list[Draft]:
    out: dict[int, Draft] = {}

    async def one(i: int, task: Task[Draft]) -> None:
        out[i] = (await session.delegate(task)).output

    async with anyio.create_task_group() as group:
        for i, task in enumerate(tasks):
            group.start_soon(one, i, task)
    return [out[i] for i in range(len(tasks))]


async def test_a_fan_out_goes_in_one_batch_at_the_batch_price(world: World) -> None:
    world.fake.batches.polls = 3
    session = world.session()
    drafts = await _all(session, [_task(n) for n in range(4)])
    assert all(d.body.startswith("Hi") for d in drafts)
    assert len(world.fake.batches.created) == 1
    (batch,) = world.fake.batches.created
    assert len(batch.items) == 4 and batch.polls == 3
    assert world.live("claude-haiku-4-5") == 0  # nothing went the ordinary way
    (pending,) = world.pending
    assert pending.batch_id == batch.id and len(pending.labels) == 4
    for record in session.records:
        (attempt,) = record.attempts
        assert attempt.lane == "batch" and attempt.batch_id == batch.id
        full = session.catalog["mid"].cost(attempt.input_tokens, attempt.output_tokens)
        assert attempt.cost_usd == full / 2 and attempt.saved_usd == full / 2
        assert record.batch_saved_usd == full / 2
    assert session.budget.spent_usd == sum(r.cost_usd for r in session.records)
    assert session.budget.reserved_usd == 0


async def test_an_answer_failing_its_checks_escalates_by_the_ordinary_route(world: World) -> None:
    session = world.session()
    task = _task(
        1,
        checks=[checks.predicate(lambda d: "frontier" in d.body, name="frontier")],
        feedback_retries=0,
    )
    delivery = await session.delegate(task)
    assert delivery.output.body == "Hi from the frontier"
    # the whole ordinary route: the batch's model called as usual, then the next rung
    made = [(a.lane, a.outcome, a.model) for a in delivery.record.attempts]
    assert made == [
        ("batch", "rejected", "mid"),
        ("now", "rejected", "mid"),
        ("now", "accepted", "frontier"),
    ]
    assert delivery.record.batch_id == world.fake.batches.created[0].id
    assert world.live("claude-sonnet-4-6") == 1


@pytest.mark.parametrize("how", ["expired", "errored"])
async def test_an_expired_or_errored_request_escalates(world: World, how: str) -> None:
    if how == "expired":
        world.fake.batches.expire = True
    else:
        world.fake.add(
            "claude-haiku-4-5",
            ScriptedModel(
                answer=lambda r: Fault.http(529) if "T-002" in r.last_user_text else _answer("Hi")
            ),
        )
    session = world.session()
    await _all(session, [_task(1), _task(2)])
    by_ticket = {r.label or "": r for r in session.records}
    records = sorted(session.records, key=lambda r: r.attempts[0].outcome)
    failed = [r for r in records if r.attempts[0].outcome == "provider_error"]
    assert len(failed) == (2 if how == "expired" else 1)
    for record in failed:
        first = record.attempts[0]
        assert first.lane == "batch" and first.cost_usd == 0 and how in (first.error or "")
        assert record.status == "delivered" and record.attempts[-1].lane == "now"
    assert len(world.fake.batches.created) == 1
    del by_ticket


async def test_a_deadline_shorter_than_the_batch_window_takes_the_ordinary_route(
    world: World,
) -> None:
    session = world.session()
    delivery = await session.delegate(_task(1, deadline_s=60.0))
    assert delivery.record.attempts[0].lane == "now"
    assert world.fake.batches.created == [] and world.pending == []


async def test_kinds_listed_by_the_job_are_batched_and_others_are_not(world: World) -> None:
    session = world.session(kinds=frozenset({"draft"}))
    plain = Task(kind="draft", input={"ticket": "T-009"}, output_type=Draft)
    other = Task(kind="classify", input={"ticket": "T-009"}, output_type=Draft)
    assert (await session.delegate(plain)).record.attempts[0].lane == "batch"
    assert (await session.delegate(other)).record.attempts[0].lane == "now"


async def test_the_job_summary_and_table_show_the_batch_and_what_it_saved(world: World) -> None:
    from rich.console import Console

    from handoffs.cli._render import job_summary, job_table
    from handoffs.project import JobReport

    session = world.session()
    await _all(session, [_task(n) for n in range(2)])
    records = list(session.records)
    (batch,) = world.fake.batches.created
    saved = sum((r.batch_saved_usd for r in records), Decimal(0))
    assert saved > 0
    report = JobReport(
        job_id="j1",
        job="demo",
        status="completed",
        models={},
        handoffs=records,
        orchestrator_cost_usd=Decimal(0),
        total_cost_usd=sum((r.cost_usd for r in records), Decimal(0)),
        repriced_frontier_cost_usd=Decimal(0),
        escalations=0,
        degraded=0,
        batched=2,
        batch_ids=[batch.id],
        batch_saved_usd=saved,
    )
    summary = job_summary(report)
    assert f"batch lane: 2 handoffs in 1 provider batch ({batch.id})" in summary
    assert "0 escalated" in summary and f"saved: ${saved:.6f}" in summary
    console = Console(width=300, record=True)
    console.print(job_table(report))
    assert console.export_text().count(f"batch {batch.id}") == 2


def test_batch_prices_default_by_provider_and_can_be_set() -> None:
    from handoffs.errors import ConfigError

    tables = {
        "a": {"provider": "anthropic", "name": "claude-haiku-4-5", "tier": "mid"},
        "o": {"provider": "openai", "name": "gpt-4.1-mini", "tier": "mid"},
        "s": {"provider": "openai-compatible", "base_url": "http://h/v1", "tier": "local"},
        "c": {"provider": "anthropic", "tier": "mid", "batch_discount": "0.4"},
    }
    prices = {"input_usd_per_mtok": "1", "output_usd_per_mtok": "2", "context_window": 1000}
    catalog = Catalog.from_dict({k: {**v, **prices} for k, v in tables.items()})
    assert [catalog[m].batch_factor for m in "aosc"] == [
        Decimal("0.5"),
        Decimal("0.5"),
        None,
        Decimal("0.6"),
    ]
    assert catalog["a"].batch_cost(1_000_000, 0) == Decimal("0.5")
    assert catalog["s"].batch_cost(1_000_000, 0) == Decimal("1")  # no batch API: full price
    with pytest.raises(ConfigError, match="batch_discount"):
        _entry("x", "x", "mid", "http://h", "anthropic", batch_discount=Decimal(1))


async def test_a_first_rung_without_a_batch_api_takes_the_ordinary_route() -> None:
    from handoffs.engine import plan_batch

    local = ModelEntry(
        id="s",
        provider="openai-compatible",
        name="s",
        tier="local",
        input_usd_per_mtok=Decimal(0),
        output_usd_per_mtok=Decimal(0),
        context_window=1000,
        base_url="http://h/v1",
    )
    why = await plan_batch(_task(1), [[local]], lambda entry: None)
    assert why == "no model on the first rung has a batch API"
