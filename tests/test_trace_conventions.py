"""What an OTLP viewer sees: the export read the way Arize Phoenix's OpenInference mapping reads it.

A small traced job (a judged handoff, a provider error failed over, a degraded and a failed handoff,
two handoffs queueing for a one-slot model) is exported through `job_tracer_provider` to a loopback
OTLP/HTTP receiver and to JSONL. Phoenix sorts spans by `openinference.span.kind` (else by the
GenAI operation), sums and sorts numeric attributes, filters on the span status and groups errors by
`error.type`, and names the service from the resource.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as ProtoStatus
from pydantic import BaseModel

from handoffs import Budget, Catalog, HandoffRecord, Session, Task, checks
from handoffs.errors import VerificationFailed
from handoffs.providers import Portfolio
from handoffs.routing import Policy, Rule
from handoffs.testing.scripted import ScriptCall, fail
from handoffs.tracing import SEMCONV_VERSION, Tracing, job_tracer_provider

from .conftest import Scripts, entry
from .test_tracing import SEMCONV

ROOT = Path(__file__).resolve().parents[1]
GENAI_KINDS = {
    "chat": "LLM",
    "text_completion": "LLM",
    "generate_content": "LLM",
    "embeddings": "EMBEDDING",
    "retrieval": "RETRIEVER",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
    "execute_tool": "TOOL",
    "invoke_workflow": "CHAIN",
}
"""How a viewer without an explicit kind maps a GenAI operation to an OpenInference span kind."""


class Ticket(BaseModel):
    text: str


class Triage(BaseModel):
    category: str


def value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def attributes(span: ProtoSpan) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in span.attributes}


def span_kind(attrs: dict[str, Any]) -> str:
    """The OpenInference span kind a viewer shows: explicit, else the GenAI operation's."""
    explicit = attrs.get("openinference.span.kind")
    if explicit:
        return str(explicit)
    return GENAI_KINDS.get(str(attrs.get("gen_ai.operation.name")), "UNKNOWN")


async def traced_scenario(
    catalog: Catalog, scripts: Scripts, *, env: dict[str, str], directory: Path, job_id: str
) -> list[HandoffRecord]:
    """One job exported through `job_tracer_provider`: a judged handoff, a provider error failed
    over, a degraded and a failed handoff, and two handoffs sharing a one-slot model."""
    one_slot = Catalog(
        [*catalog.values(), entry("slot", "local", "0.02", "0.02", max_concurrency=1)]
    )
    provider = job_tracer_provider(job_id, directory=directory, env=env)
    tracing = Tracing(tracer_provider=provider)
    policy = Policy(
        rules=(
            Rule(kind="classify", ladder=("tiny", "cheap")),
            Rule(kind="slow", ladder=("slot",)),
        )
    )
    session = Session(
        catalog=one_slot, models=scripts, policy=policy, budget=Budget("1"), tracing=tracing
    )
    arrived, release = anyio.Event(), anyio.Event()

    async def slot(call: ScriptCall) -> dict[str, str]:
        if call.number == 1:  # the first call holds the model's only slot until released
            arrived.set()
            await release.wait()
        return {"category": "bug"}

    def tiny(call: ScriptCall) -> Any:
        if '"down"' in call.prompt:
            raise fail(503)
        return {"category": "bug"}

    scripts.on("tiny", tiny)
    scripts.on("cheap", lambda c: {"category": "billing"})
    scripts.on("middle", lambda c: {"score": 0.9, "reasons": ["fine"]})
    scripts.on("slot", slot)
    never = checks.predicate(lambda t, i: False, name="never")

    async def job() -> None:
        judged = checks.judge(min_score=0.5, model="middle")
        await session.delegate(
            Task(kind="classify", input=Ticket(text="a"), output_type=Triage, checks=(judged,))
        )
        await session.delegate(Task(kind="classify", input=Ticket(text="down"), output_type=Triage))
        await session.delegate(
            Task(
                kind="classify",
                input=Ticket(text="b"),
                output_type=Triage,
                checks=(never,),
                fallback=Triage(category="other"),
                label="T-DEGRADED",
            )
        )
        with pytest.raises(VerificationFailed):
            await session.delegate(
                Task(kind="classify", input=Ticket(text="c"), output_type=Triage, checks=(never,))
            )
        async with anyio.create_task_group() as group:
            for text in ("first", "second"):
                task = Task(kind="slow", input=Ticket(text=text), output_type=Triage, label=text)
                group.start_soon(session.delegate, task)
                if text == "first":
                    await arrived.wait()
            await anyio.wait_all_tasks_blocked()  # the second is waiting for the slot
            release.set()

    with tracing.workflow("triage", job_id=job_id) as root:
        with anyio.fail_after(30):
            await job()
        tracing.finish_workflow(
            root,
            status="completed",
            handoffs=len(session.records),
            cost_usd=sum((r.cost_usd for r in session.records), Decimal(0)),
            orchestrator_cost_usd=Decimal("0.5"),
            budget_usd=Decimal("1"),
        )
    provider.shutdown()
    return session.records


