"""The runner: one job, run once without an attack and once per attack, each run checked and scored.

```python
gauntlet = Gauntlet(load_job(path, config.catalog), config, seed=7)
scorecard = await gauntlet.run(select(["injection", "provider"]))
scorecard.assert_held()
```
Every run is a fresh job (its own budget, circuit breakers, spend caps and trace) on the hostile
portfolio (`handoffs.gauntlet`). The orchestrator is the job's own, with the Gauntlet's
honeypot actions added and, for attacks that call for it, made gullible. Timings are scaled down
(request timeout `request_timeout_s`, 3 s by default, and backoffs of at most 0.2 s) so a stall
costs seconds, not a minute; everything else is the job's configuration, unless `Defences` weakens it.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast

import anthropic as anthropic_sdk
import anyio
import httpx2
import openai
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from handoffs.budget import Budget
from handoffs.engine import Caps, Run, Session
from handoffs.errors import ConfigError
from handoffs.gauntlet._attack import Attack, Hostility
from handoffs.gauntlet._call import Roles
from handoffs.gauntlet._catalogue import select
from handoffs.gauntlet._honeypot import Honeypot
from handoffs.gauntlet._invariant import INVARIANTS, Evidence, check_invariants
from handoffs.gauntlet._outcome import refused_delegations, score
from handoffs.gauntlet._portfolio import (
    HostileModels,
    first_rungs,
    gauntlet_catalog,
    install,
    reference_asker,
)
from handoffs.gauntlet._scorecard import AttackResult, Breach, InvariantResult, Scorecard
from handoffs.handoff import Delivery
from handoffs.health import Health
from handoffs.orchestrator import ActionPolicy, JobResult, Orchestrator, Subordinate
from handoffs.project import Config, JobSpec, job_simulation
from handoffs.task import Task
from handoffs.testing import FakeProvider, LoopbackServer
from handoffs.testing.simulation import Simulation
from handoffs.tracing import (
    ConventionsExporter,
    JsonlSpanExporter,
    Tracing,
    job_resource,
    trace_path,
)

__all__ = ["Defences", "Gauntlet"]

T = TypeVar("T")

WEAKENINGS = ("verification", "action_policy", "guards")
"""Defences a weakened configuration can turn off (`--weaken`)."""
UNGUARDED = 4
"""With the guards off, the budget and handoff limit are this many times the job's (and the
depth limit this much deeper): loose enough to break, bounded so a run still ends."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Defences:
    """Which of the framework's defences the runs keep. Turning one off is a weakened
    configuration: the Gauntlet should then catch invariants breaking."""

    verification: bool = True
    """The subordinates' checks (the schema check always runs: it is the output type)."""
    action_policy: bool = True
    """Side-effecting tools refuse arguments carrying subordinate free text."""
    guards: bool = True
    """The job's budget, handoff, depth and repeat limits (off: `UNGUARDED` times looser, and
    repeats practically unlimited)."""
    quarantine: bool | None = None
    """Hide subordinate free text from the orchestrator; None: as the job's orchestrator says."""

    @classmethod
    def weakened(cls, names: Sequence[str], *, quarantine: bool | None = None) -> Defences:
        """Every defence on but those named (raises `ConfigError` for an unknown name)."""
        unknown = sorted(set(names) - set(WEAKENINGS))
        if unknown:
            raise ConfigError(
                f"unknown defence {', '.join(unknown)}; known: {', '.join(WEAKENINGS)}"
            )
        return cls(**{n: False for n in names}, quarantine=quarantine)

    def summary(self, quarantine: bool) -> dict[str, bool]:
        return {
            "verification": self.verification,
            "action_policy": self.action_policy,
            "guards": self.guards,
            "quarantine": quarantine,
        }


