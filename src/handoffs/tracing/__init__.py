"""The tracing wing: handoff spans (GenAI semantic conventions plus `handoffs.*`), metrics,
exporters (JSONL per job, OTLP), tracing on by default for scripts, and reading traces back: the
tree, the HTML page, reports.
"""

from handoffs.tracing._default import (
    TRACE_DIR_ENV,
    TRACING_ENV,
    default_trace_dir,
    default_tracing,
    finish_default_tracing,
)
from handoffs.tracing._export import (
    GAUNTLET_TRACE_DIR,
    TRACE_DIR,
    ConventionsExporter,
    JsonlSpanExporter,
    job_resource,
    job_tracer_provider,
    span_to_json,
    trace_path,
)
from handoffs.tracing._html import embed_json, page_data, render_html, write_html
from handoffs.tracing._metrics import (
    METRICS_SUFFIX,
    HandoffMetrics,
    job_meter_provider,
    metric_to_json,
    metrics_path,
    otlp_metrics_endpoint,
)
from handoffs.tracing._report import (
    HandoffRow,
    JobRow,
    collect,
    collect_jobs,
    parse_since,
    percentile,
    report_document,
)
from handoffs.tracing._spans import (
    SEMCONV_VERSION,
    SPAN_KIND,
    TRANSFER_MODE,
    TRANSFER_TARGET,
    Tracing,
)
from handoffs.tracing._view import (
    GAUNTLET_ATTACK,
    load_trace,
    money,
    newest_trace,
    render_tree,
    trace_document,
)

__all__ = [
    "GAUNTLET_ATTACK",
    "GAUNTLET_TRACE_DIR",
    "METRICS_SUFFIX",
    "SEMCONV_VERSION",
    "SPAN_KIND",
    "TRACE_DIR",
    "TRACE_DIR_ENV",
    "TRACING_ENV",
    "TRANSFER_MODE",
    "TRANSFER_TARGET",
    "ConventionsExporter",
    "HandoffMetrics",
    "HandoffRow",
    "JobRow",
    "JsonlSpanExporter",
    "Tracing",
    "collect",
    "collect_jobs",
    "default_trace_dir",
    "default_tracing",
    "embed_json",
    "finish_default_tracing",
    "job_meter_provider",
    "job_resource",
    "job_tracer_provider",
    "load_trace",
    "metric_to_json",
    "metrics_path",
    "money",
    "newest_trace",
    "otlp_metrics_endpoint",
    "page_data",
    "parse_since",
    "percentile",
    "render_html",
    "render_tree",
    "report_document",
    "span_to_json",
    "trace_document",
    "trace_path",
    "write_html",
]
