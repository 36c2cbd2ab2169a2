"""OpenTelemetry metrics of handoffs, recorded from each finished `HandoffRecord`, and where they go.

| instrument                         | kind      | unit          | one measurement per            |
|------------------------------------|-----------|---------------|--------------------------------|
| `gen_ai.client.operation.duration` | histogram | `s`           | attempt that called a model    |
| `handoffs.attempt.cost`            | histogram | `{USD}`       | attempt that called a model    |
| `handoffs.handoff.duration`        | histogram | `s`           | handoff                        |
| `handoffs.handoff.cost`            | histogram | `{USD}`       | handoff                        |
| `handoffs.handoffs`                | counter   | `{handoff}`   | handoff                        |
| `handoffs.escalations`             | counter   | `{escalation}`| handoff (adds its escalations) |
| `handoffs.verifications`           | counter   | `{verification}` | attempt whose answer was checked |
| `handoffs.breaker.state`           | gauge     | `1`           | endpoint, per state (1 = current) |
| `handoffs.breaker.down_time`       | gauge     | `s`           | endpoint: time since it left closed |
| `handoffs.breaker.openings`        | counter   | `{opening}`   | endpoint (observed)            |
| `handoffs.budget.spent`            | gauge     | `{USD}`       | job budget (observed)          |
| `handoffs.budget.limit`            | gauge     | `{USD}`       | job budget with a limit        |
| `handoffs.budget.used`             | gauge     | `1`           | job budget with a limit: spent (and held) / limit |

pydantic-ai records `gen_ai.client.token.usage` and `operation.cost` per model call on the same
meter provider (`Tracing(meter_provider=...)` hands it over). `gen_ai.client.operation.duration`
follows the GenAI conventions at `handoffs.tracing.SEMCONV_VERSION`: operation `invoke_agent` (an
attempt is one subordinate agent run, its checks included), `gen_ai.provider.name`,
`gen_ai.request.model`, and `error.type` when the attempt failed (`invalid_output` or the fault kind
of a provider error). Attributes stay low-cardinality: no task ids, labels or text.

The breaker and budget gauges are observed when the meter provider collects, from what
`watch_breakers` and `watch_budget` were given (`run_job` gives them the job's session and budget).
The Prometheus alert rules in `ops/prometheus/alerts.yml` are written against these names as the
OTel→Prometheus convention spells them (`handoffs_verifications_total`,
`handoffs_breaker_down_time_seconds`, ...).

```python
meters = job_meter_provider(job_id, directory=Path(".handoffs/traces"), env=os.environ)
...run the job with Tracing(tracer_provider=..., meter_provider=meters)...
meters.shutdown()   # collects once more and writes <job id>.metrics.jsonl
```
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal, cast

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.metrics import MeterProvider as APIMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
    Sum,
)

from handoffs.handoff import Attempt, HandoffRecord
from handoffs.tracing._export import OTLP_ENDPOINT_ENV, job_resource

__all__ = [
    "DURATION_BUCKETS_S",
    "METRICS_SUFFIX",
    "BreakerReading",
    "BudgetReading",
    "HandoffMetrics",
    "JobEndMetricReader",
    "JsonlMetricExporter",
    "job_meter_provider",
    "metric_to_json",
    "metrics_path",
    "otlp_metrics_endpoint",
]

METRICS_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
"""The full URL for OTLP/HTTP metrics, when they should go elsewhere than `<endpoint>/v1/metrics`."""
METRICS_EXPORTER_ENV = "OTEL_METRICS_EXPORTER"
"""`none` keeps metrics off OTLP (e.g. for a viewer that takes traces only, like Phoenix)."""

METRICS_SUFFIX = ".metrics.jsonl"
"""A job's metrics file is `<job id>.metrics.jsonl`, beside its trace `<job id>.jsonl`."""


def metrics_path(directory: Path, job_id: str) -> Path:
    """Where the JSONL metrics of `job_id` live."""
    return directory / f"{job_id}{METRICS_SUFFIX}"


DURATION_BUCKETS_S = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
"""Bucket bounds of the duration histograms: the GenAI conventions' advice for
`gen_ai.client.operation.duration`, so that a p95 can be read from the buckets."""

