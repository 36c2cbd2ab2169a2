"""Provider reliability in the engine, with scripted models: failover chains, fault classes,
circuit breakers, retry caps, spend caps, budgets under load and degraded output."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any, Literal

import anyio
import anyio.lowlevel
import pytest
from pydantic import BaseModel
from pydantic_ai.exceptions import (
    ContentFilterError,
    ModelContextWindowExceededError,
    ModelHTTPError,
)
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from handoffs.budget import Budget
from handoffs.catalog import Catalog, estimate_tokens
from handoffs.engine import Caps, RetryPolicy, Session, SpendCap
from handoffs.errors import HandoffTimeout, ProviderRejected
from handoffs.health import Breaker, BreakerSettings, Health
from handoffs.routing import Policy, Rule
from handoffs.task import Task
from handoffs.testing.scripted import ScriptCall

from .conftest import Scripts, entry


class Ticket(BaseModel):
    text: str


class Triage(BaseModel):
    category: Literal["billing", "bug", "other"]
    urgent: bool


FALLBACK = Triage(category="other", urgent=True)
GOOD = {"category": "billing", "urgent": False}


class Clock:
    """A hand-moved monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def chain() -> Catalog:
    """`cheap` -> `best`, whose rung fails over to `best2` (another provider), then `selfhosted`."""
    return Catalog(
        [
            entry("cheap", "small", "0.15", "0.60"),
            entry(
                "best",
                "frontier",
                "3",
                "15",
                provider="anthropic",
                base_url=None,
                failover=("best2", "selfhosted"),
            ),
            entry("best2", "frontier", "2.5", "10", provider="openai", base_url=None),
            entry("selfhosted", "mid", "0.5", "0.5", base_url="http://10.0.0.9/v1"),
            entry("long", "mid", "1", "5", context_window=1_000_000),
        ]
    )


def session(
    catalog: Catalog, scripts: Scripts, ladder: tuple[str, ...] = ("cheap", "best"), **kw: Any
) -> Session:
    policy = Policy(rules=(Rule(kind="classify", ladder=ladder),))
    return Session(catalog=catalog, models=scripts, policy=policy, **kw)


def classify(**kw: Any) -> Task[Triage]:
    return Task(kind="classify", input=Ticket(text="my invoice is wrong"), output_type=Triage, **kw)


def http(status: int, retry_after: float | None = None) -> ModelHTTPError:
    return ModelHTTPError(
        status,
        "scripted",
        body={"error": {"message": f"scripted {status}"}},
        retry_after=retry_after,
    )


def raises(exc: Exception) -> Any:
    def answer(call: ScriptCall) -> Any:
        raise exc

    return answer


def ok(call: ScriptCall) -> Any:
    return GOOD


# -- failover chains -----------------------------------------------------------------------------


async def test_a_failing_provider_fails_over_along_its_rung_without_escalating(
    chain: Catalog, scripts: Scripts
) -> None:
    scripts.on("best", raises(http(529)))
    scripts.on("best2", ok)
    delivery = await session(chain, scripts, ladder=("best",)).delegate(classify())
    assert delivery.model == "best2" and delivery.escalations == 0
    assert [(a.model, a.outcome, a.fault) for a in delivery.attempts] == [
        ("best", "provider_error", "unavailable"),
        ("best2", "accepted", None),
    ]
    assert [a.rung for a in delivery.attempts] == [0, 0]
    reasons = {s.model: s.reason for s in delivery.record.route_reasons}
    assert reasons["best2"].startswith("failover for best")


async def test_each_provider_on_a_rung_gets_its_own_prompt_variant(scripts: Scripts) -> None:
    catalog = Catalog(
        [
            entry("best", "frontier", "3", "15", prompt_variant="xml", failover=("best2",)),
            entry("best2", "frontier", "3", "15", prompt_variant="compact"),
        ]
    )
    seen: dict[str, str] = {}

    def remember(model: str, answer: Any) -> Any:
        def inner(call: ScriptCall) -> Any:
            seen[model] = call.instructions + call.prompt
            return answer(call)

        return inner

    scripts.on("best", remember("best", raises(http(503))))
    scripts.on("best2", remember("best2", ok))
    await session(catalog, scripts, ladder=("best",)).delegate(classify())
    assert seen["best"] != seen["best2"]
    assert "<" in seen["best"]  # the xml variant frames its parts in tags


