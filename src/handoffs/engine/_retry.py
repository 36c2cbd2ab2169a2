"""How hard one handoff tries: timeouts, waits, and the caps on attempts and time.

The SDKs' own retries are off (`max_retries=0` on every client), so nothing retries twice: a
failed call comes straight back to the engine, which fails over to the next provider at once, or
waits (a 429's `Retry-After` when it fits the deadline; exponential backoff with full jitter,
tenacity's `wait_random_exponential`, before sweeping the route again when every provider on it
failed). pydantic-ai enforces the per-call deadlines: `request_timeout` on the whole request and
`first_event_timeout` on a streamed request's first token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tenacity import RetryCallState, wait_random_exponential

from handoffs.errors import ConfigError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Caps and waits for one handoff; `[retry]` in `handoffs.toml`."""

    max_attempts: int = 8
    """Model calls one handoff may make, across retries, failovers and escalations."""
    max_handoff_s: float = 120.0
    """Wall-clock limit on one handoff, across every attempt (a task's `deadline_s` limits each call)."""
    request_timeout_s: float = 60.0
    """Deadline of one whole model request (pydantic-ai's `request_timeout`)."""
    first_event_timeout_s: float | None = 15.0
    """Deadline of a streamed request's first token (pydantic-ai's `first_event_timeout`); None
    (0 in `handoffs.toml`) turns it off."""
    max_retry_after_s: float = 10.0
    """The longest `Retry-After` honoured when the task has no deadline."""
    sweeps: int = 2
    """Times the whole route is tried when every provider on it failed transiently."""
    backoff_initial_s: float = 0.5
    """First backoff before sweeping the route again; doubles each time, full jitter."""
    backoff_max_s: float = 8.0
    """The longest backoff."""
    _wait: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.sweeps < 1:
            raise ConfigError("[retry]: max_attempts and sweeps must be at least 1")
        numbers = (self.max_handoff_s, self.request_timeout_s, self.max_retry_after_s)
        if any(n <= 0 for n in numbers) or self.backoff_initial_s < 0 or self.backoff_max_s < 0:
            raise ConfigError("[retry]: times must be positive numbers")
        if self.first_event_timeout_s is not None and self.first_event_timeout_s <= 0:
            raise ConfigError("[retry]: first_event_timeout_s must be positive")
        wait = wait_random_exponential(multiplier=self.backoff_initial_s, max=self.backoff_max_s)
        object.__setattr__(self, "_wait", wait)

    def backoff_s(self, sweep: int) -> float:
        """The jittered wait before sweep number `sweep` (1 = the first repeat)."""
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # pyright: ignore[reportArgumentType]
        state.attempt_number = sweep
        return float(self._wait(state))
