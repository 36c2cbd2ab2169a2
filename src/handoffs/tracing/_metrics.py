"""OpenTelemetry metrics of handoffs, recorded from each finished `HandoffRecord`, and where they go.

| instrument                         | kind      | unit          | one measurement per            |
|------------------------------------|-----------|---------------|--------------------------------|
| `gen_ai.client.operation.duration` | histogram | `s`           | attempt that called a model    |
| `handoffs.attempt.cost`            | histogram | `{USD}`       | attempt that called a model    |
| `handoffs.handoff.duration`        | histogram | `s`           | handoff                        |
| `handoffs.handoff.cost`            | histogram | `{USD}`       | handoff                        |
| `handoffs.handoffs`                | counter   | `{handoff}`   | handoff                        |
| `handoffs.escalations`             | counter   | `{escalation}`| handoff (adds its escalations) |

pydantic-ai records `gen_ai.client.token.usage` and `operation.cost` per model call on the same
meter provider (`Tracing(meter_provider=...)` hands it over). `gen_ai.client.operation.duration`
follows the GenAI conventions at `handoffs.tracing.SEMCONV_VERSION`: operation `invoke_agent` (an
attempt is one subordinate agent run, its checks included), `gen_ai.provider.name`,
`gen_ai.request.model`, and `error.type` when the attempt failed (`invalid_output` or the fault kind
of a provider error). Attributes stay low-cardinality: no task ids, labels or text.

```python
meters = job_meter_provider(job_id, directory=Path(".handoffs/traces"), env=os.environ)
...run the job with Tracing(tracer_provider=..., meter_provider=meters)...
meters.shutdown()   # collects once more and writes <job id>.metrics.jsonl
```
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, cast

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
    "METRICS_SUFFIX",
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
            "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration."
        )
        self.attempt_cost = meter.create_histogram(
            "handoffs.attempt.cost",
            unit="{USD}",
            description="What one attempt cost, checks included.",
        )
        self.handoff_duration = meter.create_histogram(
            "handoffs.handoff.duration", unit="s", description="Wall time of one handoff."
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
