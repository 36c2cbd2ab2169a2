"""Handoff spans: names and attributes (GenAI semconv + `handoffs.*`) and the `Tracing` handle.

```
invoke_workflow {job}                      run_job           (GenAI semconv)       CHAIN
└── invoke_agent orchestrator              pydantic-ai       (GenAI semconv)
    ├── chat {model}                       pydantic-ai
    └── execute_tool {subordinate}         pydantic-ai; + gen_ai.transfer.* (draft)
        └── handoff {kind}                 Session.delegate  (handoffs.*)          AGENT
            ├── queue {model}              waiting for a slot of a model with max_concurrency
            ├── invoke_agent subordinate:{model} -> chat {model}     one per attempt
            └── check {name}               one per check result                EVALUATOR
                └── invoke_agent check:{model} -> chat {model}       a judge's model call
```

The spans follow the OpenTelemetry GenAI semantic conventions at `SEMCONV_VERSION`; the
`gen_ai.transfer.*` attributes are drafts of the later semantic-conventions-genai repository (no
release yet). The project's own spans also carry `openinference.span.kind` (the kind by which Arize
Phoenix and other OpenInference viewers sort spans). A `TracerProvider` (and optionally a
`MeterProvider`, for the instruments of `handoffs.tracing` and pydantic-ai's token and cost
histograms) is passed in explicitly: nothing here touches global OTel state. Prompt and response
text, and each task's input, stay out of spans unless `include_content=True`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from pydantic_ai.capabilities import Instrumentation
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.usage import RunUsage

from handoffs.handoff import HandoffRecord, Verdict
from handoffs.task import Check, CheckContext
from handoffs.tracing._metrics import HandoffMetrics

__all__ = [
    "CHECK_SPAN",
    "HANDOFF_SPAN",
    "JOB_FILE",
    "QUEUE_SPAN",
    "SEMCONV_VERSION",
    "SPAN_KIND",
    "TASK_INPUT",
    "Tracing",
    "handoff_attributes",
]

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
SPAN_KIND = "openinference.span.kind"
"""OpenInference's span kind (`CHAIN`, `AGENT`, `EVALUATOR`, ...): how Phoenix sorts a span."""

HANDOFF_SPAN = "handoff"
"""Name prefix of the project's own span, one per handoff: `handoff {task kind}`."""
CHECK_SPAN = "check"
"""Name prefix of a check's span (`check {check name}`), a child of its handoff's span."""
QUEUE_SPAN = "queue"
"""Name prefix of the span of a wait for a model's concurrency slot: `queue {model}`."""
NAMESPACE = "handoffs."
JOB_FILE = "handoffs.job.file"
"""A job's workflow span: the path of the job file it ran."""
TASK_INPUT = "handoffs.task.input"
"""A handoff span's task input as JSON text (content capture only: `include_content=True`)."""


def _usd(value: Decimal | None) -> str:
    return "unlimited" if value is None else format(value, "f")


CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
"""GenAI semconv: input tokens served from a provider-managed cache."""
CACHE_WRITE_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
"""GenAI semconv: input tokens written to a provider-managed cache."""


def money_attributes(key: str, value: Decimal) -> dict[str, Any]:
    """A dollar amount as two attributes: `key` a double (to sum and sort in a viewer) and
    `{key}_decimal` the exact decimal text (what the project's own readers use)."""
    return {key: float(value), f"{key}_decimal": format(value, "f")}


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
        "handoffs.attempt.costs_usd": [format(a.cost_usd, "f") for a in record.attempts],
        "handoffs.attempt.faults": [a.fault or "" for a in record.attempts],
        "handoffs.breakers": [f"{model}:{state}" for model, state in record.breakers.items()],
        "handoffs.escalations": record.escalations,
        "handoffs.verdicts": [
            f"{v.check}:{'pass' if v.passed else 'fail'}" for v in record.verdicts
        ],
        **money_attributes("handoffs.cost_usd", record.cost_usd),
        "handoffs.budget.left_usd": _usd(budget_left),
        "handoffs.degraded": record.degraded,
        "handoffs.simulated": record.simulated,
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
        "handoffs.cache": record.cache,
        "handoffs.cache.similarity": record.cache_similarity,
        "handoffs.cache.source": record.cache_source,
        "handoffs.cache.saved_usd": None
        if record.cache_saved_usd is None
        else format(record.cache_saved_usd, "f"),
    }
    attrs.update({k: v for k, v in optional.items() if v is not None})
    attrs.update(prompt_cache_attributes(record))
    return attrs


