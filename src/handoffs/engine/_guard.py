"""The one failover engine: every model call the engine makes passes through a `Guard`.

```
guard.call(entry, send, kind=..., budget=..., bound=...):
    spend caps cover the worst case?     no  -> refused (the cap is the reason)
    the endpoint's breaker admits it?    no  -> refused (the circuit is the reason)
    reserve the worst case (budget, caps)     -> over_budget if it cannot
    send the request (a stream is cut off once it streams past max_tokens)
        answered                          -> charged, breaker success
        the answer did not validate       -> charged, breaker success  (invalid)
        usage past the max_tokens sent    -> charged in full, breaker opened  (an `overrun` fault)
        a provider fault                  -> charged, sorted (`classify`), the breaker told: sick
                                             (failure), busy (429: neither) or well
guard.walk(models, turn, ...)             -> each model's turn in order; a 429 is waited out only
                                             once no equivalent is left, when its Retry-After fits
```

What a call is charged: what the provider reported; its whole reservation when it reported nothing
(a missing usage, a response that could not be read) or failed after the request was sent (a read
timeout, a stream that broke off: `ProviderFault.billable`), since the provider may bill it; in
full, past the reservation, when it answered past `max_tokens`.

The subordinate ladder (`Session`) and the orchestrator's own model (`Helm`) both call through
the same guard, so they share its breakers, reservations, spend caps, fault classes and Retry-After
policy; what each does with the outcome (feedback retries and escalation for a subordinate, the
next model of the chain for the orchestrator) is theirs.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, Literal, Protocol, TypeVar

import anyio
from pydantic_ai.exceptions import UnexpectedModelBehavior, UsageLimitExceeded
from pydantic_ai.usage import RunUsage

from handoffs.budget import Budget, Reservation
from handoffs.catalog import ModelEntry
from handoffs.engine._cap import Caps
from handoffs.engine._retry import RetryPolicy
from handoffs.errors import BudgetExceeded, Refused
from handoffs.health import Breaker
from handoffs.providers import FaultKind, OutputOverrun, ProviderFault, classify

__all__ = [
    "EXPOSURE",
    "MOVES_ON",
    "Bound",
    "Exposure",
    "Guard",
    "Guarded",
    "Meter",
    "Outcome",
    "Refused",
    "Turn",
]

T = TypeVar("T")
TurnT = TypeVar("TurnT", bound="Turn")

MOVES_ON: frozenset[FaultKind] = frozenset(
    {"unavailable", "rate_limited", "context_length", "overrun"}
)
"""Fault kinds after which the next model is tried (a content filter or a rejected request stops)."""

Outcome = Literal["answered", "invalid", "fault", "refused", "over_budget"]
"""How a guarded call ended: `refused` and `over_budget` made no call."""


@dataclass(slots=True, kw_only=True)
class Exposure:
    """What the calls made in one context may have been billed: `spent` (settled) and `held`
    (reserved for calls in flight). Set `EXPOSURE` around some work, and every guarded call inside
    it adds its reservation to `held` and awaits `changed` *before* its request is sent, then
    moves it to `spent` (at what the call was charged) and awaits `changed` again. A durable job
    journals it that way, so that a crash leaves behind what its interrupted handoffs may cost."""

    changed: Callable[[Exposure], Awaitable[None]]
    spent: Decimal = Decimal(0)
    held: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        """Spent plus held: the most the calls so far can have been billed."""
        return self.spent + self.held


EXPOSURE: ContextVar[Exposure | None] = ContextVar("handoffs_exposure", default=None)
"""The `Exposure` guarded calls in this context report to (None: nothing reports)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Bound:
    """The most one call may use: what its reservation holds money for."""

    input_tokens: int
    """Prompt tokens reserved for (an upper bound on what the messages can take, plus framing)."""
    output_tokens: int
    """The `max_tokens` sent with the request."""
    cached: bool = False
    """The request asks for the provider's prompt cache: its prompt may be written to the cache,
    so it is reserved at the dearer of the input and cache-write prices (`cost_bound`)."""


