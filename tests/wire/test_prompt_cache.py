"""Provider prompt caching over the wire: the real SDKs against the fake provider, which reports
cache tokens the way each wire does; the handoff's cost is what those numbers cost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Literal

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from handoffs import Budget, Catalog, Policy, Portfolio, Rule, Session, Task
from handoffs.testing import FakeProvider, FakeRequest, LoopbackServer, Reply, ScriptedModel
from handoffs.tracing import Tracing

_MODELS = {
    "sonnet": {"provider": "anthropic", "name": "claude-sonnet-4-6", "tier": "frontier",
               "context_window": 200000, "prompt_variant": "xml", "typical_latency_s": 0.5},
    "mini": {"provider": "openai", "name": "gpt-4.1-mini", "tier": "mid",
             "context_window": 128000, "structured_output": "native", "typical_latency_s": 0.5},
}  # fmt: skip

RULES = " ".join(
    f"Rule {i}: a ticket that mentions an invoice, a refund, a charge or a plan is billing; "
    "anything that is broken, slow or crashing is a bug."
    for i in range(60)
)
"""Instructions long enough to cache (over 1,024 tokens), the same for every ticket."""


class Ticket(BaseModel):
    text: str


class Triage(BaseModel):
    category: Literal["billing", "bug"]


def answer(request: FakeRequest) -> Reply:
    return Reply.json({"category": "billing" if "invoice" in request.last_user_text else "bug"})


def catalog(*, stream: bool = False) -> Catalog:
    return Catalog.from_dict({k: {**v, "stream": stream} for k, v in _MODELS.items()})


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider(
        {m["name"]: ScriptedModel(answer=answer) for m in _MODELS.values()}  # type: ignore[misc]
    )


@pytest.fixture
def server(provider: FakeProvider) -> Iterator[LoopbackServer]:
    with LoopbackServer(provider) as srv:
        yield srv


def session(
    server: LoopbackServer,
    model: str,
    cat: Catalog,
    *,
    thin: bool = True,
    budget: Budget | None = None,
) -> tuple[Session, Portfolio]:
    portfolio = Portfolio(cat, env={}, simulated_base_url=server.base_url, timeout_s=5)
    policy = Policy(rules=(Rule(ladder=(model,)),))
    made = Session(
        catalog=cat, models=portfolio, policy=policy, budget=budget, tracing=False, thin=thin
    )
    return made, portfolio


def ticket(text: str, **kw: object) -> Task[Triage]:
    return Task(
        kind="classify", input=Ticket(text=text), output_type=Triage, instructions=RULES, **kw
    )  # type: ignore[arg-type]


TICKETS = ["my invoice is wrong", "the app crashes on start", "refund my invoice please"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("thin", [True, False], ids=["thin", "agent"])
async def test_anthropic_reports_a_cache_write_then_reads_and_the_handoff_costs_what_it_reported(
    provider: FakeProvider, server: LoopbackServer, stream: bool, thin: bool
) -> None:
    cat = catalog(stream=stream)
    s, portfolio = session(server, "sonnet", cat, thin=thin)
    async with portfolio:
        deliveries = [await s.delegate(ticket(text)) for text in TICKETS]
    logged = [r for r in provider.requests if r.model == "claude-sonnet-4-6"]
    assert [r.stream for r in logged] == [stream] * 3
    body = logged[0].body or {}
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "5m"}
    # first sight of the prefix: written; then read, the same tokens
    assert logged[0].cache_write_tokens > 1024 and logged[0].cache_read_tokens == 0
    assert [r.cache_read_tokens for r in logged[1:]] == [logged[0].cache_write_tokens] * 2
    assert [r.cache_write_tokens for r in logged[1:]] == [0, 0]
    entry = cat["sonnet"]
    for delivery, wire in zip(deliveries, logged, strict=True):
        attempt = delivery.attempts[0]
        assert wire.input_tokens is not None and wire.output_tokens is not None
        assert attempt.input_tokens == wire.input_tokens  # the whole prompt, cache included
        assert (attempt.cache_read_tokens, attempt.cache_write_tokens) == (
            wire.cache_read_tokens,
            wire.cache_write_tokens,
        )
        # independently: Sonnet 4.6 at $3 input, $0.30 cache read, $3.75 cache write, $15 output
        uncached = wire.input_tokens - wire.cache_read_tokens - wire.cache_write_tokens
        expected = (
            uncached * Decimal(3)
            + wire.cache_read_tokens * Decimal("0.3")
            + wire.cache_write_tokens * Decimal("3.75")
            + wire.output_tokens * Decimal(15)
        ) / 1_000_000
        assert delivery.cost_usd == expected
        full = entry.cost(wire.input_tokens, wire.output_tokens)
        assert delivery.record.prompt_cache_saved_usd == full - expected
    assert deliveries[0].record.prompt_cache_saved_usd < 0  # the write's 1.25x
    assert all(d.cost_usd < entry.cost(d.input_tokens, d.output_tokens) for d in deliveries[1:])
    assert sum(d.record.prompt_cache_saved_usd for d in deliveries) > 0


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_openai_reports_cached_tokens_of_a_long_prefix_seen_before(
    provider: FakeProvider, server: LoopbackServer, stream: bool
) -> None:
    cat = catalog(stream=stream)
    s, portfolio = session(server, "mini", cat)
    async with portfolio:
        deliveries = [await s.delegate(ticket(text)) for text in TICKETS]
    logged = [r for r in provider.requests if r.model == "gpt-4.1-mini"]
    assert [r.stream for r in logged] == [stream] * 3
    assert logged[0].cache_read_tokens == 0
    for wire in logged[1:]:  # 128-token blocks from 1,024 on, part of prompt_tokens
        assert wire.cache_read_tokens >= 1024 and wire.cache_read_tokens % 128 == 0
        assert wire.input_tokens is not None and wire.cache_read_tokens <= wire.input_tokens
    assert "cache_control" not in json.dumps(logged[0].body)  # OpenAI caches by itself
    for delivery, wire in zip(deliveries, logged, strict=True):
        assert wire.input_tokens is not None and wire.output_tokens is not None
        assert delivery.attempts[0].cache_read_tokens == wire.cache_read_tokens
        assert delivery.attempts[0].cache_write_tokens == 0
        # gpt-4.1-mini: $0.40 input, $0.10 cached input, $1.60 output
        expected = (
            (wire.input_tokens - wire.cache_read_tokens) * Decimal("0.4")
            + wire.cache_read_tokens * Decimal("0.1")
            + wire.output_tokens * Decimal("1.6")
        ) / 1_000_000
        assert delivery.cost_usd == expected
    assert deliveries[0].record.prompt_cache_saved_usd == 0
    assert all(d.record.prompt_cache_saved_usd > 0 for d in deliveries[1:])


@pytest.mark.parametrize("thin", [True, False], ids=["thin", "agent"])
async def test_a_task_that_opts_out_sends_no_cache_control_and_reads_nothing(
    provider: FakeProvider, server: LoopbackServer, thin: bool
) -> None:
    cat = catalog()
    s, portfolio = session(server, "sonnet", cat, thin=thin)
    async with portfolio:
        deliveries = [await s.delegate(ticket(t, prompt_cache=False)) for t in TICKETS[:2]]
        # after a call that cached the prefix, an opted-out one still sends no breakpoint
        await s.delegate(ticket(TICKETS[2]))
        deliveries.append(await s.delegate(ticket(TICKETS[0], prompt_cache=False)))
    logged = [r for r in provider.requests if r.model == "claude-sonnet-4-6"]
    assert ["cache_control" in json.dumps(r.body) for r in logged] == [False, False, True, False]
    assert [(r.cache_read_tokens, r.cache_write_tokens > 0) for r in logged] == [
        (0, False),
        (0, False),
        (0, True),
        (0, False),
    ]
    assert all(d.record.cache_read_tokens == d.record.cache_write_tokens == 0 for d in deliveries)
    assert all(
        d.cost_usd == cat["sonnet"].cost(d.input_tokens, d.output_tokens) for d in deliveries
    )


async def test_a_budget_that_cannot_cover_the_cache_write_refuses_rather_than_overspends(
    provider: FakeProvider, server: LoopbackServer
) -> None:
    """Reserved at the cache-write price (1.25x input on Anthropic): a budget that holds the call
    at the plain input price, but not a first call's write, refuses it before it is sent."""
    cat = catalog()
    entry = cat["sonnet"]
    probe = ticket(TICKETS[0])
    from handoffs.engine._prompt import render
    from handoffs.engine._session import _bound  # pyright: ignore[reportPrivateUsage]

    instructions, prompt = render(probe, entry.prompt_variant)
    bound = _bound(probe, instructions, prompt, True)
    plain = entry.cost(bound.input_tokens, bound.output_tokens)
    worst = entry.cost_bound(bound.input_tokens, bound.output_tokens, cached=True)
    assert worst > plain
    budget = Budget(plain)
    s, portfolio = session(server, "sonnet", cat, budget=budget)
    async with portfolio:
        refused = await s.delegate(ticket(TICKETS[0], fallback=Triage(category="bug")))
    assert refused.degraded and refused.record.cause == "budget"
    assert provider.requests == [] and budget.spent_usd == 0
    # with room for the write it is sent, and charged what it reported: never more than reserved
    roomy = Budget(worst)
    s, portfolio = session(server, "sonnet", cat, budget=roomy)
    async with portfolio:
        delivery = await s.delegate(ticket(TICKETS[0]))
    assert delivery.record.cache_write_tokens > 0
    assert roomy.spent_usd == delivery.cost_usd <= worst


