"""Economic attacks: answers crafted to make the framework spend — escalate, retry, wait, pay.

What must hold (`harm = "cost"`): the job budget, the handoff limit and the per-handoff attempt cap.
A job stopped by its budget, or handoffs that end degraded, are the defence working: contained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from handoffs.gauntlet._attack import (
    Answer,
    Attack,
    Family,
    Harm,
    Hostility,
    ModelTarget,
    Spoiler,
)
from handoffs.gauntlet._call import Call
from handoffs.gauntlet._forge import drop_field, lie, pad, wrong_types
from handoffs.testing import Fault, Reply, Script

__all__ = ["BudgetExhaustion", "EndlessEscalation", "RetryAfterBait"]


@dataclass(frozen=True, kw_only=True)
class EndlessEscalation(Spoiler):
    """Every model, at every rung, answers nearly right but never valid, and differently after
    each piece of feedback: each handoff climbs the whole ladder, retrying at every rung."""

    name: str = "endless_escalation"
    models: ModelTarget = "all"
    family: ClassVar[Family] = "economic"
    harm: ClassVar[Harm] = "cost"

    def spoil(self, call: Call, honest: Any) -> tuple[Answer, Any] | None:
        assert call.schema is not None
        spoil = drop_field if call.is_retry else wrong_types
        forged = spoil(call.schema, honest, call.draw(self.name))
        return Reply.json(forged), forged


@dataclass(frozen=True, kw_only=True)
class BudgetExhaustion(Spoiler):
    """Every model answers as large as it is allowed to, and wrong: the most expensive possible
    failure, on every rung, until the job's budget stops it."""

    name: str = "budget_exhaustion"
    models: ModelTarget = "all"
    family: ClassVar[Family] = "economic"
    harm: ClassVar[Harm] = "cost"

    def spoil(self, call: Call, honest: Any) -> tuple[Answer, Any] | None:
        assert call.schema is not None
        wrong: Any = lie(call.schema, honest, call.draw(self.name)) or honest
        chars = 4 * (call.request.max_tokens or 1024)
        forged = pad(call.schema, wrong, chars) or wrong
        return Reply.json(forged, output_tokens=call.request.max_tokens), forged


@dataclass(frozen=True, kw_only=True)
class RetryAfterBait(Attack):
    """Every model says "429, retry after an hour": the engine must move on, not wait."""

    name: str = "retry_after_bait"
    models: ModelTarget = "all"
    retry_after_s: float = 3600.0
    family: ClassVar[Family] = "economic"
    harm: ClassVar[Harm] = "cost"

    async def answer(self, call: Call, honest: Script, hostility: Hostility) -> Answer | None:
        hostility.fire()
        return Fault.http(429, retry_after_s=self.retry_after_s, message="rate limited")