def prompt_cache_attributes(record: HandoffRecord) -> dict[str, Any]:
    """The provider prompt cache's share of a handoff, when it had one: the GenAI usage
    attributes (`gen_ai.usage.cache_read.input_tokens`, `...cache_creation.input_tokens`, part of
    `handoffs.input_tokens`), each attempt's cache reads, and what caching saved."""
    if not (record.cache_read_tokens or record.cache_write_tokens):
        return {}
    return {
        CACHE_READ_TOKENS: record.cache_read_tokens,
        CACHE_WRITE_TOKENS: record.cache_write_tokens,
        "handoffs.attempt.cache_read_tokens": [a.cache_read_tokens for a in record.attempts],
        **money_attributes("handoffs.prompt_cache.saved_usd", record.prompt_cache_saved_usd),
    }


def evaluation_attributes(verdict: Verdict, *, explain: bool) -> dict[str, Any]:
    """A check's result as GenAI evaluation attributes (the `gen_ai.evaluation.result` event's)."""
    attrs: dict[str, Any] = {
        EVALUATION_NAME: verdict.check,
        EVALUATION_LABEL: "pass" if verdict.passed else "fail",
    }
    if verdict.score is not None:
        attrs[EVALUATION_SCORE] = verdict.score
    if explain and verdict.reasons:
        attrs[EVALUATION_EXPLANATION] = " ".join(verdict.reasons)[:500]
    return attrs


