"""The public face: `handoffs.__all__`, and what `Task` and `HandoffRecord` promise at the boundary."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Literal

import pytest
from inline_snapshot import snapshot
from pydantic import BaseModel, Field

import handoffs
from handoffs.errors import ConfigError
from handoffs.handoff import Attempt, HandoffRecord, RouteStep, Verdict
from handoffs.task import NO_FALLBACK, Task, json_schema_of, schema_errors

# --- __all__ ----------------------------------------------------------------------------------


def isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then Classes, then everything else."""
    if name.isupper():
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def test_all_is_sorted_the_way_ruff_sorts_it() -> None:
    assert handoffs.__all__ == sorted(handoffs.__all__, key=isort_key)
    assert len(set(handoffs.__all__)) == len(handoffs.__all__)


def test_every_name_in_all_is_importable_from_the_package() -> None:
    namespace: dict[str, Any] = {}
    exec("from handoffs import *", namespace)
    for name in handoffs.__all__:
        assert namespace[name] is getattr(handoffs, name)


def test_the_public_names_are_exactly_these() -> None:
    assert handoffs.__all__ == snapshot(
        [
            "NO_FALLBACK",
            "Attempt",
            "BreakerSettings",
            "Budget",
            "BudgetExceeded",
            "Caps",
            "Catalog",
            "Check",
            "CheckContext",
            "Config",
            "ConfigError",
            "Delivery",
            "HandoffError",
            "HandoffFailed",
            "HandoffRecord",
            "HandoffTimeout",
            "HandoffsError",
            "Health",
            "JobNotCompleted",
            "JobResult",
            "JobsDatabaseError",
            "LocalModelUnavailable",
            "MissingKey",
            "ModelEntry",
            "NoRouteAvailable",
            "Orchestrator",
            "OrchestratorSpec",
            "Policy",
            "Portfolio",
            "Prober",
            "ProviderRejected",
            "RetryPolicy",
            "RouteDecision",
            "RouteStep",
            "Rule",
            "Session",
            "SpendCap",
            "Subordinate",
            "Task",
            "Tracing",
            "UnknownJob",
            "Verdict",
            "VerificationFailed",
            "checks",
            "load_config",
            "open_portfolio",
            "route",
        ]
    )


def test_every_public_class_and_function_in_the_package_namespace_is_in_all() -> None:
    public = {
        name
        for name, value in vars(handoffs).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("handoffs")
        and isinstance(value, type | type(handoffs.route))
    }
    assert public <= set(handoffs.__all__)


# --- Task schemas -----------------------------------------------------------------------------


class Ticket(BaseModel):
    id: int
    subject: str
    body: str = ""


class Label(BaseModel):
    category: Literal["billing", "bug", "other"]
    confidence: float = Field(ge=0, le=1)


def ticket_task(**kw: Any) -> Task[Label]:
    kw.setdefault("kind", "classify")
    return Task(input=Ticket(id=7, subject="refund"), output_type=Label, **kw)


def test_the_input_schema_is_derived_from_the_input_model() -> None:
    assert ticket_task().input_schema() == snapshot(
        {
            "properties": {
                "id": {"title": "Id", "type": "integer"},
                "subject": {"title": "Subject", "type": "string"},
                "body": {"default": "", "title": "Body", "type": "string"},
            },
            "required": ["id", "subject"],
            "title": "Ticket",
            "type": "object",
        }
    )


def test_the_output_schema_is_derived_from_the_output_type() -> None:
    assert ticket_task().output_schema() == snapshot(
        {
            "properties": {
                "category": {
                    "enum": ["billing", "bug", "other"],
                    "title": "Category",
                    "type": "string",
                },
                "confidence": {"maximum": 1, "minimum": 0, "title": "Confidence", "type": "number"},
            },
            "required": ["category", "confidence"],
            "title": "Label",
            "type": "object",
        }
    )


def test_plain_json_input_gets_the_schema_of_its_python_type() -> None:
    task = Task(kind="summarize", input="a long text", output_type=list[str])
    assert task.input_schema() == {"type": "string"}
    assert task.output_schema() == {"items": {"type": "string"}, "type": "array"}
    assert task.input_json() == '"a long text"'


