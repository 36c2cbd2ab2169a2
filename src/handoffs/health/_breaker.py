"""Circuit breakers per endpoint, shared by every handoff that uses the same `Health`.

```
closed --(N consecutive failures, or error rate >= R over the last W calls, or a trip)--> open
open --(cooldown elapsed)--> half-open: one call (a probe or a user's request) at a time
half-open --(M successes)--> closed        half-open --(a failure)--> open (cooldown again)
```

The router skips endpoints that are open (or half-open with their one call in flight) and says so
in the route's reasons; the engine records the outcome of every call here. `Prober` (in
`handoffs.health`) keeps the states fresh between user requests.

An endpoint is what a provider serves at one address under one model name: two catalog entries
for the same model at the same place share a breaker. Nothing here does I/O or blocks: a
`threading.Lock` guards each breaker's counters, and time comes from an injectable clock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from handoffs.catalog import ModelEntry
from handoffs.errors import ConfigError
from handoffs.handoff import BreakerState

__all__ = ["Breaker", "BreakerSettings", "BreakerState", "Health", "endpoint_of", "shared_health"]

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerSettings:
    """When a breaker opens and closes; `[health]` in `handoffs.toml`."""

    failure_threshold: int = 3
    """Consecutive failures that open a closed breaker."""
    error_rate: float = 0.5
    """Failure fraction over the last `window` calls that also opens it (1.0 turns this off)."""
    window: int = 20
    """Calls the error rate is measured over; the rate only counts once the window is full."""
    cooldown_s: float = 30.0
    """How long an open breaker waits before letting one call through (half-open)."""
    success_threshold: int = 5
    """Successes in half-open that close the breaker again."""
    probe_interval_s: float = 60.0
    """How often `Prober` sends its tiny request to each endpoint (0 turns probing off)."""
    probe_timeout_s: float = 5.0
    """The probe's whole-request deadline."""

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.success_threshold < 1 or self.window < 1:
            raise ConfigError("[health]: thresholds and window must be at least 1")
        if not 0 < self.error_rate <= 1:
            raise ConfigError("[health]: error_rate must be in (0, 1]")
        if self.cooldown_s < 0 or self.probe_interval_s < 0 or self.probe_timeout_s <= 0:
            raise ConfigError(
                "[health]: cooldown_s and probe_interval_s must be >= 0, probe_timeout_s > 0"
            )


def endpoint_of(entry: ModelEntry, address: str | None = None) -> str:
    """The breaker key of a catalog entry: provider, address and model name.

    `address` is where the entry's client really points (e.g. the pydantic-ai model's
    `base_url`); without it, the catalog's `base_url` or embedded name stands in.
    """
    where = address or entry.base_url or entry.embedded or "default"
    return f"{entry.provider}:{where.rstrip('/')}:{entry.name}"


