"""Spreading a job's handoffs across workers: each handoff a child workflow on the handoffs queue.

With `[jobs] spread = true`, a job run by `handoffs worker` does not run its handoffs itself:

```
parent (the job's workflow code)                       any worker (the handoffs queue)
  reserve the handoff's worst case in the job budget
  step handoffs.handoff:
    enqueue child <job id>-handoff-<step>  ------------>  handoff_workflow(request)
    (or find it, when the job resumes)                      step handoffs.handoff: the handoff made
    wait for its result                    <------------    there, within the ceiling it was granted
  release the reservation, adopt the record (its cost charged)
```
`SpreadingRunner` is the parent session's `HandoffRunner`: it wraps the job's `DurableRunner`,
which makes the handoffs that do not spread (a task outside the roster, a job out of money).
The parent's journal is the same as without spreading — one `handoffs.handoff` step per handoff,
started in the order the orchestrator asked for them — so progress, `jobs status`, resume and
replay read it unchanged. The child's id is derived from the parent's step, so a resumed parent
finds its children (running, or finished: their result is in the database) instead of starting
them again: a finished child is never re-run nor re-paid.

**Budget.** The child cannot see the job's budget, so before enqueuing it the parent reserves
the child's ceiling — the cost of climbing the handoff's route once (every rung's dearest model,
asked `1 + feedback_retries` times, a judge call each time when the task has checks), capped by
the task's `max_cost_usd` and by what the job has left — and the child runs with that ceiling as
its whole budget. On the result the parent releases the reservation and charges the recorded
cost. Reservations and charges are workflow code computed from journaled results, so a resumed
job rebuilds them without a table of its own; a resumed parent that finds a running child holds
that child's recorded ceiling, whatever it would grant now. The job's spend never exceeds its
budget; under a tight budget, children granted less than one call fail with `BudgetExceeded` at
once, in the parent, as they would in process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio
from dbos import DBOS, DBOSClient, WorkflowHandleAsync
from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel, ConfigDict

from handoffs.budget import Budget, Reservation
from handoffs.catalog import ModelEntry, reserved_input_tokens
from handoffs.engine import (
    ASK_MAX_TOKENS,
    ASK_PROMPT_TOKENS,
    FEEDBACK_PROMPT_TOKENS,
    HandoffRunner,
    Run,
    Session,
    prompt_bound,
    prompt_cached,
)
from handoffs.errors import BudgetExceeded
from handoffs.handoff import Delivery
from handoffs.jobs._cache import job_cache_store
from handoffs.jobs._database import APP_VERSION, HANDOFF_QUEUE, HANDOFF_WORKFLOW
from handoffs.jobs._durable import (
    HANDOFF_STEP,
    HandoffJournal,
    in_workflow,
    replay,
    run_handoff_step,
)
from handoffs.orchestrator import Subordinate
from handoffs.project import (
    JobSnapshot,
    configured_session,
    job_simulation,
    open_portfolio,
)
from handoffs.task import Risk, Task
from handoffs.tracing import Tracing, job_meter_provider, job_tracer_provider

__all__ = [
    "HandoffRequest",
    "Spread",
    "SpreadingRunner",
    "handoff_workflow",
    "serve",
    "stop_running_children",
]

T = TypeVar("T")

POLL_S = 0.1
"""How often a parent looks for its children's results."""

_running: set[anyio.CancelScope] = set()
_client: DBOSClient | None = None
"""The worker's client: children are enqueued and awaited from inside a step, where DBOS's own
workflow API is not allowed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Spread:
    """What a spreading job tells its handoffs: the job as submitted, and its roster."""

    job_id: str
    snapshot: JobSnapshot
    trace_dir: str | None
    subordinates: tuple[Subordinate[Any, Any], ...]


class TaskSpec(BaseModel):
    """A `Task` as data: the fields a subordinate's task may carry beyond its roster entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    input: Any
    input_model: bool
    """Whether the input is the subordinate's input model (else plain JSON data)."""
    instructions: str
    risk: Risk
    max_cost_usd: Decimal | None
    deadline_s: float | None
    min_score: float | None
    model: str | None
    requires: list[str]
    max_output_tokens: int
    feedback_retries: int
    label: str | None


