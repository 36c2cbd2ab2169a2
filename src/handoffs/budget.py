"""Dollar budgets in `Decimal`: reserve before a call, commit the actual cost after, release on failure.

A reservation holds money against the limit until it is committed or released, so any number of
concurrent handoffs sharing one `Budget` cannot together reserve more than the limit. A child
budget (one handoff's ceiling) reserves in its parent (the job) too.
"""

from __future__ import annotations

import re
import threading
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Annotated, Final

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from handoffs.errors import BudgetExceeded

__all__ = ["MAX_USD", "Amount", "Budget", "Reservation", "usd", "usd_text"]

_ZERO = Decimal(0)
MAX_USD: Final = Decimal(1_000_000)
"""The most a file may state as an amount (a budget, a cap, a price per million tokens): more is a
typo, not a setting."""
_PLAIN: Final = r"^[0-9]+(\.[0-9]+)?$"


def usd(value: Decimal | int | str | float) -> Decimal:
    """An amount of money as a finite `Decimal` (floats via their shortest repr); ValueError if not."""
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not an amount of money: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not a finite amount of money: {value!r}")
    return amount


def _amount(value: object) -> Decimal:
    """An amount of money as a file states it: a number or a plain decimal string, finite,
    between 0 and `MAX_USD`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError('must be an amount in USD: a number, or a string such as "0.50"')
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError('must be an amount in USD, such as "0.50"') from None
    if not amount.is_finite():
        raise ValueError("must be a finite amount")
    if amount < 0:
        raise ValueError("must not be negative")
    if amount > MAX_USD:
        raise ValueError(f"must be at most {MAX_USD}")
    if isinstance(value, str) and re.fullmatch(_PLAIN, value) is None:
        raise ValueError('must be written as a plain decimal, such as "0.50"')
    return amount


Amount = Annotated[
    Decimal,
    PlainValidator(_amount),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": int(MAX_USD)},
                {"type": "string", "pattern": _PLAIN},
            ]
        }
    ),
]
"""A field of USD in a file (pydantic): `"0.50"` or `0.5` -> `Decimal("0.5")`; nan, inf, negative
amounts and amounts over `MAX_USD` are refused."""


def usd_text(value: Decimal) -> str:
    """An amount as plain text, without trailing zeros: `0.0012`, `0.0000009`, `3`, `0`."""
    return format(value.normalize(), "f") if value else "0"


class Budget:
    """A spending limit shared by every handoff charged to it. `limit_usd=None` means unlimited."""

    def __init__(
        self,
        limit_usd: Decimal | int | str | float | None = None,
        *,
        name: str = "job",
        parent: Budget | None = None,
    ) -> None:
        self.name = name
        self.limit_usd: Decimal | None = None if limit_usd is None else usd(limit_usd)
        if self.limit_usd is not None and self.limit_usd < 0:
            raise ValueError("a budget limit must not be negative")
        self.parent = parent
        self._spent = _ZERO
        self._reserved = _ZERO
        self._lock = threading.Lock()

    @property
    def spent_usd(self) -> Decimal:
        """Money committed so far."""
        return self._spent

    @property
    def reserved_usd(self) -> Decimal:
        """Money held by reservations not yet committed or released."""
        return self._reserved

    @property
    def remaining_usd(self) -> Decimal | None:
        """What can still be reserved here and in every parent (None when all are unlimited)."""
        own = None if self.limit_usd is None else self.limit_usd - self._spent - self._reserved
        up = self.parent.remaining_usd if self.parent else None
        if own is None:
            return up
        return own if up is None else min(own, up)

    def can_cover(self, amount: Decimal) -> bool:
        """Whether a reservation of `amount` would succeed now."""
        remaining = self.remaining_usd
        return remaining is None or amount <= remaining

    def child(self, limit_usd: Decimal | None, *, name: str) -> Budget:
        """A budget whose reservations also count against this one."""
        return Budget(limit_usd, name=name, parent=self)

    def reserve(self, amount: Decimal | int | str | float) -> Reservation:
        """Hold `amount` against this budget and its parents, or raise `BudgetExceeded`."""
        amount = usd(amount)
        if amount < 0:
            raise ValueError("cannot reserve a negative amount")
        parent_res = self.parent.reserve(amount) if self.parent else None
        with self._lock:
            if (
                self.limit_usd is not None
                and self._spent + self._reserved + amount > self.limit_usd
            ):
                exc = BudgetExceeded(
                    f"budget {self.name!r}: reserving ${amount} would exceed the ${self.limit_usd} "
                    f"limit (spent ${self._spent}, reserved ${self._reserved})",
                    limit=self.limit_usd,
                    spent=self._spent,
                    reserved=self._reserved,
                    requested=amount,
                )
            else:
                self._reserved += amount
                return Reservation(self, amount, parent_res)
        if parent_res is not None:
            parent_res.release()
        raise exc

    def _settle(self, held: Decimal, actual: Decimal | None) -> None:
        with self._lock:
            self._reserved -= held
            if actual is not None:
                self._spent += actual

    def charge(self, amount: Decimal) -> None:
        """Record spending that was not reserved in advance (here and in every parent)."""
        self._settle(_ZERO, amount)
        if self.parent:
            self.parent.charge(amount)

    def __repr__(self) -> str:
        return (
            f"Budget(name={self.name!r}, limit_usd={self.limit_usd}, spent_usd={self._spent}, "
            f"reserved_usd={self._reserved})"
        )


class Reservation:
    """Money held for one call. Commit the actual cost, or release it if the call never happened."""

    def __init__(self, budget: Budget, amount: Decimal, parent: Reservation | None) -> None:
        self.budget = budget
        self.amount = amount
        self._parent = parent
        self._open = True
        self._lock = threading.Lock()

    def _close(self) -> bool:
        with self._lock:
            was_open, self._open = self._open, False
            return was_open

    def commit(self, actual: Decimal) -> None:
        """Replace the hold by the actual cost (which may be lower or, rarely, higher)."""
        if not self._close():
            raise RuntimeError("reservation already settled")
        self.budget._settle(self.amount, actual)  # pyright: ignore[reportPrivateUsage]
        if self._parent is not None:
            self._parent.commit(actual)

    def release(self) -> None:
        """Give the hold back without spending anything (idempotent)."""
        if not self._close():
            return
        self.budget._settle(self.amount, None)  # pyright: ignore[reportPrivateUsage]
        if self._parent is not None:
            self._parent.release()

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