class Breaker:
    """One endpoint's circuit breaker. Thread-safe; never blocks on I/O."""

    def __init__(
        self,
        endpoint: str,
        settings: BreakerSettings,
        clock: Clock,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self._clock = clock
        self._on_change = on_change
        """Called (under this breaker's lock) on every change of state: `Health.epoch`."""
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._consecutive = 0
        self._recent: deque[bool] = deque(maxlen=settings.window)
        self._opened_at = 0.0
        self._down_since: float | None = None
        self._half_open_successes = 0
        self._trial_in_flight = False
        self.opened = 0
        """How many times this breaker has opened."""
        self.watched = False
        """Whether an active prober is probing this endpoint (set by `Prober.running`)."""
        self.last_error: str | None = None

    @property
    def state(self) -> BreakerState:
        """The state now: an open breaker whose cooldown has passed reads as half-open."""
        with self._lock:
            return self._current()

    def _current(self) -> BreakerState:
        if self._state == "open" and self._clock() - self._opened_at >= self.settings.cooldown_s:
            self._state, self._half_open_successes = "half_open", 0
            self._trial_in_flight = False
            self._changed()
        return self._state

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    @property
    def down_s(self) -> float:
        """How long this endpoint has been out of the closed state (open or half-open) without
        closing again, on the breaker's clock; 0.0 while it is closed."""
        with self._lock:
            if self._current() == "closed" or self._down_since is None:
                return 0.0
            return max(self._clock() - self._down_since, 0.0)

    def unavailable_reason(self) -> str | None:
        """Why the router should skip this endpoint now, or None if it may be called."""
        with self._lock:
            state = self._current()
            if state == "open":
                wait = self.settings.cooldown_s - (self._clock() - self._opened_at)
                cause = f": {self.last_error}" if self.last_error else ""
                return f"circuit open (retry in {max(wait, 0):.0f}s){cause}"
            if state == "half_open" and self._trial_in_flight:
                return "circuit half-open: its trial call is in flight"
            if state == "half_open" and self.watched and self._half_open_successes == 0:
                return "circuit half-open: waiting for the prober's trial"
            return None

    def admit(self, *, probe: bool = False) -> bool:
        """Take permission for one call: always when closed, one at a time when half-open.

        While a prober watches this breaker, the first half-open trial is the prober's: no user
        request pays to learn that the endpoint is still down. Once a probe has succeeded, users'
        requests are trials too, so the endpoint comes back as fast as traffic proves it.
        """
        with self._lock:
            state = self._current()
            if state == "closed":
                return True
            if state != "half_open" or self._trial_in_flight:
                return False
            if self.watched and not probe and self._half_open_successes == 0:
                return False
            self._trial_in_flight = True
            return True

    def release(self) -> None:
        """Give back an admitted call that ended without telling success or failure."""
        with self._lock:
            self._trial_in_flight = False

    def success(self) -> None:
        """Record a call the endpoint answered (whatever the answer's quality)."""
        with self._lock:
            state = self._current()
            self._consecutive = 0
            self._recent.append(True)
            if state == "half_open":
                self._trial_in_flight = False
                self._half_open_successes += 1
                if self._half_open_successes >= self.settings.success_threshold:
                    self._state = "closed"
                    self._down_since = None
                    self._recent.clear()
                    self._changed()

    def failure(self, error: str | None = None) -> None:
        """Record a call the endpoint failed (5xx, overload, connection, timeout)."""
        with self._lock:
            state = self._current()
            self.last_error = error
            self._consecutive += 1
            self._recent.append(False)
            if state == "half_open":
                self._open()
            elif state == "closed" and self._should_open():
                self._open()

    def trip(self, error: str | None = None) -> None:
        """Record a failure and open the breaker now, whatever the counts: the endpoint broke a
        call's contract (it answered past the `max_tokens` it was sent), so no new call goes there
        until the cooldown passes."""
        with self._lock:
            self._current()
            self.last_error = error
            self._consecutive += 1
            self._recent.append(False)
            self._open()

    def _should_open(self) -> bool:
        if self._consecutive >= self.settings.failure_threshold:
            return True
        full = len(self._recent) == self.settings.window
        failures = sum(1 for ok in self._recent if not ok)
        return full and failures / len(self._recent) >= self.settings.error_rate

    def _open(self) -> None:
        self._state, self._opened_at = "open", self._clock()
        if self._down_since is None:
            self._down_since = self._opened_at
        self._trial_in_flight = False
        self._half_open_successes = 0
        self.opened += 1
        self._changed()


class Health:
    """The breakers of every endpoint, created on first use. Share one per process.

    `clock` defaults to `time.monotonic`; tests pass their own to move time without sleeping.
    `epoch` counts the state changes of all its breakers: what was decided from their states
    (a memoised route) holds while it has not moved.
    """

    def __init__(
        self, settings: BreakerSettings | None = None, *, clock: Clock | None = None
    ) -> None:
        self.settings = settings or BreakerSettings()
        self._clock: Clock = clock or time.monotonic
        self._breakers: dict[str, Breaker] = {}
        self._lock = threading.Lock()
        self._epoch = 0
        self._epoch_lock = threading.Lock()

    @property
    def epoch(self) -> int:
        """How many times any of these breakers has changed state (opened, gone half-open,
        closed): unchanged since a reading, every breaker is in the state it was then read in."""
        return self._epoch

    def _bump(self) -> None:
        with self._epoch_lock:
            self._epoch += 1

    def breaker(self, entry: ModelEntry, address: str | None = None) -> Breaker:
        """The breaker of `entry`'s endpoint (see `endpoint_of` for `address`)."""
        key = endpoint_of(entry, address)
        with self._lock:
            found = self._breakers.get(key)
            if found is None:
                found = self._breakers[key] = Breaker(
                    key, self.settings, self._clock, on_change=self._bump
                )
            return found

    def unavailable(self, breakers: Mapping[str, Breaker]) -> dict[str, str]:
        """Catalog id -> why it is out of rotation, for the ids whose breaker says so."""
        out: dict[str, str] = {}
        for model_id, breaker in breakers.items():
            reason = breaker.unavailable_reason()
            if reason is not None:
                out[model_id] = reason
        return out


_SHARED: dict[BreakerSettings, Health] = {}
_SHARED_LOCK = threading.Lock()


def shared_health(settings: BreakerSettings | None = None) -> Health:
    """The process's `Health` for these settings: every job run in this process shares it."""
    settings = settings or BreakerSettings()
    with _SHARED_LOCK:
        found = _SHARED.get(settings)
        if found is None:
            found = _SHARED[settings] = Health(settings)
        return found