class HandoffRequest(BaseModel):
    """The input of a child workflow: one handoff of a spreading job."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    parent: str
    """The job's workflow id."""
    snapshot: JobSnapshot
    """The job as submitted: the child builds its config and roster from it, as the job does."""
    trace_dir: str | None
    subordinate: int
    """Index of the subordinate in the job's roster."""
    task: TaskSpec
    ceiling_usd: Decimal | None
    """The child's whole budget: what the parent reserved for it (None: unlimited)."""
    trace: dict[str, str] = {}
    """W3C trace context of the parent's handoff span (`traceparent`)."""


def serve(client: DBOSClient | None) -> None:
    """Let this process's jobs spread through `client` (a worker's), or stop (None)."""
    global _client
    _client = client


def running_children() -> int:
    """How many child workflows this process is running now."""
    return len(_running)


def stop_running_children() -> None:
    """Cancel every child running here; they stay PENDING, resumable elsewhere."""
    for scope in list(_running):
        scope.cancel()


def _subordinate_of(subordinates: Sequence[Subordinate[Any, Any]], task: Task[Any]) -> int | None:
    """The roster entry `task` was made from (a child rebuilds it there), or None."""
    for index, sub in enumerate(subordinates):
        if (
            sub.kind == task.kind
            and sub.output_type is task.output_type
            and tuple(sub.checks) == tuple(task.checks)
            and sub.fallback is task.fallback
        ):
            return index
    return None


def worst_case(session: Session, task: Task[Any]) -> tuple[Decimal, Decimal] | None:
    """(the first call's reservation, the cost of climbing the route once) or None: no route."""
    decision = session.route(task)
    if not decision.ladder:
        return None
    out = task.max_output_tokens
    # as the engine reserves: the prompt's UTF-8 bytes bound its tokens; an answer of `out`
    # tokens is taken as `4 * out` bytes when it is shown again (a retry, a check)
    prompt = max(prompt_bound(task, session.catalog[m].prompt_variant) for m in decision.ladder)
    tokens = reserved_input_tokens(prompt)
    again = reserved_input_tokens(prompt + 4 * out + FEEDBACK_PROMPT_TOKENS)

    def cost(model: ModelEntry, tokens: int, out: int, wanted: bool = True) -> Decimal:
        # as reserved: a call that asks for the prompt cache may write its prompt (1.25x)
        return model.cost_bound(tokens, out, cached=prompt_cached(model, wanted))

    catalog, own = session.catalog, task.prompt_cache
    judge = Decimal(0)
    if task.checks:
        asked = reserved_input_tokens(prompt + 4 * out + ASK_PROMPT_TOKENS)
        judge = max(cost(e, asked, ASK_MAX_TOKENS) for e in catalog.values())
    climb = Decimal(0)
    for rung in decision.rungs:
        climb += max(
            cost(catalog[m], tokens, out, own)
            + judge
            + task.feedback_retries * (cost(catalog[m], again, out, own) + judge)
            for m in rung
        )
    first = min(cost(catalog[m], tokens, out, own) for m in decision.rungs[0])
    return first, climb


class SpreadingRunner:
    """The `HandoffRunner` of a spreading job: inside its workflow each handoff is a child
    workflow on the handoffs queue, when it can run elsewhere; otherwise `inner` makes it (the
    job's `DurableRunner`). Spreads only in a worker that serves a client (`serve`)."""

    def __init__(self, spread: Spread, inner: HandoffRunner) -> None:
        self.spread = spread
        self.inner = inner

    async def __call__(self, task: Task[T], run: Run[T], /) -> Delivery[T]:
        remote = _remote_request(self.spread, run) if in_workflow() else None
        if remote is None:
            return await self.inner(task, run)
        request, hold = remote
        return await _remote(run, request, hold)