@pytest.fixture
async def exported(
    tmp_path: Path, catalog: Catalog, scripts: Scripts, otlp_receiver: tuple[str, Any]
) -> dict[str, Any]:
    endpoint, bodies = otlp_receiver
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_SERVICE_NAME": "triage-service",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test,service.name=ignored",
    }
    records = await traced_scenario(catalog, scripts, env=env, directory=tmp_path, job_id="job-x")
    requests = [ExportTraceServiceRequest.FromString(b) for b in bodies["/v1/traces"]]
    resources = [rs.resource for r in requests for rs in r.resource_spans]
    spans = [
        s for r in requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans
    ]
    jsonl = [json.loads(line) for line in (tmp_path / "job-x.jsonl").read_text().splitlines()]
    return {"spans": spans, "resources": resources, "jsonl": jsonl, "records": records}


def test_every_span_has_a_kind_a_viewer_knows(exported: dict[str, Any]) -> None:
    kinds: dict[str, set[str]] = {}
    for span in exported["spans"]:
        kinds.setdefault(span.name.split(" ")[0], set()).add(span_kind(attributes(span)))
    assert kinds["invoke_workflow"] == {"CHAIN"}  # the job
    assert kinds["handoff"] == {"AGENT"}  # a delegation to a subordinate agent
    assert kinds["check"] == {"EVALUATOR"}  # each check's result
    assert kinds["queue"] == {"CHAIN"}
    assert kinds["invoke_agent"] == {"AGENT"} and kinds["chat"] == {"LLM"}
    assert all("UNKNOWN" not in k for k in kinds.values()), kinds


def test_cost_is_a_number_a_viewer_can_sum_and_sort(exported: dict[str, Any]) -> None:
    handoffs = [s for s in exported["spans"] if s.name.startswith("handoff ")]
    for span in handoffs:
        [cost] = [kv.value for kv in span.attributes if kv.key == "handoffs.cost_usd"]
        assert cost.WhichOneof("value") == "double_value"
        exact = attributes(span)["handoffs.cost_usd_decimal"]  # the exact copy, named as such
        assert Decimal(exact) == Decimal(repr(cost.double_value))
    total = sum(Decimal(attributes(s)["handoffs.cost_usd_decimal"]) for s in handoffs)
    assert total == sum(r.cost_usd for r in exported["records"]) > 0
    [job] = [s for s in exported["spans"] if s.name == "invoke_workflow triage"]
    assert attributes(job)["handoffs.orchestrator.cost_usd"] == 0.5
    # the JSONL file says the same: a JSON number
    for span in exported["jsonl"]:
        if span["name"].startswith("handoff "):
            assert isinstance(span["attributes"]["handoffs.cost_usd"], float)


