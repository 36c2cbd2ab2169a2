"""The delegation engine: route, reserve, run, verify, retry with feedback, escalate, fail over, degrade.

```
for each rung of the route (a model and its failover chain on other providers):
    for each model on the rung whose circuit breaker admits a call:
        reserve the worst-case cost (job budget, handoff ceiling, spend caps) -> run -> commit
            unavailable (5xx, 529, connection, timeout) -> next model on the rung, at once
            rate limited (429)  -> wait its Retry-After if that fits the deadline, else next model
            context too long    -> the next model with a longer context window
            content filter      -> the task's fallback (a degraded Delivery), recorded as such
            other 4xx           -> stop: ProviderRejected names the model and the cause
            invalid output      -> retry the same model with the validation error, then escalate
            a check fails       -> retry the same model with the verdict's feedback, then escalate
            every check passes  -> Delivery
every provider failed transiently -> back off (jittered) and sweep the route again, within the caps
nothing delivered -> the task's fallback (degraded) or VerificationFailed / HandoffFailed / ...
```
Every call goes through the engine's `Guard` (spend caps, breaker, reservation, settlement, fault
sorting, the 429 policy), the same one the orchestrator's own model uses. Provider faults are sorted
by `handoffs.providers.classify`; breakers live in `handoffs.health`; the caps on attempts and time
in `handoffs.engine`; the attempt log in `handoffs.engine`.

With a response cache (`Session(cache=...)`, `handoffs.cache`), each task is looked up before it
is routed: an exact repeat, or a near one whose checks pass on the cached answer against the new
input, is delivered from the cache (no route, no attempts); a miss is made as above, and its
delivery kept if it was verified.

The seam around each handoff, for whoever needs to make it elsewhere (durable jobs, the Gauntlet):
```
session.delegate(task)
  -> handoff span (with tracing)
  -> runner(task, run)            default: `await run()`, the loop above, here and now
       or: the record from elsewhere (a journal, another worker) -> run.adopt(record)
       or: a provider batch's answer in `run.batched` first (the batch lane,
           `handoffs.jobs.BatchLane`): the handoff's first attempt, at the batch price
  -> run.record: tallied, streamed to the sinks (`RecordSink`), fills in the span
```
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import partial
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

import anyio
from pydantic_ai.models import Model
from pydantic_ai.usage import RunUsage

from handoffs.budget import Budget
from handoffs.cache import Lookup, ResponseCache
from handoffs.catalog import Catalog, ModelEntry, reserved_input_tokens, token_bound
from handoffs.engine._batch import BatchAnswer
from handoffs.engine._call import Caller, prompt_cached
from handoffs.engine._cap import Caps
from handoffs.engine._guard import Bound, Guard, Guarded, Meter
from handoffs.engine._memo import RouteMemo
from handoffs.engine._prompt import render
from handoffs.engine._queue import ModelQueue
from handoffs.engine._retry import RetryPolicy
from handoffs.engine._sink import Callback, RecordSink, Tally
from handoffs.engine._trail import Trail
from handoffs.errors import (
    HandoffTimeout,
    NoRouteAvailable,
    ProviderRejected,
)
from handoffs.handoff import (
    BreakerState,
    Delivery,
    HandoffRecord,
    Outcome,
    RecordDraft,
    held_record,
    record_of,
)
from handoffs.health import Breaker, Health
from handoffs.providers import ProviderFault
from handoffs.routing import (
    OutcomeLog,
    Policy,
    RouteDecision,
    longer_context,
    route,
)
from handoffs.task import Task, json_schema_of
from handoffs.tracing import Tracing, default_tracing
from handoffs.verify import Answer, Ask, CheckContext, run_checks

__all__ = [
    "ASK_MAX_TOKENS",
    "ASK_PROMPT_TOKENS",
    "FEEDBACK_PROMPT_TOKENS",
    "KEEP_RECORDS",
    "HandoffRunner",
    "ModelSource",
    "Run",
    "Session",
    "run_here",
]

T = TypeVar("T")

ASK_MAX_TOKENS = 256
"""What a check's own model call (a judge, an agreement vote) may answer."""
ASK_PROMPT_TOKENS = 64
"""Reserved on top of a check call's estimated prompt: its framing."""
FEEDBACK_PROMPT_TOKENS = 32
"""Allowed for a feedback retry's framing in estimates made before the answer exists (a spread
job's ceilings); a retry itself reserves for the prompt it really sends."""

