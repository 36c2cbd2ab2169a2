"""The thin path: after the agent's first call of a (model, output type), calls skip the agent loop
and send the same request, with the same records, feedback and spans."""

from __future__ import annotations

from typing import Literal

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from handoffs.catalog import Catalog
from handoffs.engine import Session
from handoffs.routing import Policy, Rule
from handoffs.task import Task
from handoffs.tracing import Tracing

from .conftest import Scripts


class Ticket(BaseModel):
    text: str


class Triage(BaseModel):
    category: Literal["billing", "bug", "other"]
    urgent: bool


LADDER = Policy(rules=(Rule(kind="classify", ladder=("tiny", "cheap")),))


def classify(text: str = "my invoice is wrong") -> Task[Triage]:
    return Task(
        kind="classify", input=Ticket(text=text), output_type=Triage, instructions="Sort it."
    )


def session(catalog: Catalog, scripts: Scripts, **kw: object) -> Session:
    return Session(catalog=catalog, models=scripts, policy=LADDER, tracing=False, **kw)  # type: ignore[arg-type]


def _shape_known(s: Session) -> bool:
    return any(shape.parameters is not None for shape in s._caller._shapes.values())  # pyright: ignore[reportPrivateUsage]


async def test_later_calls_send_what_the_agent_sent(catalog: Catalog, scripts: Scripts) -> None:
    scripts.on("tiny", lambda c: {"category": "billing", "urgent": c.number > 1})
    s = session(catalog, scripts)
    first = await s.delegate(classify())
    assert _shape_known(s)  # the agent's call taught the thin path the request's shape
    second = await s.delegate(classify())
    await s.delegate(classify("the app crashes"))
    one, two, three = scripts.calls["tiny"]
    assert (one.instructions, one.output_schema) == (two.instructions, two.output_schema)
    assert one.prompt == two.prompt and "the app crashes" in three.prompt
    assert one.instructions.startswith("Sort it.")
    assert first.output == Triage(category="billing", urgent=False)
    assert second.output == Triage(category="billing", urgent=True)
    assert second.input_tokens == first.input_tokens and second.cost_usd == first.cost_usd
    assert [a.outcome for a in second.attempts] == ["accepted"]


async def test_an_invalid_thin_answer_is_fed_back_with_what_was_wrong(
    catalog: Catalog, scripts: Scripts
) -> None:
    scripts.on(
        "tiny",
        lambda c: (
            {"category": "refund", "urgent": False}
            if c.number == 2
            else {"category": "billing", "urgent": False}
        ),
    )
    s = session(catalog, scripts)
    await s.delegate(classify())
    delivery = await s.delegate(classify())  # call 2 (thin) is invalid, call 3 corrects it
    assert [a.outcome for a in delivery.attempts] == ["invalid_output", "accepted"]
    error = delivery.attempts[0].error or ""
    assert "category" in error and "does not match its type" in error
    assert "did not validate" in scripts.calls["tiny"][2].prompt
    assert "category" in scripts.calls["tiny"][2].prompt


async def test_thin_off_keeps_every_call_on_the_agent(catalog: Catalog, scripts: Scripts) -> None:
    scripts.on("tiny", lambda c: {"category": "bug", "urgent": False})
    s = session(catalog, scripts, thin=False)
    for _ in range(2):
        assert (await s.delegate(classify())).output.category == "bug"
    assert len(scripts.calls["tiny"]) == 2


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


async def test_a_thin_call_leaves_the_agents_span_tree(catalog: Catalog, scripts: Scripts) -> None:
    scripts.on("tiny", lambda c: {"category": "billing", "urgent": False})
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    s = Session(
        catalog=catalog, models=scripts, policy=LADDER, tracing=Tracing(tracer_provider=provider)
    )
    for _ in range(2):
        await s.delegate(classify())
    spans = list(exporter.get_finished_spans())
    handoffs = [s for s in spans if s.name == "handoff classify"]
    assert len(handoffs) == 2
    trees: list[list[str]] = []
    for handoff in handoffs:
        [run, check] = _children(spans, handoff)
        assert (run.name, check.name) == ("invoke_agent subordinate:tiny", "check schema")
        attrs = dict(run.attributes or {})
        assert attrs["gen_ai.operation.name"] == "invoke_agent"
        assert attrs["gen_ai.agent.name"] == "subordinate:tiny"
        assert int(attrs["gen_ai.aggregated_usage.input_tokens"]) > 0  # pyright: ignore[reportArgumentType]
        trees.append([c.name for c in _children(spans, run)])
    assert trees[0] == trees[1] == ["chat tiny"]


async def test_lean_tracing_leaves_out_the_per_request_chat_span(
    catalog: Catalog, scripts: Scripts
) -> None:
    scripts.on("tiny", lambda c: {"category": "billing", "urgent": False})
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    lean = Tracing(tracer_provider=provider, lean=True)
    s = Session(catalog=catalog, models=scripts, policy=LADDER, tracing=lean)
    for _ in range(2):
        await s.delegate(classify())
    runs = [x for x in exporter.get_finished_spans() if x.name == "invoke_agent subordinate:tiny"]
    first, second = (_children(list(exporter.get_finished_spans()), r) for r in runs)
    assert [c.name for c in first] == ["chat tiny"]  # the agent's call
    assert second == []  # the thin call: no chat span, the usage on the run's span
    assert int((runs[1].attributes or {})["gen_ai.aggregated_usage.input_tokens"]) > 0  # pyright: ignore[reportArgumentType]


def test_the_standard_sampler_variables_sample_traces() -> None:
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from handoffs.errors import ConfigError
    from handoffs.tracing._export import sampler  # pyright: ignore[reportPrivateUsage]

    ratio = sampler({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"})
    assert isinstance(ratio, TraceIdRatioBased) and ratio.rate == 0.1
    assert isinstance(sampler({}), ParentBased)
    try:
        sampler({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "x"})
    except ConfigError as exc:
        assert "OTEL_TRACES_SAMPLER_ARG" in str(exc)
    else:
        raise AssertionError("a bad ratio must be a ConfigError")
