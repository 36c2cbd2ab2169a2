"""A handoff that raised is journaled with its exception's class and fields: a job replayed from
its journal raises the same exception as the live run did, not a plain `HandoffError`."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args

import pytest
from dbos import DBOS
from pydantic import BaseModel

from handoffs import Session, checks
from handoffs.budget import Budget
from handoffs.catalog import Catalog
from handoffs.errors import (
    BudgetExceeded,
    HandoffError,
    HandoffFailed,
    HandoffsError,
    HandoffTimeout,
    NoRouteAvailable,
    ProviderRejected,
    VerificationFailed,
)
from handoffs.handoff import Attempt, HandoffRecord, RouteStep, Verdict
from handoffs.jobs import JobQueue, Worker, durable_step
from handoffs.jobs._durable import (
    DurableRunner,
    HandoffJournal,
    JournaledFailure,
    JournaledModels,
    Raised,
    replay,
)
from handoffs.routing import Policy, Rule
from handoffs.task import Task

from ..conftest import Scripts, entry


class Triage(BaseModel):
    category: Literal["billing", "bug", "other"]


CATALOG = Catalog([entry("tiny", "local", "0.02", "0.02"), entry("cheap", "small", "0.15", "0.60")])
SCRIPTS = Scripts()
SCRIPTS.on("tiny", lambda c: {"category": "other"})
SCRIPTS.on("cheap", lambda c: {"category": "bug"})
IS_BILLING = checks.predicate(
    lambda t: t.category == "billing", name="billing", feedback="invoices are billing"
)
raised: list[HandoffsError] = []


@durable_step
async def after_the_handoff() -> str:
    return "went on"


@DBOS.workflow(name="tests.jobs.failing_handoff")
async def failing_handoff() -> str:
    """A job's workflow code: one handoff whose every answer fails its check, then one step."""
    session = Session(
        catalog=CATALOG,
        models=JournaledModels(SCRIPTS),
        policy=Policy(rules=(Rule(kind="classify", ladder=("tiny", "cheap")),)),
        budget=Budget(Decimal("1")),
        runner=DurableRunner(),
    )
    task = Task(
        kind="classify", input="my invoice is wrong", output_type=Triage, checks=[IS_BILLING]
    )
    try:
        await session.delegate(task)
    except HandoffsError as exc:
        raised.append(exc)
    return await after_the_handoff()


def fields(exc: HandoffsError) -> dict[str, Any]:
    return {"class": type(exc), "message": str(exc), **vars(exc)}


async def test_a_replayed_job_raises_the_exception_the_live_handoff_raised(
    tmp_path: Path, sqlite_url: str
) -> None:
    raised.clear()
    with JobQueue(sqlite_url, config=tmp_path / "none.toml"):
        async with Worker(sqlite_url, supervise=False):
            live = await DBOS.start_workflow_async(failing_handoff)
            assert await live.get_result() == "went on"
            asked = sum(len(calls) for calls in SCRIPTS.calls.values())
            # Run the job again from its second step: the handoff comes from the journal.
            replay = await DBOS.fork_workflow_async(live.get_workflow_id(), 2)
            assert await replay.get_result() == "went on"
    assert sum(len(calls) for calls in SCRIPTS.calls.values()) == asked  # no model asked again
    first, again = raised
    assert type(first) is VerificationFailed and type(again) is VerificationFailed
    assert fields(again) == fields(first)
    assert [(a.model, a.outcome) for a in again.attempts] == [
        ("tiny", "rejected"),
        ("tiny", "rejected"),
        ("cheap", "rejected"),
        ("cheap", "rejected"),
    ]
    assert again.verdicts and {v.check for v in again.verdicts} == {"predicate:billing"}


# --- the journal entry, without a database ------------------------------------------------------

ATTEMPT = Attempt(
    model="cheap",
    provider="openai-compatible",
    tier="small",
    rung=1,
    outcome="provider_error",
    cost_usd=Decimal("0.000012"),
    error="ModelHTTPError: 400 bad request",
    fault="rejected",
)
VERDICT = Verdict(check="predicate:billing", passed=False, reasons=("invoices are billing",))
EVERY_RAISED: list[HandoffError | BudgetExceeded] = [
    HandoffError("gave up", task_id="t1", attempts=[ATTEMPT]),
    VerificationFailed("no output passed", task_id="t1", attempts=[ATTEMPT], verdicts=[VERDICT]),
    NoRouteAvailable("no model", task_id="t1", reasons=["tiny: too small", "cheap: breaker open"]),
    HandoffFailed("every route failed", task_id="t1", attempts=[ATTEMPT]),
    ProviderRejected(
        "cheap rejected it", task_id="t1", model="cheap", cause="rejected", attempts=[ATTEMPT]
    ),
    HandoffTimeout("out of time", task_id="t1", attempts=[ATTEMPT]),
    BudgetExceeded(
        "over budget",
        limit=Decimal("0.10"),
        spent=Decimal("0.09"),
        reserved=Decimal("0.005"),
        requested=Decimal("0.0125"),
    ),
]


