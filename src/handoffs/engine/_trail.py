"""What one handoff did, attempt by attempt, and the `HandoffRecord` it leaves.

The engine (`handoffs.engine`) appends an `Attempt` per call here and ends with `deliver` or
`give_up`; this module knows how to turn that into a record (a `RecordDraft`, validated into the
`HandoffRecord` only when something reads it) and, when the handoff cannot deliver,
into the task's degraded fallback or the right exception.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar

from pydantic_ai.usage import RunUsage

from handoffs.catalog import ModelEntry
from handoffs.errors import (
    BudgetExceeded,
    HandoffFailed,
    HandoffTimeout,
    NoRouteAvailable,
    ProviderRejected,
    VerificationFailed,
)
from handoffs.handoff import (
    Attempt,
    BreakerState,
    Cause,
    Delivery,
    FaultKind,
    Lane,
    Outcome,
    RecordDraft,
    Verdict,
)
from handoffs.routing import RouteDecision
from handoffs.task import Task

__all__ = ["Trail", "cause_of"]

T = TypeVar("T")


def cause_of(failure: Exception) -> Cause:
    """The `HandoffRecord.cause` word for why a handoff could not deliver."""
    if isinstance(failure, BudgetExceeded):
        return "budget"
    if isinstance(failure, NoRouteAvailable):
        return "no_route"
    if isinstance(failure, VerificationFailed):
        return "verification"
    if isinstance(failure, HandoffTimeout):
        return "deadline"
    if isinstance(failure, ProviderRejected):
        return failure.cause
    return "providers"


@dataclass(kw_only=True)
class Trail(Generic[T]):
    """The attempts of one handoff in flight."""

    task: Task[T]
    decision: RouteDecision
    breakers: dict[str, BreakerState] = field(default_factory=dict[str, BreakerState])
    started: float = field(default_factory=time.monotonic)
    attempts: list[Attempt] = field(default_factory=list[Attempt])
    escalations: int = 0

    @property
    def calls(self) -> int:
        """Model calls made so far (attempts that were not refused before calling)."""
        return sum(1 for a in self.attempts if a.outcome != "refused")

    def add(
        self,
        entry: ModelEntry,
        rung: int,
        outcome: Outcome,
        feedback: bool,
        *,
        usage: RunUsage | None = None,
        latency: float = 0.0,
        verdicts: list[Verdict] | None = None,
        error: str | None = None,
        fault: FaultKind | None = None,
        cost: Decimal | None = None,
        lane: Lane = "now",
        batch_id: str | None = None,
        saved: Decimal = Decimal(0),
    ) -> Attempt:
        """Record one attempt (a call, or a call refused before it was made); `cost` is what the
        call was charged (default: its reported tokens at the model's prices)."""
        tokens_in = usage.input_tokens if usage else 0
        tokens_out = usage.output_tokens if usage else 0
        read = usage.cache_read_tokens if usage else 0
        written = usage.cache_write_tokens if usage else 0
        if cost is None:
            cost = entry.cost(
                tokens_in, tokens_out, cache_read_tokens=read, cache_write_tokens=written
            )
        check_cost = sum((v.cost_usd for v in verdicts or []), Decimal(0))
        attempt = Attempt(
            model=entry.id,
            provider=entry.provider,
            tier=entry.tier,
            rung=rung,
            outcome=outcome,
            feedback=feedback,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=cost + check_cost,
            cache_read_tokens=read,
            cache_write_tokens=written,
            prompt_cache_saved_usd=entry.cache_saving(read, written),
            latency_s=round(latency, 4),
            verdicts=tuple(verdicts or ()),
            error=error,
            fault=fault,
            lane=lane,
            batch_id=batch_id,
            saved_usd=saved,
        )
        self.attempts.append(attempt)
        return attempt

    def _base(self) -> dict[str, Any]:
        attempts = self.attempts
        return {
            "task_id": self.task.id,
            "task_kind": self.task.kind,
            "label": self.task.label,
            "risk": self.task.risk,
            "route": self.decision.ladder,
            "route_reasons": self.decision.steps,
            "attempts": tuple(attempts),
            "escalations": self.escalations,
            "input_tokens": sum(a.input_tokens for a in attempts),
            "output_tokens": sum(a.output_tokens for a in attempts),
            "cost_usd": sum((a.cost_usd for a in attempts), Decimal(0)),
            "cache_read_tokens": sum(a.cache_read_tokens for a in attempts),
            "cache_write_tokens": sum(a.cache_write_tokens for a in attempts),
            "prompt_cache_saved_usd": sum((a.prompt_cache_saved_usd for a in attempts), Decimal(0)),
            "latency_s": round(time.monotonic() - self.started, 4),
            "breakers": self.breakers,
        }

    def deliver(
        self, output: T, entry: ModelEntry, verdicts: list[Verdict], *, simulated: bool = False
    ) -> Delivery[T]:
        """The delivery of a checked output (`simulated`: a simulated model's stand-in)."""
        record = RecordDraft(
            {
                **self._base(),
                "status": "delivered",
                "simulated": simulated,
                "model": entry.id,
                "provider": entry.provider,
                "tier": entry.tier,
                "verdicts": tuple(verdicts),
                "output": self.task.dump_output(output),
            }
        )
        return Delivery(output=output, record=record)

    def failure(self, failure: Exception | None) -> Exception:
        """The exception that says why nothing was delivered (`failure` if one is known)."""
        if failure is not None:
            return failure
        task = self.task
        summary = "; ".join(f"{a.model}: {a.fault or a.outcome}" for a in self.attempts)
        if any(a.outcome in ("rejected", "invalid_output") for a in self.attempts):
            return VerificationFailed(
                f"task {task.kind!r}: no output passed its checks ({summary})",
                task_id=task.id,
                attempts=self.attempts,
                verdicts=self.failed_verdicts,
            )
        return HandoffFailed(
            f"task {task.kind!r}: every route failed ({summary or 'nothing tried'})",
            task_id=task.id,
            attempts=self.attempts,
        )

    @property
    def failed_verdicts(self) -> list[Verdict]:
        """Every failed verdict of every attempt."""
        return [v for a in self.attempts for v in a.verdicts if not v.passed]

    def degraded(self, failure: Exception) -> Delivery[T]:
        """The task's fallback, marked degraded, with why."""
        fallback: T = self.task.fallback  # type: ignore[assignment]
        record = RecordDraft(
            {
                **self._base(),
                "status": "degraded",
                "degraded": True,
                "verdicts": tuple(self.failed_verdicts),
                "output": self.task.dump_output(fallback),
                "error": str(failure),
                "cause": cause_of(failure),
            }
        )
        return Delivery(output=fallback, record=record)

    def failed(self, failure: Exception) -> RecordDraft:
        """The record of a handoff that raises `failure` (a draft: built when first read)."""
        return RecordDraft(
            {
                **self._base(),
                "status": "failed",
                "verdicts": tuple(self.failed_verdicts),
                "error": str(failure),
                "cause": cause_of(failure),
            }
        )
