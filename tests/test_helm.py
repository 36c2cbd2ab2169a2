"""The orchestrator's own model fails over along its catalog chain through the same guard as a
handoff: circuit breakers, spend caps, the 429 policy, the attempt cap."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from handoffs import Budget, Catalog, Session
from handoffs.catalog import ModelEntry
from handoffs.engine import ORCHESTRATOR_KIND, Caps, RetryPolicy, SpendCap
from handoffs.orchestrator import Orchestrator
from handoffs.testing.scripted import fail

from .conftest import entry

CATALOG = Catalog(
    [
        entry("tiny", "local", "0.02", "0.02"),
        entry("best", "frontier", "3", "15", failover=("best-b",)),
        entry("best-b", "frontier", "2.5", "10", base_url="http://127.0.0.2:9/v1"),
    ]
)


class Lead:
    """A scripted orchestrator model: answers, or fails with `status` while `failing`."""

    def __init__(self, name: str, status: int | None = None) -> None:
        self.name = name
        self.status = status
        self.calls = 0

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.calls += 1
        if self.status is not None:
            raise fail(self.status, self.name)
        return ModelResponse(parts=[TextPart(f"done by {self.name}")])


def session_with(
    primary: Lead, backup: Lead, budget: Budget | None = None, caps: Caps | None = None
) -> Session:
    leads = {"best": primary, "best-b": backup}

    def models(e: ModelEntry) -> Model:
        return FunctionModel(leads[e.id], model_name=e.id)

    return Session(catalog=CATALOG, models=models, budget=budget or Budget("1"), caps=caps)


async def test_an_unavailable_orchestrator_model_fails_over_to_its_equivalent() -> None:
    primary, backup = Lead("best", status=503), Lead("best-b")
    budget = Budget("1")
    session = session_with(primary, backup, budget)
    result = await Orchestrator(model="best", subordinates=[], session=session).run("Plan")
    assert result.status == "completed" and result.output == "done by best-b"
    assert (primary.calls, backup.calls) == (1, 1)
    assert result.orchestrator_requests == 1
    assert Decimal(0) < result.orchestrator_cost_usd == budget.spent_usd
    assert budget.reserved_usd == 0  # the failed request's reservation was released
    assert session.breaker(CATALOG["best"]).state == "closed"  # one failure is below threshold


async def test_an_open_breaker_skips_the_primary_without_calling_it() -> None:
    primary, backup = Lead("best", status=503), Lead("best-b")
    session = session_with(primary, backup)
    for _ in range(3):  # the default threshold: three consecutive failures open the circuit
        await Orchestrator(model="best", subordinates=[], session=session).run("Plan")
    assert session.breaker(CATALOG["best"]).state == "open" and primary.calls == 3
    result = await Orchestrator(model="best", subordinates=[], session=session).run("Plan")
    assert result.output == "done by best-b" and primary.calls == 3


async def test_a_rejected_request_is_not_failed_over() -> None:
    primary, backup = Lead("best", status=400), Lead("best-b")
    result = await Orchestrator(
        model="best", subordinates=[], session=session_with(primary, backup)
    ).run("Plan")
    assert result.status == "failed" and "orchestrator model failed" in (result.error or "")
    assert backup.calls == 0


async def test_when_every_model_of_the_chain_fails_the_run_fails_and_says_why() -> None:
    primary, backup = Lead("best", status=503), Lead("best-b", status=429)
    result = await Orchestrator(
        model="best", subordinates=[], session=session_with(primary, backup)
    ).run("Plan")
    assert result.status == "failed"
    assert "every model of its chain" in (result.error or "")
    assert (primary.calls, backup.calls) == (1, 1)


async def test_the_last_model_of_the_chain_is_tried_even_with_its_circuit_open() -> None:
    primary, backup = Lead("best", status=503), Lead("best-b", status=503)
    session = session_with(primary, backup)
    for _ in range(3):
        await Orchestrator(model="best", subordinates=[], session=session).run("Plan")
    assert session.breaker(CATALOG["best-b"]).state == "open"
    backup.status = None
    result = await Orchestrator(model="best", subordinates=[], session=session).run("Plan")
    assert result.output == "done by best-b" and (primary.calls, backup.calls) == (3, 4)


# -- the same guard as a handoff: spend caps and the 429 policy ----------------------------------


def throttled(name: str, retry_after: float, then: Lead) -> Any:
    """A model that answers 429 (asking to wait `retry_after`) once, then as `then`."""
    state = {"calls": 0}

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        state["calls"] += 1
        if state["calls"] == 1:
            raise ModelHTTPError(429, name, body={"error": "slow down"}, retry_after=retry_after)
        return then(messages, info)

    return answer, state


async def test_a_spend_cap_on_the_orchestrators_model_moves_it_to_its_equivalent() -> None:
    primary, backup = Lead("best"), Lead("best-b")
    caps = Caps([SpendCap(model="best", kind=ORCHESTRATOR_KIND, usd=Decimal("0.000001"))])
    session = session_with(primary, backup, caps=caps)
    result = await Orchestrator(model="best", subordinates=[], session=session).run("Plan")
    assert result.output == "done by best-b" and primary.calls == 0  # refused without a call
    assert caps.blocked("best", "classify", Decimal(1)) is None  # handoffs are not capped


async def test_the_orchestrators_spend_counts_against_its_caps_and_a_spent_cap_stops_it() -> None:
    primary, backup = Lead("best"), Lead("best-b")
    caps = Caps([SpendCap(model="*", kind=ORCHESTRATOR_KIND, usd=Decimal("0.5"), per="process")])
    session = session_with(primary, backup, caps=caps)
    first = await Orchestrator(model="best", subordinates=[], session=session).run("Plan")
    assert first.status == "completed"
    assert caps.spent() == {f"*/{ORCHESTRATOR_KIND} $0.5 per process": first.orchestrator_cost_usd}

    empty = Caps([SpendCap(model="*", kind=ORCHESTRATOR_KIND, usd=Decimal(0))])
    result = await Orchestrator(
        model="best", subordinates=[], session=session_with(primary, backup, caps=empty)
    ).run("Plan")
    assert result.status == "failed" and "spend cap" in (result.error or "")
    assert (primary.calls, backup.calls) == (1, 0)  # only the first run called a model


async def test_the_orchestrator_waits_out_a_429_whose_retry_after_fits() -> None:
    answer, state = throttled("tiny", 0.01, Lead("tiny"))
    session = Session(
        catalog=CATALOG, models=lambda e: FunctionModel(answer, model_name=e.id), budget=Budget(1)
    )
    result = await Orchestrator(model="tiny", subordinates=[], session=session).run("Plan")
    assert result.output == "done by tiny" and state["calls"] == 2
    assert result.orchestrator_requests == 1


async def test_the_orchestrator_fails_over_at_once_on_a_429_whose_retry_after_is_too_long() -> None:
    answer, state = throttled("best", 3600, Lead("best"))
    backup = Lead("best-b")
    leads: dict[str, Any] = {"best": answer, "best-b": backup}
    session = Session(
        catalog=CATALOG,
        models=lambda e: FunctionModel(leads[e.id], model_name=e.id),
        budget=Budget(1),
        retry=RetryPolicy(max_retry_after_s=10),
    )
    result = await Orchestrator(model="best", subordinates=[], session=session).run("Plan")
    assert result.output == "done by best-b" and (state["calls"], backup.calls) == (1, 1)
    assert session.breaker(CATALOG["best"]).state == "closed"  # a 429 is busy, not sick


async def test_the_orchestrators_requests_stop_at_the_attempt_cap() -> None:
    answer, state = throttled("tiny", 0.0, Lead("tiny"))
    session = Session(
        catalog=CATALOG,
        models=lambda e: FunctionModel(answer, model_name=e.id),
        retry=RetryPolicy(max_attempts=1),
    )
    result = await Orchestrator(model="tiny", subordinates=[], session=session).run("Plan")
    assert result.status == "failed" and "429" in (result.error or "")
    assert state["calls"] == 1


async def test_the_orchestrator_waits_out_a_429_only_once_its_equivalent_failed_too() -> None:
    answer, state = throttled("best", 0.01, Lead("best"))
    backup = Lead("best-b", status=503)
    leads: dict[str, Any] = {"best": answer, "best-b": backup}
    session = Session(
        catalog=CATALOG,
        models=lambda e: FunctionModel(leads[e.id], model_name=e.id),
        budget=Budget(1),
    )
    result = await Orchestrator(model="best", subordinates=[], session=session).run("Plan")
    assert result.output == "done by best"
    assert (state["calls"], backup.calls) == (2, 1)  # 429, the equivalent's 503, then the wait


async def test_an_orchestrator_answer_past_max_tokens_is_an_overrun_that_fails_over() -> None:
    def overrun(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        usage = RequestUsage(input_tokens=10, output_tokens=10_000)
        return ModelResponse(parts=[TextPart("too long")], usage=usage)

    backup = Lead("best-b")
    leads: dict[str, Any] = {"best": overrun, "best-b": backup}
    budget = Budget(1)
    session = Session(
        catalog=CATALOG,
        models=lambda e: FunctionModel(leads[e.id], model_name=e.id),
        budget=budget,
    )
    result = await Orchestrator(model="best", subordinates=[], session=session).run("Plan")
    assert result.output == "done by best-b"
    assert session.breaker(CATALOG["best"]).state == "open"
    overrun_cost = CATALOG["best"].cost(10, 10_000)  # charged in full
    assert result.orchestrator_cost_usd == budget.spent_usd > overrun_cost
