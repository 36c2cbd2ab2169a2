"""Running a job: bring up the portfolio (fake provider, local model), orchestrate, report.

```python
with open_portfolio(config, simulation=sim) as portfolio:
    report = await run_job(spec, config, portfolio)
```
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import replace
from decimal import Decimal
from typing import Any, Literal, cast

from handoffs.budget import Budget
from handoffs.cache import AnswerStore, ResponseCache, shared_store
from handoffs.engine import HandoffRunner, ModelSource, RecordSink, Session
from handoffs.handoff import HandoffRecord
from handoffs.health import Prober, shared_health
from handoffs.orchestrator import Orchestrator
from handoffs.project._alerting import ALERT_STATE, alert_watch
from handoffs.project._config import Config, beside
from handoffs.project._gold import load_gold, score_gold
from handoffs.project._job import JobReport, JobSpec, all_frontier_cost
from handoffs.project._roster import load_module
from handoffs.project._watch import breaker_readings, budget_reading
from handoffs.providers import Portfolio, SimulatedDomain, Simulator, load_simulator, shared_server
from handoffs.routing import OutcomeLog, Policy, Rule
from handoffs.tracing import Tracing, default_tracing

__all__ = [
    "configured_session",
    "job_simulation",
    "open_portfolio",
    "run_job",
    "setting_line",
    "single_model",
]

SIMULATED_LATENCY_S = {"frontier": 0.2, "mid": 0.1, "small": 0.05, "local": 0.05}
"""Added by the fake provider per simulated call, for realism without slowing tests down."""


def job_simulation(spec: JobSpec) -> SimulatedDomain | None:
    """The domain a job's roster gives simulated models (None if it has no simulation module)."""
    if spec.simulation is None:
        return None
    module = load_module(spec.roster, spec.simulation)
    return SimulatedDomain(
        module=module, output_types=tuple(s.output_type for s in spec.subordinates)
    )


@contextmanager
def open_portfolio(
    config: Config,
    *,
    env: Mapping[str, str] | None = None,
    simulation: SimulatedDomain | None = None,
    model_ids: list[str] | None = None,
    simulator: Simulator | None = None,
) -> Generator[Portfolio, None, None]:
    """A `Portfolio` whose simulated and embedded models are being served until the block ends.

    The simulator (by default the one registered as `fake`: the fake provider) starts only if
    some model is simulated, the local server only if some model is embedded; keys are checked
    first so a missing one fails before anything starts.
    """
    portfolio = Portfolio(
        config.catalog,
        env=env,
        simulate_missing=config.simulate_missing_keys,
        timeout_s=config.request_timeout_s,
    )
    ids = list(config.catalog) if model_ids is None else model_ids
    portfolio.check_keys(ids)
    with ExitStack() as stack:
        if portfolio.needs_simulation(ids):
            serve = simulator or load_simulator()
            latency = {
                e.name: SIMULATED_LATENCY_S[e.tier]
                for e in config.catalog.values()
                if e.id in ids and portfolio.label(e.id) == "simulated"
            }
            portfolio.simulated_base_url = stack.enter_context(serve(latency, simulation))
        for name in portfolio.embedded_names(ids):
            portfolio.embedded_urls[name] = shared_server(name).start()
        yield portfolio


def setting_line(portfolio: Portfolio) -> str:
    """One line saying which models are real, simulated, local or self-hosted."""
    parts = [f"{m} ({portfolio.catalog[m].name}): {portfolio.label(m)}" for m in portfolio.catalog]
    line = "models — " + "; ".join(parts)
    if any(portfolio.label(m) == "simulated" for m in portfolio.catalog):
        line += " — answers from simulated models are stand-ins, not model answers"
    return line


