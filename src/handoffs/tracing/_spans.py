"""Handoff spans: names and attributes (GenAI semconv + `handoffs.*`) and the `Tracing` handle.

```
invoke_workflow {job}                      run_job           (GenAI semconv)
└── invoke_agent orchestrator              pydantic-ai       (GenAI semconv)
    ├── chat {model}                       pydantic-ai
    └── execute_tool {subordinate}         pydantic-ai; + gen_ai.transfer.* (draft)
        └── handoff {kind}                 Session.delegate  (handoffs.*, evaluation events)
            └── invoke_agent subordinate:{model} -> chat {model}
```

The spans follow the OpenTelemetry GenAI semantic conventions at `SEMCONV_VERSION`; the
`gen_ai.transfer.*` attributes are drafts of the later semantic-conventions-genai repository (no
release yet). A `TracerProvider` (and optionally a `MeterProvider`, for the instruments of
`handoffs.tracing` and pydantic-ai's token and cost histograms) is passed in explicitly: nothing
here touches global OTel state. Prompt and response text stays out of spans unless
`include_content=True`.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from pydantic_ai.capabilities import Instrumentation
from pydantic_ai.models.instrumented import InstrumentationSettings

from handoffs.handoff import HandoffRecord
from handoffs.tracing._metrics import HandoffMetrics

__all__ = ["SEMCONV_VERSION", "Tracing", "handoff_attributes"]

SEMCONV_VERSION = "1.41.1"
"""The OpenTelemetry semantic-conventions release whose GenAI spans and events these follow."""

OPERATION = "gen_ai.operation.name"
WORKFLOW_NAME = "gen_ai.workflow.name"
ERROR_TYPE = "error.type"
EVALUATION_EVENT = "gen_ai.evaluation.result"
EVALUATION_NAME = "gen_ai.evaluation.name"
EVALUATION_SCORE = "gen_ai.evaluation.score.value"
EVALUATION_LABEL = "gen_ai.evaluation.score.label"
EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"
TRANSFER_MODE = "gen_ai.transfer.mode"
"""Draft (semantic-conventions-genai, unreleased): `return_to_caller` for a delegating tool."""
TRANSFER_TARGET = "gen_ai.transfer.target.name"
"""Draft (semantic-conventions-genai, unreleased): the agent a tool call transfers to."""

HANDOFF_SPAN = "handoff"
"""Name prefix of the project's own span, one per handoff: `handoff {task kind}`."""
NAMESPACE = "handoffs."


def _usd(value: Decimal | None) -> str:
    return "unlimited" if value is None else str(value)


def handoff_attributes(record: HandoffRecord, *, budget_left: Decimal | None) -> dict[str, Any]:
    """The `handoffs.*` attributes of one finished handoff (no prompt or response text)."""
    attrs: dict[str, Any] = {
        "handoffs.task.id": record.task_id,
        "handoffs.task.kind": record.task_kind,
        "handoffs.task.risk": record.risk,
        "handoffs.status": record.status,
        "handoffs.route": list(record.route),
        "handoffs.route.reasons": [
            f"{s.model}: {'kept' if s.kept else 'dropped'}: {s.reason}"
            for s in record.route_reasons
        ],
        "handoffs.attempts": len(record.attempts),
        "handoffs.attempt.models": [a.model for a in record.attempts],
        "handoffs.attempt.outcomes": [a.outcome for a in record.attempts],
        "handoffs.attempt.costs_usd": [str(a.cost_usd) for a in record.attempts],
        "handoffs.attempt.faults": [a.fault or "" for a in record.attempts],
        "handoffs.breakers": [f"{model}:{state}" for model, state in record.breakers.items()],
        "handoffs.escalations": record.escalations,
        "handoffs.verdicts": [
            f"{v.check}:{'pass' if v.passed else 'fail'}" for v in record.verdicts
        ],
        "handoffs.cost_usd": str(record.cost_usd),
        "handoffs.budget.left_usd": _usd(budget_left),
        "handoffs.degraded": record.degraded,
        "handoffs.input_tokens": record.input_tokens,
        "handoffs.output_tokens": record.output_tokens,
        "handoffs.latency_s": record.latency_s,
    }
    optional = {
        "handoffs.task.label": record.label,
        "handoffs.model": record.model,
        "handoffs.provider": record.provider,
        "handoffs.tier": record.tier,
        "handoffs.cause": record.cause,
    }
    attrs.update({k: v for k, v in optional.items() if v is not None})
    return attrs


