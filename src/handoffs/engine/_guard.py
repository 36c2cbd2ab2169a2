"""The one failover engine: every model call the engine makes passes through a `Guard`.

```
guard.call(entry, send, kind=..., budget=..., bound=...):
    spend caps cover the worst case?     no  -> refused (the cap is the reason)
    the endpoint's breaker admits it?    no  -> refused (the circuit is the reason)
    reserve the worst case (budget, caps)     -> over_budget if it cannot
    send the request
        answered                          -> charge what it cost, breaker success
        the answer did not validate       -> charge what it cost, breaker success  (invalid)
        a provider fault                  -> charge what it cost, sort it (`classify`), tell the
                                             breaker: sick (failure), busy (429: neither) or well
guard.retry_after(fault, entry, ...)      -> wait a 429's Retry-After when it fits, else move on
guarded.moves_on                          -> the fault kinds that move to the next model
```

The subordinate ladder (`Session`) and the orchestrator's own model (`Helm`) both call through
the same guard, so they share its breakers, reservations, spend caps, fault classes and Retry-After
policy; what each does with the outcome (feedback retries and escalation for a subordinate, the
next model of the chain for the orchestrator) is theirs.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Generic, Literal, TypeVar

from pydantic_ai.exceptions import UnexpectedModelBehavior, UsageLimitExceeded
from pydantic_ai.usage import RunUsage

from handoffs.budget import Budget, Reservation
from handoffs.catalog import ModelEntry
from handoffs.engine._cap import Caps
from handoffs.engine._retry import RetryPolicy
from handoffs.errors import BudgetExceeded
from handoffs.health import Breaker
from handoffs.providers import ProviderFault, classify

__all__ = ["MOVES_ON", "Bound", "Guard", "Guarded", "Outcome"]

T = TypeVar("T")

MOVES_ON: frozenset[str] = frozenset({"unavailable", "rate_limited", "context_length"})
"""Fault kinds after which the next model is tried (a content filter or a rejected request stops)."""

Outcome = Literal["answered", "invalid", "fault", "refused", "over_budget"]
"""How a guarded call ended: `refused` and `over_budget` made no call."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Bound:
    """The most one call may use: what its reservation holds money for."""

    input_tokens: int
    """Prompt tokens reserved for (an upper bound on what the messages can take, plus framing)."""
    output_tokens: int
    """The `max_tokens` sent with the request."""


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
    """What was raised: the fault, the invalid answer's error, or the `BudgetExceeded`."""
    reason: str | None = None
    """Why the call was `refused` (a spend cap, an open circuit)."""

    @property
    def moves_on(self) -> bool:
        """Whether the next model should be tried: the fault was the provider's, not the request's."""
        return self.fault is not None and self.fault.kind in MOVES_ON


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

    def reservation(self, entry: ModelEntry, bound: Bound) -> Decimal:
        """The worst case a call of `entry` within `bound` can cost: what is reserved for it."""
        return entry.cost(bound.input_tokens, bound.output_tokens)

    def blocked(self, entry: ModelEntry, kind: str, bound: Bound) -> str | None:
        """Why a spend cap would refuse a call of `entry` for `kind` now, or None."""
        if not self.caps:
            return None
        return self.caps.blocked(entry.id, kind, self.reservation(entry, bound))

    async def call(
        self,
        entry: ModelEntry,
        send: Callable[[RunUsage], Awaitable[T]],
        *,
        kind: str,
        budget: Budget,
        bound: Bound,
        force: bool = False,
    ) -> Guarded[T]:
        """Make one call of `entry` (`send`, which adds the tokens it used to the usage it is
        given) for a task of `kind`, charged to `budget` and the spend caps.

        `force` calls even when the breaker would not admit it (the orchestrator's last model).
        Raises only what is neither a provider fault nor an invalid answer (a bug, a cancellation),
        after releasing what it held.
        """
        estimate = self.reservation(entry, bound)
        blocked = self.caps.blocked(entry.id, kind, estimate) if self.caps else None
        if blocked is not None:
            return Guarded(outcome="refused", reason=blocked)
        breaker = self.breaker(entry)
        if not breaker.admit() and not force:
            return Guarded(outcome="refused", reason=breaker.unavailable_reason() or "circuit open")
        try:
            held = self._reserve(budget, entry, kind, estimate)
        except BudgetExceeded as exc:
            breaker.release()
            return Guarded(outcome="over_budget", error=exc, reason=str(exc))
        usage = RunUsage()
        t0 = time.monotonic()
        try:
            output = await send(usage)
        except Exception as exc:
            fault = classify(exc)
            if fault is None and not isinstance(exc, UnexpectedModelBehavior | UsageLimitExceeded):
                _settle(held, None)
                breaker.release()
                raise
            cost = entry.cost(usage.input_tokens, usage.output_tokens)
            _settle(held, cost)
            latency = time.monotonic() - t0
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
        except BaseException:
            _settle(held, None)
            breaker.release()
            raise
        cost = entry.cost(usage.input_tokens, usage.output_tokens)
        _settle(held, cost)
        breaker.success()
        return Guarded(
            outcome="answered",
            output=output,
            usage=usage,
            cost_usd=cost,
            latency_s=time.monotonic() - t0,
        )

    @staticmethod
    def tell_breaker(fault: ProviderFault, breaker: Breaker) -> None:
        """What a provider fault tells the endpoint's breaker: sick (5xx, connection), busy
        (429: neither) or well (it answered, refusing this one request)."""
        if fault.kind == "unavailable":
            breaker.failure(fault.detail)
        elif fault.kind == "rate_limited":
            breaker.release()  # up but busy: neither healthy nor sick
        else:
            breaker.success()  # it answered, with a refusal about this request

    def retry_after(
        self, fault: ProviderFault, entry: ModelEntry, *, deadline: float, limit_s: float | None
    ) -> float | None:
        """How long to wait before calling `entry` again after `fault`, or None: move on.

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


def _settle(held: list[Reservation], cost: Decimal | None) -> None:
    for reservation in held:
        if cost is None:
            reservation.release()
        else:
            reservation.commit(cost)
