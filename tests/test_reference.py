"""Inputs by reference: the orchestrator plans over handles, the engine resolves them into the
subordinates' typed inputs, one `delegate_each` call fans out over many items, and a handle the
run never made is refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

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

from handoffs import Budget, Catalog, Session
from handoffs.catalog import ModelEntry
from handoffs.orchestrator import Orchestrator, Subordinate
from handoffs.routing import Policy, Rule

from .conftest import Scripts


class Ticket(BaseModel):
    id: str
    customer: str
    body: str


class Triage(BaseModel):
    category: Literal["billing", "bug"]
    urgent: bool
    reason: str


class ReplyRequest(BaseModel):
    ticket: Ticket
    triage: Triage


class Reply(BaseModel):
    body: str


SECRET = "my card ending 4242 was charged twice"
TICKETS = [
    Ticket(id=f"T{i}", customer=f"Customer {i}", body=f"{SECRET} (#{i})" if i % 2 else "app down")
    for i in range(6)
]
DATA = [t.model_dump() for t in TICKETS]

classifier = Subordinate(
    name="classify_ticket",
    kind="classify",
    input_type=Ticket,
    output_type=Triage,
    instructions="Classify the ticket.",
    risk="low",
)
writer = Subordinate(
    name="draft_reply",
    kind="draft",
    input_type=ReplyRequest,
    output_type=Reply,
    instructions="Reply to the ticket.",
    risk="low",
)


def triage(prompt: str) -> dict[str, Any]:
    billing = "charged" in prompt
    return {"category": "billing" if billing else "bug", "urgent": billing, "reason": "because"}


def frames(messages: list[ModelMessage]) -> list[Any]:
    """Every tool result the orchestrator has been given, unframed."""
    out: list[Any] = []
    for m in messages:
        if isinstance(m, ModelRequest):
            for p in m.parts:
                if isinstance(p, ToolReturnPart):
                    text = str(p.content)
                    out.append(json.loads(text[text.index(">") + 1 : text.rindex("<")]))
    return out


def items(messages: list[ModelMessage]) -> list[dict[str, Any]]:
    """The items the orchestrator was shown in its first request's job data."""
    first = next(m for m in messages if isinstance(m, ModelRequest))
    prompt = "".join(str(getattr(p, "content", "")) for p in first.parts)
    return json.loads(prompt[prompt.index("<job_data>") + 10 : prompt.index("</job_data>")])


Plan = Callable[[list[ModelMessage], AgentInfo], ModelResponse]


class Recorder:
    """A scripted orchestrator model that keeps every request it receives, as sent."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.requests: list[str] = []
        self.tools: dict[str, dict[str, Any]] = {}

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests.append(repr(messages))
        self.tools = {t.name: t.parameters_json_schema for t in info.function_tools}
        return self.plan(messages, info)


def orchestrate(catalog: Catalog, scripts: Scripts, recorder: Recorder, **kw: Any) -> Orchestrator:
    model = FunctionModel(recorder, model_name="best")

    def models(entry: ModelEntry) -> Model:
        return model if entry.id == "best" else scripts(entry)

    policy = Policy(rules=(Rule(ladder=("tiny",)),))
    session = Session(catalog=catalog, models=models, policy=policy, budget=Budget("1"))
    return Orchestrator(
        model="best", subordinates=[classifier, writer], session=session, describe=("id",), **kw
    )


def fan_out_then_reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Classify every item in one call, then reply to the urgent ones in one call, then stop."""
    shown, results = items(messages), frames(messages)
    if not results:
        refs = [i["ref"] for i in shown]
        args = {"tool": "classify_ticket", "inputs": refs}
        return ModelResponse(parts=[ToolCallPart("delegate_each", args, tool_call_id="c1")])
    if len(results) == 1:
        refs = [i["ref"] for i in shown]
        urgent = [
            {"ticket": ref, "triage": r["result"]}
            for ref, r in zip(refs, results[0], strict=True)
            if r["output"]["urgent"]
        ]
        args = {"tool": "draft_reply", "inputs": urgent}
        return ModelResponse(parts=[ToolCallPart("delegate_each", args, tool_call_id="c2")])
    return ModelResponse(parts=[TextPart("done")])