def _remote_request(spread: Spread, run: Run[Any]) -> tuple[HandoffRequest, _Hold] | None:
    """The request of the handoff's child workflow, when `run`'s task can run elsewhere; None:
    make it here. Decided and reserved now, so the step starts in the caller's order."""
    if _client is None:
        return None
    session, task = run.session, run.task
    index = _subordinate_of(spread.subordinates, task)
    costs = worst_case(session, task)
    if index is None or costs is None:
        return None
    first, ceiling = costs
    if task.max_cost_usd is not None:
        ceiling = min(ceiling, task.max_cost_usd)
    remaining = session.budget.remaining_usd
    hold: Reservation | None = None
    if remaining is not None:
        ceiling = min(ceiling, remaining)
        if ceiling < first:
            return None  # not one call's worth left: here, the handoff is refused at once
        hold = session.budget.reserve(ceiling)
    else:
        ceiling = task.max_cost_usd  # an unlimited job: only the task's own ceiling
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    request = HandoffRequest(
        parent=spread.job_id,
        snapshot=spread.snapshot,
        trace_dir=spread.trace_dir,
        subordinate=index,
        task=_spec_of(task),
        ceiling_usd=ceiling,
        trace=carrier,
    )
    return request, _Hold(session.budget, hold)


class _Hold:
    """The parent's reservation for one child; a resumed parent holds the child's recorded
    ceiling instead of what it would grant now."""

    def __init__(self, budget: Budget, reservation: Reservation | None) -> None:
        self.budget = budget
        self.reservation = reservation
        self.forced = Decimal(0)

    def regrant(self, amount: Decimal | None) -> None:
        held = self.reservation.amount if self.reservation else Decimal(0)
        if amount is None or amount == held or self.budget.limit_usd is None:
            return
        self.release()
        try:
            self.reservation = self.budget.reserve(amount)
        except BudgetExceeded:  # granted before the crash: count it as spent until the result
            self.budget.charge(amount)
            self.forced = amount

    def release(self) -> None:
        if self.reservation is not None:
            self.reservation.release()
            self.reservation = None
        if self.forced:
            self.budget.charge(-self.forced)
            self.forced = Decimal(0)


async def _remote(run: Run[T], request: HandoffRequest, hold: _Hold) -> Delivery[T]:
    async def await_child() -> HandoffJournal:
        client = _client
        step = DBOS.step_id
        assert client is not None and step is not None
        child_id = f"{request.parent}-handoff-{step}"
        found = await anyio.to_thread.run_sync(
            lambda: client.list_workflows(workflow_ids=[child_id], load_output=False)
        )
        if found:  # a resumed job: the child is running or done; hold what it was granted
            hold.regrant(_granted(found[0].input))
        else:
            await client.enqueue_async(_options(child_id), request.model_dump(mode="json"))
        try:
            handle: WorkflowHandleAsync[Any] = await client.retrieve_workflow_async(child_id)
            return cast("HandoffJournal", await handle.get_result(polling_interval_sec=POLL_S))
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(
                    _cancel_if_parent_cancelled, client, request, child_id
                )
            raise

    try:
        journal = await DBOS.run_step_async(
            {"name": HANDOFF_STEP, "preemptible": True}, await_child
        )
    finally:
        hold.release()
    return replay(run, journal)


def _granted(inputs: Any) -> Decimal | None:
    args = cast(dict[str, Any], inputs or {}).get("args") or ()
    if not args:
        return None
    ceiling = cast(dict[str, Any], args[0]).get("ceiling_usd")
    return None if ceiling is None else Decimal(str(ceiling))


def _options(child_id: str) -> Any:
    return {
        "queue_name": HANDOFF_QUEUE,
        "workflow_name": HANDOFF_WORKFLOW,
        "workflow_id": child_id,
        "app_version": APP_VERSION,
    }