async def test_the_handoff_span_carries_the_cache_tokens_and_the_saving(
    provider: FakeProvider, server: LoopbackServer
) -> None:
    exporter = InMemorySpanExporter()
    spans = TracerProvider()
    spans.add_span_processor(SimpleSpanProcessor(exporter))
    cat = catalog()
    portfolio = Portfolio(cat, env={}, simulated_base_url=server.base_url, timeout_s=5)
    s = Session(
        catalog=cat,
        models=portfolio,
        policy=Policy(rules=(Rule(ladder=("sonnet",)),)),
        tracing=Tracing(tracer_provider=spans),
    )
    async with portfolio:
        records = [(await s.delegate(ticket(text))).record for text in TICKETS[:2]]
    handoffs = [x for x in exporter.get_finished_spans() if x.name.startswith("handoff ")]
    assert len(handoffs) == 2
    first, second = (dict(x.attributes or {}) for x in handoffs)
    assert first["gen_ai.usage.cache_creation.input_tokens"] == records[0].cache_write_tokens > 0
    assert first["gen_ai.usage.cache_read.input_tokens"] == 0
    assert second["gen_ai.usage.cache_read.input_tokens"] == records[1].cache_read_tokens > 0
    assert second["handoffs.attempt.cache_read_tokens"] == (records[1].cache_read_tokens,)
    saved = second["handoffs.prompt_cache.saved_usd_decimal"]
    assert Decimal(str(saved)) == records[1].prompt_cache_saved_usd > 0
    # pydantic-ai's own request span says the same, per request
    chats = [x for x in exporter.get_finished_spans() if x.name.startswith("chat ")]
    assert [
        dict(x.attributes or {}).get("gen_ai.usage.cache_read.input_tokens") for x in chats
    ] == [
        None,
        records[1].cache_read_tokens,
    ]
