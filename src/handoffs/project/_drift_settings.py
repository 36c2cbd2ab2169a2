"""The `[drift]` table of `handoffs.toml`: a scheduled re-qualification that `handoffs worker`
runs as a DBOS scheduled workflow (docs/operations.md).

```toml
[drift]
job = "examples/jobs/support-triage.toml"   # whose subordinates (checks, judge) grade the answers
sample = "qualify/sample.jsonl"             # the fixed sample: the same questions every run
baseline = "qualify/baseline.json"          # an earlier `handoffs qualify --json` document
schedule = "0 30 6 * * 1"                   # cron, UTC, seconds first (Monday 06:30:00)
budget_usd = "2"                            # a run stops when its replays have spent this
output = ".handoffs/drift"                  # one result document per run, `<time>.json`
```
Paths are relative to `handoffs.toml`.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from handoffs.budget import Amount
from handoffs.catalog import Label

__all__ = ["DriftSettings"]


class DriftSettings(BaseModel):
    """The `[drift]` table: what a scheduled re-qualification replays, when, and against what."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    job: str = Field(min_length=1)
    """The job file whose subordinates (their checks and judge) grade the replayed answers."""
    sample: str = Field(min_length=1)
    """The fixed sample of recorded tasks (a dataset, an outcome log with inputs, or traces)."""
    baseline: str | None = None
    """An earlier `handoffs qualify --json` document; a pass rate below the lower end of its
    95 % interval is drift. None: the run is recorded, nothing is compared."""
    schedule: str = "0 30 6 * * 1"
    """When to run: a cron expression in UTC, 5 fields or 6 with seconds first."""
    budget_usd: Amount = Decimal("2")
    """A run stops when its replays have spent this (USD)."""
    kinds: list[Label] | None = None
    """The task kinds to replay [default: every kind of the sample the job has]."""
    per_kind: int = Field(default=30, ge=1)
    """Recorded tasks per kind, at most."""
    output: str = ".handoffs/drift"
    """The folder of result documents (`<scheduled time>.json`) and run journals."""

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        fields = value.split()
        if len(fields) not in (5, 6):
            raise ValueError("must be a cron expression of 5 fields, or 6 with seconds first")
        from croniter import croniter  # DBOS's own parser, installed with it

        six = value if len(fields) == 6 else f"0 {value}"
        if not croniter.is_valid(six, second_at_beginning=True):
            raise ValueError(f"not a valid cron expression: {value!r}")
        return six