_STATES = ("closed", "half_open", "open")
_CHECKED = {"accepted": "pass", "rejected": "fail", "invalid_output": "fail"}


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerReading:
    """One catalog entry's circuit breaker, as the breaker gauges observe it."""

    model: str
    """Catalog id."""
    tier: str
    provider: str
    primary: bool
    """True unless the entry is only some other entry's failover."""
    state: Literal["closed", "half_open", "open"]
    down_s: float
    """Seconds since the endpoint left the closed state (0.0 when closed)."""
    openings: int
    """How many times the breaker has opened."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetReading:
    """A job's budget, as the budget gauges observe it."""

    job: str
    """The job's name (not its id: one series per job definition)."""
    spent_usd: Decimal
    """Committed plus held by reservations."""
    limit_usd: Decimal | None


def _error_type(attempt: Attempt) -> str | None:
    if attempt.outcome == "provider_error":
        return attempt.fault or "provider_error"
    if attempt.outcome == "invalid_output":
        return "invalid_output"
    return None


class HandoffMetrics:
    """The project's instruments on one meter provider; `record` measures a finished handoff."""

    def __init__(
        self, meter_provider: APIMeterProvider, *, model_names: Mapping[str, str] | None = None
    ) -> None:
        meter = meter_provider.get_meter("handoffs")
        self.model_names = dict(model_names or {})
        """Catalog id -> the provider's model name, for `gen_ai.request.model`."""
        self.operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )
        self.attempt_cost = meter.create_histogram(
            "handoffs.attempt.cost",
            unit="{USD}",
            description="What one attempt cost, checks included.",
        )
        self.handoff_duration = meter.create_histogram(
            "handoffs.handoff.duration",
            unit="s",
            description="Wall time of one handoff.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )
        self.handoff_cost = meter.create_histogram(
            "handoffs.handoff.cost",
            unit="{USD}",
            description="What one handoff cost, all attempts.",
        )
        self.handoffs = meter.create_counter(
            "handoffs.handoffs", unit="{handoff}", description="Handoffs finished."
        )
        self.escalations = meter.create_counter(
            "handoffs.escalations",
            unit="{escalation}",
            description="Moves up to a later rung after a failed check.",
        )
        self.verifications = meter.create_counter(
            "handoffs.verifications",
            unit="{verification}",
            description="Answers checked, by result (pass, fail), model and task kind.",
        )
        self._breakers: list[Callable[[], Iterable[BreakerReading]]] = []
        self._budgets: list[Callable[[], BudgetReading]] = []
        self._lock = threading.Lock()
        meter.create_observable_gauge(
            "handoffs.breaker.state",
            callbacks=[self._observe_breaker_state],
            unit="1",
            description="Circuit breaker state per endpoint: 1 for the current state, else 0.",
        )
        meter.create_observable_gauge(
            "handoffs.breaker.down_time",
            callbacks=[self._observe_down_time],
            unit="s",
            description="How long an endpoint's breaker has been open or half-open (0: closed).",
        )
        meter.create_observable_counter(
            "handoffs.breaker.openings",
            callbacks=[self._observe_openings],
            unit="{opening}",
            description="Times an endpoint's breaker has opened.",
        )
        meter.create_observable_gauge(
            "handoffs.budget.spent",
            callbacks=[self._observe_spent],
            unit="{USD}",
            description="What a job has spent and holds in reservations.",
        )
        meter.create_observable_gauge(
            "handoffs.budget.limit",
            callbacks=[self._observe_limit],
            unit="{USD}",
            description="A job's budget.",
        )
        meter.create_observable_gauge(
            "handoffs.budget.used",
            callbacks=[self._observe_used],
            unit="1",
            description="A job's spend (held included) over its budget.",
        )

    # -- observed: breakers and budgets ----------------------------------------------------------

    def watch_breakers(self, read: Callable[[], Iterable[BreakerReading]]) -> Callable[[], None]:
        """Observe the breakers `read()` returns at every collection; call the result to stop."""
        with self._lock:
            self._breakers.append(read)
        return lambda: self._forget(self._breakers, read)

    def watch_budget(self, read: Callable[[], BudgetReading]) -> Callable[[], None]:
        """Observe the budget `read()` returns at every collection; call the result to stop."""
        with self._lock:
            self._budgets.append(read)
        return lambda: self._forget(self._budgets, read)

    def _forget(self, sources: list[Any], read: Any) -> None:
        with self._lock:
            if read in sources:
                sources.remove(read)

    def _breaker_readings(self) -> dict[tuple[str, str, str], BreakerReading]:
        with self._lock:
            sources = list(self._breakers)
        found: dict[tuple[str, str, str], BreakerReading] = {}
        for read in sources:
            for r in read():
                found[(r.model, r.provider, r.tier)] = r  # the latest source wins
        return found

    @staticmethod
    def _breaker_attributes(r: BreakerReading) -> dict[str, Any]:
        return {
            "handoffs.model": r.model,
            "handoffs.tier": r.tier,
            "gen_ai.provider.name": r.provider,
            "handoffs.primary": r.primary,
        }

    def _observe_breaker_state(self, options: CallbackOptions) -> Iterable[Observation]:
        for r in self._breaker_readings().values():
            attrs = self._breaker_attributes(r)
            for state in _STATES:
                value = 1 if r.state == state else 0
                yield Observation(value, {**attrs, "handoffs.breaker.state": state})

    def _observe_down_time(self, options: CallbackOptions) -> Iterable[Observation]:
        for r in self._breaker_readings().values():
            yield Observation(r.down_s, self._breaker_attributes(r))

    def _observe_openings(self, options: CallbackOptions) -> Iterable[Observation]:
        for r in self._breaker_readings().values():
            yield Observation(r.openings, self._breaker_attributes(r))

    def _budget_readings(self) -> list[BudgetReading]:
        with self._lock:
            sources = list(self._budgets)
        return [read() for read in sources]

    def _observe_spent(self, options: CallbackOptions) -> Iterable[Observation]:
        for r in self._budget_readings():
            yield Observation(float(r.spent_usd), {"handoffs.job.name": r.job})

    def _observe_limit(self, options: CallbackOptions) -> Iterable[Observation]:
        for r in self._budget_readings():
            if r.limit_usd is not None:
                yield Observation(float(r.limit_usd), {"handoffs.job.name": r.job})

    def _observe_used(self, options: CallbackOptions) -> Iterable[Observation]:
        for r in self._budget_readings():
            if r.limit_usd is not None and r.limit_usd > 0:
                used = float(r.spent_usd / r.limit_usd)
                yield Observation(used, {"handoffs.job.name": r.job})

    def _attempt_attributes(self, record: HandoffRecord, attempt: Attempt) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.provider.name": attempt.provider,
            "gen_ai.request.model": self.model_names.get(attempt.model, attempt.model),
            "handoffs.model": attempt.model,
            "handoffs.tier": attempt.tier,
            "handoffs.task.kind": record.task_kind,
            "handoffs.attempt.outcome": attempt.outcome,
        }
        error = _error_type(attempt)
        if error is not None:
            attrs["error.type"] = error
        return attrs

    def record(self, record: HandoffRecord) -> None:
        """Measure one finished handoff and each of its attempts that called a model."""
        for attempt in record.attempts:
            if attempt.outcome == "refused":  # nothing was called
                continue
            attrs = self._attempt_attributes(record, attempt)
            self.operation_duration.record(attempt.latency_s, attrs)
            self.attempt_cost.record(float(attempt.cost_usd), attrs)
            result = _CHECKED.get(attempt.outcome)
            if result is not None:
                checked = {
                    "handoffs.model": attempt.model,
                    "handoffs.tier": attempt.tier,
                    "handoffs.task.kind": record.task_kind,
                    "handoffs.verification.result": result,
                }
                self.verifications.add(1, checked)
        final = {"handoffs.model": record.model, "handoffs.tier": record.tier}
        base: dict[str, Any] = {
            "handoffs.task.kind": record.task_kind,
            "handoffs.status": record.status,
        }
        self.handoff_duration.record(record.latency_s, base)
        self.handoff_cost.record(float(record.cost_usd), base)
        outcome = {**base, **{k: v for k, v in final.items() if v is not None}}
        outcome["handoffs.degraded"] = record.degraded
        if record.cause is not None:
            outcome["handoffs.cause"] = record.cause
        self.handoffs.add(1, outcome)
        self.escalations.add(record.escalations, outcome)


