"""Metrics: the project's instruments recorded from each finished handoff, pydantic-ai's token
histograms on the same meter provider, conformance to the pinned GenAI metric conventions, and the
JSONL file per job (OTLP/HTTP and the key-leak scan of every metrics exporter: tests/test_tracing.py).
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel
from typer.testing import CliRunner

from handoffs import Catalog, Session, Task, checks
from handoffs.cli import app
from handoffs.errors import VerificationFailed
from handoffs.handoff import Attempt, HandoffRecord
from handoffs.routing import Policy, Rule
from handoffs.testing.scripted import fail
from handoffs.tracing import (
    HandoffMetrics,
    job_meter_provider,
    metric_to_json,
    metrics_path,
    otlp_metrics_endpoint,
)

from .conftest import Scripts
from .test_cli import JOB, SIMULATED_CONFIG
from .test_tracing import SEMCONV, traced, traced_job

Metrics = list[dict[str, Any]]


def collected(reader: InMemoryMetricReader) -> Metrics:
    """What the reader holds, in the JSONL file's shape (`metric_to_json`)."""
    data = reader.get_metrics_data()
    assert data is not None
    return [
        metric_to_json(metric, scope=sm.scope.name)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    ]


def points(metrics: Metrics, name: str) -> list[dict[str, Any]]:
    return [p for m in metrics if m["name"] == name for p in m["points"]]


def total(metrics: Metrics, name: str, key: str = "value") -> float:
    return sum(p[key] for p in points(metrics, name))


def by(metrics: Metrics, name: str, attribute: str, key: str = "value") -> dict[Any, float]:
    out: Counter[Any] = Counter()
    for p in points(metrics, name):
        out[p["attributes"].get(attribute)] += p[key]
    return dict(out)


class Ticket(BaseModel):
    text: str


class Triage(BaseModel):
    category: str


