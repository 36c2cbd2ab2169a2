"""The active prober: a tiny "reply OK" request to every endpoint on a timer, fed to the breakers.

A dead endpoint is taken out of rotation by the prober's failures before users hit it, and an
open breaker whose cooldown has passed gets its half-open trials from the prober, so the endpoint
comes back without a user's request paying for the test.

```python
async with Prober(session, interval_s=60).running():
    ...  # handoffs, while the prober runs in the background
```

Embedded models (served in-process, one slot) are not probed: a probe would queue behind real work
and time out for the wrong reason. Probe spend is counted on the prober, not charged to any job.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import anyio
from pydantic_ai import Agent
from pydantic_ai.models import Model
from pydantic_ai.usage import RunUsage, UsageLimits

from handoffs.catalog import Catalog, ModelEntry
from handoffs.health._breaker import Breaker, Health
from handoffs.providers import classify

__all__ = ["ProbeResult", "ProbeTarget", "Prober"]


class ProbeTarget(Protocol):
    """What the prober needs of a session: its catalog, breakers and models (a `Session` is one)."""

    @property
    def catalog(self) -> Catalog: ...
    @property
    def health(self) -> Health: ...
    @property
    def models(self) -> Callable[[ModelEntry], Model]: ...
    def breaker(self, entry: ModelEntry) -> Breaker: ...


PROMPT = "Reply with the single word OK."


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeResult:
    """One probe of one endpoint."""

    model: str
    ok: bool
    """Whether the endpoint answered (any text counts)."""
    latency_s: float
    error: str | None = None
    skipped: bool = False
    """The breaker was open and still cooling down: nothing was sent."""


class Prober:
    """Probes the endpoints of a session's catalog and records the outcomes in its breakers."""

    def __init__(
        self,
        session: ProbeTarget,
        *,
        interval_s: float | None = None,
        timeout_s: float | None = None,
        model_ids: list[str] | None = None,
    ) -> None:
        settings = session.health.settings
        self.session = session
        self.interval_s = settings.probe_interval_s if interval_s is None else interval_s
        self.timeout_s = settings.probe_timeout_s if timeout_s is None else timeout_s
        catalog = session.catalog
        ids = list(catalog) if model_ids is None else model_ids
        self.entries = [catalog[m] for m in ids if catalog[m].embedded is None]
        self.spent_usd = Decimal(0)
        """What the probes have cost."""
        self.probes = 0
        """Requests sent."""
        self._agents: dict[str, Agent[None, str]] = {}

    async def probe_once(self) -> list[ProbeResult]:
        """Probe every endpoint once, concurrently."""
        results: list[ProbeResult] = []

        async def one(entry: ModelEntry) -> None:
            results.append(await self._probe(entry))

        async with anyio.create_task_group() as group:
            for entry in self.entries:
                group.start_soon(one, entry)
        return sorted(results, key=lambda r: r.model)

    async def _probe(self, entry: ModelEntry) -> ProbeResult:
        breaker = self.session.breaker(entry)
        if not breaker.admit(probe=True):
            return ProbeResult(model=entry.id, ok=False, latency_s=0.0, skipped=True)
        agent = self._agents.get(entry.id)
        if agent is None:
            agent = self._agents[entry.id] = Agent(
                self.session.models(entry), output_type=str, name=f"probe:{entry.id}"
            )
        usage = RunUsage()
        t0 = time.monotonic()
        self.probes += 1
        try:
            await agent.run(
                PROMPT,
                usage=usage,
                usage_limits=UsageLimits(request_limit=1),
                model_settings={"max_tokens": 5, "request_timeout": self.timeout_s},
            )
        except Exception as exc:
            fault = classify(exc)
            if fault is not None and fault.kind == "unavailable":
                breaker.failure(f"probe: {fault.detail}")
            else:
                breaker.release()  # it answered something: not a sign of an outage
            detail = fault.detail if fault is not None else f"{type(exc).__name__}: {exc}"
            return ProbeResult(
                model=entry.id, ok=False, latency_s=time.monotonic() - t0, error=detail
            )
        except BaseException:
            breaker.release()
            raise
        finally:
            self.spent_usd += entry.cost(usage.input_tokens, usage.output_tokens)
        breaker.success()
        return ProbeResult(model=entry.id, ok=True, latency_s=time.monotonic() - t0)

    async def run(self) -> None:
        """Probe every `interval_s` until cancelled (the first round after one interval)."""
        if self.interval_s <= 0 or not self.entries:
            return
        while True:
            await anyio.sleep(self.interval_s)
            await self.probe_once()

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[Prober]:
        """Run the prober in the background for the duration of the `async with` block."""
        watched = [self.session.breaker(e) for e in self.entries] if self.interval_s > 0 else []
        for breaker in watched:
            breaker.watched = True
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self.run)
                try:
                    yield self
                finally:
                    group.cancel_scope.cancel()
        finally:
            for breaker in watched:
                breaker.watched = False
