"""The wait for a slot on a model that takes a limited number of concurrent calls.

A model with `max_concurrency` (the embedded llama.cpp tier: one slot) is served one call at a
time, so on a busy job most of a handoff's time can go to waiting for it. A handoff's deadline
(`[retry] max_handoff_s`, a task's `deadline_s`) is about the answer, not the queue, so the engine
does not spend it all in line:

```
slot(left_s=left)                     left: the time the handoff has left
    a slot is free                     -> take it
    expected wait + service > left     -> refused now, without waiting ("queue: ...")
    otherwise                          -> join the line (first come, first served); while in
                                          line, leave it as soon as the expected wait from
                                          there plus a service no longer fits what is left
```

The expected wait is the calls ahead in line, plus the one to finish first, times the model's
service time, over its slots. Its service time starts at the catalog's `typical_latency_s` and
follows the calls it answers (an exponentially weighted mean), so on a loaded machine, where
each call takes longer, fewer handoffs join the line and those in it leave it early. A refusal moves the handoff on to the next model of its
route, as an open circuit would; the last model of a route is waited for as long as the handoff
has time (`patient`), since refusing it fails the handoff for sure.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass, field

import anyio

from handoffs.tracing import Tracing

__all__ = ["ModelQueue"]

_WEIGHT = 0.3
"""How much the latest call moves a model's service time (an exponentially weighted mean)."""
_RECHECK_S = 1.0
"""How often a call in line looks again at whether it can still be served in time."""


@dataclass(slots=True, eq=False)
class _Place:
    """One call's place in line: `given` once a finishing call hands it its slot."""

    turn: anyio.Event = field(default_factory=anyio.Event)
    given: bool = False


@dataclass(slots=True, kw_only=True)
class ModelQueue:
    """The slots of one model, the calls waiting for them, and how long a call takes."""

    model: str
    slots: int
    service_s: float
    """The model's service time: an exponentially weighted mean of its calls' durations, seeded
    with the catalog's `typical_latency_s`."""
    _busy: int = 0
    _line: deque[_Place] = field(default_factory=deque[_Place])

    @property
    def busy(self) -> int:
        """Slots in use now."""
        return self._busy

    @property
    def waiting(self) -> int:
        """Calls in line for a slot now."""
        return len(self._line)

    def expected_wait_s(self, ahead: int | None = None) -> float:
        """How long a call with `ahead` calls in line before it (None: one joining the line now)
        should expect to wait for a slot."""
        if self._busy < self.slots and not self._line:
            return 0.0
        n = len(self._line) if ahead is None else ahead
        return (n + 1) * self.service_s / self.slots

    def served(self, seconds: float) -> None:
        """A call took `seconds` once it had its slot: the service time follows it."""
        if seconds > 0:
            self.service_s += _WEIGHT * (seconds - self.service_s)

    def _release(self) -> None:
        if self._line:  # the slot passes to the first in line
            place = self._line.popleft()
            place.given = True
            place.turn.set()
        else:
            self._busy -= 1

    def _too_late(self, ahead: int, left_s: float) -> str | None:
        expected = self.expected_wait_s(ahead)
        if expected + self.service_s <= left_s:
            return None
        return (
            f"{ahead + self._busy} call(s) ahead for {self.slots} slot(s), ~{expected:.0f}s of "
            f"waiting + ~{self.service_s:.0f}s of service > {left_s:.0f}s left"
        )

    @asynccontextmanager
    async def slot(
        self, *, left_s: float | None, patient: bool, tracing: Tracing | None
    ) -> AsyncGenerator[str | None, None]:
        """Hold a slot for the block, yielding None; or yield why not (the block runs without
        one and must not call the model). `left_s`: the time the handoff has left (None: no
        limit); `patient`: wait as long as that allows, never leaving on the estimate."""
        if self._busy < self.slots and not self._line:
            self._busy += 1
            try:
                yield None
            finally:
                self._release()
            return
        if left_s is not None and not patient:
            late = self._too_late(len(self._line), left_s)
            if late is not None:
                yield f"queue: {late}"
                return
        place = _Place()
        self._line.append(place)
        why = await self._wait(place, left_s, patient, tracing)
        if why is not None:
            yield why
            return
        try:
            yield None
        finally:
            self._release()

    async def _wait(
        self, place: _Place, left_s: float | None, patient: bool, tracing: Tracing | None
    ) -> str | None:
        """Wait in line at `place` until given a slot (None), or say why it left the line."""
        start = time.monotonic()
        end = None if left_s is None else start + left_s
        span = tracing.queue(model=self.model, slots=self.slots) if tracing else nullcontext()
        try:
            with span:
                while not place.given:
                    now = time.monotonic()
                    if end is not None and now >= end:
                        self._line.remove(place)
                        return f"queue: no slot within {now - start:.0f}s (the time it had)"
                    if end is not None and not patient:
                        late = self._too_late(self._line.index(place), end - now)
                        if late is not None:
                            self._line.remove(place)
                            return f"queue: left the line after {now - start:.0f}s: {late}"
                    wait = _RECHECK_S if end is None else min(_RECHECK_S, end - now)
                    with anyio.move_on_after(wait):
                        await place.turn.wait()
        except BaseException:  # cancelled in line: give back what it was handed, or its place
            if place.given:
                self._release()
            else:
                self._line.remove(place)
            raise
        return None