@dataclass(slots=True, kw_only=True)
class Meter:
    """What one call has used so far: the tokens the provider reported, and what it streamed.

    `streamed` counts the stream's output events that carried content: each carries at least one
    token, so more of them than `limit` (the `max_tokens` sent) proves the provider is answering
    past the limit, and `stream` raises `OutputOverrun` to cut it off.
    """

    model: str
    limit: int
    usage: RunUsage = field(default_factory=RunUsage)
    streamed: int = 0

    def stream(self) -> None:
        """Count one streamed output event; raise `OutputOverrun` once past the limit."""
        self.streamed += 1
        if self.streamed > self.limit:
            raise OutputOverrun(
                self.model, f"streamed more than the {self.limit} max_tokens it was sent: cut off"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Guarded(Generic[T]):
    """How one guarded call ended, and what it was charged."""

    outcome: Outcome
    output: T | None = None
    """The answer, when `answered`."""
    usage: RunUsage = field(default_factory=RunUsage)
    """The tokens the provider reported."""
    cost_usd: Decimal = Decimal(0)
    """What the call was charged (in the budget and every matching spend cap)."""
    latency_s: float = 0.0
    fault: ProviderFault | None = None
    """The sorted provider fault, when `fault`."""
    error: Exception | None = None
    """What was raised: the fault, the invalid answer's error, the `BudgetExceeded`, or the
    `Refused` of a refusal."""
    reason: str | None = None
    """Why the call was `refused` (a spend cap, an open circuit) or `over_budget`."""

    @property
    def moves_on(self) -> bool:
        """Whether the next model should be tried: the fault was the provider's, not the request's."""
        return self.fault is not None and self.fault.kind in MOVES_ON


class Turn(Protocol):
    """What `Guard.walk` needs to know of how a model's turn ended."""

    @property
    def moves_on(self) -> bool:
        """Whether the walk goes on to the next model."""
        ...

    @property
    def fault(self) -> ProviderFault | None:
        """The provider fault the turn ended on, if any (a 429 may be waited out)."""
        ...


class Guard:
    """Spend caps, circuit breakers, reservations, settlement and fault sorting around each call.

    `breaker` finds the breaker of the endpoint an entry is really served from; `caps` and `retry`
    are the process's spend caps and the caps on attempts, time and waits.
    """

    def __init__(
        self, *, breaker: Callable[[ModelEntry], Breaker], caps: Caps, retry: RetryPolicy
    ) -> None:
        self.breaker = breaker
        self.caps = caps
        self.retry = retry

    @staticmethod
    def reservation(entry: ModelEntry, bound: Bound) -> Decimal:
        """The worst case a call of `entry` within `bound` can cost: what is reserved for it."""
        return entry.cost_bound(bound.input_tokens, bound.output_tokens, cached=bound.cached)

    def blocked(self, entry: ModelEntry, kind: str, bound: Bound) -> str | None:
        """Why a spend cap would refuse a call of `entry` for `kind` now, or None."""
        if not self.caps:
            return None
        return self.caps.blocked(entry.id, kind, self.reservation(entry, bound))

    async def call(
        self,
        entry: ModelEntry,
        send: Callable[[Meter], Awaitable[T]],
        *,
        kind: str,
        budget: Budget,
        bound: Bound,
        force: bool = False,
    ) -> Guarded[T]:
        """Make one call of `entry` for a task of `kind`, charged to `budget` and the spend caps.

        `send` makes the request; it adds the tokens the provider reports to its meter's usage and
        counts a stream's output events with `Meter.stream`. `force` calls even when the breaker
        would not admit it (the orchestrator's last model). Raises only what is neither a provider
        fault nor an invalid answer (a bug, a cancellation), after settling what it held.
        """
        estimate = self.reservation(entry, bound)
        blocked = self.caps.blocked(entry.id, kind, estimate) if self.caps else None
        if blocked is not None:
            return _refused(entry, blocked)
        breaker = self.breaker(entry)
        if not breaker.admit() and not force:
            return _refused(entry, breaker.unavailable_reason() or "circuit open")
        try:
            held = self._reserve(budget, entry, kind, estimate)
        except BudgetExceeded as exc:
            breaker.release()
            return Guarded(outcome="over_budget", error=exc, reason=str(exc))
        meter = Meter(model=entry.name, limit=bound.output_tokens)
        exposure = EXPOSURE.get()
        if exposure is not None:  # on record before the request can be sent (and billed)
            exposure.held += estimate
            try:
                await exposure.changed(exposure)
            except BaseException:
                exposure.held -= estimate
                _settle(held, None)
                breaker.release()
                raise
        t0 = time.monotonic()
        try:
            output = await send(meter)
            if overrun := _overrun(entry, bound, meter):
                raise overrun
        except Exception as raised:
            # usage past the max_tokens sent is the provider's fault whatever else went wrong
            # (an answer cut off "at max_tokens" that ran past them is an overrun, not invalid)
            exc = _overrun(entry, bound, meter) or raised
            fault = classify(exc)
            if fault is None and not isinstance(exc, UnexpectedModelBehavior | UsageLimitExceeded):
                _settle(held, None)  # not the provider's doing (a bug, a missing key): not sent
                await _exposed(exposure, estimate, Decimal(0))
                breaker.release()
                raise
            billable = fault.billable if fault is not None else not _reported(meter)
            cost = self._charge(entry, bound, meter, billable=billable)
            _settle(held, cost)
            await _exposed(exposure, estimate, cost)
            latency = time.monotonic() - t0
            usage = meter.usage
            if fault is None:  # the endpoint answered; the answer did not validate
                breaker.success()
                return Guarded(
                    outcome="invalid", usage=usage, cost_usd=cost, latency_s=latency, error=exc
                )
            self.tell_breaker(fault, breaker)
            return Guarded(
                outcome="fault",
                usage=usage,
                cost_usd=cost,
                latency_s=latency,
                fault=fault,
                error=exc,
            )
        except BaseException:  # cancelled: the request may have been sent, and billed
            cost = self._charge(entry, bound, meter, billable=True)
            _settle(held, cost)
            if exposure is not None:  # no await here: the cancellation is on its way out
                exposure.held -= estimate
                exposure.spent += cost
            breaker.release()
            raise
        cost = self._charge(entry, bound, meter, billable=not _reported(meter))
        _settle(held, cost)
        await _exposed(exposure, estimate, cost)
        breaker.success()
        return Guarded(
            outcome="answered",
            output=output,
            usage=meter.usage,
            cost_usd=cost,
            latency_s=time.monotonic() - t0,
        )

    @staticmethod
    def _charge(entry: ModelEntry, bound: Bound, meter: Meter, *, billable: bool) -> Decimal:
        """What a call is charged: what the provider reported or, when the provider may have
        billed more (`billable`), at least the reservation (more: what it streamed past the
        reservation's `max_tokens`)."""
        usage = meter.usage
        reported = entry.cost(
            usage.input_tokens,
            usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )
        if not billable:
            return reported
        output = max(bound.output_tokens, meter.streamed)
        return max(reported, entry.cost_bound(bound.input_tokens, output, cached=bound.cached))

    @staticmethod
    def tell_breaker(fault: ProviderFault, breaker: Breaker) -> None:
        """What a provider fault tells the endpoint's breaker: sick (5xx, connection), broken
        (an overrun: opened at once), busy (429: neither) or well (it answered, refusing this one
        request)."""
        if fault.kind == "unavailable":
            breaker.failure(fault.detail)
        elif fault.kind == "overrun":
            breaker.trip(fault.detail)
        elif fault.kind == "rate_limited":
            breaker.release()  # up but busy: neither healthy nor sick
        else:
            breaker.success()  # it answered, with a refusal about this request

    def retry_after(
        self, fault: ProviderFault, entry: ModelEntry, *, deadline: float, limit_s: float | None
    ) -> float | None:
        """How long to wait before calling `entry` again after `fault`, or None: do not.

        A 429's `Retry-After` is waited out when it, plus a typical call, fits both `limit_s` (a
        task's `deadline_s`; None: the policy's `max_retry_after_s`) and the monotonic `deadline`.
        """
        wait = fault.retry_after_s
        if fault.kind != "rate_limited" or wait is None:
            return None
        limit = limit_s or self.retry.max_retry_after_s
        if wait + entry.typical_latency_s > limit:
            return None  # the task's deadline (or the policy's longest wait) cannot absorb it
        if time.monotonic() + wait + entry.typical_latency_s > deadline:
            return None
        return wait

    async def walk(
        self,
        models: Sequence[ModelEntry],
        turn: Callable[[ModelEntry], Awaitable[TurnT]],
        *,
        deadline: float,
        limit_s: float | None,
    ) -> TurnT | None:
        """Give each of `models` (equivalents: a rung, a chain) its turn in order, until one does
        not move on; return that turn (or the last one, when every model moved on; None: none).

        A model that answered 429 with a `Retry-After` is called again only after every other
        model had its turn, once the wait left (counted from the 429) fits `retry_after`'s limits;
        the shortest wait goes first. The callers' caps on attempts end a persistent 429.
        """
        last: TurnT | None = None
        waiting: list[tuple[float, int, ModelEntry]] = []  # (ready at, order, model)

        def note(entry: ModelEntry, step: TurnT, order: int) -> None:
            fault = step.fault
            wait = (
                None
                if fault is None
                else self.retry_after(fault, entry, deadline=deadline, limit_s=limit_s)
            )
            if wait is not None:
                waiting.append((time.monotonic() + wait, order, entry))

        for order, entry in enumerate(models):
            last = await turn(entry)
            if not last.moves_on:
                return last
            note(entry, last, order)
        while waiting:
            waiting.sort(key=lambda w: (w[0], w[1]))
            ready, order, entry = waiting.pop(0)
            pause = max(0.0, ready - time.monotonic())
            if time.monotonic() + pause + entry.typical_latency_s > deadline:
                continue
            await anyio.sleep(pause)
            last = await turn(entry)
            if not last.moves_on:
                return last
            note(entry, last, order)
        return last

    def _reserve(
        self, budget: Budget, entry: ModelEntry, kind: str, estimate: Decimal
    ) -> list[Reservation]:
        held = [budget.reserve(estimate)]
        if self.caps:
            try:
                held += self.caps.reserve(entry.id, kind, estimate)
            except BudgetExceeded:
                held[0].release()
                raise
        return held


def _refused(entry: ModelEntry, reason: str) -> Guarded[Any]:
    error = Refused(entry.name, f"{entry.id}: {reason}")
    return Guarded(outcome="refused", reason=reason, error=error)


def _overrun(entry: ModelEntry, bound: Bound, meter: Meter) -> OutputOverrun | None:
    """An `OutputOverrun` when the provider reported more output tokens than `max_tokens`."""
    if meter.usage.output_tokens <= bound.output_tokens:
        return None
    return OutputOverrun(
        entry.name,
        f"reported {meter.usage.output_tokens} output tokens; max_tokens was {bound.output_tokens}",
    )


async def _exposed(exposure: Exposure | None, held: Decimal, cost: Decimal) -> None:
    """A call that held `held` settled at `cost`: tell the context's exposure, if any."""
    if exposure is None:
        return
    exposure.held -= held
    exposure.spent += cost
    await exposure.changed(exposure)


def _reported(meter: Meter) -> bool:
    """Whether the provider reported the call's usage (a response that did not is charged as if
    it used its whole reservation: what it billed is unknown)."""
    return bool(meter.usage.input_tokens or meter.usage.output_tokens)


def _settle(held: list[Reservation], cost: Decimal | None) -> None:
    for reservation in held:
        if cost is None:
            reservation.release()
        else:
            reservation.commit(cost)