KEEP_RECORDS = 1000
"""How many recent records a session keeps by default (`Session(keep_records=...)`)."""

ModelSource = Callable[[ModelEntry], Model]
"""Turns a catalog entry into a pydantic-ai model (a `Portfolio`, or a dict of scripted models)."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


@dataclass(frozen=True, slots=True)
class _Step(Generic[T]):
    """How one model's turn on a rung ended."""

    kind: Literal["delivered", "escalate", "next", "stop"]
    delivery: Delivery[T] | None = None
    failure: Exception | None = None
    fault: ProviderFault | None = None

    @property
    def moves_on(self) -> bool:
        """Whether the rung's next model gets its turn."""
        return self.kind == "next"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Ending(Generic[T]):
    """How a handoff made here ended: its record (a draft until read), and its delivery or the
    failure to raise."""

    record: HandoffRecord | RecordDraft
    delivery: Delivery[T] | None = None
    failure: Exception | None = None


class Run(Generic[T]):
    """One handoff of a session, prepared and not yet made: what the session's runner is handed.

    `await run()` makes it here and now, the session's own way (route, reserve, call, verify,
    retry, escalate, fail over), accounts its record and returns its delivery or raises its
    failure; `run.result()` returns or raises the same again. A runner that has the handoff's end
    from elsewhere (a journal, another worker) hands its record to `run.adopt(record)` instead,
    and returns or raises what it ended with. Either way `run.record` is then the record the
    session accounted. Made by `Session.prepare`; a run is made or adopted once.
    """

    def __init__(
        self,
        session: Session,
        task: Task[T],
        *,
        make: Callable[[Task[T], BatchAnswer | None], Awaitable[_Ending[T]]],
        account: Callable[[HandoffRecord | RecordDraft, Task[Any] | None], None],
        adopt: Callable[[HandoffRecord], None],
    ) -> None:
        self.session = session
        """The session the handoff is of: its route, catalog and budget."""
        self.task = task
        self._record: HandoffRecord | RecordDraft | None = None
        self.batched: BatchAnswer | None = None
        """A provider batch's answer for the task, taken as its first attempt when the handoff is
        made (`handoffs.jobs.BatchLane` sets it before handing the run on): charged at the batch
        price and checked; failing that, the handoff goes on by the ordinary route."""
        self._make = make
        self._account = account
        self._adopt = adopt
        self._ending: _Ending[T] | None = None

    async def __call__(self) -> Delivery[T]:
        self._unused()
        slots = HANDOFF_SLOTS.get()
        async with slots if slots is not None else nullcontext():
            ending = self._ending = await self._make(self.task, self.batched)
        self._record = ending.record
        self._account(ending.record, self.task)
        return self.result()

    @property
    def record(self) -> HandoffRecord | None:
        """The record the session accounted for this handoff (None until made or adopted)."""
        return None if self._record is None else record_of(self._record)

    def result(self) -> Delivery[T]:
        """What the handoff made here ended with: its delivery, or its failure raised again."""
        ending = self._ending
        if ending is None:
            raise RuntimeError(f"handoff {self.task.id} was not made here")
        if ending.failure is not None:
            raise ending.failure
        assert ending.delivery is not None
        return ending.delivery

    def adopt(self, record: HandoffRecord) -> None:
        """Account this handoff's `record`, made elsewhere: charge its cost to the session's
        budget and stream it to the sinks, as if it had just finished here."""
        self._unused()
        self._record = record
        self._adopt(record)

    def _unused(self) -> None:
        if self._record is not None:
            raise RuntimeError(f"handoff {self.task.id} was already made or adopted")


HANDOFF_SLOTS: ContextVar[anyio.Semaphore | None] = ContextVar("handoff_slots", default=None)
"""A limit on handoffs made at once, held while a handoff is *made* (`Run.__call__`), not while
it waits for its runner: set by a fan-out (`delegate_each`) in each of its tasks. Inside a
durable job a handoff is made inside its journaled step, so its step starts as soon as it is
asked for, in the order of the fan-out, and a resumed job's replay numbers the steps the same
way; a limit held around the step instead would number them in the order earlier handoffs
finished, which a replay does not reproduce."""


class HandoffRunner(Protocol):
    """Where a session makes its handoffs (`Session(runner=...)`): here with `await run()`, or
    elsewhere — a durable step, another worker — with the record handed to `run.adopt`. Returns
    the delivery; raises the failure (`HandoffError`, `BudgetExceeded`) the handoff ended with."""

    async def __call__(self, task: Task[T], run: Run[T], /) -> Delivery[T]: ...