async def test_the_orchestrator_is_shown_handles_and_described_fields_never_the_payloads(
    catalog: Catalog, scripts: Scripts
) -> None:
    scripts.on("tiny", lambda c: {"body": "Hi"} if "triage" in c.prompt else triage(c.prompt))
    recorder = Recorder(fan_out_then_reply)
    result = await orchestrate(catalog, scripts, recorder).run("Triage", data=DATA)
    assert result.status == "completed" and result.output == "done"
    # every request the orchestrator's model received: no ticket body, no customer name
    assert len(recorder.requests) == 3
    for request in recorder.requests:
        assert SECRET not in request and "app down" not in request and "Customer" not in request
        assert "because" not in request  # a delivered answer's free text stays behind its handle
    # the subordinates read the whole records the handles stand for
    prompts = [c.prompt for c in scripts.calls["tiny"]]
    assert sum(SECRET in p for p in prompts) == 3 + 3  # three billing tickets: classified, replied
    assert sum("Customer 1" in p for p in prompts) == 2
    kinds = [r.task_kind for r in result.records]
    assert kinds.count("classify") == 6 and kinds.count("draft") == 3
    assert {r.label for r in result.records if r.task_kind == "draft"} == {"T1", "T3", "T5"}
    replies = frames(result.messages)[1]
    assert [r["input"]["ticket"] for r in replies] == [i["ref"] for i in items(result.messages)][
        1::2
    ]
    # the tools declare handles
    assert recorder.tools["classify_ticket"]["required"] == ["ref"]
    assert set(recorder.tools["draft_reply"]["properties"]) == {"ticket", "triage"}
    assert recorder.tools["draft_reply"]["properties"]["ticket"]["type"] == "string"
    assert recorder.tools["delegate_each"]["properties"]["tool"]["enum"] == [
        "classify_ticket",
        "draft_reply",
    ]


async def test_a_fan_out_returns_one_constrained_result_per_item_in_order(
    catalog: Catalog, scripts: Scripts
) -> None:
    scripts.on("tiny", lambda c: {"body": "Hi"} if "triage" in c.prompt else triage(c.prompt))
    recorder = Recorder(fan_out_then_reply)
    result = await orchestrate(catalog, scripts, recorder).run("Triage", data=DATA)
    classified = frames(result.messages)[0]
    shown = items(result.messages)
    assert [i["id"] for i in shown] == [t.id for t in TICKETS]
    assert all("status" not in r for r in classified)  # in order; no status: delivered
    assert [r["output"] for r in classified] == [
        {"category": "billing" if i % 2 else "bug", "urgent": bool(i % 2)} for i in range(6)
    ]
    assert len({r["result"] for r in classified}) == 2  # answers are handled by content


