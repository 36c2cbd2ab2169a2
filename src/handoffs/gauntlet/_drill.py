"""Degradation drills: a model silently gets worse or slower, and nobody is told.

Unlike an outage, nothing fails loudly: answers keep coming, some of them wrong (`SilentlyWorse`)
or all of them late (`SilentlySlower`). Verification must catch the wrong ones; the slow ones must
still arrive. `LenientJudge` (not in the default run) turns the judge itself: it shows what the
reference re-verification of the `verified_or_marked` invariant is for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import anyio

from handoffs.gauntlet._attack import (
    Answer,
    Attack,
    Family,
    Harm,
    Hostility,
    ModelTarget,
    Spoiler,
    ask,
)
from handoffs.gauntlet._call import JUDGE, Call
from handoffs.gauntlet._forge import lie
from handoffs.gauntlet._judge import full_marks
from handoffs.testing import Reply, Script

__all__ = ["LenientJudge", "SilentlySlower", "SilentlyWorse"]


def _lie(call: Call, honest: Any, name: str) -> tuple[Answer, Any] | None:
    """A plausible lie in place of the honest answer (None when the schema leaves no room)."""
    assert call.schema is not None
    forged = lie(call.schema, honest, call.draw(name))
    return None if forged is None else (Reply.json(forged), forged)


@dataclass(frozen=True, kw_only=True)
class SilentlyWorse(Spoiler):
    """A model's answers go silently wrong: `rate` of them (30 % by default) are plausible lies."""

    name: str = "silently_worse"
    rate: float = 0.3
    family: ClassVar[Family] = "degradation"
    harm: ClassVar[Harm] = "wrong_answer"

    def spoil(self, call: Call, honest: Any) -> tuple[Answer, Any] | None:
        return _lie(call, honest, self.name)


@dataclass(frozen=True, kw_only=True)
class SilentlySlower(Attack):
    """A model's answers stay right but each arrives `delay_s` later."""

    name: str = "silently_slower"
    delay_s: float = 0.3
    family: ClassVar[Family] = "degradation"
    harm: ClassVar[Harm] = "availability"
    gullible_orchestrator: ClassVar[bool] = False

    async def answer(self, call: Call, honest: Script, hostility: Hostility) -> Answer | None:
        await anyio.sleep(self.delay_s)
        hostility.fire()
        return await ask(honest, call.request)


@dataclass(frozen=True, kw_only=True)
class LenientJudge(Spoiler):
    """The judge passes everything while the cheap model lies: verification itself is corrupt."""

    name: str = "lenient_judge"
    subordinates: tuple[str, ...] = ("*", JUDGE)
    rate: float = 0.3
    models: ModelTarget = "all"
    family: ClassVar[Family] = "degradation"
    harm: ClassVar[Harm] = "wrong_answer"

    def targets_role(self, role: str) -> bool:
        return role == JUDGE or super().targets_role(role)

    def hits(self, call: Call, seed: int) -> bool:
        return call.role == JUDGE or super().hits(call, seed)

    async def answer(self, call: Call, honest: Script, hostility: Hostility) -> Answer | None:
        if call.role == JUDGE:
            return full_marks(call.prompt)
        if call.tier in ("frontier", "mid"):
            return None
        return await super().answer(call, honest, hostility)

    def spoil(self, call: Call, honest: Any) -> tuple[Answer, Any] | None:
        return _lie(call, honest, self.name)