@dataclass(frozen=True, slots=True, kw_only=True)
class Tracing:
    """Where a job's spans and metrics go, and whether prompt and response text may go with them."""

    tracer_provider: TracerProvider
    """The provider every span of the job is created from (pydantic-ai's included)."""
    include_content: bool = False
    """Opt in to prompts, responses, tool arguments and check explanations in spans."""
    meter_provider: MeterProvider | None = None
    """Where the job's metrics go (`handoffs.tracing` and pydantic-ai's); None records none."""
    model_names: Mapping[str, str] = field(default_factory=dict[str, str])
    """Catalog id -> the provider's model name, for `gen_ai.request.model` in metrics."""
    metrics: HandoffMetrics | None = field(init=False, repr=False, compare=False)
    """The project's instruments on `meter_provider`, recorded by `finish_handoff`."""

    def __post_init__(self) -> None:
        metrics = (
            HandoffMetrics(self.meter_provider, model_names=self.model_names)
            if self.meter_provider is not None
            else None
        )
        object.__setattr__(self, "metrics", metrics)

    @property
    def tracer(self) -> Tracer:
        return self.tracer_provider.get_tracer("handoffs", schema_url=None)

    def instrumentation(self) -> Instrumentation:
        """The pydantic-ai capability that makes an agent emit its GenAI spans to this provider."""
        return Instrumentation(
            InstrumentationSettings(
                tracer_provider=self.tracer_provider,
                meter_provider=self.meter_provider or NoOpMeterProvider(),
                include_content=self.include_content,
                include_binary_content=self.include_content,
            )
        )

    @contextmanager
    def workflow(self, name: str, *, job_id: str) -> Generator[Span, None, None]:
        """The root span of one job: `invoke_workflow {name}`."""
        attrs = {
            OPERATION: "invoke_workflow",
            WORKFLOW_NAME: name,
            "handoffs.job.id": job_id,
        }
        with self._span(f"invoke_workflow {name}", attrs) as span:
            yield span

    @contextmanager
    def handoff(self, *, kind: str, task_id: str) -> Generator[Span, None, None]:
        """The span of one handoff; `finish_handoff` fills it in from the record."""
        attrs = {"handoffs.task.kind": kind, "handoffs.task.id": task_id}
        with self._span(f"{HANDOFF_SPAN} {kind}", attrs) as span:
            yield span

    @contextmanager
    def _span(self, name: str, attrs: dict[str, Any]) -> Generator[Span, None, None]:
        # Exceptions are recorded by type only: their messages may carry provider text.
        with self.tracer.start_as_current_span(
            name,
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as exc:
                span.set_attribute(ERROR_TYPE, type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise

    def finish_handoff(
        self,
        span: Span,
        record: HandoffRecord,
        *,
        budget_left: Decimal | None,
        error: BaseException | None = None,
    ) -> None:
        """Set a handoff span's attributes and one evaluation event per check result, and record
        the handoff's metrics when there is a meter provider."""
        span.set_attributes(handoff_attributes(record, budget_left=budget_left))
        for number, attempt in enumerate(record.attempts):
            for verdict in attempt.verdicts:
                event: dict[str, Any] = {
                    EVALUATION_NAME: verdict.check,
                    EVALUATION_LABEL: "pass" if verdict.passed else "fail",
                    "handoffs.attempt": number,
                    "handoffs.model": attempt.model,
                }
                if verdict.score is not None:
                    event[EVALUATION_SCORE] = verdict.score
                if self.include_content and verdict.reasons:
                    event[EVALUATION_EXPLANATION] = " ".join(verdict.reasons)[:500]
                span.add_event(EVALUATION_EVENT, event)
        if record.status == "failed":
            span.set_attribute(ERROR_TYPE, type(error).__name__ if error else "HandoffFailed")
            span.set_status(Status(StatusCode.ERROR, record.status))
        if self.metrics is not None:
            self.metrics.record(record)

    @staticmethod
    def mark_transfer(span: Span, target: str) -> None:
        """Mark a delegating `execute_tool` span as a return-to-caller transfer to `target`."""
        if span.is_recording():
            span.set_attributes({TRANSFER_MODE: "return_to_caller", TRANSFER_TARGET: target})
