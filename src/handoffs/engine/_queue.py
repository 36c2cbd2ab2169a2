"""The wait for a slot on a model that takes a limited number of concurrent calls.

A model with `max_concurrency` (the embedded llama.cpp tier: one slot) is served one call at a
time, so on a busy job most of a handoff's time can go to waiting for it. A handoff's deadline
(`[retry] max_handoff_s`, a task's `deadline_s`) is about the answer, not the queue, so the engine
does not spend it all in line:

```
slot(wait_s=left, service_s=...)      left: the time the handoff has left
    a slot is free                     -> take it
    expected wait + service > left     -> refused now, without waiting ("queue: ...")
    otherwise                          -> wait up to left - service; still in line -> refused
```

The expected wait is the calls ahead (in service and in line) times the model's service time,
over its slots. Its service time starts at the catalog's `typical_latency_s` and follows the
calls it answers (an exponentially weighted mean), so on a loaded machine, where each call takes
longer, fewer handoffs queue for it. A refusal moves the handoff on to the next model of its
route, as an open circuit would; the last model of a route is waited for as long as the handoff
has time (`patient`), since refusing it fails the handoff for sure.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from handoffs.tracing import Tracing

__all__ = ["ModelQueue"]

_WEIGHT = 0.3
"""How much the latest call moves a model's service time (an exponentially weighted mean)."""


@dataclass(slots=True, kw_only=True)
class ModelQueue:
    """The slots of one model, the calls waiting for them, and how long a call takes."""

    model: str
    slots: int
    service_s: float
    """The model's service time: an exponentially weighted mean of its calls' durations, seeded
    with the catalog's `typical_latency_s`."""
    waiting: int = 0
    """Calls in line for a slot now."""
    _free: anyio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._free = anyio.Semaphore(self.slots)

    @property
    def busy(self) -> int:
        """Slots in use now."""
        return self.slots - self._free.value

    def expected_wait_s(self) -> float:
        """How long a call joining the line now should expect to wait for a slot."""
        if self.busy < self.slots and not self.waiting:
            return 0.0
        ahead = self.waiting + self.busy - self.slots + 1  # calls that start before it
        return max(ahead, 1) * self.service_s / self.slots

    def served(self, seconds: float) -> None:
        """A call took `seconds` once it had its slot: the service time follows it."""
        if seconds > 0:
            self.service_s += _WEIGHT * (seconds - self.service_s)

    @asynccontextmanager
    async def slot(
        self, *, left_s: float | None, patient: bool, tracing: Tracing | None
    ) -> AsyncGenerator[str | None, None]:
        """Hold a slot for the block, yielding None; or yield why not (the block runs without
        one and must not call the model). `left_s`: the time the handoff has left (None: no
        limit); `patient`: wait as long as that allows, never refusing on the estimate."""
        if left_s is not None and not patient:
            expected = self.expected_wait_s()
            if expected and expected + self.service_s > left_s:
                yield (
                    f"queue: {self.waiting + self.busy} call(s) ahead for {self.slots} slot(s), "
                    f"~{expected:.0f}s of waiting + ~{self.service_s:.0f}s of service "
                    f"> {left_s:.0f}s left"
                )
                return
        if self._free.value >= 1:
            async with self._free:
                yield None
            return
        patience = left_s if patient or left_s is None else left_s - self.service_s
        got = False
        self.waiting += 1
        try:
            with anyio.move_on_after(patience):
                if tracing is not None:
                    with tracing.queue(model=self.model, slots=self.slots):
                        await self._free.acquire()
                else:
                    await self._free.acquire()
                got = True
        finally:
            self.waiting -= 1
        if not got:
            yield f"queue: no slot within {patience:.0f}s (the time left for the answer)"
            return
        try:
            yield None
        finally:
            self._free.release()