def test_schema_errors_name_the_path_of_each_violation() -> None:
    schema = json_schema_of(list[Label])
    errors = schema_errors(
        schema, [{"category": "bug", "confidence": 0.5}, {"category": "spam", "confidence": 2}]
    )
    assert errors == snapshot(
        [
            "1/category: 'spam' is not one of ['billing', 'bug', 'other']",
            "1/confidence: 2 is greater than the maximum of 1",
        ]
    )


def test_schema_errors_call_the_top_level_root() -> None:
    assert schema_errors(json_schema_of(Label), {"confidence": 0.5}) == [
        "(root): 'category' is a required property"
    ]


def test_schema_errors_are_empty_for_conforming_data() -> None:
    assert schema_errors(json_schema_of(Label), {"category": "bug", "confidence": 1}) == []


def test_a_schema_pydantic_cannot_derive_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot derive a JSON Schema"):
        json_schema_of(object())


# --- Task validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"risk": "severe"}, "task risk must be one of low, medium, high, not 'severe'"),
        ({"kind": ""}, "task kind must not be empty"),
        ({"max_cost_usd": Decimal("-0.01")}, "max_cost_usd must not be negative"),
        ({"max_cost_usd": -1}, "max_cost_usd must not be negative"),
    ],
)
def test_a_task_rejects_bad_risk_empty_kind_and_negative_ceilings(
    kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ticket_task(**kw)


def test_a_float_ceiling_becomes_the_decimal_it_reads_as() -> None:
    assert ticket_task(max_cost_usd=0.1).max_cost_usd == Decimal("0.1")
    assert ticket_task(max_cost_usd="0.25").max_cost_usd == Decimal("0.25")


@pytest.mark.parametrize("ceiling", ["cheap", float("nan")])
def test_a_task_rejects_a_ceiling_that_is_not_a_number(ceiling: Any) -> None:
    with pytest.raises(ConfigError, match="max_cost_usd"):
        ticket_task(max_cost_usd=ceiling)


def test_none_is_a_fallback_distinct_from_no_fallback() -> None:
    assert not ticket_task().has_fallback
    assert ticket_task().fallback is NO_FALLBACK
    assert not ticket_task(fallback=NO_FALLBACK).has_fallback
    with_none = ticket_task(fallback=None)
    assert with_none.has_fallback
    assert with_none.fallback is None


def test_each_task_gets_its_own_id() -> None:
    assert ticket_task().id != ticket_task().id


# --- HandoffRecord ----------------------------------------------------------------------------


def test_a_handoff_record_round_trips_through_json_with_exact_decimal_costs() -> None:
    verdict = Verdict(
        check="judge", passed=True, score=0.9, model="best", cost_usd=Decimal("0.0003")
    )
    record = HandoffRecord(
        task_id="t1",
        task_kind="classify",
        risk="low",
        status="delivered",
        route=("tiny", "best"),
        route_reasons=(
            RouteStep(model="tiny", kept=True, reason="local tier"),
            RouteStep(model="best", kept=True, reason="frontier tier"),
        ),
        model="best",
        provider="anthropic",
        tier="frontier",
        attempts=(
            Attempt(
                model="tiny", provider="openai-compatible", tier="local", rung=0, outcome="rejected"
            ),
            Attempt(
                model="best",
                provider="anthropic",
                tier="frontier",
                rung=1,
                outcome="accepted",
                cost_usd=Decimal("0.000123456789"),
                verdicts=(verdict,),
            ),
        ),
        verdicts=(verdict,),
        escalations=1,
        cost_usd=Decimal("0.000123456789"),
        output={"category": "bug", "confidence": 0.5},
    )
    again = HandoffRecord.model_validate_json(record.model_dump_json())
    assert again == record
    assert isinstance(again.cost_usd, Decimal)
    assert str(again.cost_usd) == "0.000123456789"
    assert again.attempts[1].cost_usd == Decimal("0.000123456789")


def test_a_handoff_record_forbids_unknown_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        HandoffRecord.model_validate(
            {
                "task_id": "t",
                "task_kind": "k",
                "risk": "low",
                "status": "failed",
                "route": [],
                "colour": "red",
            }
        )


RECORD_BEFORE_LITERALS = (
    '{"task_id":"5f0c2a","task_kind":"classify","risk":"medium","label":"T-001",'
    '"status":"degraded","route":["tiny","cheap"],"route_reasons":[{"model":"tiny","kept":true,'
    '"reason":"local tier"},{"model":"cheap","kept":true,"reason":"small tier"}],"model":null,'
    '"provider":null,"tier":null,"attempts":[{"model":"tiny","provider":"openai-compatible",'
    '"tier":"local","rung":0,"outcome":"provider_error","feedback":false,"input_tokens":0,'
    '"output_tokens":0,"cost_usd":"0","latency_s":0.0123,"verdicts":[],'
    '"error":"ModelHTTPError: 503","fault":"unavailable"},{"model":"cheap","provider":"anthropic",'
    '"tier":"small","rung":1,"outcome":"rejected","feedback":false,"input_tokens":120,'
    '"output_tokens":9,"cost_usd":"0.0000234","latency_s":0.0,"verdicts":[{"check":'
    '"predicate:billing","passed":false,"score":null,"reasons":["invoices are billing"],'
    '"model":null,"cost_usd":"0"}],"error":null,"fault":null}],"verdicts":[{"check":'
    '"predicate:billing","passed":false,"score":null,"reasons":["invoices are billing"],'
    '"model":null,"cost_usd":"0"}],"escalations":1,"input_tokens":120,"output_tokens":9,'
    '"cost_usd":"0.0000234","latency_s":0.42,"degraded":true,"output":{"category":"other"},'
    '"error":"task \'classify\': no output passed its checks","cause":"verification",'
    '"breakers":{"tiny":"open","cheap":"closed"},"parent_id":"job-1"}'
)
"""A record as the release before the `Literal` fields dumped it (to a trace or a job journal)."""


def test_a_record_dumped_before_its_fields_were_literals_still_loads() -> None:
    record = HandoffRecord.model_validate_json(RECORD_BEFORE_LITERALS)
    assert record.risk == "medium" and record.cause == "verification"
    assert [(a.tier, a.fault) for a in record.attempts] == [
        ("local", "unavailable"),
        ("small", None),
    ]
    assert record.breakers == {"tiny": "open", "cheap": "closed"}
    # loaded whole; dumped again it is the same, plus the fields added since (at their defaults)
    later: dict[str, Any] = dict.fromkeys(  # added since, at their defaults
        [
            "cache",
            "cache_similarity",
            "cache_source",
            "cache_saved_usd",
            "cache_read_tokens",
            "cache_write_tokens",
            "prompt_cache_saved_usd",
        ],
        True,
    )
    each_attempt = {"cache_read_tokens", "cache_write_tokens", "prompt_cache_saved_usd"}
    each_attempt |= {"lane", "batch_id", "saved_usd"}  # the batch lane's
    later["attempts"] = {"__all__": each_attempt}
    assert json.loads(record.model_dump_json(exclude=later)) == {
        **json.loads(RECORD_BEFORE_LITERALS),
        "simulated": False,
    }
    assert {(a.lane, a.batch_id, a.saved_usd) for a in record.attempts} == {("now", None, 0)}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("risk",), "severe"),
        (("cause",), "bad_luck"),
        (("breakers", "tiny"), "ajar"),
        (("attempts", 0, "fault"), "timeout"),
        (("attempts", 0, "tier"), "cloud"),
        (("attempts", 0, "provider"), "gemini"),
    ],
)
def test_a_record_rejects_a_value_outside_its_closed_set(
    path: tuple[str | int, ...], value: str
) -> None:
    data = json.loads(RECORD_BEFORE_LITERALS)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValueError, match=r"Input should be '"):
        HandoffRecord.model_validate(data)