async def test_an_unknown_or_foreign_handle_is_refused_and_nothing_runs(
    catalog: Catalog, scripts: Scripts
) -> None:
    other_job = [Ticket(id="X1", customer="Someone Else", body="another job").model_dump()]
    foreign_recorder = Recorder(lambda m, i: ModelResponse(parts=[TextPart("seen")]))
    foreign = await orchestrate(catalog, scripts, foreign_recorder).run("Look", data=other_job)
    foreign_ref = items(foreign.messages)[0]["ref"]
    invented = "⟦q:0badc0de⟧"

    def misuse(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if frames(messages):
            return ModelResponse(parts=[TextPart("stopped")])
        each = {"tool": "classify_ticket", "inputs": [invented]}
        return ModelResponse(
            parts=[
                ToolCallPart("classify_ticket", {"ref": foreign_ref}, tool_call_id="a"),
                ToolCallPart("delegate_each", each, tool_call_id="b"),
            ]
        )

    result = await orchestrate(catalog, scripts, Recorder(misuse)).run("Triage", data=DATA)
    single, fanned = frames(result.messages)
    assert single["status"] == "refused" and f"unknown handle {foreign_ref}" in single["error"]
    assert fanned == [{"status": "refused", "error": fanned[0]["error"]}]
    assert invented in fanned[0]["error"]
    assert "not an item or result of this job" in single["error"]
    assert result.records == () and "tiny" not in scripts.calls


async def test_handles_are_made_from_the_data_so_a_new_run_resolves_the_old_ones(
    catalog: Catalog, scripts: Scripts
) -> None:
    """A resumed durable job is a new process: its handles must be the ones the journal holds."""
    scripts.on("tiny", lambda c: triage(c.prompt))
    first_recorder = Recorder(lambda m, i: ModelResponse(parts=[TextPart("planned")]))
    first = await orchestrate(catalog, scripts, first_recorder).run("Triage", data=DATA)
    journaled = [i["ref"] for i in items(first.messages)]

    def replay(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if frames(messages):
            return ModelResponse(parts=[TextPart("done")])
        each = {"tool": "classify_ticket", "inputs": journaled}  # the first run's handles
        return ModelResponse(parts=[ToolCallPart("delegate_each", each, tool_call_id="r")])

    second = await orchestrate(catalog, scripts, Recorder(replay)).run("Triage", data=DATA)
    assert [i["ref"] for i in items(second.messages)] == journaled
    assert all("status" not in r for r in frames(second.messages)[0])  # delivered, each
    assert [r.label for r in second.records] == [t.id for t in TICKETS]


async def test_a_roster_without_describe_still_shows_items_whole(
    catalog: Catalog, scripts: Scripts
) -> None:
    recorder = Recorder(lambda m, i: ModelResponse(parts=[TextPart("ok")]))
    orch = orchestrate(catalog, scripts, recorder)
    orch.describe = None
    await orch.run("Triage", data=DATA)
    assert SECRET in recorder.requests[0] and "delegate_each" not in recorder.tools
    assert set(recorder.tools["classify_ticket"]["properties"]) == {"id", "customer", "body"}


def all_then_table(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Classify every item by "all", asking for a table of two fields; then stop."""
    if not frames(messages):
        args = {"tool": "classify_ticket", "inputs": "all", "fields": ["category", "urgent"]}
        return ModelResponse(parts=[ToolCallPart("delegate_each", args, tool_call_id="c1")])
    return ModelResponse(parts=[TextPart("done")])


async def test_a_fan_out_over_all_items_returns_a_table_of_the_fields_asked_for(
    catalog: Catalog, scripts: Scripts
) -> None:
    scripts.on("tiny", lambda c: triage(c.prompt))
    result = await orchestrate(catalog, scripts, Recorder(all_then_table)).run("T", data=DATA)
    (table,) = frames(result.messages)
    # one row per item, in the items' order, with no input column: the result handle, the fields
    assert table["delivered"] == 6 and table["columns"] == ["result", "category", "urgent"]
    assert [row[1:] for row in table["rows"]] == [
        ["billing" if i % 2 else "bug", bool(i % 2)] for i in range(6)
    ]
    assert all(row[0].startswith("⟦q:") for row in table["rows"])
    assert "because" not in json.dumps(table)  # the free text stays behind the handle
    assert len([r for r in result.records if r.task_kind == "classify"]) == 6


async def test_a_fan_out_table_lists_what_was_not_delivered_and_refuses_a_stray_word(
    catalog: Catalog, scripts: Scripts
) -> None:
    from handoffs.orchestrator._agent import fan_out_table

    delivered = {"result": "⟦q:00000001⟧", "output": {"category": "bug", "urgent": False}}
    failed = {"status": "failed", "error": "no output passed its checks"}
    table = fan_out_table(["⟦q:0000000a⟧", "⟦q:0000000b⟧"], [delivered, failed], [])
    assert table == {"delivered": 1, "not_delivered": [{"input": "⟦q:0000000b⟧", **failed}]}

    def stray(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if not frames(messages):
            args = {"tool": "classify_ticket", "inputs": "everything"}
            return ModelResponse(parts=[ToolCallPart("delegate_each", args, tool_call_id="c1")])
        return ModelResponse(parts=[TextPart("done")])

    result = await orchestrate(catalog, scripts, Recorder(stray)).run("T", data=DATA)
    assert frames(result.messages)[0]["status"] == "refused" and not result.records
