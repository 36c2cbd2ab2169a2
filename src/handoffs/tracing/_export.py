"""Where a job's spans go: a JSONL file per job, the console, OTLP/HTTP.

```python
provider = job_tracer_provider(job_id, directory=Path(".handoffs/traces"), env=os.environ)
...run the job with Tracing(tracer_provider=provider)...
provider.shutdown()   # flushes every exporter; the JSONL file appears complete, or not at all
```
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import unquote

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import StatusCode

from handoffs.errors import ConfigError

__all__ = [
    "GAUNTLET_TRACE_DIR",
    "SERVICE_NAME",
    "TRACE_DIR",
    "ConventionsExporter",
    "JsonlSpanExporter",
    "job_resource",
    "job_tracer_provider",
    "span_to_json",
    "trace_path",
]

TRACE_DIR = Path(".handoffs/traces")
"""Where `handoffs run` writes job traces and the trace/report commands read them."""
GAUNTLET_TRACE_DIR = Path(".handoffs/gauntlet/traces")
"""Where `handoffs gauntlet` writes its runs' traces: apart from real jobs', so that `handoffs
report` and `router train` never count hostile runs as traffic."""

OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
"""Set it (e.g. `http://127.0.0.1:6006`) to also send spans over OTLP/HTTP to `<it>/v1/traces`
(and metrics to `<it>/v1/metrics`, see `handoffs.tracing`)."""


SERVICE_NAME_ENV = "OTEL_SERVICE_NAME"
"""The `service.name` of every span and metric (default `handoffs`)."""
RESOURCE_ATTRIBUTES_ENV = "OTEL_RESOURCE_ATTRIBUTES"
"""More resource attributes, `key=value,key=value` (values percent-encoded), as OTel defines it."""
SERVICE_NAME = "handoffs"
"""The `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` sets one."""


def job_resource(
    job_id: str,
    *,
    env: Mapping[str, str] | None = None,
    extra: Mapping[str, str | bool] | None = None,
) -> Resource:
    """The OTel resource of one job's spans and metrics: `service.name` (from `env`'s
    `OTEL_SERVICE_NAME`, else `OTEL_RESOURCE_ATTRIBUTES`, else `handoffs`), the attributes of
    `OTEL_RESOURCE_ATTRIBUTES`, `handoffs.job.id` and `extra`."""
    env = env or {}
    attrs: dict[str, str | bool] = {}
    for item in env.get(RESOURCE_ATTRIBUTES_ENV, "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            attrs[key.strip()] = unquote(value.strip())
    attrs["service.name"] = (
        env.get(SERVICE_NAME_ENV, "").strip() or str(attrs.get("service.name", "")) or SERVICE_NAME
    )
    attrs["handoffs.job.id"] = job_id
    attrs.update(extra or {})
    return Resource.create(attrs)


def trace_path(directory: Path, job_id: str) -> Path:
    """Where the JSONL trace of `job_id` lives."""
    return directory / f"{job_id}.jsonl"


def _value(value: Any) -> Any:
    return list(cast(tuple[Any, ...], value)) if isinstance(value, tuple) else value


def span_to_json(span: ReadableSpan) -> dict[str, Any]:
    """One span as a JSON object: ids in hex, times in ns since the epoch, attributes as given."""
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": f"{ctx.trace_id:032x}" if ctx else None,
        "span_id": f"{ctx.span_id:016x}" if ctx else None,
        "parent_span_id": f"{parent.span_id:016x}" if parent else None,
        "kind": span.kind.name,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "status": {"code": span.status.status_code.name, "description": span.status.description},
        "attributes": {k: _value(v) for k, v in (span.attributes or {}).items()},
        "events": [
            {
                "name": e.name,
                "time_unix_nano": e.timestamp,
                "attributes": {k: _value(v) for k, v in (e.attributes or {}).items()},
            }
            for e in span.events
        ],
    }


class JsonlSpanExporter(SpanExporter):
    """Writes finished spans, one JSON object a line, to `path` (via `path.part`, renamed on
    shutdown, so a reader never sees a half-written trace)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._part = path.with_name(path.name + ".part")
        self._file: IO[str] | None = None
        self._closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._part.open("w", encoding="utf-8")
        for span in spans:
            self._file.write(json.dumps(span_to_json(span), ensure_ascii=False, default=str) + "\n")
        self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._file is not None:
            self._file.close()
            os.replace(self._part, self.path)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


