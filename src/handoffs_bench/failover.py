"""`handoffs bench failover`: what a primary's outage costs, through the real engine and SDKs.

In one run, over loopback to the fake provider:

1. **added latency, interleaved**: `rounds` rounds, each of two arms of equal size on the same
   wire — handoffs routed straight to the equivalent (GPT-4o, OpenAI wire), and handoffs whose
   route starts at the primary while its breaker is held open, so they fail over to that same
   equivalent. The arms alternate which goes first. Reported: the added median per round
   (min/median/max over rounds) and the pooled p99 difference.
2. **outage**: the primary (Anthropic wire) is down for a window (`Fault.http(503)` on every
   request); the equivalent is its failover on the same rung. The breaker opens after its
   threshold; the active prober brings the primary back after the window. Reported: how many user
   requests paid for the failure before it opened, the time from the end of the outage to the
   primary's first delivered handoff and to its breaker closing, and handoffs lost.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

import anyio
import typer
from pydantic import BaseModel
from rich.table import Table

from handoffs.catalog import Catalog
from handoffs.cli.terminal import JsonOpt, err, fail, out
from handoffs.engine import RetryPolicy, Session
from handoffs.health import BreakerSettings, Health, Prober
from handoffs.providers import Portfolio
from handoffs.routing import Policy, Rule
from handoffs.task import Task

__all__ = ["FailoverFigures", "failover", "run_failover_bench"]

PRIMARY, SECONDARY = "claude-sonnet-4-6", "gpt-4o"


class _Ticket(BaseModel):
    text: str


class _Triage(BaseModel):
    category: Literal["billing", "bug"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FailoverFigures:
    """The benchmark's results; `as_json()` gives the `--json` document."""

    handoffs: int
    concurrency: int
    rounds: int
    baseline_median_ms: float
    """Median of the handoffs routed straight to the equivalent (the same wire)."""
    median_added_ms: float
    """Median over rounds of each round's added median (failover minus direct)."""
    min_added_ms: float
    max_added_ms: float
    p99_added_ms: float
    paid_failures: int
    breaker_threshold: int
    recovery_s: float | None
    closed_s: float | None
    outage_s: float
    lost: int
    open_handoffs: int
    """Handoffs made while the breaker was open (the sample of the added latency)."""

    def as_json(self) -> dict[str, Any]:
        """The `--json` fields."""
        return {
            "handoffs": self.handoffs,
            "concurrency": self.concurrency,
            "rounds": self.rounds,
            "baseline_median_ms": round(self.baseline_median_ms, 3),
            "median_added_ms": round(self.median_added_ms, 3),
            "min_added_ms": round(self.min_added_ms, 3),
            "max_added_ms": round(self.max_added_ms, 3),
            "p99_added_ms": round(self.p99_added_ms, 3),
            "paid_failures": self.paid_failures,
            "breaker_threshold": self.breaker_threshold,
            "recovery_s": None if self.recovery_s is None else round(self.recovery_s, 3),
            "closed_s": None if self.closed_s is None else round(self.closed_s, 3),
            "outage_s": self.outage_s,
            "lost": self.lost,
            "open_handoffs": self.open_handoffs,
        }


def _catalog() -> Catalog:
    spec: dict[str, Any] = {"tier": "frontier", "context_window": 128000, "typical_latency_s": 0.1}
    return Catalog.from_dict(
        {
            "primary": {
                "provider": "anthropic",
                "name": PRIMARY,
                "failover": ["secondary"],
                **spec,
            },
            "secondary": {"provider": "openai", "name": SECONDARY, **spec},
        }
    )


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


@dataclass(slots=True, kw_only=True)
class _Sample:
    started: float
    latency_s: float
    model: str | None
    breaker: str