async def run_here(task: Task[T], run: Run[T], /) -> Delivery[T]:
    """The default `HandoffRunner`: every handoff is made here and now."""
    return await run()


class Session:
    """Delegates typed tasks to the models of one catalog, within one budget.

    One session per job: every handoff it makes is charged to `budget`, tallied (`tally`) and
    streamed to its `sinks`; it keeps only the last `keep_records` records (`records`), so its
    memory does not grow with the handoffs. Pass one `health` (circuit breakers) and one `caps` to
    every session of a process so that they share what they learn about endpoints and what they
    spend. `runner` decides where each handoff is made (by default: here, see `HandoffRunner`).

    Without `tracing`, handoffs are traced to `.handoffs/traces/` (`handoffs.tracing.
    default_tracing`: one file per process, `HANDOFFS_TRACING=off` turns it off);
    `tracing=False` traces nothing. `thin=False` keeps every call on pydantic-ai's agent loop
    (by default a tool-less call with structured output skips it: `handoffs.engine._thin`).
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        models: ModelSource,
        policy: Policy | None = None,
        budget: Budget | None = None,
        unavailable: Callable[[], Mapping[str, str]] | None = None,
        on_record: Callable[[HandoffRecord], None] | None = None,
        request_timeout_s: float | None = None,
        tracing: Tracing | Literal[False] | None = None,
        health: Health | None = None,
        retry: RetryPolicy | None = None,
        caps: Caps | None = None,
        outcomes: OutcomeLog | None = None,
        runner: HandoffRunner | None = None,
        sinks: Sequence[RecordSink] = (),
        keep_records: int | None = KEEP_RECORDS,
        thin: bool = True,
        cache: ResponseCache | None = None,
    ) -> None:
        self.catalog = catalog
        self.policy = policy if policy is not None else Policy.matrix(catalog)
        self.policy.validate(catalog)
        self.budget = budget if budget is not None else Budget(None)
        self._models = models
        self._unavailable = unavailable
        self.outcomes = outcomes
        """Where each finished handoff's per-model outcomes are appended (None: nowhere)."""
        self.runner: HandoffRunner = runner or run_here
        """Where each handoff is made (`HandoffRunner`)."""
        self.sinks: list[RecordSink] = [*([Callback(on_record)] if on_record else []), *sinks]
        """Where each finished handoff's record is streamed, in order (`on_record` first)."""
        self.tally = Tally(keep_records)
        """Counts and spend of every finished handoff, and the latest `keep_records` records."""
        self.retry = retry or RetryPolicy()
        """Caps on attempts and time, waits and timeouts."""
        self._timeout_s = request_timeout_s or self.retry.request_timeout_s
        self.health = health or Health()
        """The circuit breakers consulted by the router and fed by every call."""
        self.caps = caps or Caps()
        """Spending caps per model and task kind."""
        self._caller = Caller(
            models,
            tracing=default_tracing() if tracing is None else tracing or None,
            timeout_s=self._timeout_s,
            first_event_timeout_s=self.retry.first_event_timeout_s,
            thin=thin,
        )
        self._addresses: dict[str, str] = {}
        self.guard = Guard(breaker=self.breaker, caps=self.caps, retry=self.retry)
        """The failover engine every call of this session passes through (its handoffs' and its
        orchestrator's): spend caps, breakers, reservations, fault sorting, the 429 policy."""
        self.route_memo = RouteMemo()
        """The routes this session decided, kept while the breakers stand still (`route`)."""
        self.cache = cache
        """The verified response cache each task is looked up in before it is routed, and where
        each verified delivery is kept (`handoffs.cache`); None: no cache."""

    @property
    def tracing(self) -> Tracing | None:
        """Where handoff spans (and the subordinates' pydantic-ai spans) go; None: untraced."""
        return self._caller.tracing

    @tracing.setter
    def tracing(self, value: Tracing | None) -> None:
        self._caller.tracing = value

    @property
    def models(self) -> ModelSource:
        """Where this session gets pydantic-ai models for catalog entries."""
        return self._models

    @property
    def records(self) -> tuple[HandoffRecord, ...]:
        """The latest finished handoffs' records, oldest first: at most `keep_records` of them
        (all with `keep_records=None`). Every record goes to the `sinks`; `tally` counts them all."""
        return self.tally.records()

    @contextmanager
    def attached(self, sink: RecordSink) -> Generator[RecordSink, None, None]:
        """Within the block, stream every finished record to `sink` too (e.g. one run's records)."""
        self.sinks.append(sink)
        try:
            yield sink
        finally:
            self.sinks.remove(sink)

    def route(self, task: Task[Any]) -> RouteDecision:
        """The route the router would choose for `task` now (no call is made).

        Memoised (`handoffs.engine._memo`): while every breaker of the catalog is closed and
        none has changed state, a task like one routed before (kind, risk, input size...) gets
        the same decision without asking the router again (`route_memo` counts)."""
        return self._routed(task)[0]

    def _routed(self, task: Task[Any]) -> tuple[RouteDecision, dict[str, BreakerState] | None]:
        """The route for `task`, and the breaker states it was decided with when it came from
        the memo (every one closed; None: read them)."""
        others = dict(self._unavailable() if self._unavailable else {})
        if self.caps:
            for entry in self.catalog.values():
                cached = prompt_cached(entry, task.prompt_cache)
                bound = _bound(task, *render(task, entry.prompt_variant), cached)  # as reserved
                blocked = self.guard.blocked(entry, task.kind, bound)
                if blocked is not None:
                    others.setdefault(entry.id, blocked)
        memo, health = self.route_memo, self.health
        key = memo.key(task, others)
        found = memo.get(key, catalog=self.catalog, policy=self.policy, health=health)
        if found is not None:
            closed: dict[str, BreakerState] = {step.model: "closed" for step in found.steps}
            return found, closed
        memo.misses += 1
        epoch = health.epoch  # read first: a change while the breakers are read moves it on
        breakers = {entry.id: self.breaker(entry) for entry in self.catalog.values()}
        unavailable = health.unavailable(breakers)
        still = all(b.state == "closed" for b in breakers.values())
        for model_id, reason in others.items():  # a breaker's reason comes first
            unavailable.setdefault(model_id, reason)
        decision = route(task, self.catalog, self.policy, unavailable=unavailable)
        if still:
            memo.put(
                key, decision, catalog=self.catalog, policy=self.policy, health=health, epoch=epoch
            )
        return decision, None

    def _simulated(self, entry: ModelEntry) -> bool:
        """Whether the session's model source serves `entry` from a simulator (a `Portfolio`,
        or a source that wraps one, says so with `label`)."""
        label = getattr(self._models, "label", None)
        return callable(label) and label(entry.id) == "simulated"

    def breaker(self, entry: ModelEntry) -> Breaker:
        """The circuit breaker of the endpoint `entry` is really served from."""
        address = self._addresses.get(entry.id)
        if address is None:
            locate = getattr(self._models, "address", None)  # a Portfolio knows without building
            found = locate(entry) if callable(locate) else None
            address = self._addresses[entry.id] = str(found or "")
        return self.health.breaker(entry, address or None)

    async def delegate(self, task: Task[T]) -> Delivery[T]:
        """Hand `task` to the cheapest model that can do it and return a verified delivery.

        Raises `BudgetExceeded`, `NoRouteAvailable`, `VerificationFailed`, `HandoffFailed` or
        `HandoffTimeout` when the task declares no fallback; with a fallback, returns it as a
        degraded delivery instead. `ProviderRejected` (a bad request, a refused key) is raised
        whatever the fallback, unless the rejection was the provider's content filter.
        """
        run = self.prepare(task)
        if self.tracing is None:
            return await self.runner(task, run)
        with self.tracing.handoff(
            kind=task.kind, task_id=task.id, label=task.label, input_json=task.input_json
        ) as span:
            error: BaseException | None = None
            try:
                return await self.runner(task, run)
            except Exception as exc:
                error = exc
                raise
            finally:
                if run.record is not None:
                    left = self.budget.remaining_usd
                    self.tracing.finish_handoff(span, run.record, budget_left=left, error=error)

    def prepare(self, task: Task[T]) -> Run[T]:
        """The handoff of `task` on this session, not yet made: what `delegate` hands the runner.
        Awaited directly it is made here, without the runner and without a handoff span of its
        own (a spread job's child workflow makes its parent's handoff so, in the parent's span)."""
        return Run(self, task, make=self._make, account=self._account, adopt=self._adopt)

    def _account(self, record: HandoffRecord | RecordDraft, task: Task[Any] | None) -> None:
        """Tally a finished handoff and stream its record; with its `task` (one made here, not
        adopted) the outcome log takes it too. The tally keeps a draft as it is: the record is
        built here only when an outcome log or a sink takes it."""
        self.tally(record, task)
        if self.outcomes is None and not self.sinks:
            return
        whole = record_of(record)
        if self.outcomes is not None:
            self.outcomes(whole, task)
        for sink in self.sinks:
            sink(whole, task)

    def _adopt(self, record: HandoffRecord) -> None:
        self.budget.charge(record.cost_usd)
        self._account(record, None)

    async def _make(self, task: Task[T], batched: BatchAnswer | None = None) -> _Ending[T]:
        task.validate_input()
        lookup = await self._look_up(task) if self.cache is not None else None
        if lookup is not None and lookup.hit is not None:
            return _Ending(record=lookup.hit.record, delivery=lookup.hit)
        ending = await self._handoff(task, batched)
        if lookup is None:
            return ending
        record = lookup.missed(record_of(ending.record))
        delivery = replace(ending.delivery, record=record) if ending.delivery else None
        if delivery is not None:
            await lookup.keep(delivery)
        return _Ending(record=record, delivery=delivery, failure=ending.failure)

    async def _look_up(self, task: Task[T]) -> Lookup[T] | None:
        """Look `task` up in the cache; a semantic candidate's checks may call models (when the
        cache's policy re-runs judges), charged like any check's."""
        assert self.cache is not None
        budget = self.budget.child(task.max_cost_usd, name=f"cache lookup {task.id}")
        ask = self._asker(budget, task.kind, [])
        ctx = CheckContext(task=task, producer="", catalog=self.catalog, ask=ask)
        return await self.cache.look_up(task, ctx, fingerprint=self._fingerprint(task))

    def _fingerprint(self, task: Task[Any]) -> str:
        """What else an answer of `task` depends on: the catalog's models, the routing rules and
        the prompt templates as rendered for it (a change to any makes older answers stale)."""
        blank = replace(task, input=None)
        variants = sorted({e.prompt_variant for e in self.catalog.values()})
        models = sorted((e.id, e.provider, e.name, e.tier) for e in self.catalog.values())
        templates = [render(blank, variant) for variant in variants]
        return json.dumps([models, repr(self.policy.rules), templates])

    async def _handoff(self, task: Task[T], batched: BatchAnswer | None = None) -> _Ending[T]:
        decision, states = self._routed(task)
        if states is None:
            states = {}
            for rung in decision.steps:
                states[rung.model] = self.breaker(self.catalog[rung.model]).state
        trail = Trail(task=task, decision=decision, breakers=states)
        deadline = trail.started + self.retry.max_handoff_s
        budget = self.budget.child(task.max_cost_usd, name=f"handoff {task.id}")
        if not decision.ladder:
            failure: Exception | None = NoRouteAvailable(
                f"no model can take task {task.kind!r}: "
                + "; ".join(f"{s.model}: {s.reason}" for s in decision.steps),
                task_id=task.id,
                reasons=[s.reason for s in decision.steps],
            )
        else:
            step: _Step[T] = _Step("next")
            if batched is not None:
                step = await self._batched(trail, budget, batched)
            if step.delivery is None:
                step = await self._climb(trail, budget, deadline)
            if step.delivery is not None:
                return _Ending(record=held_record(step.delivery), delivery=step.delivery)
            failure = step.failure
        return self._give_up(trail, failure)

    async def _climb(self, trail: Trail[T], budget: Budget, deadline: float) -> _Step[T]:
        """Walk the route's rungs; sweep them again (after a backoff) while failures are transient.

        Each rung is walked by the guard (`Guard.walk`): its models in order, a 429 waited out only
        once no equivalent on the rung is left."""
        task = trail.task
        rungs = [list(r) for r in trail.decision.rungs]
        for sweep in range(self.retry.sweeps):
            if sweep:
                wait = self.retry.backoff_s(sweep)
                if time.monotonic() + wait >= deadline or trail.calls >= self.retry.max_attempts:
                    break
                await anyio.sleep(wait)
                rungs = [list(r) for r in self.route(task).rungs]
            need_context, transient, answered = 0, False, False
            index = 0
            while index < len(rungs):
                last_rung = index + 1 == len(rungs)

                async def take(
                    entry: ModelEntry,
                    index: int = index,
                    last: bool = last_rung,
                    rungs: list[list[str]] = rungs,
                ) -> _Step[T]:
                    nonlocal need_context, transient, answered
                    if entry.context_window < need_context:
                        return _Step("next")
                    # on a rung with one after it, keep time for the next rung's answer
                    spare = (
                        0.0
                        if last
                        else min(self.catalog[m].typical_latency_s for m in rungs[index + 1])
                    )
                    step = await self._turn(
                        trail, entry, index, budget, deadline, patient=last, spare_s=spare
                    )
                    if step.kind == "escalate" and last:
                        answered = True
                        return _Step("next")  # nothing stronger: an equivalent is the last hope
                    fault = step.fault
                    if step.kind == "next" and fault is not None:
                        transient |= fault.kind in ("unavailable", "rate_limited")
                        if fault.kind == "context_length":
                            need_context = max(need_context, entry.context_window + 1)
                            self._add_longer_context(task, rungs, index, need_context)
                    return step

                models = [self.catalog[m] for m in rungs[index]]
                step = await self.guard.walk(
                    models, take, deadline=deadline, limit_s=task.deadline_s
                ) or _Step[T]("next")
                if step.kind in ("delivered", "stop"):
                    return step
                if step.kind == "escalate":
                    answered = True
                    if index + 1 < len(rungs):
                        trail.escalations += 1
                index += 1
            if answered or not transient:
                break
        return _Step("stop")

    def _add_longer_context(
        self, task: Task[Any], rungs: list[list[str]], index: int, need: int
    ) -> None:
        """After a context-length fault, make sure a model with `need` tokens of context is ahead."""
        ahead = [m for rung in rungs[index:] for m in rung]
        if any(self.catalog[m].context_window >= need for m in ahead):
            return
        tried = {m for rung in rungs for m in rung}
        found = longer_context(task, self.catalog, need, exclude=tried)
        if found is not None:
            rungs.insert(index + 1, [found])

    async def _turn(
        self,
        trail: Trail[T],
        entry: ModelEntry,
        rung: int,
        budget: Budget,
        deadline: float,
        *,
        patient: bool,
        spare_s: float = 0.0,
    ) -> _Step[T]:
        """One model's turn: call it, retrying with feedback as the task allows. A model with
        limited slots is waited for only while an answer can still come in time, unless the
        turn is `patient` (the route's last rung: nothing is left to move on to). `spare_s`:
        time to keep for the next rung (its typical latency), so that a call that times out
        here, or a wait that ends in no slot, can still be answered there; at most half of
        what is left is kept."""
        task = trail.task
        queue = self._caller.queue(entry)
        previous: Any = None
        feedback: list[str] | None = None
        retries = 0
        while True:
            if trail.calls >= self.retry.max_attempts:
                return _Step("stop", failure=self._timeout(trail, "attempts"))
            left = deadline - time.monotonic()
            if left <= 0:
                return _Step("stop", failure=self._timeout(trail, "time"))
            instructions, prompt = render(
                task, entry.prompt_variant, previous=previous, feedback=feedback
            )

            async def send(
                meter: Meter, instructions: str = instructions, prompt: str = prompt
            ) -> Any:
                left = _keeping(deadline - time.monotonic(), spare_s)  # after a wait for a slot
                per_call = left if task.deadline_s is None else min(left, task.deadline_s)
                return await self._caller.call(
                    entry,
                    instructions,
                    prompt,
                    task.output_type,
                    meter,
                    task.max_output_tokens,
                    per_call,
                    slotted=queue is not None,
                    cache=task.prompt_cache,
                )

            again = bool(retries)
            limit = _keeping(left, spare_s)
            limit = limit if task.deadline_s is None else min(limit, task.deadline_s)
            call = await self._in_line(
                queue,
                partial(
                    self.guard.call,
                    entry,
                    send,
                    kind=task.kind,
                    budget=budget,
                    bound=_bound(
                        task, instructions, prompt, prompt_cached(entry, task.prompt_cache)
                    ),
                ),
                left_s=limit,
                patient=patient,
            )
            if isinstance(call, str):  # no slot in time: the next model, as for an open circuit
                trail.add(entry, rung, "refused", again, error=call)
                return _Step("next")
            if call.outcome == "refused":
                trail.add(entry, rung, "refused", again, error=call.reason)
                return _Step("next")
            if call.outcome == "over_budget":
                trail.add(entry, rung, "refused", again, error=call.reason)
                return _Step("stop", failure=call.error)
            if call.outcome == "invalid":  # the endpoint answered; the answer did not validate
                error = _one_line(call.error or ValueError("invalid answer"))
                trail.add(
                    entry,
                    rung,
                    "invalid_output",
                    again,
                    usage=call.usage,
                    cost=call.cost_usd,
                    latency=call.latency_s,
                    error=error,
                )
                if retries < task.feedback_retries:
                    retries += 1
                    previous, feedback = None, [f"the answer did not validate: {error}"]
                    continue
                return _Step("escalate")
            if call.outcome == "fault":
                fault = call.fault
                assert fault is not None
                trail.add(
                    entry,
                    rung,
                    "provider_error",
                    again,
                    usage=call.usage,
                    cost=call.cost_usd,
                    latency=call.latency_s,
                    error=fault.detail,
                    fault=fault.kind,
                )
                return self._after_fault(fault, entry, trail)
            output = cast(T, call.output)  # answered
            t0 = time.monotonic()
            checks: list[Decimal] = []
            ctx = CheckContext(
                task=task,
                producer=entry.id,
                catalog=self.catalog,
                ask=self._asker(budget, task.kind, checks),
            )
            observe = (  # each check in its own span, a judge's call inside it
                self.tracing.observe_checks(attempt=len(trail.attempts), model=entry.id)
                if self.tracing is not None
                else None
            )
            verdicts = await run_checks(output, ctx, task.checks, wrap=observe, validated=True)
            passed = all(v.passed for v in verdicts)
            # what the checks' calls were charged and no verdict reports (a call that failed)
            unreported = sum(checks, Decimal(0)) - sum((v.cost_usd for v in verdicts), Decimal(0))
            trail.add(
                entry,
                rung,
                "accepted" if passed else "rejected",
                again,
                usage=call.usage,
                cost=call.cost_usd + max(unreported, Decimal(0)),
                latency=call.latency_s + time.monotonic() - t0,
                verdicts=verdicts,
            )
            if passed:
                delivery = trail.deliver(output, entry, verdicts, simulated=self._simulated(entry))
                return _Step("delivered", delivery=delivery)
            if retries >= task.feedback_retries:
                return _Step("escalate")
            retries += 1
            previous = task.dump_output(output)
            feedback = [r for v in verdicts if not v.passed for r in v.reasons] or ["rejected"]

    async def _batched(self, trail: Trail[T], budget: Budget, answer: BatchAnswer) -> _Step[T]:
        """A provider batch's answer as the handoff's first attempt (rung 0, `lane="batch"`):
        charged at the batch price, checked like any answer; delivered if it passes, else the
        handoff goes on by the ordinary route (`_climb`)."""
        entry = self.catalog[answer.model]
        cost = entry.batch_cost(answer.input_tokens, answer.output_tokens)
        saved = entry.cost(answer.input_tokens, answer.output_tokens) - cost
        budget.charge(cost)
        usage = RunUsage(input_tokens=answer.input_tokens, output_tokens=answer.output_tokens)
        lane: dict[str, Any] = {"lane": "batch", "batch_id": answer.batch_id, "saved": saved}
        common: dict[str, Any] = {"usage": usage, "cost": cost, "latency": answer.waited_s}
        if answer.outcome != "answered":
            outcome: Outcome = "invalid_output" if answer.outcome == "invalid" else "provider_error"
            trail.add(
                entry, 0, outcome, False, error=answer.error, fault=answer.fault, **common, **lane
            )
            return _Step("next")
        checks: list[Decimal] = []
        ctx = CheckContext(
            task=trail.task,
            producer=entry.id,
            catalog=self.catalog,
            ask=self._asker(budget, trail.task.kind, checks),
        )
        observe = (
            self.tracing.observe_checks(attempt=len(trail.attempts), model=entry.id)
            if self.tracing is not None
            else None
        )
        verdicts = await run_checks(
            answer.output, ctx, trail.task.checks, wrap=observe, validated=True
        )
        passed = all(v.passed for v in verdicts)
        unreported = sum(checks, Decimal(0)) - sum((v.cost_usd for v in verdicts), Decimal(0))
        common["cost"] = cost + max(unreported, Decimal(0))
        trail.add(
            entry,
            0,
            "accepted" if passed else "rejected",
            False,
            verdicts=verdicts,
            **common,
            **lane,
        )
        if not passed:
            return _Step("next")
        output = cast(T, answer.output)
        return _Step(
            "delivered",
            delivery=trail.deliver(output, entry, verdicts, simulated=self._simulated(entry)),
        )

    async def _in_line(
        self,
        queue: ModelQueue | None,
        call: Callable[[], Awaitable[Guarded[T]]],
        *,
        left_s: float,
        patient: bool,
    ) -> Guarded[T] | str:
        """Make `call` holding a slot of a model with limited slots (`queue`; released before
        its answer is checked, which may need the same model), or say why there was none in time
        (`ModelQueue.slot`)."""
        if queue is None:
            return await call()
        async with queue.slot(left_s=left_s, patient=patient, tracing=self.tracing) as refused:
            if refused is not None:
                return refused
            made = await call()
        if made.outcome in ("answered", "invalid"):
            queue.served(made.latency_s)
        return made

    def _after_fault(self, fault: ProviderFault, entry: ModelEntry, trail: Trail[T]) -> _Step[T]:
        task = trail.task
        if fault.kind in ("content_filter", "rejected"):
            what = "its content filter refused" if fault.kind == "content_filter" else "it rejected"
            failure = ProviderRejected(
                f"task {task.kind!r}: {entry.id} ({entry.provider} {entry.name}): "
                f"{what} the request: {fault.detail}",
                task_id=task.id,
                model=entry.id,
                cause=fault.kind,
                attempts=trail.attempts,
            )
            return _Step("stop", failure=failure)
        return _Step("next", fault=fault)

    def _timeout(self, trail: Trail[Any], what: Literal["time", "attempts"]) -> HandoffTimeout:
        task = trail.task
        if what == "attempts":
            message = f"task {task.kind!r}: used its {self.retry.max_attempts} attempts"
        else:
            message = (
                f"task {task.kind!r}: out of time after {time.monotonic() - trail.started:.1f}s"
            )
        return HandoffTimeout(message, task_id=task.id, attempts=trail.attempts)

    def _give_up(self, trail: Trail[T], failure: Exception | None) -> _Ending[T]:
        failure = trail.failure(failure)
        fatal = isinstance(failure, ProviderRejected) and failure.cause == "rejected"
        if trail.task.has_fallback and not fatal:
            delivery = trail.degraded(failure)
            return _Ending(record=held_record(delivery), delivery=delivery)
        return _Ending(record=trail.failed(failure), failure=failure)

    # -- check calls ------------------------------------------------------------------------------

    def _asker(self, budget: Budget, kind: str, charged: list[Decimal]) -> Ask:
        """A check's own model calls (a judge, an agreement vote), through the guard like any
        call: charged to the handoff's `budget` and the spend caps of `kind`, behind breakers;
        what each call was charged is appended to `charged` (a failed one too, which no verdict
        reports)."""

        async def ask(
            model_id: str, instructions: str, prompt: str, output_type: type[Any]
        ) -> Answer:
            entry = self.catalog[model_id]
            schema = json.dumps(json_schema_of(output_type))
            tokens = reserved_input_tokens(
                token_bound(instructions + prompt + schema) + ASK_PROMPT_TOKENS
            )

            async def send(meter: Meter) -> Any:
                return await self._caller.call(
                    entry,
                    instructions,
                    prompt,
                    output_type,
                    meter,
                    ASK_MAX_TOKENS,
                    None,
                    role="check",  # its span says check:{model}, never subordinate:
                )

            bound = Bound(
                input_tokens=tokens, output_tokens=ASK_MAX_TOKENS, cached=prompt_cached(entry)
            )
            call = await self.guard.call(entry, send, kind=kind, budget=budget, bound=bound)
            charged.append(call.cost_usd)
            if call.outcome != "answered":
                raise call.error or RuntimeError(f"{model_id}: no answer")
            return Answer(
                output=call.output,
                model=model_id,
                cost_usd=call.cost_usd,
                input_tokens=call.usage.input_tokens,
                output_tokens=call.usage.output_tokens,
            )

        return ask


def _keeping(left_s: float, spare_s: float) -> float:
    """The time a call may take out of `left_s`, keeping `spare_s` for the next rung (at most
    half of what is left)."""
    left_s = max(left_s, 0.001)
    return max(left_s - spare_s, left_s / 2)


def _bound(task: Task[Any], instructions: str, prompt: str, cached: bool) -> Bound:
    """What one call of `task` with this rendered prompt may use, as reserved: an upper bound on
    its prompt's tokens (the UTF-8 bytes of the instructions, prompt and output schema, as
    `prompt_bound` counts them, plus the wire's framing) and its `max_output_tokens`; `cached`:
    the call asks for the prompt cache, which may bill its prompt at the cache-write price."""
    text = instructions + prompt + task.output_schema_text()
    return Bound(
        input_tokens=reserved_input_tokens(token_bound(text)),
        output_tokens=task.max_output_tokens,
        cached=cached,
    )
