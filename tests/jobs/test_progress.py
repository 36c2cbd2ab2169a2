"""A job's progress read from its journal: handoffs in flight stay `running` while the prober's
requests (journaled like the orchestrator's, without tool calls) come and go."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from dbos import StepInfo

from handoffs import HandoffRecord
from handoffs.jobs._durable import HANDOFF_STEP, ORCHESTRATOR_STEP
from handoffs.jobs._progress import progress_of


def step(function_id: int, name: str, output: dict[str, Any]) -> StepInfo:
    return cast(
        StepInfo,
        {
            "function_id": function_id,
            "function_name": name,
            "output": output,
            "error": None,
            "child_workflow_id": None,
        },
    )


def request(function_id: int, tool_calls: int) -> StepInfo:
    return step(function_id, ORCHESTRATOR_STEP, {"cost_usd": "0.001", "tool_calls": tool_calls})


def handoff(function_id: int) -> StepInfo:
    record = HandoffRecord(
        task_id=f"t{function_id}",
        task_kind="classify",
        risk="low",
        status="delivered",
        route=("local",),
        model="local",
        cost_usd=Decimal("0.0001"),
    )
    return step(function_id, HANDOFF_STEP, {"record": record.model_dump(mode="json")})


def test_a_probe_request_between_handoffs_does_not_hide_the_ones_in_flight() -> None:
    # the orchestrator asked for 30 handoffs; 2 finished, a probe (no tool calls) was journaled
    # between them, then 1 more finished: 27 are still running, as before the probe
    steps = [request(1, 30), handoff(2), handoff(3), request(4, 0), handoff(5)]
    progress = progress_of(steps, budget_usd=Decimal("0.5"), active=True)
    assert progress.done == 3 and progress.running == 27
    assert progress.orchestrator_requests == 2
    # the orchestrator's final answer (no tool calls) after every handoff finished: none running
    finished = [request(1, 2), handoff(2), handoff(3), request(4, 0)]
    assert progress_of(finished, budget_usd=None, active=True).running == 0
    # a next batch counts from its own request
    batch = [*finished[:3], request(4, 5), handoff(5)]
    assert progress_of(batch, budget_usd=None, active=True).running == 4
