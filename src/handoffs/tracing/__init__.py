"""The tracing wing: handoff spans (GenAI semantic conventions plus `handoffs.*`), metrics,
exporters (JSONL per job, OTLP), and reading traces back: the tree, the HTML page, reports.
"""

from handoffs.tracing._export import (
    TRACE_DIR,
    JsonlSpanExporter,
    job_tracer_provider,
    span_to_json,
    trace_path,
)
from handoffs.tracing._html import embed_json, page_data, render_html, write_html
from handoffs.tracing._metrics import (
    DURATION_BUCKETS_S,
    METRICS_SUFFIX,
    BreakerReading,
    BudgetReading,
    HandoffMetrics,
    job_meter_provider,
    metric_to_json,
    metrics_path,
    otlp_metrics_endpoint,
)
from handoffs.tracing._report import (
    HandoffRow,
    collect,
    parse_since,
    percentile,
    report_document,
)
from handoffs.tracing._spans import SEMCONV_VERSION, TRANSFER_MODE, TRANSFER_TARGET, Tracing
from handoffs.tracing._view import load_trace, render_tree, trace_document

__all__ = [
    "DURATION_BUCKETS_S",
    "METRICS_SUFFIX",
    "SEMCONV_VERSION",
    "TRACE_DIR",
    "TRANSFER_MODE",
    "TRANSFER_TARGET",
    "BreakerReading",
    "BudgetReading",
    "HandoffMetrics",
    "HandoffRow",
    "JsonlSpanExporter",
    "Tracing",
    "collect",
    "embed_json",
    "job_meter_provider",
    "job_tracer_provider",
    "load_trace",
    "metric_to_json",
    "metrics_path",
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
