"""What a job's gauges observe: its session's circuit breakers and its budget.

`run_job` hands both to the job's metrics (`HandoffMetrics.watch_breakers`, `.watch_budget`) and,
with `[alerts]` in `handoffs.toml`, to the alert watch; they are read when metrics are collected.
"""

from __future__ import annotations

from collections.abc import Callable

from handoffs.budget import Budget
from handoffs.engine import Session
from handoffs.tracing import BreakerReading, BudgetReading

__all__ = ["breaker_readings", "budget_reading"]


def breaker_readings(session: Session) -> Callable[[], list[BreakerReading]]:
    """Reads the breaker of every model in `session`'s catalog; a model that is only another
    model's failover is not `primary`."""
    catalog = session.catalog
    standby = {other for entry in catalog.values() for other in entry.failover}

    def read() -> list[BreakerReading]:
        readings: list[BreakerReading] = []
        for entry in catalog.values():
            breaker = session.breaker(entry)
            readings.append(
                BreakerReading(
                    model=entry.id,
                    tier=entry.tier,
                    provider=entry.provider,
                    primary=entry.id not in standby,
                    state=breaker.state,
                    down_s=breaker.down_s,
                    openings=breaker.opened,
                )
            )
        return readings

    return read


def budget_reading(job: str, budget: Budget) -> Callable[[], BudgetReading]:
    """Reads `budget` (spent plus held) under the job's name."""

    def read() -> BudgetReading:
        return BudgetReading(
            job=job,
            spent_usd=budget.spent_usd + budget.reserved_usd,
            limit_usd=budget.limit_usd,
        )

    return read