@contextmanager
def _span(tracer: Tracer, name: str, attrs: dict[str, Any]) -> Generator[Span, None, None]:
    # Exceptions are recorded by type only: their messages may carry provider text.
    with tracer.start_as_current_span(
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


@dataclass(frozen=True, slots=True, kw_only=True)
class _ObservedCheck:
    """A check that runs in its own `check {name}` span (an OpenInference EVALUATOR)."""

    check: Check
    tracer: Tracer
    attempt: int
    model: str
    explain: bool

    @property
    def name(self) -> str:
        return self.check.name

    async def __call__(self, output: Any, ctx: CheckContext) -> Verdict:
        attrs: dict[str, Any] = {
            SPAN_KIND: "EVALUATOR",
            "handoffs.check": self.check.name,
            "handoffs.attempt": self.attempt,
            "handoffs.model": self.model,
        }
        with _span(self.tracer, f"{CHECK_SPAN} {self.check.name}", attrs) as span:
            verdict = await self.check(output, ctx)
            if verdict.check != self.check.name:  # named as its verdicts are: `predicate:...`
                span.update_name(f"{CHECK_SPAN} {verdict.check}")
                span.set_attribute("handoffs.check", verdict.check)
            span.set_attributes(evaluation_attributes(verdict, explain=self.explain))
            span.set_attribute("output.value", "pass" if verdict.passed else "fail")
            if verdict.model is not None:
                span.set_attribute("handoffs.check.model", verdict.model)
            if verdict.cost_usd:
                span.set_attributes(money_attributes("handoffs.check.cost_usd", verdict.cost_usd))
            return verdict


@dataclass(frozen=True, slots=True, kw_only=True)
class Tracing:
    """Where a job's spans and metrics go, and whether prompt and response text may go with them."""

    tracer_provider: TracerProvider
    """The provider every span of the job is created from (pydantic-ai's included)."""
    include_content: bool = False
    """Opt in to prompts, responses, tool arguments, check explanations and each handoff's task
    input (`handoffs.task.input`) in spans."""
    meter_provider: MeterProvider | None = None
    """Where the job's metrics go (`handoffs.tracing` and pydantic-ai's); None records none."""
    model_names: Mapping[str, str] = field(default_factory=dict[str, str])
    lean: bool = False
    """Leave out pydantic-ai's per-request `chat {model}` span (and its token and cost
    histograms) where the engine calls a model without the agent loop: each attempt's
    `invoke_agent` span still carries the model and the tokens, the handoff span everything else.
    `HANDOFFS_TRACING=lean` turns it on for the default tracing."""
    """Catalog id -> the provider's model name, for `gen_ai.request.model` in metrics."""
    metrics: HandoffMetrics | None = field(init=False, repr=False, compare=False)
    """The project's instruments on `meter_provider`, recorded by `finish_handoff`."""
    settings: InstrumentationSettings = field(init=False, repr=False, compare=False)
    """pydantic-ai's instrumentation settings on these providers (built once: agents and the
    thin path's instrumented models share them)."""
    _tracer: Tracer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        metrics = (
            HandoffMetrics(self.meter_provider, model_names=self.model_names)
            if self.meter_provider is not None
            else None
        )
        object.__setattr__(self, "metrics", metrics)
        settings = InstrumentationSettings(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider or NoOpMeterProvider(),
            include_content=self.include_content,
            include_binary_content=self.include_content,
        )
        object.__setattr__(self, "settings", settings)
        object.__setattr__(self, "_tracer", self.tracer_provider.get_tracer("handoffs"))

    @property
    def tracer(self) -> Tracer:
        return self._tracer

    def instrumentation(self) -> Instrumentation:
        """The pydantic-ai capability that makes an agent emit its GenAI spans to this provider."""
        return Instrumentation(self.settings)

    @contextmanager
    def agent_run(self, name: str, *, model_name: str) -> Generator[Span, None, None]:
        """The `invoke_agent {name}` span of a request made without pydantic-ai's agent loop (the
        engine's thin path), with the attributes pydantic-ai's own run span carries; the caller
        sets the run's usage on it (`agent_usage`). pydantic-ai's `chat {model}` span nests in it."""
        attrs: dict[str, Any] = {
            "model_name": model_name,
            "agent_name": name,
            "gen_ai.agent.name": name,
            OPERATION: "invoke_agent",
            "logfire.msg": f"{name} run",
        }
        with self.tracer.start_as_current_span(
            f"invoke_agent {name}",
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except Exception as exc:  # recorded as pydantic-ai records a run's error
                if span.is_recording():
                    if self.include_content:
                        span.record_exception(exc, escaped=False)
                    else:  # the type only: the message may quote content
                        kind = type(exc)
                        qualified = (
                            kind.__qualname__
                            if kind.__module__ == "builtins"
                            else f"{kind.__module__}.{kind.__qualname__}"
                        )
                        span.add_event(
                            "exception",
                            {"exception.type": qualified, "exception.escaped": "False"},
                        )
                    detail = f"{type(exc).__name__}: {exc}" if self.include_content else None
                    span.set_status(Status(StatusCode.ERROR, detail))
                raise

    def agent_usage(self, span: Span, usage: RunUsage) -> None:
        """Set a thin run's usage on its `agent_run` span, as pydantic-ai sets an agent run's
        (`gen_ai.aggregated_usage.*`)."""
        if span.is_recording():
            span.set_attributes(self.settings.aggregated_usage_attributes(usage))

    @contextmanager
    def workflow(
        self, name: str, *, job_id: str, job_file: str | None = None
    ) -> Generator[Span, None, None]:
        """The root span of one job: `invoke_workflow {name}`; `finish_workflow` fills it in.
        `job_file`, the job file's path, lets `handoffs qualify --from TRACES` find the job."""
        attrs = {
            OPERATION: "invoke_workflow",
            WORKFLOW_NAME: name,
            SPAN_KIND: "CHAIN",
            "handoffs.job.id": job_id,
        }
        if job_file is not None:
            attrs[JOB_FILE] = job_file
        with _span(self.tracer, f"invoke_workflow {name}", attrs) as span:
            yield span

    @staticmethod
    def finish_workflow(
        span: Span,
        *,
        status: str,
        handoffs: int,
        cost_usd: Decimal,
        orchestrator_cost_usd: Decimal,
        budget_usd: Decimal | None,
        orchestrator_cache_saved_usd: Decimal = Decimal(0),
    ) -> None:
        """Set a job's outcome on its workflow span; a job that did not complete is an error.
        `orchestrator_cache_saved_usd`: what prompt caching saved on the orchestrator's calls
        (set when not zero)."""
        span.set_attributes(
            {
                "handoffs.job.status": status,
                "handoffs.handoffs": handoffs,
                **money_attributes("handoffs.cost_usd", cost_usd),
                **money_attributes("handoffs.orchestrator.cost_usd", orchestrator_cost_usd),
                "handoffs.budget_usd": _usd(budget_usd),
            }
        )
        if orchestrator_cache_saved_usd:
            saved = orchestrator_cache_saved_usd
            span.set_attributes(
                money_attributes("handoffs.orchestrator.prompt_cache.saved_usd", saved)
            )
        if status != "completed":
            span.set_attribute(ERROR_TYPE, status)
            span.set_status(Status(StatusCode.ERROR, status))

    @contextmanager
    def handoff(
        self,
        *,
        kind: str,
        task_id: str,
        label: str | None = None,
        input_json: Callable[[], str] | None = None,
    ) -> Generator[Span, None, None]:
        """The span of one handoff; `finish_handoff` fills it in from the record. With content
        capture on, `input_json` (called only then) gives the task's input as JSON text, kept as
        `handoffs.task.input`: what `handoffs qualify --from TRACES` replays."""
        attrs: dict[str, Any] = {
            SPAN_KIND: "AGENT",
            "handoffs.task.kind": kind,
            "handoffs.task.id": task_id,
        }
        if label is not None:
            attrs["handoffs.task.label"] = label
        if self.include_content and input_json is not None:
            attrs[TASK_INPUT] = input_json()
        with _span(self.tracer, f"{HANDOFF_SPAN} {kind}", attrs) as span:
            yield span

    @contextmanager
    def queue(self, *, model: str, slots: int) -> Generator[Span, None, None]:
        """The span of a wait for one of the `slots` concurrent calls `model` takes."""
        attrs: dict[str, Any] = {
            SPAN_KIND: "CHAIN",
            "handoffs.model": model,
            "handoffs.queue.slots": slots,
        }
        with _span(self.tracer, f"{QUEUE_SPAN} {model}", attrs) as span:
            yield span

    def observe_checks(self, *, attempt: int, model: str) -> Callable[[Check], Check]:
        """A `run_checks(wrap=...)` hook: each check of attempt number `attempt` (of `model`'s
        answer) runs in its own `check {name}` span, an EVALUATOR holding the check's result as
        `gen_ai.evaluation.*` attributes and, for a judge, its model call."""

        def wrap(check: Check) -> Check:
            return _ObservedCheck(
                check=check,
                tracer=self.tracer,
                attempt=attempt,
                model=model,
                explain=self.include_content,
            )

        return wrap

    def finish_handoff(
        self,
        span: Span,
        record: HandoffRecord,
        *,
        budget_left: Decimal | None,
        error: BaseException | None = None,
    ) -> None:
        """Set a handoff span's attributes and one evaluation event per check result, and record
        the handoff's metrics when there is a meter provider.

        A failed handoff's span is an error (`error.type`: the exception's type); so is a degraded
        one's (`error.type`: its cause), whose output is the task's fallback, not an answer.
        """
        span.set_attributes(handoff_attributes(record, budget_left=budget_left))
        for number, attempt in enumerate(record.attempts):
            for verdict in attempt.verdicts:
                event: dict[str, Any] = {
                    **evaluation_attributes(verdict, explain=self.include_content),
                    "handoffs.attempt": number,
                    "handoffs.model": attempt.model,
                }
                span.add_event(EVALUATION_EVENT, event)
        why = f" ({record.cause})" if record.cause else ""
        if record.status == "failed":
            span.set_attribute(ERROR_TYPE, type(error).__name__ if error else "HandoffFailed")
            span.set_status(Status(StatusCode.ERROR, f"failed{why}"))
        elif record.degraded:
            span.set_attribute(ERROR_TYPE, record.cause or "degraded")
            span.set_status(Status(StatusCode.ERROR, f"degraded{why}: the fallback was delivered"))
        if self.metrics is not None:
            self.metrics.record(record)

    @staticmethod
    def mark_transfer(span: Span, target: str) -> None:
        """Mark a delegating `execute_tool` span as a return-to-caller transfer to `target`."""
        if span.is_recording():
            span.set_attributes({TRANSFER_MODE: "return_to_caller", TRANSFER_TARGET: target})