# -- export ----------------------------------------------------------------------------------------


def _attributes(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        k: list(cast(tuple[Any, ...], v)) if isinstance(v, tuple) else v
        for k, v in (attrs or {}).items()
    }


def metric_to_json(metric: Metric, *, scope: str) -> dict[str, Any]:
    """One metric as a JSON object: its points with attributes, times in ns since the epoch."""
    data = metric.data
    points: list[dict[str, Any]] = []
    for p in data.data_points:
        point: dict[str, Any] = {
            "attributes": _attributes(p.attributes),
            "start_time_unix_nano": p.start_time_unix_nano,
            "time_unix_nano": p.time_unix_nano,
        }
        if isinstance(p, HistogramDataPoint):
            point.update(
                count=p.count,
                sum=p.sum,
                min=p.min,
                max=p.max,
                bucket_counts=list(p.bucket_counts),
                explicit_bounds=list(p.explicit_bounds),
            )
        else:
            point["value"] = getattr(p, "value", None)
        points.append(point)
    kind = (
        "histogram" if isinstance(data, Histogram) else "sum" if isinstance(data, Sum) else "gauge"
    )
    doc: dict[str, Any] = {
        "scope": scope,
        "name": metric.name,
        "unit": metric.unit or "",
        "description": metric.description or "",
        "kind": kind,
    }
    if isinstance(data, Histogram | Sum):
        doc["temporality"] = data.aggregation_temporality.name
    if isinstance(data, Sum):
        doc["monotonic"] = data.is_monotonic
    doc["points"] = points
    return doc