def configured_session(
    config: Config,
    portfolio: Portfolio,
    budget: Budget,
    *,
    on_record: Callable[[HandoffRecord], None] | None = None,
    tracing: Tracing | Literal[False] | None = None,
    runner: HandoffRunner | None = None,
    models: ModelSource | None = None,
    sinks: Sequence[RecordSink] = (),
    job_id: str | None = None,
    cache_store: AnswerStore | None = None,
) -> Session:
    """A `Session` as `handoffs.toml` configures it: its policy, timeouts, retry caps, spending
    caps and outcome log, and this process's shared circuit breakers. `runner` makes its
    handoffs (default: here), `models` wraps the portfolio (default: the portfolio itself), and
    `sinks` take every finished record. The session of a job (`job_id` given) uses the
    `[cache]`, scoped to the job's tenant or to the job itself, its answers kept in `cache_store`
    (a job on PostgreSQL: its database, `PostgresStore`) or else in the SQLite file `[cache] path`."""
    cache = (
        ResponseCache(
            cache_store or shared_store(config.cache.path),
            scope=config.cache.scope_of(job_id),
            policy=config.cache.policy,
        )
        if config.cache is not None and job_id is not None
        else None
    )
    return Session(
        catalog=config.catalog,
        models=portfolio if models is None else models,
        policy=config.policy,
        budget=budget,
        on_record=on_record,
        request_timeout_s=config.request_timeout_s,
        tracing=tracing,
        health=shared_health(config.health),
        retry=config.retry,
        caps=config.caps,
        outcomes=OutcomeLog(config.outcomes, inputs=config.outcomes_input)
        if config.outcomes
        else None,
        runner=runner,
        sinks=sinks,
        cache=cache,
    )


def _both(
    first: Callable[[HandoffRecord], None], then: Callable[[HandoffRecord], None] | None
) -> Callable[[HandoffRecord], None]:
    def both(record: HandoffRecord) -> None:
        first(record)
        if then is not None:
            then(record)

    return both