def test_degraded_and_failed_handoffs_are_errors_and_every_error_has_a_type(
    exported: dict[str, Any],
) -> None:
    errors = [s for s in exported["spans"] if s.status.code == ProtoStatus.STATUS_CODE_ERROR]
    assert errors and all("error.type" in attributes(s) for s in errors)
    by_status = {
        attributes(s).get("handoffs.status"): s
        for s in exported["spans"]
        if s.name.startswith("handoff ") and attributes(s)["handoffs.status"] != "delivered"
    }
    degraded, failed = by_status["degraded"], by_status["failed"]
    assert degraded.status.code == ProtoStatus.STATUS_CODE_ERROR
    assert degraded.status.message == "degraded (verification): the fallback was delivered"
    assert attributes(degraded)["error.type"] == "verification"
    assert attributes(degraded)["handoffs.task.label"] == "T-DEGRADED"
    assert failed.status.code == ProtoStatus.STATUS_CODE_ERROR
    assert attributes(failed)["error.type"] == "VerificationFailed"
    # the provider error pydantic-ai recorded (its spans leave `error.type` out) is typed on export
    runs = [s for s in errors if s.name == "invoke_agent subordinate:tiny"]
    assert runs and attributes(runs[0])["error.type"] == "pydantic_ai.exceptions.ModelHTTPError"


def test_the_service_is_named_from_the_environment(exported: dict[str, Any]) -> None:
    for resource in exported["resources"]:
        attrs = {kv.key: value(kv.value) for kv in resource.attributes}
        assert attrs["service.name"] == "triage-service"  # OTEL_SERVICE_NAME wins
        assert attrs["deployment.environment.name"] == "test"  # OTEL_RESOURCE_ATTRIBUTES
        assert attrs["handoffs.job.id"] == "job-x"


def test_checks_are_evaluations_and_a_judge_call_is_marked_as_one(
    exported: dict[str, Any],
) -> None:
    spans = exported["spans"]
    by_id = {s.span_id: s for s in spans}
    [judged] = [s for s in spans if s.name == "check judge"]
    attrs = attributes(judged)
    assert attrs["gen_ai.evaluation.name"] == "judge"
    assert attrs["gen_ai.evaluation.score.label"] == "pass"
    assert attrs["gen_ai.evaluation.score.value"] == 0.9
    assert attrs["handoffs.check.model"] == "middle" and attrs["handoffs.model"] == "tiny"
    assert attrs["output.value"] == "pass"
    # the judge's model call sits inside its check, named as a check call: no subordinate run
    [call] = [s for s in spans if s.parent_span_id == judged.span_id]
    assert call.name == "invoke_agent check:middle"
    assert by_id[judged.parent_span_id].name == "handoff classify"
    assert not [s for s in spans if s.name == "invoke_agent subordinate:middle"]
    # every verdict is an EVALUATOR span under its handoff, schema first
    handoff = by_id[judged.parent_span_id]
    checks_of = [s.name for s in spans if s.parent_span_id == handoff.span_id]
    assert checks_of == ["invoke_agent subordinate:tiny", "check schema", "check judge"]


def test_time_queued_for_a_slot_is_its_own_span(exported: dict[str, Any]) -> None:
    spans = exported["spans"]
    by_id = {s.span_id: s for s in spans}
    [queued] = [s for s in spans if s.name == "queue slot"]
    assert attributes(queued)["handoffs.queue.slots"] == 1
    waiting = by_id[queued.parent_span_id]
    assert waiting.name == "handoff slow" and attributes(waiting)["handoffs.task.label"] == "second"
    assert queued.end_time_unix_nano > queued.start_time_unix_nano
    # the handoff that found the slot free did not queue
    first = [s for s in spans if attributes(s).get("handoffs.task.label") == "first"]
    assert first and not [s for s in spans if s.parent_span_id == first[0].span_id and s.name.startswith("queue")]  # fmt: skip


