"""Where a session's finished handoffs go: `RecordSink`s, and the bounded `Tally` it keeps itself.

A session hoards nothing per handoff. It hands each finished `HandoffRecord` to its sinks — the
outcome log, a job's journal, a run's result, a callback — and keeps only a `Tally`: counts, spend
and at most `keep` recent records, whatever the number of handoffs. With no sink to hand it to,
a record stays a `RecordDraft` (its fields) until something reads it: the pydantic record is
validated only for a reader.

```python
session = Session(catalog=..., models=..., sinks=[lambda record, task: print(record.status)])
```
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol, assert_never

from handoffs.handoff import HandoffRecord, RecordDraft, record_of
from handoffs.task import Task

__all__ = ["Callback", "RecordSink", "Recorder", "Tally"]


class RecordSink(Protocol):
    """Takes each finished handoff's record from a session (`Session(sinks=[...])`)."""

    def __call__(self, record: HandoffRecord, task: Task[Any] | None, /) -> None:
        """Take one finished handoff's `record`. `task` is the task this session ran; None for a
        record it adopted from elsewhere (a journal replayed, another worker), already accounted
        where it ran."""
        ...


class Callback:
    """A `RecordSink` that calls `on_record(record)` for every record (`Session(on_record=...)`)."""

    def __init__(self, on_record: Callable[[HandoffRecord], None]) -> None:
        self.on_record = on_record

    def __call__(self, record: HandoffRecord, task: Task[Any] | None, /) -> None:
        self.on_record(record)


class Recorder:
    """A `RecordSink` that keeps every record it is handed, in order: a run's result, a job's
    report. It grows with the handoffs; attach it for as long as the records are wanted."""

    def __init__(self) -> None:
        self.records: list[HandoffRecord] = []

    def __call__(self, record: HandoffRecord, task: Task[Any] | None, /) -> None:
        self.records.append(record)


class Tally:
    """What a session keeps of its handoffs, however many it makes: counts, spend, and the most
    recent `keep` records (every one with `keep=None`)."""

    def __init__(self, keep: int | None) -> None:
        if keep is not None and keep < 0:
            raise ValueError("keep_records must not be negative")
        self.handoffs = 0
        """Finished handoffs: delivered, degraded and failed, adopted ones included."""
        self.delivered = 0
        self.degraded = 0
        self.failed = 0
        self.escalations = 0
        """Escalations to a stronger rung, over every handoff."""
        self.cost_usd = Decimal(0)
        """What every handoff cost, checks included."""
        self.keep = keep
        """How many recent records are kept (None: every one)."""
        self._recent: deque[HandoffRecord | RecordDraft] = deque(maxlen=keep)

    @property
    def recent(self) -> deque[HandoffRecord]:
        """The latest records, oldest first (a copy: built from drafts when first read)."""
        return deque(self.records(), maxlen=self.keep)

    def records(self) -> tuple[HandoffRecord, ...]:
        """The latest records, oldest first; a draft is built the first time it is read."""
        return tuple(record_of(record) for record in self._recent)

    def __call__(self, record: HandoffRecord | RecordDraft, task: Task[Any] | None, /) -> None:
        self.handoffs += 1
        match record.status:
            case "delivered":
                self.delivered += 1
            case "degraded":
                self.degraded += 1
            case "failed":
                self.failed += 1
            case _:
                assert_never(record.status)
        self.escalations += record.escalations
        self.cost_usd += record.cost_usd
        self._recent.append(record)
