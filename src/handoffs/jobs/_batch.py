"""The batch lane: a job's batch-urgent handoffs answered by the providers' batch APIs, at batch
prices, waiting for the batch durably.

```
BatchLane(task, run)                    a task with urgency="batch" (or of a kind the job file
                                        lists under `batch`), tool-less, with structured output,
                                        whose first rung has a model with a batch API and whose
                                        deadline is not shorter than that model's batch window:
  hold its cost at the batch price      (the job's budget; a task it cannot cover: ordinary route)
  gather                                every such task asked for at the same time (a fan-out)
  per model: one batch
    handoffs.batch.submit    step       batch_create: the provider's batch id is journaled
    handoffs.batch.poll      step       batch_status, after a durable sleep (DBOS.sleep), until
                                        the batch ends: a resumed job polls the same batch id
    handoffs.batch.results   step       batch_results, journaled
  each task: its handoff step           the batch's answer is the first attempt (charged at the
                                        batch price, checked as usual); an answer that fails its
                                        checks, does not validate, errored, expired or is
                                        missing escalates by the ordinary route (not batched)
otherwise                               the inner runner (`DurableRunner`): the ordinary route
```
What a crash can and cannot repeat: once the submit step is journaled, a worker killed (even with
SIGKILL) while the batch is pending resumes polling the same batch id and never submits it again.
A worker killed during the submit step itself, after the provider accepted the batch and before
DBOS journaled the step, submits it again (a step that did not finish runs again).

Outside a workflow (`Session(runner=BatchLane(run_here, ...))`) the lane waits for the batch in
process, with `anyio.sleep`; a plain session (no lane) takes the ordinary route for batch tasks.

Why not pydantic-ai's `BatchModelRequests` capability: its pool submits expired or failed
requests again in new batches and waits in its own asyncio tasks; a job must journal the batch id
before waiting (so a resumed job never resubmits) and escalate a failed request by the ordinary
route. The lane uses the same `Model.batch_*` primitives the capability is built on.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar, cast

import anyio
import anyio.lowlevel
from dbos import DBOS
from pydantic import TypeAdapter
from pydantic_ai.models.batch import Batch, BatchResult

from handoffs.engine import (
    BatchAnswer,
    BatchModels,
    BatchPlan,
    HandoffRunner,
    Run,
    batch_urgent,
    plan_batch,
    read_answer,
)
from handoffs.errors import BudgetExceeded
from handoffs.handoff import Delivery
from handoffs.jobs._durable import in_workflow
from handoffs.routing import route
from handoffs.task import Task

__all__ = [
    "BATCH_POLL_STEP",
    "BATCH_RESULTS_STEP",
    "BATCH_SUBMIT_STEP",
    "BatchLane",
    "PendingBatch",
]

T = TypeVar("T")

BATCH_SUBMIT_STEP = "handoffs.batch.submit"
BATCH_POLL_STEP = "handoffs.batch.poll"
BATCH_RESULTS_STEP = "handoffs.batch.results"

MAX_POLL_S = 600.0
"""The longest wait between two checks of a pending batch."""
GATHER_TICKS = 64
"""Scheduler turns the first task of a batch waits for the tasks asked for beside it."""

_BATCH = TypeAdapter(Batch)
_RESULTS = TypeAdapter(list[BatchResult])


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingBatch:
    """A batch the lane submitted and waits for: what `handoffs run` shows as pending."""

    batch_id: str
    model: str
    """The catalog id it went to."""
    labels: tuple[str, ...]
    """The labels (or ids) of its tasks."""
    hold_usd: Decimal
    """What its requests may cost at the batch price (held against the job's budget)."""
    ordinary_usd: Decimal
    """The same requests' bound at the ordinary price."""


@dataclass(slots=True, kw_only=True)
class _Waiter:
    plan: BatchPlan
    done: anyio.Event = field(default_factory=anyio.Event)
    answer: BatchAnswer | None = None


class BatchLane:
    """A `HandoffRunner` that answers batch-urgent tasks from provider batches (see the module
    doc) and hands every handoff to `inner` to be made (a journaled step in a job).

    `batch_models`: the model a catalog entry's batches go to (`Portfolio.batch_model`);
    `kinds`: task kinds batched besides `urgency="batch"` tasks; `poll_s`: the first wait between
    checks of a batch (growing by half to `MAX_POLL_S`); `on_pending`: told of each batch once it
    is submitted (or found journaled) and still pending."""

    def __init__(
        self,
        inner: HandoffRunner,
        batch_models: BatchModels,
        *,
        kinds: frozenset[str] = frozenset(),
        poll_s: float = 30.0,
        on_pending: Callable[[PendingBatch], None] | None = None,
    ) -> None:
        self.inner = inner
        self.batch_models = batch_models
        self.kinds = kinds
        self.poll_s = poll_s
        self.on_pending = on_pending
        self._gathering: list[_Waiter] = []

    async def __call__(self, task: Task[T], run: Run[T], /) -> Delivery[T]:
        if not batch_urgent(task, self.kinds) or run.batched is not None:
            return await self.inner(task, run)
        session = run.session
        # the policy's route, not the breakers' (`session.route`): workflow code must choose the
        # same way when a resumed job runs it again, whatever the endpoints' health is by then
        decision = route(task, session.catalog, session.policy)
        ladder = [[session.catalog[m] for m in rung] for rung in decision.rungs]
        plan = await plan_batch(task, ladder, self.batch_models)
        if isinstance(plan, str):
            return await self.inner(task, run)
        try:
            hold = session.budget.reserve(plan.hold_usd)
        except BudgetExceeded:
            return await self.inner(task, run)
        try:
            answer = await self._answer(plan)
        finally:
            hold.release()
        run.batched = answer  # None: the batch failed as a whole; the ordinary route
        return await self.inner(task, run)

    async def _answer(self, plan: BatchPlan) -> BatchAnswer | None:
        waiter = _Waiter(plan=plan)
        self._gathering.append(waiter)
        if len(self._gathering) > 1:
            await waiter.done.wait()
            return waiter.answer
        for _ in range(GATHER_TICKS):
            await anyio.lowlevel.checkpoint()
        group, self._gathering = self._gathering, []
        try:
            by_model: dict[str, list[_Waiter]] = {}
            for each in group:
                by_model.setdefault(each.plan.entry.id, []).append(each)
            for waiters in by_model.values():
                await self._batch(waiters)
        finally:
            for each in group:
                each.done.set()
        return waiter.answer

    async def _batch(self, waiters: list[_Waiter]) -> None:
        """One batch of `waiters`' requests (all to one model): submit, wait, read."""
        # Each request's id is its place in the batch, not its task's id: a resumed job makes its
        # tasks again, with new ids, in the same order, and matches them to the journaled results.
        for n, each in enumerate(waiters):
            request = dataclasses.replace(each.plan.request, custom_id=f"item-{n}")
            each.plan = dataclasses.replace(each.plan, request=request)
        plans = [w.plan for w in waiters]
        model = plans[0].model
        try:
            encoded = [await p.model.batch_encode(p.request) for p in plans]
        except Exception:
            return  # a request the batch API cannot take: every task goes the ordinary route

        async def submit() -> dict[str, Any] | None:
            try:
                batch = await model.batch_create(encoded)
            except Exception:
                return None
            return {"batch": _BATCH.dump_python(batch, mode="json"), "at": time.time()}

        submitted = await _step(BATCH_SUBMIT_STEP, submit)
        if submitted is None:
            return
        batch = _BATCH.validate_python(submitted["batch"])
        if self.on_pending is not None:
            self.on_pending(
                PendingBatch(
                    batch_id=batch.id,
                    model=plans[0].entry.id,
                    labels=tuple(p.task.label or p.task.id for p in plans),
                    hold_usd=sum((p.hold_usd for p in plans), Decimal(0)),
                    ordinary_usd=sum((p.ordinary_usd for p in plans), Decimal(0)),
                )
            )
        wait = self.poll_s
        while batch.status != "ended":
            await _sleep(wait)
            wait = min(wait * 1.5, MAX_POLL_S)
            current = batch

            async def poll(current: Batch = current) -> dict[str, Any] | None:
                try:
                    found = await model.batch_status(current)
                except Exception:
                    return None  # unreachable for now: polled again after the next wait
                return _BATCH.dump_python(found, mode="json")

            polled = await _step(BATCH_POLL_STEP, poll)
            if polled is not None:
                batch = _BATCH.validate_python(polled)

        ended = batch

        async def fetch() -> dict[str, Any]:
            try:
                results = await model.batch_results(ended)
            except Exception:
                return {"batch_id": ended.id, "results": None, "at": time.time()}
            return {
                "batch_id": ended.id,
                "results": _RESULTS.dump_python(results, mode="json"),
                "at": time.time(),
            }

        fetched = await _step(BATCH_RESULTS_STEP, fetch)
        if fetched["results"] is None:
            return  # unreadable: every task goes the ordinary route
        results = {r.custom_id: r for r in _RESULTS.validate_python(fetched["results"])}
        waited = max(float(fetched["at"]) - float(submitted["at"]), 0.0)
        for each in waiters:
            found = results.get(each.plan.request.custom_id)
            each.answer = read_answer(each.plan, found, batch_id=batch.id, waited_s=waited)


async def _step(name: str, fn: Callable[[], Awaitable[T]]) -> T:
    """`fn` as a journaled DBOS step inside a job's workflow, else called here."""
    if not in_workflow():
        return await fn()
    return cast(T, await DBOS.run_step_async({"name": name}, fn))


async def _sleep(seconds: float) -> None:
    """A durable sleep inside a job's workflow (a resumed job sleeps only what is left)."""
    if in_workflow():
        await DBOS.sleep_async(seconds)
    else:
        await anyio.sleep(seconds)