def meters() -> tuple[MeterProvider, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return MeterProvider(metric_readers=[reader]), reader


async def test_a_traced_job_records_handoff_attempt_and_token_metrics(
    catalog: Catalog, scripts: Scripts
) -> None:
    provider, reader = meters()
    spans = await traced_job(catalog, scripts, provider)
    metrics = collected(reader)
    handoffs = [dict(s.attributes or {}) for s in spans if s.name == "handoff classify"]
    paid = sum(Decimal(str(h["handoffs.cost_usd"])) for h in handoffs)
    # six handoffs: four delivered by tiny, two escalated (T2, T5) to cheap
    assert by(metrics, "handoffs.handoffs", "handoffs.model") == {"tiny": 4, "cheap": 2}
    assert by(metrics, "handoffs.handoffs", "handoffs.status") == {"delivered": 6}
    assert by(metrics, "handoffs.handoffs", "handoffs.degraded") == {False: 6}
    assert all(
        "handoffs.cause" not in p["attributes"] for p in points(metrics, "handoffs.handoffs")
    )
    assert by(metrics, "handoffs.escalations", "handoffs.model") == {"tiny": 0, "cheap": 2}
    assert total(metrics, "handoffs.handoff.cost", "count") == 6
    assert total(metrics, "handoffs.handoff.cost", "sum") == pytest.approx(float(paid))
    assert total(metrics, "handoffs.handoff.duration", "count") == 6
    # ten attempts (T2 and T5: tiny, tiny with feedback, cheap): a rejected answer is no error
    duration = "gen_ai.client.operation.duration"
    assert by(metrics, duration, "gen_ai.request.model", "count") == {"tiny": 8, "cheap": 2}
    assert by(metrics, duration, "handoffs.attempt.outcome", "count") == {
        "accepted": 6,
        "rejected": 4,
    }
    assert all("error.type" not in p["attributes"] for p in points(metrics, duration))
    assert {p["attributes"]["gen_ai.operation.name"] for p in points(metrics, duration)} == {
        "invoke_agent"
    }
    assert total(metrics, "handoffs.attempt.cost", "sum") == pytest.approx(float(paid))
    # pydantic-ai's own histograms, on the same provider: tokens per model call, in and out
    usage = "gen_ai.client.token.usage"
    [scope] = {m["scope"] for m in metrics if m["name"] == usage}
    assert scope == "pydantic-ai"
    assert set(by(metrics, usage, "gen_ai.token.type", "count")) == {"input", "output"}
    assert set(by(metrics, usage, "gen_ai.request.model", "count")) == {"tiny", "cheap", "best"}
    provider.shutdown()


def test_without_a_meter_provider_nothing_is_measured() -> None:
    tracing = traced(InMemorySpanExporter())
    assert tracing.meter_provider is None and tracing.metrics is None


async def failing_session(catalog: Catalog, scripts: Scripts, provider: MeterProvider) -> None:
    """tiny's endpoint is down (503); cheap answers, except for `bad` tickets, where its answer
    does not validate: one handoff delivers after a fault, one fails verification."""

    def down(call: Any) -> Any:
        raise fail(503)

    scripts.on("tiny", down)
    scripts.on("cheap", lambda c: {"wrong": 1} if "bad" in c.prompt else {"category": "billing"})
    policy = Policy(rules=(Rule(kind="classify", ladder=("tiny", "cheap")),))
    tracing = traced(InMemorySpanExporter(), provider)
    session = Session(catalog=catalog, models=scripts, policy=policy, tracing=tracing)
    delivered = await session.delegate(
        Task(kind="classify", input=Ticket(text="fine"), output_type=Triage)
    )
    assert delivered.model == "cheap"
    specific = checks.predicate(lambda t, i: True, name="specific")
    with pytest.raises(VerificationFailed):
        await session.delegate(
            Task(kind="classify", input=Ticket(text="bad"), output_type=Triage, checks=(specific,))
        )


async def test_failed_attempts_carry_error_type_and_failed_handoffs_their_cause(
    catalog: Catalog, scripts: Scripts
) -> None:
    provider, reader = meters()
    await failing_session(catalog, scripts, provider)
    metrics = collected(reader)
    duration = points(metrics, "gen_ai.client.operation.duration")
    errors = Counter(
        (p["attributes"]["gen_ai.request.model"], p["attributes"].get("error.type"), p["count"])
        for p in duration
    )
    # tiny failed twice (fault kind), cheap answered once well and twice without validating
    assert errors == Counter(
        {("tiny", "unavailable", 2): 1, ("cheap", None, 1): 1, ("cheap", "invalid_output", 2): 1}
    )
    outcomes = {
        (p["attributes"]["handoffs.status"], p["attributes"].get("handoffs.cause")): p["value"]
        for p in points(metrics, "handoffs.handoffs")
    }
    assert outcomes == {("delivered", None): 1, ("failed", "verification"): 1}
    provider.shutdown()


# -- conformance to the pinned conventions -------------------------------------------------------

KIND = {"histogram": "histogram", "counter": "sum", "updowncounter": "sum", "gauge": "gauge"}
KNOWN_GAPS = {("pydantic-ai", "gen_ai.system")}
"""pydantic-ai 2.68 still sends the deprecated `gen_ai.system` beside `gen_ai.provider.name`."""
UNDEFINED = {("pydantic-ai", "operation.cost")}
"""pydantic-ai's cost histogram: not a GenAI convention (the project's own is under `handoffs.`)."""
ENUMS = ("gen_ai.operation.name", "gen_ai.token.type")


@pytest.fixture(scope="module")
def conventions() -> dict[str, Any]:
    if not SEMCONV.is_dir():
        pytest.skip(f"pinned semantic conventions not found at {SEMCONV}")
    import yaml

    groups: dict[str, Any] = {}
    for name in ("registry.yaml", "spans.yaml", "events.yaml", "metrics.yaml"):
        for group in yaml.safe_load((SEMCONV / name).read_text())["groups"]:
            groups[group["id"]] = group
    return groups


def refs(groups: dict[str, Any], group_id: str) -> dict[str, Any]:
    """Attribute -> requirement level of a group, its `extends` chain included."""
    group = groups[group_id]
    found = refs(groups, group["extends"]) if "extends" in group else {}
    found.update({a["ref"]: a.get("requirement_level") for a in group.get("attributes", [])})
    return found


def check_conventions(metrics: Metrics, groups: dict[str, Any]) -> set[str]:
    """Assert every metric conforms; return the names that are defined by the pinned YAML."""
    registry = {a["id"]: a for a in groups["registry.gen_ai"]["attributes"]}
    defined = {g["metric_name"]: g for g in groups.values() if g.get("type") == "metric"}
    validated: set[str] = set()
    for m in metrics:
        where = (m["scope"], m["name"])
        for p in m["points"]:
            attrs = p["attributes"]
            for key, value in attrs.items():
                if key.startswith("gen_ai."):
                    assert key in registry or (m["scope"], key) in KNOWN_GAPS, (where, key)
                if key in ENUMS:
                    assert value in {x["value"] for x in registry[key]["type"]["members"]}, value
            if m["scope"] == "handoffs":  # the project's own: its namespace, or a registered name
                assert all(
                    k.startswith(("handoffs.", "gen_ai.")) or k == "error.type" for k in attrs
                )
        if m["name"] not in defined:
            assert m["name"].startswith("handoffs.") or where in UNDEFINED, where
            continue
        group = defined[m["name"]]
        assert m["kind"] == KIND[group["instrument"]] and m["unit"] == group["unit"], where
        levels = refs(groups, group["id"])
        required = {k for k, level in levels.items() if level == "required"}
        assert required >= {"gen_ai.operation.name", "gen_ai.provider.name"}
        for p in m["points"]:
            attrs = p["attributes"]
            assert required <= set(attrs), (where, required - set(attrs))
            assert "gen_ai.request.model" in attrs  # conditionally required: always available
            assert "server.port" not in attrs or "server.address" in attrs
            assert set(attrs) <= set(levels) | {"gen_ai.system"} or m["scope"] == "handoffs"
        validated.add(m["name"])
    return validated


async def test_metrics_follow_the_pinned_genai_conventions(
    catalog: Catalog, scripts: Scripts, conventions: dict[str, Any]
) -> None:
    provider, reader = meters()
    await traced_job(catalog, scripts, provider)
    await failing_session(catalog, Scripts(), provider)
    metrics = collected(reader)
    validated = check_conventions(metrics, conventions)
    assert validated == {"gen_ai.client.token.usage", "gen_ai.client.operation.duration"}
    # error.type is conditionally required "if the operation ended in an error"
    for p in points(metrics, "gen_ai.client.operation.duration"):
        failed = p["attributes"]["handoffs.attempt.outcome"] in ("provider_error", "invalid_output")
        assert failed == ("error.type" in p["attributes"])
    provider.shutdown()


# -- the JSONL file per job ----------------------------------------------------------------------


def record(**kw: Any) -> HandoffRecord:
    attempt = Attempt(
        model="small", provider="openai", tier="small", rung=0, outcome="accepted",
        cost_usd=Decimal("0.002"), latency_s=0.25,
    )  # fmt: skip
    fields: dict[str, Any] = {
        "task_id": "t1",
        "task_kind": "classify",
        "risk": "low",
        "status": "delivered",
        "route": ("small",),
        "model": "small",
        "provider": "openai",
        "tier": "small",
        "attempts": (attempt,),
        "cost_usd": Decimal("0.002"),
        "latency_s": 0.3,
    }
    return HandoffRecord(**{**fields, **kw})


def test_jsonl_metrics_file_appears_complete_at_shutdown(tmp_path: Path) -> None:
    directory = tmp_path / "traces"
    provider = job_meter_provider("j1", directory=directory, env={})
    measure = HandoffMetrics(provider, model_names={"small": "gpt-4.1-nano"})
    measure.record(record())
    measure.record(record(task_id="t2", status="degraded", model=None, tier=None,
                          degraded=True, cause="providers"))  # fmt: skip
    path = metrics_path(directory, "j1")
    assert path.name == "j1.metrics.jsonl" and not path.exists()  # written once, at the end
    provider.shutdown()
    assert sorted(p.name for p in directory.iterdir()) == ["j1.metrics.jsonl"]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(m["resource"]["handoffs.job.id"] == "j1" for m in lines)
    [counter] = [m for m in lines if m["name"] == "handoffs.handoffs"]
    assert counter["kind"] == "sum" and counter["monotonic"] is True
    assert counter["temporality"] == "CUMULATIVE" and counter["unit"] == "{handoff}"
    statuses = {p["attributes"]["handoffs.status"]: p["attributes"] for p in counter["points"]}
    assert statuses["degraded"]["handoffs.cause"] == "providers"
    assert "handoffs.model" not in statuses["degraded"]
    assert statuses["delivered"]["handoffs.model"] == "small"
    [duration] = [m for m in lines if m["name"] == "gen_ai.client.operation.duration"]
    [point] = duration["points"]
    assert point["count"] == 2 and point["sum"] == pytest.approx(0.5)
    assert point["attributes"]["gen_ai.request.model"] == "gpt-4.1-nano"  # the provider's name
    assert point["attributes"]["handoffs.model"] == "small"  # the catalog's id
    [cost] = [m for m in lines if m["name"] == "handoffs.handoff.cost"]
    assert cost["unit"] == "{USD}"
    assert sum(p["sum"] for p in cost["points"]) == pytest.approx(0.004)


def test_handoffs_run_leaves_a_conforming_metrics_file_beside_its_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conventions: dict[str, Any]
) -> None:
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "handoffs.toml"
    config.write_text(SIMULATED_CONFIG)
    traces = tmp_path / "traces"
    ran = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["run", str(JOB), "-c", str(config), "--trace-dir", str(traces), "--json"]
    )
    assert ran.exit_code == 0, ran.output
    report = json.loads(ran.stdout)
    path = metrics_path(traces, report["job_id"])
    metrics = [json.loads(line) for line in path.read_text().splitlines()]
    assert check_conventions(metrics, conventions) == {
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
    }
    records = report["handoffs"]
    assert total(metrics, "handoffs.handoffs") == len(records) == 70
    assert total(metrics, "handoffs.escalations") == sum(r["escalations"] for r in records)
    paid = sum(Decimal(r["cost_usd"]) for r in records)
    assert total(metrics, "handoffs.handoff.cost", "sum") == pytest.approx(float(paid))
    attempts = sum(1 for r in records for a in r["attempts"] if a["outcome"] != "refused")
    duration = "gen_ai.client.operation.duration"
    assert total(metrics, duration, "count") == attempts
    # named as the providers name them, like pydantic-ai's token histograms
    names = set(by(metrics, duration, "gen_ai.request.model", "count"))
    assert names <= {"gpt-4.1-nano", "gpt-4.1-mini", "claude-sonnet-4-6"} and names
    tokens = set(by(metrics, "gen_ai.client.token.usage", "gen_ai.request.model", "count"))
    assert names <= tokens