def test_the_journal_names_every_exception_a_handoff_raises() -> None:
    assert sorted(get_args(Raised)) == sorted(type(e).__name__ for e in EVERY_RAISED)


@pytest.mark.parametrize("exc", EVERY_RAISED, ids=lambda e: type(e).__name__)
def test_every_exception_comes_back_from_the_journal_as_itself(
    exc: HandoffError | BudgetExceeded,
) -> None:
    journaled = json.loads(json.dumps(JournaledFailure.of(exc).model_dump(mode="json")))
    again = JournaledFailure.model_validate(journaled).rebuild(None)
    assert fields(again) == fields(exc)


def test_a_subclass_is_journaled_as_its_class_in_the_tree() -> None:
    class Mine(HandoffTimeout):
        pass

    again = JournaledFailure.of(Mine("late", task_id="t1")).rebuild(None)
    assert type(again) is HandoffTimeout and again.task_id == "t1"


FAILED = HandoffRecord(
    task_id="t1",
    task_kind="classify",
    risk="low",
    status="failed",
    route=("tiny", "cheap"),
    route_reasons=(
        RouteStep(model="tiny", kept=False, reason="too small"),
        RouteStep(model="cheap", kept=False, reason="breaker open"),
    ),
    attempts=(ATTEMPT,),
    verdicts=(VERDICT,),
    cost_usd=ATTEMPT.cost_usd,
    error="no output passed",
    cause="rejected",
)


@pytest.mark.parametrize(
    ("old", "expected"),
    [
        pytest.param(
            {"kind": "handoff", "type": "VerificationFailed", "message": "no output passed"},
            VerificationFailed(
                "no output passed", task_id="t1", attempts=[ATTEMPT], verdicts=[VERDICT]
            ),
            id="VerificationFailed",
        ),
        pytest.param(
            {"kind": "handoff", "type": "NoRouteAvailable", "message": "no model"},
            NoRouteAvailable("no model", task_id="t1", reasons=["too small", "breaker open"]),
            id="NoRouteAvailable",
        ),
        pytest.param(
            {"kind": "handoff", "type": "ProviderRejected", "message": "cheap rejected it"},
            ProviderRejected(
                "cheap rejected it",
                task_id="t1",
                model="cheap",
                cause="rejected",
                attempts=[ATTEMPT],
            ),
            id="ProviderRejected",
        ),
        pytest.param(
            {"kind": "handoff", "type": "HandoffTimeout", "message": "out of time"},
            HandoffTimeout("out of time", task_id="t1", attempts=[ATTEMPT]),
            id="HandoffTimeout",
        ),
        pytest.param(
            {
                "kind": "budget",
                "message": "over budget",
                "limit": "0.10",
                "spent": "0.09",
                "reserved": "0.005",
                "requested": "0.0125",
            },
            BudgetExceeded(
                "over budget",
                limit=Decimal("0.10"),
                spent=Decimal("0.09"),
                reserved=Decimal("0.005"),
                requested=Decimal("0.0125"),
            ),
            id="BudgetExceeded",
        ),
    ],
)
def test_a_journal_written_before_classes_were_journaled_replays_as_the_class_it_names(
    old: dict[str, str], expected: HandoffsError
) -> None:
    """The journal of a job started by the previous release: the class from `type`, the fields
    from the step's record."""
    again = JournaledFailure.model_validate(old).rebuild(FAILED)
    assert fields(again) == fields(expected)


def test_a_child_workflows_journal_raises_its_class_in_the_spreading_parent() -> None:
    """A spreading job's parent gets each child's journal and replays it: the live failure of a
    spread handoff is the same class as an in-process one."""
    session = Session(catalog=CATALOG, models=SCRIPTS, budget=Budget(Decimal("1")))
    task = Task(kind="classify", input="my invoice is wrong", output_type=Triage)
    exc = VerificationFailed(
        "no output passed", task_id="t1", attempts=[ATTEMPT], verdicts=[VERDICT]
    )
    journal: HandoffJournal = {
        "record": FAILED.model_dump(mode="json"),
        "failure": JournaledFailure.of(exc).model_dump(mode="json", exclude_none=True),
    }
    with pytest.raises(VerificationFailed) as info:
        replay(session.prepare(task), journal)
    assert fields(info.value) == fields(exc)
    assert list(session.records) == [FAILED] and session.budget.spent_usd == FAILED.cost_usd > 0