def test_no_deprecated_gen_ai_system_and_every_unregistered_gen_ai_key_is_documented(
    exported: dict[str, Any],
) -> None:
    if not SEMCONV.is_dir():
        pytest.skip(f"pinned semantic conventions not found at {SEMCONV}")
    import yaml

    registry = yaml.safe_load((SEMCONV / "registry.yaml").read_text())["groups"]
    known = {a["id"] for g in registry for a in g.get("attributes", []) if "id" in a}
    seen: set[str] = set()
    for span in exported["spans"]:
        seen |= {k for k in attributes(span) if k.startswith("gen_ai.")}
        for event in span.events:
            seen |= {kv.key for kv in event.attributes if kv.key.startswith("gen_ai.")}
    assert "gen_ai.system" not in seen  # deprecated: dropped on export
    assert "gen_ai.provider.name" in seen
    docs = (ROOT / "docs" / "tracing.md").read_text()
    documented = set(re.findall(r"`(gen_ai\.[a-z_.]+?)(?:\.\*)?`", docs))
    outside = sorted(k for k in seen - known)
    undocumented = [
        k for k in outside if not any(k == d or k.startswith(d + ".") for d in documented)
    ]
    assert outside and not undocumented, f"document in docs/tracing.md: {undocumented}"
    assert SEMCONV_VERSION in docs


def test_an_openai_compatible_models_spans_name_the_provider_as_its_records_do() -> None:
    local = entry("local", "local", "0.01", "0.02", base_url="http://127.0.0.1:9/v1")
    portfolio = Portfolio(Catalog([local]), env={})
    model = portfolio.model("local")
    assert model.system == local.provider == "openai-compatible"


PHOENIX = os.environ.get("HANDOFFS_PHOENIX_URL", "")
"""A running Arize Phoenix to check against (e.g. `http://127.0.0.1:6006`; docs/tracing.md)."""


@pytest.mark.skipif(not PHOENIX, reason="set HANDOFFS_PHOENIX_URL to a running Arize Phoenix")
async def test_a_real_phoenix_sorts_the_spans_and_sums_the_costs(
    tmp_path: Path, catalog: Catalog, scripts: Scripts
) -> None:
    """The scenario above, sent to a real Phoenix over OTLP/HTTP and read back from its REST API:
    every span arrives, with the kinds, numbers and statuses the tests above read."""
    project = f"handoffs-test-{uuid.uuid4().hex[:8]}"
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": PHOENIX,
        "OTEL_SERVICE_NAME": "handoffs-test",
        "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={project}",
    }
    records = await traced_scenario(catalog, scripts, env=env, directory=tmp_path, job_id="job-p")
    sent = len((tmp_path / "job-p.jsonl").read_text().splitlines())

    def fetch() -> list[dict[str, Any]]:
        url = f"{PHOENIX.rstrip('/')}/v1/projects/{project}/spans?limit=1000"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=5) as response:
                return list(json.load(response)["data"])
        except urllib.error.HTTPError:  # the project appears with its first span
            return []

    spans: list[dict[str, Any]] = []
    with anyio.fail_after(60):  # Phoenix ingests in the background
        while len(spans) < sent:
            spans = await anyio.to_thread.run_sync(fetch)
            if len(spans) < sent:
                await anyio.sleep(0.5)
    kinds = {(s["name"].split(" ")[0], s["span_kind"]) for s in spans}
    assert {("invoke_workflow", "CHAIN"), ("handoff", "AGENT"), ("check", "EVALUATOR")} <= kinds
    assert {("queue", "CHAIN"), ("chat", "LLM"), ("invoke_agent", "AGENT")} <= kinds
    assert not [s["name"] for s in spans if s["span_kind"] == "UNKNOWN"]
    costs = [
        s["attributes"]["handoffs.cost_usd"] for s in spans if s["name"].startswith("handoff ")
    ]
    assert all(isinstance(c, float) for c in costs)
    assert Decimal(str(sum(costs))).quantize(Decimal("1E-12")) == sum(
        r.cost_usd for r in records
    ).quantize(Decimal("1E-12"))
    errors = [s for s in spans if s["status_code"] == "ERROR"]
    assert errors and all("error.type" in s["attributes"] for s in errors)
    assert {s["attributes"].get("handoffs.status") for s in errors} >= {"degraded", "failed"}
    assert not [s for s in spans if "gen_ai.system" in s["attributes"]]
