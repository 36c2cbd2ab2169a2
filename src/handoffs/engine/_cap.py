"""Spending caps per model and task kind over a period: "no more than $5 a day of frontier on
classification".

```toml
[[caps]]
model = "frontier"     # a catalog id, or "*"
kind = "classify"      # a task kind, or "*"
usd = "5.00"
per = "day"            # "hour", "day" (UTC calendar periods) or "process"
```

Each cap is a `Budget` per period: a call reserves in every cap that matches its model and kind as
well as in the job's budget, so concurrent handoffs cannot overshoot a cap either. A model whose cap
cannot cover the call's estimate is skipped by the router with the cap as its reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from handoffs.budget import Budget, Reservation
from handoffs.errors import BudgetExceeded

__all__ = ["Caps", "SpendCap"]

Period = Literal["hour", "day", "process"]
_SECONDS: dict[Period, int] = {"hour": 3600, "day": 86400}


@dataclass(frozen=True, slots=True, kw_only=True)
class SpendCap:
    """At most `usd` on `model` for tasks of `kind`, per `per`."""

    model: str
    kind: str
    usd: Decimal
    per: Period = "day"

    def matches(self, model: str, kind: str) -> bool:
        """Whether a call of `model` for a task of `kind` counts against this cap."""
        return self.model in ("*", model) and self.kind in ("*", kind)

    @property
    def label(self) -> str:
        """E.g. `frontier/classify $5.00 per day`."""
        return f"{self.model}/{self.kind} ${self.usd} per {self.per}"


class Caps:
    """The caps of one process, each a `Budget` that renews every period.

    `wall_clock` (seconds since the epoch) decides the period; tests pass their own.
    """

    def __init__(
        self, caps: Sequence[SpendCap] = (), *, wall_clock: Callable[[], float] | None = None
    ) -> None:
        self.caps = tuple(caps)
        self._clock = wall_clock or time.time
        self._budgets: dict[tuple[int, int], Budget] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.caps)

    def _budget(self, index: int) -> Budget:
        cap = self.caps[index]
        period = 0 if cap.per == "process" else int(self._clock()) // _SECONDS[cap.per]
        with self._lock:
            found = self._budgets.get((index, period))
            if found is None:
                for key in [k for k in self._budgets if k[0] == index]:
                    del self._budgets[key]  # a past period: its spend no longer counts
                found = self._budgets[(index, period)] = Budget(cap.usd, name=f"cap {cap.label}")
            return found

    def blocked(self, model: str, kind: str, estimate: Decimal) -> str | None:
        """Why a call of `model` for `kind` costing up to `estimate` would break a cap, or None."""
        for index, cap in enumerate(self.caps):
            if not cap.matches(model, kind):
                continue
            budget = self._budget(index)
            if not budget.can_cover(estimate):
                return f"spend cap {cap.label} reached (${budget.spent_usd} spent)"
        return None

    def reserve(self, model: str, kind: str, amount: Decimal) -> list[Reservation]:
        """Hold `amount` in every matching cap, or hold nothing and raise `BudgetExceeded`."""
        held: list[Reservation] = []
        try:
            for index, cap in enumerate(self.caps):
                if cap.matches(model, kind):
                    held.append(self._budget(index).reserve(amount))
        except BudgetExceeded:
            for reservation in held:
                reservation.release()
            raise
        return held

    def spent(self) -> dict[str, Decimal]:
        """Each cap's label -> what it has spent this period."""
        return {cap.label: self._budget(i).spent_usd for i, cap in enumerate(self.caps)}