async def _phase(
    session: Session, count: int, concurrency: int, pace_s: float, *, start: int = 0
) -> list[_Sample]:
    samples: list[_Sample] = []
    lost = 0
    limiter = anyio.CapacityLimiter(concurrency)
    breaker = session.breaker(session.catalog["primary"])

    async def one(i: int) -> None:
        nonlocal lost
        async with limiter:
            state = breaker.state
            t0 = time.monotonic()
            try:
                task = Task(
                    kind="classify", input=_Ticket(text=f"invoice {i}"), output_type=_Triage
                )
                delivery = await session.delegate(task)
                model = delivery.model
            except Exception:
                model = None
            samples.append(
                _Sample(started=t0, latency_s=time.monotonic() - t0, model=model, breaker=state)
            )
            if pace_s:
                await anyio.sleep(pace_s)

    async with anyio.create_task_group() as group:
        for i in range(start, start + count):
            group.start_soon(one, i)
    return samples


async def run_failover_bench(
    *,
    handoffs: int = 1000,
    concurrency: int = 1,
    outage_s: float = 2.0,
    threshold: int = 3,
    cooldown_s: float = 0.5,
    probe_interval_s: float = 0.1,
    pace_s: float = 0.002,
    rounds: int = 7,
    progress: Any = None,
) -> FailoverFigures:
    """Run both parts and measure; `progress(phase, done)` is called as parts finish."""
    from handoffs.testing import FakeProvider, Fault, LoopbackServer, Reply, ScriptedModel

    def answer(request: Any) -> Reply:
        return Reply.json({"category": "billing"})

    provider = FakeProvider({m: ScriptedModel(answer=answer) for m in (PRIMARY, SECONDARY)})
    catalog = _catalog()
    policy = Policy(rules=(Rule(ladder=("primary",)),))
    settings = BreakerSettings(
        failure_threshold=threshold,
        cooldown_s=cooldown_s,
        success_threshold=5,
        probe_interval_s=probe_interval_s,
        probe_timeout_s=2.0,
    )
    retry = RetryPolicy(request_timeout_s=5.0, sweeps=1)
    with LoopbackServer(provider) as server:
        async with Portfolio(catalog, env={}, simulated_base_url=server.base_url) as portfolio:

            def session(health: Health) -> Session:
                return Session(
                    catalog=catalog,
                    models=portfolio,
                    policy=policy,
                    retry=retry,
                    health=health,
                    tracing=False,  # measure failover, not the exporter
                )

            await _phase(session(Health(settings)), 20, 1, 0)  # warm the clients
            direct = Session(
                catalog=catalog,
                models=portfolio,
                policy=Policy(rules=(Rule(ladder=("secondary",)),)),
                retry=retry,
                tracing=False,
            )
            held = session(Health(replace(settings, cooldown_s=1e9, probe_interval_s=0)))
            held.breaker(catalog["primary"]).trip("bench: held open")
            per_arm = max(handoffs // (2 * rounds), 10)
            arms: list[tuple[list[_Sample], list[_Sample]]] = []
            baseline: list[_Sample] = []
            for k in range(rounds):  # the arms alternate which goes first
                first, second = (direct, held) if k % 2 == 0 else (held, direct)
                a = await _phase(first, per_arm, concurrency, pace_s, start=2 * k * per_arm)
                b = await _phase(second, per_arm, concurrency, pace_s, start=(2 * k + 1) * per_arm)
                straight, failed_over = (a, b) if first is direct else (b, a)
                arms.append((straight, failed_over))
                baseline += straight
                if progress:
                    progress(f"added latency, round {k + 1}/{rounds}", 2 * per_arm * (k + 1))
            outage: list[_Sample] = []
            health = Health(settings)
            outage_session = session(health)
            await _phase(outage_session, 5, 1, 0)  # build its agents before the clock starts
            provider.requests.clear()
            switch = provider.outage(PRIMARY, Fault.http(503))
            switch.start(for_s=outage_s)
            start = time.monotonic()
            prober = Prober(outage_session, model_ids=["primary"])
            closed_at: list[float] = []
            back_at: list[float] = []
            closed = anyio.Event()
            outage_end = start + outage_s

            async def watch() -> None:
                """Note when the primary is back in rotation, and when its breaker closes."""
                breaker = outage_session.breaker(catalog["primary"])
                while True:
                    now = time.monotonic()
                    if now >= outage_end and breaker.opened:
                        if not back_at and breaker.unavailable_reason() is None:
                            back_at.append(now)
                        if breaker.state == "closed":
                            closed_at.append(now)
                            closed.set()
                            return
                    await anyio.sleep(0.005)

            async with prober.running(), anyio.create_task_group() as group:
                group.start_soon(watch)
                outage = await _phase(outage_session, handoffs, concurrency, pace_s)
                with anyio.move_on_after(outage_s + 10):
                    await closed.wait()  # with no traffic left, the prober alone closes it
                group.cancel_scope.cancel()
            if progress:
                progress("outage", handoffs)
    paid = sum(
        1 for r in provider.requests if r.model == PRIMARY and r.status != 200 and not _probe(r)
    )
    open_latencies = [s.latency_s for s in outage if s.breaker == "open" and s.model == "secondary"]
    added = [
        (_median(over, "secondary") - _median(straight, "secondary")) * 1000
        for straight, over in arms
    ]
    pooled_over = [s.latency_s for _, over in arms for s in over if s.model == "secondary"]
    base = [s.latency_s for s in baseline if s.model == "secondary"]
    lost = sum(1 for s in [*baseline, *pooled_samples(arms), *outage] if s.model is None)
    return FailoverFigures(
        handoffs=handoffs,
        concurrency=concurrency,
        rounds=rounds,
        baseline_median_ms=statistics.median(base) * 1000,
        median_added_ms=statistics.median(added),
        min_added_ms=min(added),
        max_added_ms=max(added),
        p99_added_ms=(_p99(pooled_over) - _p99(base)) * 1000,
        paid_failures=paid,
        breaker_threshold=threshold,
        recovery_s=(back_at[0] - outage_end) if back_at else None,
        closed_s=(closed_at[0] - outage_end) if closed_at else None,
        outage_s=outage_s,
        lost=lost,
        open_handoffs=len(open_latencies),
    )


def _median(samples: list[_Sample], model: str) -> float:
    """The median latency of the samples `model` delivered."""
    return statistics.median(s.latency_s for s in samples if s.model == model)


def pooled_samples(arms: list[tuple[list[_Sample], list[_Sample]]]) -> list[_Sample]:
    """Every failed-over sample of the interleaved rounds."""
    return [s for _, over in arms for s in over]


def _probe(request: Any) -> bool:
    """Whether a logged request was the prober's (its prompt), not a user's handoff."""
    found = getattr(request, "request", None)
    return found is not None and found.last_user_text.startswith("Reply with")


def failover(
    handoffs: Annotated[int, typer.Option(help="Handoffs per phase.")] = 1000,
    concurrency: Annotated[int, typer.Option(help="Handoffs in flight at once.")] = 1,
    outage_s: Annotated[
        float, typer.Option("--outage-s", help="How long the primary is down.")
    ] = 2.0,
    threshold: Annotated[int, typer.Option(help="Consecutive failures that open the breaker.")] = 3,
    as_json: JsonOpt = False,
) -> None:
    """Failover's added latency (interleaved rounds on one wire), then 1,000 handoffs while the
    primary is down for a window: paid failures, recovery, lost."""
    if handoffs < 10 or concurrency < 1 or outage_s <= 0 or threshold < 1:
        raise fail("--handoffs must be >= 10, --concurrency and --threshold >= 1, --outage-s > 0")

    def progress(phase: str, done: int) -> None:
        if not as_json:
            err.print(f"{phase}: {done} handoffs done")

    figures = anyio.run(
        lambda: run_failover_bench(
            handoffs=handoffs,
            concurrency=concurrency,
            outage_s=outage_s,
            threshold=threshold,
            progress=progress,
        )
    )
    if as_json:
        out.print_json(json.dumps(figures.as_json()))
        return
    data = figures.as_json()
    table = Table(
        title="failover: primary (Anthropic wire) down, equivalent on the OpenAI wire",
        title_justify="left",
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in data.items():
        table.add_row(key, "—" if value is None else str(value))
    out.print(table)
