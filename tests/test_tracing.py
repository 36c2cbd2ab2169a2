"""Tracing: the span tree of a job, conformance to the pinned GenAI conventions, no secrets in any
exporter (spans and metrics), the JSONL file per job, OTLP/HTTP to a loopback receiver, and
`trace show`."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.metrics import MeterProvider
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import BaseModel
from typer.testing import CliRunner

from handoffs import Budget, Catalog, Session, Task, checks
from handoffs.cli import app
from handoffs.errors import VerificationFailed
from handoffs.health import BreakerSettings, Health
from handoffs.orchestrator import Orchestrator
from handoffs.project import job_simulation, load_config, load_job
from handoffs.routing import Policy, Rule
from handoffs.testing import FakeProvider, LoopbackServer
from handoffs.testing.scripted import fail
from handoffs.testing.simulation import simulate
from handoffs.tracing import (
    METRICS_SUFFIX,
    SEMCONV_VERSION,
    SPAN_KIND,
    TRANSFER_MODE,
    TRANSFER_TARGET,
    JsonlSpanExporter,
    Tracing,
    metrics_path,
)

from .conftest import Scripts
from .test_cli import JOB, SIMULATED_CONFIG
from .test_orchestrator import Planner, classifier, make_session

SEMCONV = (
    Path(__file__).resolve().parents[1].parent / "shared" / "semconv" / f"gen-ai-v{SEMCONV_VERSION}"
)

HANDOFF_ATTRIBUTES = {
    "handoffs.task.id",
    "handoffs.task.kind",
    "handoffs.task.risk",
    "handoffs.status",
    "handoffs.route",
    "handoffs.route.reasons",
    "handoffs.attempts",
    "handoffs.escalations",
    "handoffs.verdicts",
    "handoffs.cost_usd",
    "handoffs.budget.left_usd",
    "handoffs.degraded",
}


def traced(exporter: InMemorySpanExporter, meters: MeterProvider | None = None) -> Tracing:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(tracer_provider=provider, meter_provider=meters)


async def traced_job(
    catalog: Catalog, scripts: Scripts, meters: MeterProvider | None = None
) -> list[ReadableSpan]:
    """Six tickets; the cheapest model answers `other` for T2 and T5, so those two escalate."""

    def tiny(call: Any) -> dict[str, str]:
        return {"category": "other" if ('"T2"' in call.prompt or '"T5"' in call.prompt) else "bug"}

    scripts.on("tiny", tiny)
    scripts.on("cheap", lambda c: {"category": "billing"})
    exporter = InMemorySpanExporter()
    tracing = traced(exporter, meters)
    session = make_session(catalog, scripts, Planner(), Budget("1"))
    session.tracing = tracing
    orch = Orchestrator(model="best", subordinates=[classifier], session=session)
    with tracing.workflow("triage", job_id="job1"):
        result = await orch.run("Classify these tickets")
    assert result.status == "completed"
    return list(exporter.get_finished_spans())


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


async def test_handoff_spans_nest_under_the_orchestrators_execute_tool_spans(
    catalog: Catalog, scripts: Scripts
) -> None:
    spans = await traced_job(catalog, scripts)
    [root] = [s for s in spans if s.parent is None]
    assert root.name == "invoke_workflow triage"
    [agent] = children(spans, root)
    assert agent.name == "invoke_agent orchestrator"
    tools = [s for s in children(spans, agent) if s.name.startswith("execute_tool")]
    assert len(tools) == 6
    handoffs: list[ReadableSpan] = []
    for tool in tools:
        attrs = dict(tool.attributes or {})
        assert attrs[TRANSFER_MODE] == "return_to_caller"
        assert attrs[TRANSFER_TARGET] == "classify_ticket"
        [handoff] = children(spans, tool)
        assert handoff.name == "handoff classify"
        assert HANDOFF_ATTRIBUTES <= set(handoff.attributes or {})
        # its attempts' runs, then each check of an attempt in its own span
        runs = children(spans, handoff)
        assert runs and all(
            s.name.startswith(("invoke_agent subordinate:", "check ")) for s in runs
        )
        assert runs[0].name.startswith("invoke_agent subordinate:")
        handoffs.append(handoff)
    by_label = {h.attributes["handoffs.task.label"]: h for h in handoffs if h.attributes}
    escalated = by_label["T2"].attributes or {}
    assert escalated["handoffs.escalations"] == 1 and escalated["handoffs.model"] == "cheap"
    # the cheapest model is retried once with feedback, then the handoff escalates
    assert escalated["handoffs.attempt.outcomes"] == ("rejected", "rejected", "accepted")
    assert escalated["handoffs.attempt.models"] == ("tiny", "tiny", "cheap")
    assert (by_label["T0"].attributes or {})["handoffs.model"] == "tiny"
    # one evaluation event per check per attempt: schema, then the predicate
    evaluations = [e for e in by_label["T2"].events if e.name == "gen_ai.evaluation.result"]
    labels = [(e.attributes or {})["gen_ai.evaluation.score.label"] for e in evaluations]
    assert labels == ["pass", "fail", "pass", "fail", "pass", "pass"]
    assert (evaluations[1].attributes or {})["gen_ai.evaluation.name"] == "predicate:specific"
    # cost per handoff sums to what the session recorded
    total = sum(Decimal(str((h.attributes or {})["handoffs.cost_usd"])) for h in handoffs)
    assert total > 0


async def test_prompt_and_response_text_stay_out_of_spans_by_default(
    catalog: Catalog, scripts: Scripts
) -> None:
    spans = await traced_job(catalog, scripts)
    dumped = json.dumps([dict(s.attributes or {}) for s in spans], default=str)
    assert "Classify these tickets" not in dumped  # the goal (a prompt)
    assert "app crashes" not in dumped  # ticket text (job data)
    assert '"category"' not in dumped  # subordinate answers


async def test_failed_handoff_span_carries_error_type_and_error_status(
    catalog: Catalog, scripts: Scripts
) -> None:
    class Ticket(BaseModel):
        text: str

    class Triage(BaseModel):
        category: str

    scripts.on("tiny", lambda c: {"category": "other"})
    exporter = InMemorySpanExporter()
    policy = Policy(rules=(Rule(kind="classify", ladder=("tiny",)),))
    session = Session(catalog=catalog, models=scripts, policy=policy, tracing=traced(exporter))
    task = Task(
        kind="classify",
        input=Ticket(text="hi"),
        output_type=Triage,
        checks=(checks.predicate(lambda t, i: t.category != "other", name="specific"),),
    )
    with pytest.raises(VerificationFailed):
        await session.delegate(task)
    [span] = [s for s in exporter.get_finished_spans() if s.name == "handoff classify"]
    attrs = dict(span.attributes or {})
    assert attrs["handoffs.status"] == "failed" and attrs["error.type"] == "VerificationFailed"
    assert span.status.status_code is StatusCode.ERROR


async def test_handoff_span_records_breakers_cause_and_each_attempts_cost_and_fault(
    catalog: Catalog, scripts: Scripts
) -> None:
    class Ticket(BaseModel):
        text: str

    class Triage(BaseModel):
        category: str

    def down(call: Any) -> Any:
        raise fail(503)

    scripts.on("tiny", down)
    scripts.on("cheap", lambda c: {"category": "billing"})
    exporter = InMemorySpanExporter()
    policy = Policy(rules=(Rule(kind="classify", ladder=("tiny", "cheap")),))
    health = Health(BreakerSettings(failure_threshold=1))  # one failure opens a breaker
    session = Session(
        catalog=catalog, models=scripts, policy=policy, tracing=traced(exporter), health=health
    )
    delivered = await session.delegate(
        Task(kind="classify", input=Ticket(text="hi"), output_type=Triage, label="ok")
    )
    never = checks.predicate(lambda t, i: False, name="never")
    degraded = await session.delegate(
        Task(
            kind="classify",
            input=Ticket(text="hi"),
            output_type=Triage,
            checks=(never,),
            fallback=Triage(category="other"),
            label="degraded",
        )
    )
    spans = {
        (s.attributes or {})["handoffs.task.label"]: dict(s.attributes or {})
        for s in exporter.get_finished_spans()
        if s.name == "handoff classify"
    }
    ok = spans["ok"]
    # tiny's endpoint failed, cheap answered: the fault and what each attempt cost
    assert ok["handoffs.attempt.models"] == ("tiny", "cheap")
    assert ok["handoffs.attempt.faults"] == ("unavailable", "")
    costs = [Decimal(c) for c in ok["handoffs.attempt.costs_usd"]]
    assert costs == [a.cost_usd for a in delivered.attempts] and costs[1] > 0
    assert sum(costs) == Decimal(ok["handoffs.cost_usd_decimal"])
    assert "handoffs.cause" not in ok
    # the breakers the router saw, for each model it considered: closed before the first call
    assert ok["handoffs.breakers"] == ("tiny:closed", "cheap:closed")
    bad = spans["degraded"]
    assert bad["handoffs.status"] == "degraded" and bad["handoffs.cause"] == "verification"
    assert bad["handoffs.cause"] == degraded.record.cause
    # tiny's 503 opened its breaker: the router saw it open and left tiny out
    assert bad["handoffs.breakers"] == ("tiny:open", "cheap:closed")
    assert set(bad["handoffs.attempt.models"]) == {"cheap"}
    assert set(bad["handoffs.attempt.faults"]) == {""}


# -- conformance to the pinned conventions -------------------------------------------------------

SPAN_GROUPS = {
    "chat": "span.gen_ai.inference.client",
    "invoke_agent": "span.gen_ai.invoke_agent.internal",
    "execute_tool": "span.gen_ai.execute_tool.internal",
    "invoke_workflow": "span.gen_ai.invoke_workflow.internal",
}
KNOWN_GAPS = {("invoke_agent", "gen_ai.provider.name")}
"""pydantic-ai 2.68 omits `gen_ai.provider.name` on in-process `invoke_agent` spans."""
DRAFT = {TRANSFER_MODE, TRANSFER_TARGET}
"""From semantic-conventions-genai (unreleased), not in the pinned release."""
OWN_SPANS = {"handoff", "check", "queue"}
"""The project's own spans (not GenAI operations): `handoff {kind}`, `check {name}`,
`queue {model}`."""


@pytest.fixture(scope="module")
def semconv() -> dict[str, Any]:
    if not SEMCONV.is_dir():
        pytest.skip(f"pinned semantic conventions not found at {SEMCONV}")
    import yaml

    groups: dict[str, Any] = {}
    for name in ("registry.yaml", "spans.yaml", "events.yaml"):
        for group in yaml.safe_load((SEMCONV / name).read_text())["groups"]:
            groups[group["id"]] = group
    return groups


def registry(groups: dict[str, Any]) -> dict[str, Any]:
    return {a["id"]: a for a in groups["registry.gen_ai"]["attributes"]}


def required(groups: dict[str, Any], group_id: str) -> set[str]:
    group = groups[group_id]
    names = {
        a["ref"] for a in group.get("attributes", []) if a.get("requirement_level") == "required"
    }
    if "extends" in group:
        names |= required(groups, group["extends"])
    return names


async def test_spans_follow_the_pinned_genai_conventions(
    catalog: Catalog, scripts: Scripts, semconv: dict[str, Any]
) -> None:
    spans = await traced_job(catalog, scripts)
    known = registry(semconv)
    operations = {m["value"] for m in known["gen_ai.operation.name"]["type"]["members"]}
    checked: set[str] = set()
    for span in spans:
        attrs = dict(span.attributes or {})
        op, _, target = span.name.partition(" ")
        if op in OWN_SPANS:  # the project's own spans: its own namespace, OpenInference's kind
            own = {k for k in attrs if not k.startswith(("handoffs.", "gen_ai.evaluation."))}
            assert own <= {"error.type", SPAN_KIND, "output.value"}, attrs
            assert {k for k in attrs if k.startswith("gen_ai.")} <= set(known)
            if op == "check":  # an evaluation: the event's required attributes, on a span
                assert required(semconv, "event.gen_ai.evaluation.result") <= set(attrs)
            for event in span.events:
                event_attrs = dict(event.attributes or {})
                assert event.name == "gen_ai.evaluation.result"
                assert required(semconv, "event.gen_ai.evaluation.result") <= set(event_attrs)
                assert all(k in known for k in event_attrs if k.startswith("gen_ai."))
            continue
        assert op in operations and target, span.name  # `{operation} {target}`
        assert attrs["gen_ai.operation.name"] == op
        missing = required(semconv, SPAN_GROUPS[op]) - set(attrs)
        assert {(op, m) for m in missing} <= KNOWN_GAPS, (span.name, missing)
        checked.add(op)
        if op == "invoke_workflow":
            assert attrs["gen_ai.workflow.name"] == target
        if op == "execute_tool":  # pydantic-ai's span; the transfer attributes are drafts
            assert DRAFT <= set(attrs) and not DRAFT & set(known)
        if op == "invoke_workflow":  # the project's span: every gen_ai.* attribute is defined
            ours = {k for k in attrs if k.startswith("gen_ai.")}
            assert ours <= set(known), ours - set(known)
    assert checked == set(SPAN_GROUPS)


# -- exporters -----------------------------------------------------------------------------------


def test_jsonl_file_appears_only_when_complete(tmp_path: Path) -> None:
    path = tmp_path / "traces" / "j1.jsonl"
    exporter = JsonlSpanExporter(path)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("outer"), tracer.start_as_current_span("inner"):
        pass
    assert not path.exists() and path.with_name("j1.jsonl.part").exists()
    provider.shutdown()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [s["name"] for s in lines] == ["inner", "outer"]
    assert lines[0]["parent_span_id"] == lines[1]["span_id"]
    assert not path.with_name("j1.jsonl.part").exists()


class AuthLog:
    """ASGI middleware remembering the Authorization headers the fake provider received."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen += [v for k, v in scope["headers"] if k == b"authorization"]
        await self.app(scope, receive, send)