class JsonlMetricExporter(MetricExporter):
    """Writes each metric, one JSON object a line, to `path` (via `path.part`, renamed on shutdown,
    so a reader never sees a half-written file)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._part = path.with_name(path.name + ".part")
        self._file: IO[str] | None = None
        self._closed = False

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if self._closed:
            return MetricExportResult.FAILURE
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._part.open("w", encoding="utf-8")
        for rm in metrics_data.resource_metrics:
            resource = _attributes(rm.resource.attributes)
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    doc = {"resource": resource, **metric_to_json(metric, scope=sm.scope.name)}
                    self._file.write(json.dumps(doc, ensure_ascii=False, default=str) + "\n")
        self._file.flush()
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self._closed:
            return
        self._closed = True
        if self._file is not None:
            self._file.close()
            os.replace(self._part, self.path)


class JobEndMetricReader(MetricReader):
    """Collects when flushed and once more when shut down (no timer thread): one snapshot of the
    job's totals at its end, handed to `exporter`."""

    def __init__(self, exporter: MetricExporter) -> None:
        super().__init__()
        self._exporter = exporter
        self._shut = False

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._exporter.export(metrics_data, timeout_millis=timeout_millis)  # pyright: ignore[reportUnknownMemberType]

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self._shut:
            return
        self._shut = True
        try:
            self.collect(timeout_millis=timeout_millis)
        finally:
            self._exporter.shutdown(timeout_millis=timeout_millis)  # pyright: ignore[reportUnknownMemberType]


def otlp_metrics_endpoint(env: Mapping[str, str]) -> str | None:
    """Where OTLP/HTTP metrics go under `env`, per the OTel exporter variables, or None."""
    if env.get(METRICS_EXPORTER_ENV, "").strip().lower() == "none":
        return None
    explicit = env.get(METRICS_ENDPOINT_ENV, "").strip()
    if explicit:
        return explicit
    base = env.get(OTLP_ENDPOINT_ENV, "").strip()
    return base.rstrip("/") + "/v1/metrics" if base else None


def job_meter_provider(
    job_id: str,
    *,
    directory: Path | None,
    env: Mapping[str, str],
    console: IO[str] | None = None,
) -> MeterProvider:
    """A meter provider for one job: JSONL under `directory` (unless None), the console (if given),
    and OTLP/HTTP (every 60 s and at the end) to `otlp_metrics_endpoint(env)`: `<endpoint>/v1/metrics`
    when `env` sets `OTEL_EXPORTER_OTLP_ENDPOINT`, unless `OTEL_METRICS_EXPORTER=none`.
    `shutdown()` it when the job ends."""
    readers: list[MetricReader] = []
    if directory is not None:
        readers.append(JobEndMetricReader(JsonlMetricExporter(metrics_path(directory, job_id))))
    if console is not None:
        readers.append(JobEndMetricReader(ConsoleMetricExporter(out=console)))
    endpoint = otlp_metrics_endpoint(env)
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint)))
    return MeterProvider(metric_readers=readers, resource=job_resource(job_id, env=env))