def _cancel_if_parent_cancelled(client: DBOSClient, request: HandoffRequest, child: str) -> None:
    """A cancelled job cancels the child it waits for; a stopped worker leaves it running."""
    try:
        found = client.list_workflows(workflow_ids=[request.parent], load_input=False)
        if found and found[0].status == "CANCELLED":
            client.cancel_workflow(child)
    except Exception:  # the job's own cancel lists its children as well
        return


_CARRIED = tuple(f for f in TaskSpec.model_fields if f not in ("input", "input_model", "requires"))
"""The task's own fields a spec carries as they are (the rest come from the roster entry)."""


def _spec_of(task: Task[Any]) -> TaskSpec:
    return TaskSpec(
        input=task.input_data(),
        input_model=isinstance(task.input, BaseModel),
        requires=sorted(task.requires),
        **{name: getattr(task, name) for name in _CARRIED},
    )


def _task_of(sub: Subordinate[Any, Any], spec: TaskSpec) -> Task[Any]:
    value: Any = sub.input_type.model_validate(spec.input) if spec.input_model else spec.input
    carried = {name: getattr(spec, name) for name in _CARRIED}
    return sub.task(value, requires=frozenset(spec.requires), **carried)


def _parent_cancelled(parent: str) -> bool:
    client = _client
    if client is None:
        return False
    found = client.list_workflows(workflow_ids=[parent], load_input=False, load_output=False)
    return bool(found) and found[0].status == "CANCELLED"


def _cancel_self(child: str) -> None:
    if _client is not None:
        _client.cancel_workflow(child)


async def _run_child(req: HandoffRequest) -> HandoffJournal:
    config, spec = req.snapshot.restore()
    task = _task_of(spec.subordinates[req.subordinate], req.task)
    store = await anyio.to_thread.run_sync(job_cache_store, config)
    child_id = DBOS.workflow_id or req.parent
    directory = Path(req.trace_dir) if req.trace_dir else None
    provider = job_tracer_provider(child_id, directory=directory, env=os.environ)
    meters = job_meter_provider(child_id, directory=directory, env=os.environ)
    tracing = Tracing(
        tracer_provider=provider,
        meter_provider=meters,
        include_content=config.trace_content,
        model_names={e.id: e.name for e in config.catalog.values()},
    )
    token = otel_context.attach(TraceContextTextMapPropagator().extract(req.trace))
    try:
        with open_portfolio(config, simulation=job_simulation(spec)) as portfolio:
            budget = Budget(req.ceiling_usd, name=f"job {spec.name}, handoff {task.id}")
            session = configured_session(  # the job's [cache], in the job's scope
                config,
                portfolio,
                budget,
                tracing=tracing,
                job_id=req.parent,
                cache_store=store,
            )
            try:  # made here, in the parent's handoff span: not through a runner, no span of its own
                return await run_handoff_step(session.prepare(task))
            finally:
                await portfolio.aclose()
    finally:
        otel_context.detach(token)
        provider.shutdown()
        meters.shutdown()


@DBOS.workflow(name=HANDOFF_WORKFLOW)
async def handoff_workflow(request: dict[str, Any]) -> dict[str, Any]:
    """Run one handoff of a spreading job within the ceiling its parent reserved for it."""
    req = HandoffRequest.model_validate(request)
    with anyio.CancelScope() as scope:
        if await anyio.to_thread.run_sync(_parent_cancelled, req.parent):
            await anyio.to_thread.run_sync(_cancel_self, DBOS.workflow_id or "")
            scope.cancel()
        _running.add(scope)
        try:
            return dict(await _run_child(req))
        finally:
            _running.discard(scope)
    # Stopped by its worker (or its job was cancelled): DBOS leaves it unrecorded.
    raise anyio.get_cancelled_exc_class()()