DEPRECATED_SYSTEM = "gen_ai.system"
"""Replaced by `gen_ai.provider.name`; pydantic-ai 2.68 still sends both on its `chat` spans, with
every `InstrumentationSettings(version=...)`."""


def conventional(span: ReadableSpan) -> ReadableSpan:
    """`span` as it is exported: an ERROR span without `error.type` (pydantic-ai's) gets its
    exception's type (`_OTHER` without one, as the conventions say), and the deprecated
    `gen_ai.system` goes where `gen_ai.provider.name` says the same. Other spans pass unchanged."""
    attrs = dict(span.attributes or {})
    changed = False
    if DEPRECATED_SYSTEM in attrs and "gen_ai.provider.name" in attrs:
        del attrs[DEPRECATED_SYSTEM]
        changed = True
    if span.status.status_code is StatusCode.ERROR and "error.type" not in attrs:
        exception = next(
            (
                (e.attributes or {}).get("exception.type")
                for e in span.events
                if e.name == "exception"
            ),
            None,
        )
        attrs["error.type"] = str(exception or "_OTHER")
        changed = True
    if not changed:
        return span
    return ReadableSpan(
        name=span.name,
        context=span.get_span_context(),
        parent=span.parent,
        resource=span.resource,
        attributes=attrs,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class ConventionsExporter(SpanExporter):
    """Hands `exporter` every span as `conventional` makes it."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.exporter.export([conventional(s) for s in spans])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def sampler(env: Mapping[str, str]) -> Sampler:
    """The sampler `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` in `env` ask for (the
    standard names; default: every trace, and every child of a sampled parent)."""
    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    arg = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    try:
        ratio = min(1.0, max(0.0, float(arg))) if arg else 1.0
    except ValueError:
        raise ConfigError(f"OTEL_TRACES_SAMPLER_ARG must be a number, not {arg!r}") from None
    if name == "traceidratio":
        return TraceIdRatioBased(ratio)
    if name == "parentbased_traceidratio":
        return ParentBased(TraceIdRatioBased(ratio))
    if name in ("always_off", "parentbased_always_off"):
        return ALWAYS_OFF if name == "always_off" else ParentBased(ALWAYS_OFF)
    if name in ("", "always_on", "parentbased_always_on"):
        return ParentBased(ALWAYS_ON)
    raise ConfigError(f"OTEL_TRACES_SAMPLER {name!r} is not supported here")


def job_tracer_provider(
    job_id: str,
    *,
    directory: Path | None,
    env: Mapping[str, str],
    console: IO[str] | None = None,
) -> TracerProvider:
    """A provider for one job: JSONL under `directory` (unless None), the console (if given), and
    OTLP/HTTP when `env` sets `OTEL_EXPORTER_OTLP_ENDPOINT`, each through `ConventionsExporter`;
    its resource's `service.name` and attributes follow `OTEL_SERVICE_NAME` and
    `OTEL_RESOURCE_ATTRIBUTES`; `OTEL_TRACES_SAMPLER=traceidratio` (or `parentbased_traceidratio`)
    with `OTEL_TRACES_SAMPLER_ARG=0.1` keeps a tenth of the traces (each handoff of a session
    without a parent span is a trace; metrics still count every handoff). `shutdown()` it when
    the job ends."""
    provider = TracerProvider(resource=job_resource(job_id, env=env), sampler=sampler(env))
    if directory is not None:
        exporter = ConventionsExporter(JsonlSpanExporter(trace_path(directory, job_id)))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    if console is not None:
        console_exporter = ConventionsExporter(ConsoleSpanExporter(out=console))
        provider.add_span_processor(SimpleSpanProcessor(console_exporter))
    endpoint = env.get(OTLP_ENDPOINT_ENV, "").strip()
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        otlp = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
        provider.add_span_processor(BatchSpanProcessor(ConventionsExporter(otlp)))
    return provider