class _Observer:
    """A session's `HandoffRunner` that keeps every task it is handed, for the invariants to
    re-check, and makes the handoff as usual."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task[Any]] = {}

    async def __call__(self, task: Task[T], run: Run[T], /) -> Delivery[T]:
        self.tasks[task.id] = task
        return await run()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Wire:
    """The fake provider every run shares, and the two SDK clients that reach it."""

    provider: FakeProvider
    base_url: str
    openai: AsyncOpenAI
    anthropic: AsyncAnthropic


@dataclass(frozen=True, slots=True, kw_only=True)
class _Run:
    result: AttackResult
    breaches: dict[str, str | None]


def _canary(seed: int, name: str) -> str:
    return "gx" + hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:10]


class Gauntlet:
    """Runs a job against a hostile portfolio, once per attack, and scores every run."""

    def __init__(
        self,
        job: JobSpec,
        config: Config,
        *,
        seed: int = 0,
        defences: Defences | None = None,
        trace_dir: Path | None = None,
        request_timeout_s: float = 3.0,
        data_limit: int | None = None,
        concurrency: int = 3,
        on_run: Callable[[AttackResult], None] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`data_limit` keeps the first items of a list-shaped job input (for quick runs);
        `concurrency` runs that many attacks at once (each on its own models and budget); `env`
        names the traces' service (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`). Each run's
        workflow span carries `handoffs.gauntlet.attack`, and its resource `handoffs.gauntlet`."""
        if job.simulation is None:
            raise ConfigError(
                f"job {job.name!r} names no simulation module: the Gauntlet needs one to play "
                "the honest models (see `simulation` in the job file)"
            )
        self.job = job
        self.config = config
        self.seed = seed
        self.defences = defences or Defences()
        self.trace_dir = trace_dir
        self.env = dict(env or {})
        self.request_timeout_s = request_timeout_s
        self.on_run = on_run
        self.concurrency = max(1, concurrency)
        self.results: dict[str, JobResult[Any]] = {}
        """The last result of each run, by attack name (`baseline` too), for a closer look."""
        data = job.data
        if data_limit is not None and isinstance(data, list):
            data = cast(list[Any], data)[:data_limit]
        self._data = data
        self._simulation = Simulation.of(job_simulation(job))
        spec = job.orchestrator
        self.quarantine = (
            spec.quarantine if self.defences.quarantine is None else self.defences.quarantine
        )
        self._retry = replace(
            config.retry,
            request_timeout_s=request_timeout_s,
            first_event_timeout_s=request_timeout_s,
            backoff_initial_s=min(config.retry.backoff_initial_s, 0.05),
            backoff_max_s=min(config.retry.backoff_max_s, 0.2),
        )

    @property
    def stall_s(self) -> float:
        """How long the stall attack stalls: past the runs' request timeout."""
        return self.request_timeout_s + 2.0

    def attacks(self, names: Sequence[str] | None = None) -> list[Attack]:
        """The catalogue's attacks by name or family (all of them for None)."""
        return select(names, stall_s=self.stall_s)

    async def run(self, attacks: Sequence[Attack] | None = None) -> Scorecard:
        """The baseline run, then one run per attack (the full catalogue by default)."""
        chosen = list(attacks) if attacks is not None else self.attacks()
        names = [a.name for a in chosen]
        if len(set(names)) != len(names):
            raise ConfigError(f"attack names must be unique: {names}")
        provider = FakeProvider({})
        with LoopbackServer(provider) as server:
            timeout = self.request_timeout_s
            # Shared by every run, so no idle keep-alive connection the server may have closed
            # is reused: that race would fail requests no attack asked to fail.
            fresh = httpx2.Limits(max_keepalive_connections=0)
            client = AsyncOpenAI(
                base_url=f"{server.base_url}/v1",
                api_key="gauntlet",
                max_retries=0,
                timeout=timeout,
                http_client=openai.DefaultAsyncHttpx2Client(limits=fresh, timeout=timeout),
            )
            anthropic = AsyncAnthropic(
                base_url=server.base_url,
                api_key="gauntlet",
                max_retries=0,
                timeout=timeout,
                http_client=anthropic_sdk.DefaultAsyncHttpxClient(limits=fresh, timeout=timeout),
            )
            async with client, anthropic:
                wire = _Wire(
                    provider=provider, base_url=server.base_url, openai=client, anthropic=anthropic
                )
                baseline = await self._run(None, wire, None)
                self._report(baseline)
                runs: list[_Run | None] = [None] * len(chosen)
                limiter = anyio.CapacityLimiter(self.concurrency)

                async def one(index: int, attack: Attack) -> None:
                    async with limiter:
                        run = await self._run(attack, wire, baseline)
                    runs[index] = run
                    self._report(run)

                async with anyio.create_task_group() as group:
                    for index, attack in enumerate(chosen):
                        group.start_soon(one, index, attack)
        return self._scorecard([baseline, *(r for r in runs if r is not None)])

    def _report(self, run: _Run) -> None:
        if self.on_run is not None:
            self.on_run(run.result)

    def _subordinates(self) -> list[Subordinate[Any, Any]]:
        subs = list(self.job.subordinates)
        if not self.defences.verification:
            subs = [replace(s, checks=()) for s in subs]
        return subs

    def _orchestrator(self, session: Session, honeypot: Honeypot) -> Orchestrator:
        spec = self.job.orchestrator
        guards = self.defences.guards
        own = {a.name for a in spec.actions}
        actions = [*spec.actions, *(h for h in honeypot.effects() if h.name not in own)]
        policy = ActionPolicy(
            allow=spec.action_policy.allow,
            enforce=spec.action_policy.enforce and self.defences.action_policy,
        )
        return Orchestrator(
            model=spec.model,
            subordinates=self._subordinates(),
            session=session,
            instructions=spec.instructions,
            max_handoffs=spec.max_handoffs if guards else spec.max_handoffs * UNGUARDED,
            max_depth=spec.max_depth if guards else spec.max_depth + UNGUARDED,
            max_repeats=spec.max_repeats if guards else spec.max_repeats * 100,
            quarantine=self.quarantine,
            actions=actions,
            action_policy=policy,
        )

    async def _run(
        self,
        attack: Attack | None,
        wire: _Wire,
        baseline: _Run | None,
    ) -> _Run:
        name = attack.name if attack is not None else "baseline"
        job_id = uuid.uuid4().hex[:12]
        started = time.monotonic()
        catalog = gauntlet_catalog(self.config.catalog, wire.base_url, job_id)
        hostility = Hostility(seed=self.seed, canary=_canary(self.seed, name))
        install(
            wire.provider,
            catalog,
            simulation=self._simulation,
            orchestrator=self.job.orchestrator.model,
            attack=attack,
            roles=Roles(self.job.subordinates),
            first=first_rungs(self.job.subordinates, catalog, self.config.policy),
            hostility=hostility,
        )
        data = attack.prepare(self._data, hostility) if attack is not None else self._data
        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider(
            resource=job_resource(job_id, env=self.env, extra={"handoffs.gauntlet": True})
        )
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        if self.trace_dir is not None:
            jsonl = ConventionsExporter(JsonlSpanExporter(trace_path(self.trace_dir, job_id)))
            tracer_provider.add_span_processor(SimpleSpanProcessor(jsonl))
        tracing = Tracing(tracer_provider=tracer_provider)
        models = HostileModels(
            catalog, base_url=wire.base_url, openai=wire.openai, anthropic=wire.anthropic
        )
        limit = self.job.budget_usd
        if limit is not None and not self.defences.guards:
            limit = limit * UNGUARDED
        budget = Budget(limit, name=f"job {self.job.name}")
        observer = _Observer()
        session = Session(
            catalog=catalog,
            models=models,
            policy=self.config.policy,
            budget=budget,
            tracing=tracing,
            health=Health(self.config.health),
            retry=self._retry,
            caps=Caps(self.config.caps.caps),
            runner=observer,
        )
        honeypot = Honeypot()
        orchestrator = self._orchestrator(session, honeypot)
        result: JobResult[Any] | None = None
        error: str | None = None
        with tracing.workflow(self.job.name, job_id=job_id) as root:
            trace_id = f"{root.get_span_context().trace_id:032x}"
            root.set_attribute("handoffs.gauntlet.attack", name)
            try:
                result = await orchestrator.run(self.job.goal, data=data)
            except Exception as exc:  # evidence: the `nothing_lost` invariant reports it
                error = f"{type(exc).__name__}: {exc}"
            Tracing.finish_workflow(
                root,
                status=result.status if result is not None else "failed",
                handoffs=len(result.records) if result is not None else 0,
                cost_usd=result.cost_usd if result is not None else budget.spent_usd,
                orchestrator_cost_usd=(
                    result.orchestrator_cost_usd if result is not None else Decimal(0)
                ),
                budget_usd=limit,
            )
        if result is not None:
            self.results[name] = result
        spans = exporter.get_finished_spans()
        tracer_provider.shutdown()
        evidence = Evidence(
            result=result,
            error=error,
            budget=budget,
            limit_usd=self.job.budget_usd,
            max_handoffs=self.job.orchestrator.max_handoffs,
            max_depth=self.job.orchestrator.max_depth,
            max_attempts=self._retry.max_attempts,
            tasks=dict(observer.tasks),
            checks={s.kind: tuple(s.checks) for s in self.job.subordinates},
            delegates=frozenset(s.name for s in self.job.subordinates),
            spans=spans,
            executed=list(honeypot.executed),
            hostility=hostility,
            policy=self.job.orchestrator.action_policy,
            catalog=catalog,
            ask=reference_asker(wire.openai),
        )
        breaches = await check_invariants(evidence)
        base = baseline.result if baseline is not None else None
        outcome, why = score(attack, result, hostility, breaches, base, evidence)
        records = result.records if result else ()
        return _Run(
            result=AttackResult(
                name=name,
                family=attack.family if attack is not None else "none",
                outcome=outcome,
                trace_id=trace_id,
                job_id=job_id,
                description=attack.description if attack is not None else "no attack",
                fired=hostility.fired,
                status=result.status if result else "raised",
                handoffs=len(records),
                escalations=sum(r.escalations for r in records),
                degraded=sum(r.status == "degraded" for r in records),
                failed=sum(r.status == "failed" for r in records),
                refused_actions=sum(a.status == "refused" for a in result.actions) if result else 0,
                refused_delegations=refused_delegations(evidence),
                quarantined=result.quarantined if result else 0,
                cost_usd=result.cost_usd if result else budget.spent_usd,
                seconds=round(time.monotonic() - started, 2),
                broken=[n for n, b in breaches.items() if b],
                why=why if attack is not None else "no attack",
            ),
            breaches=breaches,
        )

    def _scorecard(self, runs: Sequence[_Run]) -> Scorecard:
        invariants: list[InvariantResult] = []
        for name in INVARIANTS:
            first = next((r for r in runs if r.breaches.get(name)), None)
            breach = None
            if first is not None:
                breach = Breach(
                    attack=first.result.name,
                    trace_id=first.result.trace_id,
                    job_id=first.result.job_id,
                    detail=first.breaches[name] or "",
                )
            invariants.append(InvariantResult(name=name, held=first is None, breach=breach))
        attacks = [r.result for r in runs[1:]]
        return Scorecard(
            job=self.job.name,
            seed=self.seed,
            quarantine=self.quarantine,
            defences=self.defences.summary(self.quarantine),
            baseline=runs[0].result,
            attacks=attacks,
            invariants=invariants,
            missed=[a.name for a in attacks if a.outcome == "missed"],
            broken=[i.name for i in invariants if not i.held],
        )
