"""The cut between a job's workflow code and its durable steps.

Inside a job's DBOS workflow:

- every **handoff** (`Session.delegate`) is one step: its `HandoffRecord` is journaled when it
  finishes, and a resumed job gets the record back instead of calling a model again
  (`DurableRunner`, the job session's `HandoffRunner`); a handoff that raised journals its
  exception too (class and fields, `JournaledFailure`), and a resumed job raises the same class
  with the same fields;
- every **orchestrator request** is one step, journaled as JSON with its cost (`JournaledModels`,
  the job session's models);
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
from typing import Any, Literal, NotRequired, ParamSpec, TypedDict, TypeVar, assert_never

from dbos import DBOS
from pydantic import BaseModel, ConfigDict
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from handoffs.catalog import ModelEntry
from handoffs.engine import EXPOSURE, Exposure, ModelSource, Run
from handoffs.errors import (
    BudgetExceeded,
    HandoffError,
    HandoffFailed,
    HandoffTimeout,
    NoRouteAvailable,
    ProviderRejected,
    Rejection,
    VerificationFailed,
)
from handoffs.handoff import Attempt, Delivery, HandoffRecord, Verdict
from handoffs.task import Task

__all__ = [
    "EXPOSURE_EVENT",
    "HANDOFF_STEP",
    "ORCHESTRATOR_STEP",
    "DurableRunner",
    "HandoffJournal",
    "JournaledFailure",
    "JournaledModel",
    "JournaledModels",
    "Raised",
    "durable_step",
    "in_workflow",
    "possibly_billed",
    "replay",
    "run_handoff_step",
]

T = TypeVar("T")
P = ParamSpec("P")

HANDOFF_STEP = "handoffs.handoff"
"""The journaled name of a handoff step (compatibility data: see `database.APP_VERSION`)."""
EXPOSURE_EVENT = "handoffs.exposure."
"""The workflow event (plus the handoff step's id) a running handoff step keeps its exposure in:
what its calls have spent and hold, written before each request is sent."""
ORCHESTRATOR_STEP = "handoffs.orchestrator.request"
"""The journaled name of an orchestrator request step."""


def in_workflow() -> bool:
    """Whether this is a DBOS workflow's own code (not a step, not outside any workflow)."""
    return DBOS.workflow_id is not None and DBOS.step_id is None


class HandoffJournal(TypedDict):
    """What a handoff step journals."""

    record: dict[str, Any] | None
    failure: dict[str, Any] | None
    """The exception it raised: a `JournaledFailure` as JSON."""
    possibly_billed_usd: NotRequired[str]
    """What earlier runs of this step, cut off by a crash, may have been billed: their calls'
    spend and in-flight reservations as last journaled (`EXPOSURE_EVENT`). Charged to the job's
    budget besides the record's cost."""


class RequestJournal(TypedDict):
    """What an orchestrator request step journals."""

    response: str
    """The `ModelResponse` as pydantic-ai's message JSON."""
    cost_usd: str
    tool_calls: int


Raised = Literal[
    "HandoffError",
    "VerificationFailed",
    "NoRouteAvailable",
    "HandoffFailed",
    "ProviderRejected",
    "HandoffTimeout",
    "BudgetExceeded",
]
"""The exceptions a handoff raises, by their names in `handoffs.errors`."""

_RAISED: dict[Raised, type[HandoffError | BudgetExceeded]] = {
    "HandoffError": HandoffError,
    "VerificationFailed": VerificationFailed,
    "NoRouteAvailable": NoRouteAvailable,
    "HandoffFailed": HandoffFailed,
    "ProviderRejected": ProviderRejected,
    "HandoffTimeout": HandoffTimeout,
    "BudgetExceeded": BudgetExceeded,
}


class JournaledFailure(BaseModel):
    """The exception a handoff step raised: its class and its fields, so that a replay raises
    the same class with the same fields.

    Journals written before the class was journaled carry `kind`, `message`, the budget's
    figures and (for a handoff error) `type` only; the rest is read from the step's record.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["handoff", "budget"]
    """`budget` for `BudgetExceeded`; kept so that any release can read the journal."""
    type: Raised | None = None
    """The class (None in an old journal of a `BudgetExceeded`)."""
    message: str
    task_id: str | None = None
    attempts: tuple[Attempt, ...] | None = None
    verdicts: tuple[Verdict, ...] | None = None
    """`VerificationFailed.verdicts`."""
    reasons: tuple[str, ...] | None = None
    """`NoRouteAvailable.reasons`."""
    model: str | None = None
    """`ProviderRejected.model`."""
    cause: Rejection | None = None
    """`ProviderRejected.cause`."""
    limit: Decimal | None = None
    spent: Decimal | None = None
    reserved: Decimal | None = None
    requested: Decimal | None = None

    @classmethod
    def of(cls, exc: HandoffError | BudgetExceeded) -> JournaledFailure:
        """`exc` as data: the nearest class of the tree and every field it carries."""
        name: Raised = next(n for c in type(exc).__mro__ for n, k in _RAISED.items() if k is c)
        message = str(exc)
        match exc:
            case BudgetExceeded():
                return cls(
                    kind="budget",
                    type=name,
                    message=message,
                    limit=exc.limit,
                    spent=exc.spent,
                    reserved=exc.reserved,
                    requested=exc.requested,
                )
            case HandoffError():
                return cls(
                    kind="handoff",
                    type=name,
                    message=message,
                    task_id=exc.task_id,
                    attempts=exc.attempts,
                    verdicts=exc.verdicts if isinstance(exc, VerificationFailed) else None,
                    reasons=exc.reasons if isinstance(exc, NoRouteAvailable) else None,
                    model=exc.model if isinstance(exc, ProviderRejected) else None,
                    cause=exc.cause if isinstance(exc, ProviderRejected) else None,
                )

    def rebuild(self, record: HandoffRecord | None) -> HandoffError | BudgetExceeded:
        """The exception again: same class, same fields (an old journal's from `record`)."""
        name: Raised = self.type or ("BudgetExceeded" if self.kind == "budget" else "HandoffError")
        zero = Decimal(0)
        task_id = self.task_id if self.task_id is not None else (record.task_id if record else "")
        attempts = (
            self.attempts if self.attempts is not None else (record.attempts if record else ())
        )
        match name:
            case "BudgetExceeded":
                return BudgetExceeded(
                    self.message,
                    limit=self.limit or zero,
                    spent=self.spent or zero,
                    reserved=self.reserved or zero,
                    requested=self.requested or zero,
                )
            case "VerificationFailed":
                verdicts = self.verdicts
                if verdicts is None:  # a failed record keeps the failed verdicts
                    verdicts = record.verdicts if record else ()
                return VerificationFailed(
                    self.message, task_id=task_id, attempts=attempts, verdicts=verdicts
                )
            case "NoRouteAvailable":
                reasons = self.reasons
                if reasons is None:
                    reasons = tuple(s.reason for s in record.route_reasons) if record else ()
                return NoRouteAvailable(self.message, task_id=task_id, reasons=reasons)
            case "ProviderRejected":
                fault = next((a for a in reversed(attempts) if a.fault in _REJECTIONS), None)
                return ProviderRejected(
                    self.message,
                    task_id=task_id,
                    model=self.model or (fault.model if fault else ""),
                    cause=self.cause or _rejection(record),
                    attempts=attempts,
                )
            case "HandoffError" | "HandoffFailed" | "HandoffTimeout":
                plain = {"HandoffFailed": HandoffFailed, "HandoffTimeout": HandoffTimeout}
                raised = plain.get(name, HandoffError)
                return raised(self.message, task_id=task_id, attempts=attempts)
            case _:
                assert_never(name)


_REJECTIONS: tuple[Rejection, ...] = ("content_filter", "rejected")


def _rejection(record: HandoffRecord | None) -> Rejection:
    cause = record.cause if record else None
    return "content_filter" if cause == "content_filter" else "rejected"


class DurableRunner:
    """The `HandoffRunner` of a job: inside its DBOS workflow, each handoff is one step.

    Outside a workflow (or inside a step) a handoff is made as usual. Inside one, a finished
    handoff is never made twice: on resume its journaled record is adopted — charged to the budget
    and streamed to the session's sinks as if it had just finished.
    """

    async def __call__(self, task: Task[T], run: Run[T], /) -> Delivery[T]:
        if not in_workflow():
            return await run()
        journal = await run_handoff_step(run)
        if run.record is None:  # journaled before the job resumed: the step was not run again
            return replay(run, journal)
        return run.result()  # made in the step, here and now


def replay(run: Run[T], journal: HandoffJournal) -> Delivery[T]:
    """A handoff journaled elsewhere (a replayed step, a child workflow): adopt its record, and
    return or raise what it ended with."""
    raw = journal["record"]
    record = HandoffRecord.model_validate(raw) if raw is not None else None
    possibly = possibly_billed(journal)
    if possibly:  # an interrupted run's calls, before this one
        run.session.budget.charge(possibly)
    if record is not None:
        run.adopt(record)
    if journal["failure"] is not None:
        raise JournaledFailure.model_validate(journal["failure"]).rebuild(record)
    assert record is not None
    return Delivery(output=run.task.parse_output(record.output), record=record)


async def run_handoff_step(run: Run[Any]) -> HandoffJournal:
    """Make `run` in one `handoffs.handoff` step and return its journal (on resume: the journal
    of the step made before, and `run` is not made).

    The step keeps what its calls may have been billed in a workflow event, written before each
    request is sent (`Exposure`). A step that finds that event already there was cut off by a
    crash in an earlier run: what that run may have been billed is charged to the job's budget
    before the handoff runs again, and journaled with it (`possibly_billed_usd`)."""

    async def handoff() -> HandoffJournal:
        key = f"{EXPOSURE_EVENT}{DBOS.step_id}"
        earlier = await DBOS.get_event_async(_workflow_id(), key, timeout_seconds=0)
        possibly = Decimal(str(earlier)) if earlier is not None else Decimal(0)
        if possibly:
            run.session.budget.charge(possibly)

        async def changed(exposure: Exposure) -> None:
            await DBOS.set_event_async(key, str(possibly + exposure.total))

        token = EXPOSURE.set(Exposure(changed=changed))
        try:
            journal = await _made(run)
        finally:
            EXPOSURE.reset(token)
        if possibly:
            journal["possibly_billed_usd"] = str(possibly)
        return journal

    return await DBOS.run_step_async({"name": HANDOFF_STEP, "preemptible": True}, handoff)


def _workflow_id() -> str:
    workflow = DBOS.workflow_id
    assert workflow is not None, "a handoff step runs inside a job's workflow"
    return workflow


async def _made(run: Run[Any]) -> HandoffJournal:
    try:
        delivery = await run()
    except (HandoffError, BudgetExceeded) as exc:
        record = run.record
        return {
            "record": record.model_dump(mode="json") if record else None,
            "failure": JournaledFailure.of(exc).model_dump(mode="json", exclude_none=True),
        }
    return {"record": delivery.record.model_dump(mode="json"), "failure": None}


def possibly_billed(journal: HandoffJournal | dict[str, Any]) -> Decimal:
    """What a handoff step's journal says earlier, interrupted runs of it may have been billed."""
    return Decimal(str(journal.get("possibly_billed_usd", "0")))


class JournaledModels:
    """A job session's `ModelSource`: `source`'s models, each a `JournaledModel`. The
    orchestrator's requests, made in workflow code, become steps; subordinates' requests, made
    inside handoff steps, go straight through."""

    def __init__(self, source: ModelSource) -> None:
        self.source = source

    def __call__(self, entry: ModelEntry) -> Model:
        return JournaledModel(self.source(entry), entry)

    def address(self, entry: ModelEntry) -> str | None:
        """Where calls for `entry` go, as `source` says (a `Portfolio` knows without building)."""
        locate = getattr(self.source, "address", None)
        found = locate(entry) if callable(locate) else None
        return None if found is None else str(found)

    def label(self, model_id: str) -> str | None:
        """How `source` serves `model_id` (`Portfolio.label`: `simulated`, `real`, ...), if it
        says."""
        label = getattr(self.source, "label", None)
        found = label(model_id) if callable(label) else None
        return None if found is None else str(found)


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
            usage = response.usage
            cost = self.entry.cost(
                usage.input_tokens,
                usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            )
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