async def run_job(
    spec: JobSpec,
    config: Config,
    portfolio: Portfolio,
    *,
    on_record: Callable[[HandoffRecord], None] | None = None,
    job_id: str | None = None,
    tracing: Tracing | Literal[False] | None = None,
    runner: HandoffRunner | None = None,
    models: ModelSource | None = None,
    sinks: Sequence[RecordSink] = (),
    cache_store: AnswerStore | None = None,
) -> JobReport:
    """Run one job to completion (or to its budget) and report what happened and what it cost.

    Traced, the job is one `invoke_workflow {job}` span holding every other span: to `tracing`,
    or without it to this process's default trace (`handoffs.tracing.default_tracing`);
    `tracing=False` traces nothing. `runner`, `models` and `sinks` go to the job's `Session` (see
    `configured_session`): durable jobs pass a runner whose handoffs are steps, and models whose
    requests are; `cache_store` too (jobs on PostgreSQL keep `[cache]` answers there).
    """
    job_id = job_id or uuid.uuid4().hex[:12]
    tracing = default_tracing() if tracing is None else tracing or None
    if tracing is not None and not tracing.model_names:  # metrics name models as providers do
        tracing = replace(tracing, model_names={e.id: e.name for e in config.catalog.values()})
    budget = Budget(spec.budget_usd, name=f"job {spec.name}")
    watch = (
        alert_watch(
            config.alerts,
            state=None if config.path is None else beside(config.path, ALERT_STATE),
        )
        if config.alerts is not None
        else None
    )
    if watch is not None:  # [alerts]: the worker's alert watch sees this job's handoffs too
        on_record = _both(watch.observe, on_record)
    session = configured_session(
        config,
        portfolio,
        budget,
        on_record=on_record,
        tracing=tracing or False,
        runner=runner,
        models=models,
        sinks=sinks,
        job_id=job_id,
        cache_store=cache_store,
    )
    if tracing is not None and tracing.metrics is not None:  # the job's gauges
        tracing.metrics.watch_breakers(breaker_readings(session))
        tracing.metrics.watch_budget(budget_reading(spec.name, budget))
    orchestrator = Orchestrator.from_spec(
        spec.orchestrator, subordinates=spec.subordinates, session=session
    )
    span: AbstractContextManager[Any] = (
        tracing.workflow(spec.name, job_id=job_id, job_file=str(spec.path.resolve()))
        if tracing
        else nullcontext()
    )
    unwatch = (
        watch.watch(breaker_readings(session), budget_reading(spec.name, budget))
        if watch is not None
        else None
    )
    started = time.monotonic()
    with span as root:
        try:
            async with Prober(session).running():
                result = await orchestrator.run(spec.goal, data=spec.data)
            elapsed = time.monotonic() - started
        finally:
            if unwatch is not None:
                unwatch()
            await portfolio.aclose()
        if root is not None:
            Tracing.finish_workflow(
                root,
                status=result.status,
                handoffs=len(result.records),
                cost_usd=result.cost_usd,
                orchestrator_cost_usd=result.orchestrator_cost_usd,
                budget_usd=spec.budget_usd,
                orchestrator_cache_saved_usd=result.orchestrator_cache_saved_usd,
            )
    records = list(result.records)
    hits = [r for r in records if r.cache in ("exact", "semantic")]
    frontier = config.catalog[spec.orchestrator.model]
    if frontier.tier != "frontier":
        frontier = next((e for e in config.catalog.by_strength()), frontier)
    return JobReport(
        job_id=job_id,
        job=spec.name,
        status=result.status,
        models={m: portfolio.label(m) for m in config.catalog},
        handoffs=records,
        output=result.output,
        orchestrator_cost_usd=result.orchestrator_cost_usd,
        total_cost_usd=result.cost_usd,
        repriced_frontier_cost_usd=result.orchestrator_cost_usd
        + all_frontier_cost(records, frontier),
        budget_usd=spec.budget_usd,
        escalations=sum(r.escalations for r in records if r.status == "delivered"),
        degraded=sum(1 for r in records if r.degraded),
        error=result.error,
        items=_items(spec.data),
        orchestrator_input_tokens=result.orchestrator_input_tokens,
        orchestrator_output_tokens=result.orchestrator_output_tokens,
        calls=result.orchestrator_requests + sum(len(r.attempts) for r in records),
        elapsed_s=round(elapsed, 3),
        gold=score_gold(records, load_gold(spec.gold)) if spec.gold is not None else None,
        cache_hits=len(hits),
        cache_saved_usd=sum((r.cache_saved_usd or Decimal(0) for r in hits), Decimal(0)),
        prompt_cache_read_tokens=sum(r.cache_read_tokens for r in records),
        prompt_cache_write_tokens=sum(r.cache_write_tokens for r in records),
        prompt_cache_saved_usd=sum((r.prompt_cache_saved_usd for r in records), Decimal(0)),
        orchestrator_cache_read_tokens=result.orchestrator_cache_read_tokens,
        orchestrator_prompt_cache_saved_usd=result.orchestrator_cache_saved_usd,
        batched=sum(1 for r in records if r.batch_id),
        batch_ids=list(dict.fromkeys(b for r in records if (b := r.batch_id))),
        batch_saved_usd=sum((r.batch_saved_usd for r in records), Decimal(0)),
    )


def _items(data: Any) -> int | None:
    """How many items the job's data holds (a list's length), None for other data."""
    return len(cast(list[Any], data)) if isinstance(data, list) else None


def single_model(config: Config, model_id: str) -> Config:
    """`config` with every task routed to `model_id` alone (its failover chain kept), no
    learned scorer and no outcome log: the honest single-model baseline of a job
    (`handoffs run --baseline single-model`)."""
    config.catalog[model_id]  # unknown -> ConfigError
    rule = Rule(name="single-model", ladder=(model_id,))
    return replace(config, policy=Policy(rules=(rule,)), outcomes=None, alerts=None)