async def test_a_failed_check_escalates_to_the_next_rung_not_to_an_equivalent(
    chain: Catalog, scripts: Scripts
) -> None:
    scripts.on("cheap", lambda c: {"category": "other", "urgent": False})
    scripts.on("best", ok)

    def billing(output: Triage) -> bool:
        return output.category == "billing"

    from handoffs import checks

    task = classify(checks=[checks.predicate(billing)], feedback_retries=0)
    delivery = await session(chain, scripts).delegate(task)
    assert delivery.model == "best" and delivery.escalations == 1
    assert "best2" not in scripts.calls


async def test_an_exhausted_rung_moves_on_to_the_next_rung(
    chain: Catalog, scripts: Scripts
) -> None:
    for model in ("best", "best2", "selfhosted"):
        scripts.on(model, raises(http(500)))
    scripts.on("long", ok)
    delivery = await session(
        chain, scripts, ladder=("best", "long"), retry=RetryPolicy(sweeps=1)
    ).delegate(classify())
    assert delivery.model == "long"
    assert [a.model for a in delivery.attempts] == ["best", "best2", "selfhosted", "long"]


# -- fault classes -------------------------------------------------------------------------------


async def test_a_429_is_waited_out_on_the_same_model_once_no_equivalent_is_left(
    chain: Catalog, scripts: Scripts
) -> None:
    answers = iter([http(429, retry_after=0.01), None])

    def throttled(call: ScriptCall) -> Any:
        exc = next(answers)
        if exc is not None:
            raise exc
        return GOOD

    scripts.on("best", throttled)
    scripts.on("best2", raises(http(503)))
    scripts.on("selfhosted", raises(http(503)))
    delivery = await session(chain, scripts, ladder=("best",)).delegate(classify())
    assert [(a.model, a.fault) for a in delivery.attempts] == [
        ("best", "rate_limited"),
        ("best2", "unavailable"),
        ("selfhosted", "unavailable"),
        ("best", None),
    ]


async def test_a_persistent_429_goes_to_the_healthy_equivalent_before_any_wait(
    chain: Catalog, scripts: Scripts
) -> None:
    scripts.on("best", raises(http(429, retry_after=0.01)))
    scripts.on("best2", ok)
    delivery = await session(chain, scripts, ladder=("best",)).delegate(classify())
    assert [(a.model, a.fault) for a in delivery.attempts] == [
        ("best", "rate_limited"),
        ("best2", None),
    ]
    assert len(scripts.calls["best"]) == 1


async def test_a_429_on_every_model_is_waited_out_until_the_attempt_cap(
    chain: Catalog, scripts: Scripts
) -> None:
    for model in ("best", "best2", "selfhosted"):
        scripts.on(model, raises(http(429, retry_after=0)))
    retry = RetryPolicy(max_attempts=5, sweeps=1)
    delivery = await session(chain, scripts, ladder=("best",), retry=retry).delegate(
        classify(fallback=FALLBACK)
    )
    assert delivery.degraded and delivery.record.cause == "deadline"
    calls = [a.model for a in delivery.attempts if a.outcome != "refused"]
    assert calls == ["best", "best2", "selfhosted", "best", "best2"]  # round robin, then capped


async def test_a_429_whose_retry_after_exceeds_the_deadline_goes_to_the_next_provider(
    chain: Catalog, scripts: Scripts
) -> None:
    scripts.on("best", raises(http(429, retry_after=30)))
    scripts.on("best2", ok)
    delivery = await session(chain, scripts, ladder=("best",)).delegate(classify(deadline_s=10))
    assert [(a.model, a.fault) for a in delivery.attempts] == [
        ("best", "rate_limited"),
        ("best2", None),
    ]
    assert len(scripts.calls["best"]) == 1


async def test_context_length_exceeded_moves_to_a_model_with_a_longer_window(
    chain: Catalog, scripts: Scripts
) -> None:
    scripts.on("cheap", raises(ModelContextWindowExceededError("cheap", "prompt is too long")))
    scripts.on("long", ok)
    delivery = await session(chain, scripts, ladder=("cheap",)).delegate(classify())
    assert delivery.model == "long"
    assert [(a.model, a.fault) for a in delivery.attempts] == [
        ("cheap", "context_length"),
        ("long", None),
    ]