def test_otlp_metrics_follow_the_otel_exporter_variables(
    otlp_receiver: tuple[str, dict[str, list[bytes]]],
) -> None:
    url, bodies = otlp_receiver
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": url + "/"}
    assert otlp_metrics_endpoint({}) is None
    assert otlp_metrics_endpoint(base) == url + "/v1/metrics"
    # Phoenix takes traces only (it answers /v1/metrics with 405): metrics can be turned off
    assert otlp_metrics_endpoint({**base, "OTEL_METRICS_EXPORTER": "none"}) is None
    elsewhere = {**base, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": url + "/collector/metrics"}
    assert otlp_metrics_endpoint(elsewhere) == url + "/collector/metrics"
    for env in (base, {**base, "OTEL_METRICS_EXPORTER": "none"}, elsewhere):
        provider = job_meter_provider("j1", directory=None, env=env)
        HandoffMetrics(provider).record(record())
        provider.shutdown()  # the periodic reader's last collection, sent before it returns
    assert set(bodies) == {"/v1/metrics", "/collector/metrics"}
    assert len(bodies["/v1/metrics"]) == len(bodies["/collector/metrics"]) == 1
    request = ExportMetricsServiceRequest.FromString(bodies["/v1/metrics"][0])
    [resource] = request.resource_metrics
    job = {a.key: a.value.string_value for a in resource.resource.attributes}["handoffs.job.id"]
    names = {m.name for sm in resource.scope_metrics for m in sm.metrics}
    assert job == "j1" and {"handoffs.handoffs", "gen_ai.client.operation.duration"} <= names
