"""The fault matrix: every fault of the fake provider x {Anthropic, OpenAI wire} x {plain, stream},
through the engine over real loopback sockets and the real SDKs.

The primary speaks one wire and fails over, on the same rung, to an equivalent on the other wire.
Each case pins what the handoff does: completes on another provider, or returns its degraded
fallback, or stops with a clear error; never loses the task; charges each real call once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from handoffs import Catalog, Policy, Portfolio, Rule, Session, Task
from handoffs.engine import RetryPolicy
from handoffs.errors import ProviderRejected
from handoffs.health import BreakerSettings, Health, Prober
from handoffs.testing import FakeProvider, FakeRequest, Fault, LoopbackServer, Reply, ScriptedModel

Wire = Literal["anthropic", "openai"]
NAMES: dict[Wire, str] = {"anthropic": "claude-sonnet-4-6", "openai": "gpt-4o"}


def catalog(primary: Wire, *, stream: bool) -> Catalog:
    other: Wire = "openai" if primary == "anthropic" else "anthropic"

    def spec(wire: Wire, **kw: Any) -> dict[str, Any]:
        return {"provider": wire, "name": NAMES[wire], "tier": "frontier", "stream": stream,
                "context_window": 128000, "typical_latency_s": 0.1, **kw}  # fmt: skip

    return Catalog.from_dict(
        {
            "primary": spec(primary, failover=["secondary"], prompt_variant="xml"),
            "secondary": spec(other),
            "roomy": {"provider": "openai", "name": "gpt-4.1", "tier": "frontier",
                      "context_window": 1000000, "stream": stream, "typical_latency_s": 0.1},
        }
    )  # fmt: skip


class Ticket(BaseModel):
    text: str


class Triage(BaseModel):
    category: Literal["billing", "bug"]


FALLBACK = Triage(category="bug")


def answer(request: FakeRequest) -> Reply:
    return Reply.json({"category": "billing"})


@pytest.fixture
def provider() -> FakeProvider:
    names = [*NAMES.values(), "gpt-4.1"]
    return FakeProvider({name: ScriptedModel(answer=answer) for name in names})


@pytest.fixture
def server(provider: FakeProvider) -> Iterator[LoopbackServer]:
    with LoopbackServer(provider) as srv:
        yield srv


# Timeouts well under the stalls' 3 s, and roomy enough that a loaded machine (CI beside other
# work) does not turn a slow first event into a timeout: a content filter read as "unavailable".
FAST = RetryPolicy(
    request_timeout_s=1.5, first_event_timeout_s=1.0, max_retry_after_s=1.0, sweeps=1
)


def session(
    server: LoopbackServer, cat: Catalog, health: Health | None = None
) -> tuple[Session, Portfolio]:
    portfolio = Portfolio(cat, env={}, simulated_base_url=server.base_url, timeout_s=5)
    policy = Policy(rules=(Rule(ladder=("primary",)),))
    s = Session(catalog=cat, models=portfolio, policy=policy, retry=FAST, health=health)
    return s, portfolio


def task(**kw: Any) -> Task[Triage]:
    return Task(kind="classify", input=Ticket(text="my invoice"), output_type=Triage, **kw)


Expect = Literal["secondary", "roomy", "degraded", "rejected"]

# fault, expected end, the attempt's fault kind on the primary (None: an invalid answer;
# "corrupt": a body cut short or garbled: an invalid answer where the partial text reaches output
# validation, a provider fault where the SDK's parse fails first; either way the partial answer is
# never delivered and the equivalent on the other wire answers)
CASES: list[tuple[str, Callable[[], Fault], Expect, str | None]] = [
    ("500", lambda: Fault.http(500), "secondary", "unavailable"),
    ("502-html", lambda: Fault.http(502, html=True), "secondary", "unavailable"),
    ("503", lambda: Fault.http(503), "secondary", "unavailable"),
    ("529", lambda: Fault.http(529), "secondary", "unavailable"),
    ("429-too-long", lambda: Fault.http(429, retry_after_s=30), "secondary", "rate_limited"),
    ("refused", lambda: Fault.refuse(), "secondary", "unavailable"),
    ("reset", lambda: Fault.refuse(cut="reset"), "secondary", "unavailable"),
    ("stall", lambda: Fault.stall(3.0), "secondary", "unavailable"),
    ("stall-mid-stream", lambda: Fault.stall_mid_stream(3.0), "secondary", "unavailable"),
    ("truncate", lambda: Fault.truncate(), "secondary", "unavailable"),
    ("truncate-at-end", lambda: Fault.truncate(cut="end"), "secondary", "corrupt"),
    ("malformed", lambda: Fault.malformed(), "secondary", "corrupt"),
    ("stream-error", lambda: Fault.stream_error(529), "secondary", "unavailable"),
    ("empty", lambda: Fault.empty(), "secondary", None),
    ("off-schema", lambda: Fault.off_schema(), "secondary", None),
    ("context-length", lambda: Fault.context_length(), "roomy", "context_length"),
    ("content-filter", lambda: Fault.content_filter(), "degraded", "content_filter"),
    ("400", lambda: Fault.http(400), "rejected", "rejected"),
    ("401", lambda: Fault.http(401), "rejected", "rejected"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("wire", ["anthropic", "openai"])
@pytest.mark.parametrize(("name", "make", "expect", "kind"), CASES, ids=[c[0] for c in CASES])
async def test_fault_matrix(
    provider: FakeProvider,
    server: LoopbackServer,
    wire: Wire,
    stream: bool,
    name: str,
    make: Callable[[], Fault],
    expect: Expect,
    kind: str | None,
) -> None:
    cat = catalog(wire, stream=stream)
    fault = make()
    provider.add(NAMES[wire], ScriptedModel(answer=lambda r: fault))
    s, portfolio = session(server, cat)
    async with portfolio:
        if expect == "rejected":
            with pytest.raises(ProviderRejected) as info:
                await s.delegate(task(fallback=FALLBACK))
            assert info.value.model == "primary" and NAMES[wire] in str(info.value)
            assert [r.model for r in provider.requests] == [NAMES[wire]]  # no retry
            assert s.records[-1].status == "failed"
            return
        delivery = await s.delegate(task(fallback=FALLBACK))
    assert len(s.records) == 1  # nothing lost, nothing recorded twice
    attempts = delivery.attempts
    assert attempts[0].model == "primary"
    if kind == "corrupt":
        assert (attempts[0].outcome, attempts[0].fault) in (
            ("invalid_output", None),
            ("provider_error", "unavailable"),
        )
    elif kind is None:
        assert attempts[0].outcome == "invalid_output"
    else:
        assert attempts[0].fault == kind
    if expect == "degraded":
        assert delivery.degraded and delivery.output == FALLBACK
        assert delivery.record.cause == kind
    else:
        assert delivery.model == expect and not delivery.degraded
        assert delivery.output == Triage(category="billing")
        assert delivery.escalations == 0
    # each attempt made exactly one request; the delivered one is charged what the provider reported
    calls = [a for a in attempts if a.outcome != "refused"]
    assert len(provider.requests) == len(calls)
    assert delivery.cost_usd == sum((a.cost_usd for a in attempts), Decimal(0))
    if not delivery.degraded:
        served = provider.requests[-1]
        entry = cat[expect]
        assert served.status == 200 and served.model == entry.name
        assert attempts[-1].cost_usd == entry.cost(
            served.input_tokens or 0, served.output_tokens or 0
        )


async def test_a_429_that_fits_the_deadline_is_waited_out_once_no_equivalent_is_left(
    provider: FakeProvider, server: LoopbackServer
) -> None:
    for wire in ("anthropic", "openai"):
        other: Wire = "openai" if wire == "anthropic" else "anthropic"
        provider.requests.clear()
        answers = iter([Fault.http(429, retry_after_s=0.05), Reply.json({"category": "billing"})])
        provider.add(NAMES[wire], ScriptedModel(answer=lambda r, a=answers: next(a)))
        provider.add(NAMES[other], ScriptedModel(answer=lambda r: Fault.http(503)))
        s, portfolio = session(server, catalog(wire, stream=False))
        async with portfolio:
            delivery = await s.delegate(task())
        assert delivery.model == "primary"
        assert [(r.model, r.status) for r in provider.requests] == [
            (NAMES[wire], 429),
            (NAMES[other], 503),  # the equivalent first: no wait while one is left
            (NAMES[wire], 200),
        ]


async def test_a_persistent_429_goes_to_the_healthy_equivalent_on_both_wires(
    provider: FakeProvider, server: LoopbackServer
) -> None:
    for wire in ("anthropic", "openai"):
        other: Wire = "openai" if wire == "anthropic" else "anthropic"
        provider.requests.clear()
        provider.add(NAMES[wire], ScriptedModel(answer=lambda r: Fault.http(429, retry_after_s=0)))
        provider.add(NAMES[other], ScriptedModel(answer=answer))
        s, portfolio = session(server, catalog(wire, stream=False))
        async with portfolio:
            delivery = await s.delegate(task())
        assert delivery.model == "secondary"
        assert [r.status for r in provider.requests] == [429, 200]


async def test_an_outage_window_is_routed_around_and_the_primary_comes_back(
    provider: FakeProvider, server: LoopbackServer
) -> None:
    now = [0.0]
    health = Health(
        BreakerSettings(failure_threshold=3, cooldown_s=10, success_threshold=2),
        clock=lambda: now[0],
    )
    cat = catalog("anthropic", stream=False)
    outage = provider.outage(NAMES["anthropic"]).start()
    s, portfolio = session(server, cat, health)
    async with portfolio:
        during = [(await s.delegate(task())).model for _ in range(8)]
        primary_calls = [r for r in provider.requests if r.model == NAMES["anthropic"]]
        assert len(primary_calls) == 3  # only the breaker's threshold paid for the outage
        assert during == ["secondary"] * 8
        assert s.breaker(cat["primary"]).state == "open"
        reasons = {st.model: st.reason for st in s.route(task()).steps}
        assert reasons["primary"].startswith("unavailable: circuit open")

        outage.end()
        now[0] += 10  # the cooldown passes: half-open
        after = [(await s.delegate(task())).model for _ in range(3)]
    assert after == ["primary"] * 3
    assert s.breaker(cat["primary"]).state == "closed"


async def test_the_prober_takes_a_dead_endpoint_out_and_brings_it_back(
    provider: FakeProvider, server: LoopbackServer
) -> None:
    now = [0.0]
    health = Health(
        BreakerSettings(failure_threshold=2, cooldown_s=5, success_threshold=2),
        clock=lambda: now[0],
    )
    cat = catalog("openai", stream=False)
    s, portfolio = session(server, cat, health)
    prober = Prober(s, model_ids=["primary", "secondary"], timeout_s=2)
    breaker = s.breaker(cat["primary"])
    async with portfolio:
        with provider.outage(NAMES["openai"]):
            for _ in range(2):
                results = {r.model: r.ok for r in await prober.probe_once()}
                assert results == {"primary": False, "secondary": True}
            assert breaker.state == "open"  # out of rotation before any user request failed
            assert all(
                r.request and r.request.last_user_text.startswith("Reply")
                for r in provider.requests
            )
            skipped = await prober.probe_once()
            assert [r.skipped for r in skipped if r.model == "primary"] == [True]
        now[0] += 5
        for _ in range(2):
            await prober.probe_once()
    assert breaker.state == "closed" and prober.probes == 9  # the open round skipped it
    assert prober.spent_usd > 0