async def test_a_content_filter_refusal_returns_the_fallback_marked_as_such(
    chain: Catalog, scripts: Scripts
) -> None:
    scripts.on("cheap", raises(ContentFilterError("content filter triggered")))
    delivery = await session(chain, scripts).delegate(classify(fallback=FALLBACK))
    assert delivery.degraded and delivery.output == FALLBACK
    assert delivery.record.cause == "content_filter"
    assert [a.model for a in delivery.attempts] == ["cheap"]


async def test_a_content_filter_refusal_without_a_fallback_names_the_model(
    chain: Catalog, scripts: Scripts
) -> None:
    scripts.on("cheap", raises(ContentFilterError("content filter triggered")))
    with pytest.raises(ProviderRejected, match=r"cheap.*content filter") as info:
        await session(chain, scripts).delegate(classify())
    assert info.value.cause == "content_filter" and info.value.model == "cheap"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_other_4xx_are_not_retried_and_no_fallback_hides_them(
    chain: Catalog, scripts: Scripts, status: int
) -> None:
    scripts.on("cheap", raises(http(status)))
    s = session(chain, scripts)
    with pytest.raises(ProviderRejected) as info:
        await s.delegate(classify(fallback=FALLBACK))
    assert info.value.model == "cheap" and str(status) in str(info.value)
    assert len(scripts.calls["cheap"]) == 1 and "best" not in scripts.calls
    assert s.records[-1].status == "failed" and s.records[-1].cause == "rejected"


# -- retry caps and sweeps -----------------------------------------------------------------------


async def test_when_every_provider_fails_transiently_the_route_is_swept_again(
    chain: Catalog, scripts: Scripts
) -> None:
    state = {"down": True}

    def flaky(call: ScriptCall) -> Any:
        if state["down"]:
            state["down"] = False  # the outage ends while the engine backs off
            raise http(503)
        return GOOD

    scripts.on("cheap", flaky)
    retry = RetryPolicy(sweeps=2, backoff_initial_s=0.01, backoff_max_s=0.02)
    delivery = await session(chain, scripts, ladder=("cheap",), retry=retry).delegate(classify())
    assert delivery.model == "cheap"
    assert [a.fault for a in delivery.attempts] == ["unavailable", None]


async def test_the_attempt_cap_stops_a_handoff_with_its_fallback(
    chain: Catalog, scripts: Scripts
) -> None:
    for model in ("cheap", "best", "best2", "selfhosted"):
        scripts.on(model, raises(http(502)))
    retry = RetryPolicy(max_attempts=2)
    delivery = await session(chain, scripts, retry=retry).delegate(classify(fallback=FALLBACK))
    assert delivery.degraded and delivery.record.cause == "deadline"
    assert len([a for a in delivery.attempts if a.outcome != "refused"]) == 2


async def test_no_time_left_raises_handoff_timeout(chain: Catalog, scripts: Scripts) -> None:
    async def slow(call: ScriptCall) -> Any:
        await anyio.sleep(0.05)
        raise http(503)

    for model in ("cheap", "best", "best2", "selfhosted"):  # each rung is given its share of time
        scripts.on(model, slow)
    retry = RetryPolicy(max_handoff_s=0.02, backoff_initial_s=0)
    with pytest.raises(HandoffTimeout):
        await session(chain, scripts, retry=retry).delegate(classify())


# -- circuit breakers ----------------------------------------------------------------------------


def test_a_breaker_opens_after_the_threshold_and_closes_after_successes_in_half_open() -> None:
    clock = Clock()
    breaker = Breaker(
        "x", BreakerSettings(failure_threshold=3, cooldown_s=30, success_threshold=5), clock
    )
    for _ in range(2):
        breaker.failure("503")
    assert breaker.state == "closed" and breaker.admit()
    breaker.failure("503")
    assert breaker.state == "open" and not breaker.admit()
    assert (breaker.unavailable_reason() or "").startswith("circuit open (retry in 30s)")
    clock.now += 30
    assert breaker.state == "half_open"
    assert breaker.admit() and not breaker.admit()  # one trial at a time
    assert breaker.unavailable_reason() == "circuit half-open: its trial call is in flight"
    breaker.success()
    for _ in range(3):
        assert breaker.admit()
        breaker.success()
    assert breaker.state == "half_open"
    assert breaker.admit()
    breaker.success()
    assert breaker.state == "closed" and breaker.opened == 1


