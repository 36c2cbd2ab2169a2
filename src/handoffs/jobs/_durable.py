"""The cut between a job's workflow code and its durable steps.

Inside a job's DBOS workflow:

- every **handoff** (`Session.delegate`) is one step: its `HandoffRecord` is journaled when it
  finishes, and a resumed job gets the record back instead of calling a model again;
- every **orchestrator request** is one step, journaled as JSON with its cost;
- a **side-effecting tool** wrapped with `durable_step` is one step.

Everything else — routing, budget arithmetic, the orchestrator's loop — is workflow code and runs
again on resume, deterministically, from the journaled results. The budget is charged in workflow
code (the orchestrator's guarded chain model sits outside the request step, a replayed handoff is
charged its recorded cost), so a resumed job knows what it already spent.

Why not pydantic-ai's `DBOSDurability`: it must be attached to the agent the orchestrator builds
per run (and registers DBOS steps per agent), and its model step would sit inside the guard,
so a resumed job would forget what it had spent. The cut is the same — a model request is a step —
made one level lower with DBOS's own `run_step_async`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, ParamSpec, TypedDict, TypeVar

from dbos import DBOS
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from handoffs.catalog import ModelEntry
from handoffs.engine import ModelSource, Session
from handoffs.errors import BudgetExceeded, HandoffError
from handoffs.handoff import Delivery, HandoffRecord
from handoffs.task import Task

__all__ = [
    "HANDOFF_STEP",
    "ORCHESTRATOR_STEP",
    "DurableSession",
    "HandoffJournal",
    "JournaledModel",
    "durable_step",
    "in_workflow",
    "run_handoff_step",
]

T = TypeVar("T")
P = ParamSpec("P")

HANDOFF_STEP = "handoffs.handoff"
"""The journaled name of a handoff step (compatibility data: see `database.APP_VERSION`)."""
ORCHESTRATOR_STEP = "handoffs.orchestrator.request"
"""The journaled name of an orchestrator request step."""


def in_workflow() -> bool:
    """Whether this is a DBOS workflow's own code (not a step, not outside any workflow)."""
    return DBOS.workflow_id is not None and DBOS.step_id is None


class HandoffJournal(TypedDict):
    """What a handoff step journals."""

    record: dict[str, Any] | None
    failure: dict[str, str] | None


class RequestJournal(TypedDict):
    """What an orchestrator request step journals."""

    response: str
    """The `ModelResponse` as pydantic-ai's message JSON."""
    cost_usd: str
    tool_calls: int


def _failure(exc: HandoffError | BudgetExceeded) -> dict[str, str]:
    if isinstance(exc, BudgetExceeded):
        return {
            "kind": "budget",
            "message": str(exc),
            "limit": str(exc.limit),
            "spent": str(exc.spent),
            "reserved": str(exc.reserved),
            "requested": str(exc.requested),
        }
    return {"kind": "handoff", "type": type(exc).__name__, "message": str(exc)}


def _replayed(failure: dict[str, str], record: HandoffRecord | None) -> Exception:
    """The failure a journaled handoff ended with, rebuilt (its message is what the orchestrator
    sees; a handoff error comes back as a plain `HandoffError`)."""
    if failure["kind"] == "budget":
        return BudgetExceeded(
            failure["message"],
            limit=Decimal(failure["limit"]),
            spent=Decimal(failure["spent"]),
            reserved=Decimal(failure["reserved"]),
            requested=Decimal(failure["requested"]),
        )
    return HandoffError(
        failure["message"],
        task_id=record.task_id if record else "",
        attempts=record.attempts if record else (),
    )