PLANTED = {
    "HANDOFFS_PLANTED_KEY": "sk-planted-0123456789abcdefSELFHOSTED",
    "OPENAI_API_KEY": "sk-planted-0123456789abcdefOPENAI",
    "ANTHROPIC_API_KEY": "sk-ant-planted-0123456789abcdefANTHROPIC",
}


def test_planted_api_keys_reach_no_exporter(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    otlp_receiver: tuple[str, dict[str, list[bytes]]],
) -> None:
    endpoint, bodies = otlp_receiver
    simulated = tmp_path / "simulated.toml"
    simulated.write_text(SIMULATED_CONFIG)
    spec = load_job(JOB, load_config(simulated).catalog)
    sim = job_simulation(spec)
    names = ["gpt-4.1-nano", "gpt-4.1-mini", "claude-sonnet-4-6"]
    fake = AuthLog(FakeProvider({n: simulate(sim) for n in names}))
    with LoopbackServer(fake) as server:
        # every model is self-hosted behind the fake provider and needs the planted key
        config = tmp_path / "handoffs.toml"
        config.write_text(
            SIMULATED_CONFIG.replace('provider = "openai"', 'provider = "openai-compatible"')
            .replace('provider = "anthropic"', 'provider = "openai-compatible"')
            .replace(
                'tier = "',
                f'base_url = "{server.openai_base_url}"\napi_key_env = "HANDOFFS_PLANTED_KEY"\n'
                'input_usd_per_mtok = "0.5"\noutput_usd_per_mtok = "2"\ntier = "',
            )
        )
        for name, value in PLANTED.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        traces = tmp_path / "traces"
        result = CliRunner(env={"COLUMNS": "200"}).invoke(
            app,
            ["run", str(JOB), "-c", str(config), "--trace-dir", str(traces), "--trace-console"],
        )
    assert result.exit_code == 0, result.output
    key = PLANTED["HANDOFFS_PLANTED_KEY"].encode()
    assert fake.seen and all(v == b"Bearer " + key for v in fake.seen)  # the key was in play
    [jsonl] = [p for p in traces.glob("*.jsonl") if not p.name.endswith(METRICS_SUFFIX)]
    [metrics] = traces.glob("*" + METRICS_SUFFIX)
    outputs = {
        "jsonl": jsonl.read_bytes(),
        "metrics jsonl": metrics.read_bytes(),
        "console": result.stderr.encode(),
        "otlp": b"".join(bodies["/v1/traces"]),
        "otlp metrics": b"".join(bodies["/v1/metrics"]),
        "stdout": result.stdout.encode(),
    }
    for name, data in outputs.items():
        # the exporter did export: spans, metrics (the console has both)
        assert b"handoff classify" in data or "metrics" in name or name == "stdout", name
        assert b"handoffs.handoffs" in data or name in ("jsonl", "otlp", "stdout"), name
        for planted in PLANTED.values():
            assert planted.encode() not in data, f"{planted} leaked into {name}"
    request = ExportTraceServiceRequest()
    exported = [
        span.name
        for body in bodies["/v1/traces"]
        for rs in request.FromString(body).resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]
    assert "invoke_workflow support-triage" in exported
    assert exported.count("handoff classify") == 30
    handoffs = [
        point.as_int
        for body in bodies["/v1/metrics"]
        for rm in ExportMetricsServiceRequest.FromString(body).resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "handoffs.handoffs"
        for point in metric.sum.data_points
    ]
    assert sum(handoffs) == 70  # every handoff of the job, counted once, over OTLP