def test_a_failure_in_half_open_opens_the_breaker_again() -> None:
    clock = Clock()
    breaker = Breaker("x", BreakerSettings(failure_threshold=1, cooldown_s=5), clock)
    breaker.failure()
    clock.now += 5
    assert breaker.admit()
    breaker.failure()
    assert breaker.state == "open" and breaker.opened == 2


def test_an_error_rate_over_the_window_opens_the_breaker_without_consecutive_failures() -> None:
    breaker = Breaker(
        "x", BreakerSettings(failure_threshold=99, error_rate=0.5, window=10), Clock()
    )
    for i in range(9):
        breaker.failure() if i % 2 else breaker.success()
    assert breaker.state == "closed"  # the window is not full yet
    breaker.failure()
    assert breaker.state == "open"


async def test_an_open_breaker_takes_the_endpoint_out_of_rotation_for_every_session(
    chain: Catalog, scripts: Scripts
) -> None:
    clock = Clock()
    health = Health(
        BreakerSettings(failure_threshold=3, cooldown_s=30, success_threshold=1), clock=clock
    )
    down = {"best": True}

    def primary(call: ScriptCall) -> Any:
        if down["best"]:
            raise http(503)
        return GOOD

    scripts.on("best", primary)
    scripts.on("best2", ok)
    for _ in range(5):  # a session per handoff: sessions (jobs) of one process share breakers
        delivery = await session(chain, scripts, ladder=("best",), health=health).delegate(
            classify()
        )
        assert delivery.model == "best2"
    assert len(scripts.calls["best"]) == 3  # only the threshold's worth paid for the outage
    decision = session(chain, scripts, ladder=("best",), health=health).route(classify())
    assert decision.ladder == ("best2", "selfhosted")
    reasons = {s.model: s.reason for s in decision.steps}
    assert reasons["best"].startswith("unavailable: circuit open")
    assert delivery.record.breakers["best"] == "open"

    down["best"] = False
    clock.now += 30  # cooldown over: half-open, one trial goes to the primary and closes it
    delivery = await session(chain, scripts, ladder=("best",), health=health).delegate(classify())
    assert delivery.model == "best" and health.breaker(chain["best"]).state == "closed"


async def test_two_catalog_entries_for_one_endpoint_share_a_breaker() -> None:
    a = entry("a", "mid", "1", "1", base_url="http://h/v1")
    b = replace(a, id="b", prompt_variant="xml")  # the same model at the same address
    c = entry("c", "mid", "1", "1", base_url="http://other/v1")
    health = Health()
    assert health.breaker(a) is health.breaker(b) is not health.breaker(c)


# -- budgets under load and spend caps -----------------------------------------------------------


async def test_a_thousand_concurrent_handoffs_never_overspend_the_job_budget(
    chain: Catalog, scripts: Scripts
) -> None:
    async def answer(call: ScriptCall) -> Any:
        await anyio.lowlevel.checkpoint()
        return GOOD

    scripts.on("cheap", answer)
    scripts.on("best", answer)
    budget = Budget("0.02")
    s = session(chain, scripts, budget=budget)
    results: list[Any] = []

    async def one(i: int) -> None:
        results.append(await s.delegate(classify(fallback=FALLBACK, label=str(i))))

    async with anyio.create_task_group() as group:
        for i in range(1000):
            group.start_soon(one, i)
    assert len(results) == 1000 and len(s.records) == 1000  # nothing lost
    assert budget.spent_usd <= budget.limit_usd  # type: ignore[operator]
    assert budget.reserved_usd == 0
    degraded = [d for d in results if d.degraded]
    assert degraded and all(d.record.cause == "budget" for d in degraded)
    assert sum((d.cost_usd for d in results), Decimal(0)) == budget.spent_usd