class DurableSession(Session):
    """A `Session` whose handoffs are DBOS steps when it runs inside a job workflow.

    Outside a workflow it is a plain `Session`. Inside one, a finished handoff is never run twice:
    on resume its journaled record is charged to the budget and appended to `records` as if it
    had just finished. The orchestrator's model (the one `models` hands out) is a
    `JournaledModel`; subordinates, which run inside handoff steps, get plain models.
    """

    @property
    def models(self) -> ModelSource:
        source = self._models

        def journaled(entry: ModelEntry) -> Model:
            return JournaledModel(source(entry), entry)

        return journaled

    async def _delegate(self, task: Task[T]) -> Delivery[T]:
        if not in_workflow():
            return await super()._delegate(task)
        from handoffs.jobs._child import remote_handoff

        remote = remote_handoff(self, task)
        if remote is not None:  # spreading: a child workflow on the handoffs queue runs it
            return await remote
        outcome: list[Delivery[T] | HandoffError | BudgetExceeded] = []
        journal = await run_handoff_step(self, task, outcome)
        if outcome:  # it ran here and now: the session already holds its record
            result = outcome[0]
            if isinstance(result, Delivery):
                return result
            raise result
        return self.replay(task, journal)

    def replay(self, task: Task[T], journal: HandoffJournal) -> Delivery[T]:
        """A handoff journaled elsewhere (a replayed step, a child workflow): charge its cost,
        record it as if it had just finished here, and return or raise what it ended with."""
        raw = journal["record"]
        record = HandoffRecord.model_validate(raw) if raw is not None else None
        if record is not None:
            self.budget.charge(record.cost_usd)
            self._record(record)  # pyright: ignore[reportPrivateUsage]
        if journal["failure"] is not None:
            raise _replayed(journal["failure"], record)
        assert record is not None
        return Delivery(output=task.parse_output(record.output), record=record)


async def run_handoff_step(
    session: Session,
    task: Task[T],
    outcome: list[Delivery[T] | HandoffError | BudgetExceeded],
) -> HandoffJournal:
    """Run `task` on `session` as one `handoffs.handoff` step and return its journal; when it ran
    now (not replayed), `outcome` receives its delivery or failure."""

    async def handoff() -> HandoffJournal:
        try:
            delivery = await Session._delegate(session, task)  # pyright: ignore[reportPrivateUsage]
        except (HandoffError, BudgetExceeded) as exc:
            outcome.append(exc)
            record = next((r for r in reversed(session.records) if r.task_id == task.id), None)
            return {
                "record": record.model_dump(mode="json") if record else None,
                "failure": _failure(exc),
            }
        outcome.append(delivery)
        return {"record": delivery.record.model_dump(mode="json"), "failure": None}

    return await DBOS.run_step_async({"name": HANDOFF_STEP, "preemptible": True}, handoff)


class JournaledModel(WrapperModel):
    """`wrapped` with each request a DBOS step inside a workflow, journaled with its cost.

    Outside a workflow (or inside a step) requests go straight through. Streamed requests are not
    journaled: the orchestrator's runs do not stream.
    """

    def __init__(self, wrapped: Model, entry: ModelEntry) -> None:
        super().__init__(wrapped)
        self.entry = entry

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        if not in_workflow():
            return await super().request(messages, model_settings, model_request_parameters)

        async def call() -> RequestJournal:
            response = await self.wrapped.request(
                messages, model_settings, model_request_parameters
            )
            cost = self.entry.cost(response.usage.input_tokens, response.usage.output_tokens)
            return {
                "response": ModelMessagesTypeAdapter.dump_json([response]).decode(),
                "cost_usd": str(cost),
                "tool_calls": len(response.tool_calls),
            }

        journal = await DBOS.run_step_async({"name": ORCHESTRATOR_STEP, "preemptible": True}, call)
        (response,) = ModelMessagesTypeAdapter.validate_json(journal["response"])
        assert isinstance(response, ModelResponse)
        return response


def durable_step(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Make an async side-effecting tool a DBOS step: inside a job it runs once, and a resumed job
    gets its journaled result back. Outside a job it is called as is.

    The result must be picklable (DBOS journals it); the step's name is the function's qualified
    name, so renaming the function is a step-sequence change (see `database.APP_VERSION`).
    """
    name = f"handoffs.tool.{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    async def step(*args: P.args, **kwargs: P.kwargs) -> T:
        if not in_workflow():
            return await fn(*args, **kwargs)

        async def call() -> T:
            return await fn(*args, **kwargs)

        return await DBOS.run_step_async({"name": name}, call)

    return step
