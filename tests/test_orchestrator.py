"""The orchestrator: typed delegate tools, parallel fan-out, framed results, guards, job budget."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Literal

import anyio
from pydantic import BaseModel
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel

from handoffs import Budget, Catalog, Session, checks
from handoffs.catalog import ModelEntry
from handoffs.orchestrator import Orchestrator, Subordinate
from handoffs.routing import Policy, Rule

from .conftest import Scripts


class Ticket(BaseModel):
    id: str
    text: str


class Triage(BaseModel):
    category: Literal["billing", "bug", "other"]


TICKETS = [Ticket(id=f"T{i}", text="invoice wrong" if i % 2 else "app crashes") for i in range(6)]

classifier = Subordinate(
    name="classify_ticket",
    kind="classify",
    input_type=Ticket,
    output_type=Triage,
    instructions="Classify the ticket.",
    description="Classify one ticket.",
    risk="low",
    checks=[checks.predicate(lambda t, i: t.category != "other", name="specific")],
)


def tool_returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    return [
        p
        for m in messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, ToolReturnPart)
    ]


class Planner:
    """A scripted orchestrator: classify every ticket in one step, then summarise."""

    def __init__(self) -> None:
        self.tool_names: list[str] = []
        self.seen_results: list[str] = []

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.tool_names = [t.name for t in info.function_tools]
        returns = tool_returns(messages)
        if not returns:
            return ModelResponse(
                parts=[
                    ToolCallPart("classify_ticket", t.model_dump(), tool_call_id=f"c{t.id}")
                    for t in TICKETS
                ]
            )
        self.seen_results = [str(r.content) for r in returns]
        return ModelResponse(parts=[TextPart(f"classified {len(returns)} tickets")])


def make_session(catalog: Catalog, scripts: Scripts, planner: Planner, budget: Budget) -> Session:
    orchestrator_model = FunctionModel(planner, model_name="best")

    def models(entry: ModelEntry) -> Model:
        return orchestrator_model if entry.id == "best" else scripts(entry)

    policy = Policy(rules=(Rule(kind="classify", ladder=("tiny", "cheap")),))
    return Session(catalog=catalog, models=models, policy=policy, budget=budget)


async def test_fan_out_delegates_every_ticket_concurrently_and_frames_results(
    catalog: Catalog, scripts: Scripts
) -> None:
    in_flight = 0
    peak = 0
    release = anyio.Event()

    async def slow_answer(text: str) -> dict[str, Any]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if peak == len(TICKETS):
            release.set()
        with anyio.fail_after(5):
            await release.wait()
        in_flight -= 1
        return {"category": "billing" if "invoice" in text else "bug"}

    scripts.on("tiny", lambda c: slow_answer(c.prompt))
    planner = Planner()
    session = make_session(catalog, scripts, planner, Budget("1"))
    orch = Orchestrator(model="best", subordinates=[classifier], session=session)
    result = await orch.run("Classify these tickets", data=[t.model_dump() for t in TICKETS])
    assert result.status == "completed"
    assert result.output == "classified 6 tickets"
    assert peak == len(TICKETS)  # all six handoffs were in flight at once
    assert len(result.records) == 6 and all(r.model == "tiny" for r in result.records)
    assert planner.tool_names == ["classify_ticket"]
    framed = planner.seen_results[0]
    assert framed.startswith("<subordinate_result") and framed.endswith("</subordinate_result>")
    payload = json.loads(framed[framed.index(">") + 1 : framed.rindex("<")])
    assert payload["status"] == "delivered" and payload["output"]["category"] in ("billing", "bug")
    assert result.orchestrator_cost_usd > 0 and result.cost_usd > result.handoff_cost_usd


async def test_tool_schema_is_the_subordinate_input_model(
    catalog: Catalog, scripts: Scripts
) -> None:
    seen: dict[str, Any] = {}

    def look(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.update({t.name: t.parameters_json_schema for t in info.function_tools})
        return ModelResponse(parts=[TextPart("nothing to do")])

    session = make_session(catalog, scripts, Planner(), Budget("1"))
    orch = Orchestrator(model="best", subordinates=[classifier], session=session)
    orch.session._models = lambda e: FunctionModel(look, model_name="best")  # type: ignore[method-assign]
    await orch.run("Look at the tools")
    schema = seen["classify_ticket"]
    assert set(schema["properties"]) == {"id", "text"} and schema["required"] == ["id", "text"]


async def test_handoff_limit_refuses_further_delegations(
    catalog: Catalog, scripts: Scripts
) -> None:
    scripts.on("tiny", lambda c: {"category": "bug"})
    planner = Planner()
    session = make_session(catalog, scripts, planner, Budget("1"))
    orch = Orchestrator(model="best", subordinates=[classifier], session=session, max_handoffs=2)
    result = await orch.run("Classify")
    assert len(result.records) == 2
    refused = [r for r in planner.seen_results if '"refused"' in r]
    assert len(refused) == 4 and "limit of 2 handoffs" in refused[0]


async def test_spent_job_budget_stops_the_job_and_keeps_finished_work(
    catalog: Catalog, scripts: Scripts
) -> None:
    scripts.on("tiny", lambda c: {"category": "bug"})
    budget = Budget(Decimal("0.00005"))
    session = make_session(catalog, scripts, Planner(), budget)
    orch = Orchestrator(model="best", subordinates=[classifier], session=session)
    result = await orch.run("Classify these tickets")
    assert result.status == "budget_exceeded" and "budget" in (result.error or "")
    assert budget.spent_usd <= Decimal("0.00005") and budget.reserved_usd == 0


async def test_depth_guard_refuses_delegation_beyond_max_depth(
    catalog: Catalog, scripts: Scripts
) -> None:
    planner = Planner()
    session = make_session(catalog, scripts, planner, Budget("1"))
    orch = Orchestrator(model="best", subordinates=[classifier], session=session, max_depth=0)
    result = await orch.run("Classify")
    assert result.records == () and "tiny" not in scripts.calls
    assert all("maximum delegation depth" in r for r in planner.seen_results)
    assert len(planner.seen_results) == len(TICKETS)


async def test_handoff_limit_is_per_run(catalog: Catalog, scripts: Scripts) -> None:
    scripts.on("tiny", lambda c: {"category": "bug"})
    session = make_session(catalog, scripts, Planner(), Budget("1"))
    orch = Orchestrator(model="best", subordinates=[classifier], session=session, max_handoffs=6)
    first = await orch.run("Classify")
    second = await orch.run("Classify again")
    assert len(first.records) == len(second.records) == 6