async def test_a_spend_cap_per_model_and_kind_takes_the_model_out_for_that_kind_only(
    chain: Catalog, scripts: Scripts
) -> None:
    scripts.on("cheap", ok)
    scripts.on("best", ok)
    clock = {"now": 86400.0 * 100}
    caps = Caps(
        [SpendCap(model="cheap", kind="classify", usd=Decimal("0.0012"), per="day")],
        wall_clock=lambda: clock["now"],
    )
    s = session(chain, scripts, caps=caps)
    models = [(await s.delegate(classify())).model for _ in range(80)]
    assert models[0] == "cheap" and models[-1] == "best"
    spent = caps.spent()["cheap/classify $0.0012 per day"]
    assert spent <= Decimal("0.0012")
    reasons = {st.model: st.reason for st in s.route(classify()).steps}
    assert reasons["cheap"].startswith("unavailable: spend cap cheap/classify")
    assert caps.blocked("cheap", "extract", Decimal(1)) is None  # other kinds are not capped
    clock["now"] += 86400  # a new day: the cap renews
    assert (await s.delegate(classify())).model == "cheap"


def test_while_a_prober_watches_the_first_half_open_trial_is_the_probers() -> None:
    clock = Clock()
    breaker = Breaker("x", BreakerSettings(failure_threshold=1, cooldown_s=5), clock)
    breaker.watched = True
    breaker.failure()
    clock.now += 5
    assert not breaker.admit()  # a user's request would pay to learn it is still down
    assert breaker.unavailable_reason() == "circuit half-open: waiting for the prober's trial"
    assert breaker.admit(probe=True)
    breaker.success()
    assert breaker.admit()  # once a probe succeeded, users' requests are trials too


# -- hard budgets ---------------------------------------------------------------------------------


def overrunning(output_tokens: int) -> Model:
    """A model that answers well but reports `output_tokens`, whatever `max_tokens` it was sent."""

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        tool = info.output_tools[0]
        usage = RequestUsage(input_tokens=100, output_tokens=output_tokens)
        return ModelResponse(parts=[ToolCallPart(tool.name, GOOD)], usage=usage)

    return FunctionModel(answer, model_name="best")


async def test_an_answer_past_max_tokens_is_an_overrun_charged_in_full_that_opens_the_breaker(
    chain: Catalog, scripts: Scripts
) -> None:
    scripts.on("best2", ok)
    models = {"best": overrunning(5000)}
    s = session(chain, lambda e: models.get(e.id) or scripts(e), ladder=("best",))
    delivery = await s.delegate(classify(max_output_tokens=64))
    assert delivery.model == "best2"
    first = delivery.attempts[0]
    assert (first.model, first.fault) == ("best", "overrun")
    assert first.cost_usd == chain["best"].cost(100, 5000)  # what it billed, past its reservation
    assert s.breaker(chain["best"]).state == "open"  # at once: no threshold to reach
    assert s.budget.spent_usd == delivery.cost_usd


async def test_prompts_billed_one_token_a_byte_never_take_spend_past_the_budget(
    chain: Catalog, scripts: Scripts
) -> None:
    """Text ~10x denser than the chars/4 estimate (CJK, emoji), billed by the densest tokenizer
    there is: reservations bound the prompt by its UTF-8 bytes, so the budget holds."""

    def per_byte(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        text = (info.instructions or "") + str(messages[-1].parts[-1].content)  # type: ignore[union-attr]
        usage = RequestUsage(input_tokens=len(text.encode()), output_tokens=20)
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, GOOD)], usage=usage)

    models = {"cheap": FunctionModel(per_byte, model_name="cheap")}
    budget = Budget("0.005")
    s = session(chain, lambda e: models.get(e.id) or scripts(e), ladder=("cheap",), budget=budget)
    dense = "東京都庁の請求書が二重に請求されています😀🚀 " * 40
    assert estimate_tokens(dense) * 8 < len(dense.encode())  # the estimate is far below the bill

    async def one(i: int) -> None:
        task = Task(
            kind="classify",
            input=Ticket(text=f"{dense} {i}"),
            output_type=Triage,
            fallback=FALLBACK,
            max_output_tokens=64,
        )
        await s.delegate(task)

    async with anyio.create_task_group() as group:
        for i in range(60):
            group.start_soon(one, i)
    assert budget.spent_usd <= budget.limit_usd  # type: ignore[operator]
    assert budget.reserved_usd == 0 and any(r.status == "delivered" for r in s.records)
    assert any(r.cause == "budget" for r in s.records)