# -- the CLI round trip --------------------------------------------------------------------------


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    return CliRunner(env={"COLUMNS": "200"})


def test_run_writes_a_trace_that_trace_show_reads_back(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "handoffs.toml"
    config.write_text(SIMULATED_CONFIG)
    traces = tmp_path / "traces"
    ran = runner.invoke(
        app, ["run", str(JOB), "-c", str(config), "--trace-dir", str(traces), "--json"]
    )
    assert ran.exit_code == 0, ran.output
    report = json.loads(ran.stdout)
    job_id = report["job_id"]
    path = traces / f"{job_id}.jsonl"
    assert f"job {job_id} — trace: {path}" in ran.stderr
    metrics = metrics_path(traces, job_id)  # no .part left behind
    assert sorted(p.name for p in traces.iterdir()) == sorted([path.name, metrics.name])
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    ids = {s["span_id"] for s in spans}
    assert all(s["parent_span_id"] in ids for s in spans if s["parent_span_id"])
    assert sum(1 for s in spans if s["parent_span_id"] is None) == 1

    shown = runner.invoke(app, ["trace", "show", job_id, "--dir", str(traces), "--json"])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.stdout)
    assert doc["job"] == "support-triage" and doc["status"] == "completed"
    assert doc["cost_usd"] == report["total_cost_usd"]
    by_id = {h["task_id"]: h for h in doc["handoffs"]}  # in start order, records in end order
    assert len(by_id) == len(report["handoffs"]) == 70
    for recorded in report["handoffs"]:
        traced_h = by_id[recorded["task_id"]]
        assert traced_h["cost_usd"] == recorded["cost_usd"]
        assert traced_h["model"] == recorded["model"]
        assert traced_h["attempts"] == len(recorded["attempts"])

    tree = runner.invoke(app, ["trace", "show", job_id, "--dir", str(traces)])
    assert tree.exit_code == 0, tree.output
    assert f"job support-triage ({job_id})" in tree.stdout
    assert "orchestrator (claude-sonnet-4-6)" in tree.stdout
    assert "✓ classify T-001" in tree.stdout


def test_trace_show_of_an_unknown_job_is_one_line_and_exit_2(
    runner: CliRunner, tmp_path: Path
) -> None:
    for job_id in ("nope", "../etc/passwd"):
        result = runner.invoke(app, ["trace", "show", job_id, "--dir", str(tmp_path)])
        assert result.exit_code == 2
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: no trace for job")
