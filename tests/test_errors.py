"""The exception tree: every class in `handoffs.errors`, drawn in its docstring as it is, and data
that survives pickling (DBOS journals an exception by pickling it)."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
import re
from decimal import Decimal

import pytest
from pydantic_ai.exceptions import ModelAPIError

import handoffs
import handoffs.errors as errors
from handoffs.handoff import Attempt, Verdict
from handoffs.jobs import JobInfo

TREE = [
    cls
    for cls in vars(errors).values()
    if inspect.isclass(cls) and issubclass(cls, Exception) and cls.__module__ == errors.__name__
]


def exception_classes_outside_errors() -> list[str]:
    """Every exception class defined in `handoffs` but not in `handoffs.errors`, but the test
    doubles' (`handoffs.testing`) and the Gauntlet's pytest assertion."""
    found: list[str] = []
    for module in pkgutil.walk_packages(handoffs.__path__, "handoffs."):
        if module.name.startswith("handoffs.testing"):
            continue
        namespace = vars(importlib.import_module(module.name))
        for name, value in namespace.items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.name
                and module.name != "handoffs.errors"
            ):
                found.append(f"{module.name}.{name}")
    return found


def test_every_exception_handoffs_raises_lives_in_errors() -> None:
    # GauntletFailed is a test assertion; Inconclusive never leaves the Gauntlet (its invariant
    # checker catches it and scores the invariant inconclusive)
    assert exception_classes_outside_errors() == [
        "handoffs.gauntlet._invariant.Inconclusive",
        "handoffs.gauntlet._scorecard.GauntletFailed",
    ]


def drawn_tree() -> dict[str, str]:
    """{class: parent} as the module docstring draws it."""
    doc = errors.__doc__ or ""
    lines = doc.split("```")[1].strip().splitlines()
    assert lines[0] == "HandoffsError"
    parents: dict[str, str] = {}
    stack = ["HandoffsError"]
    for line in lines[1:]:
        found = re.match(r"^((?:│   |    )*)[├└]── (\w+)", line)
        if found is None:  # a description carried onto the next line
            continue
        depth = len(found.group(1)) // 4 + 1
        del stack[depth:]
        parents[found.group(2)] = stack[-1]
        stack.append(found.group(2))
    return parents


def test_the_docstring_draws_every_class_under_its_parent() -> None:
    actual = {
        cls.__name__: next(b.__name__ for b in cls.__bases__ if b in TREE)
        for cls in TREE
        if cls is not errors.HandoffsError
    }
    assert drawn_tree() == actual


def test_every_class_is_in_all_and_the_ones_users_catch_are_public() -> None:
    assert {cls.__name__ for cls in TREE} <= set(errors.__all__)
    internal = {"Refused", "MalformedResponse", "OutputOverrun"}
    assert {cls.__name__ for cls in TREE} - internal <= set(handoffs.__all__)


def test_the_internal_signals_are_model_api_errors_for_pydantic_ai() -> None:
    for cls in (errors.Refused, errors.MalformedResponse, errors.OutputOverrun):
        exc = cls("cheap", "http://127.0.0.1:9/v1 cheap: open")
        assert isinstance(exc, ModelAPIError) and isinstance(exc, errors.HandoffsError)
        assert exc.model_name == "cheap"
        assert "cheap: open" in str(exc)


ATTEMPT = Attempt(model="cheap", provider="openai", tier="small", rung=0, outcome="rejected")
VERDICT = Verdict(check="schema", passed=False, reasons=("category: required",))
INFO = JobInfo(job_id="0123456789ab", job="triage", job_file="triage.toml", state="cancelled")
ONE_OF_EACH: list[errors.HandoffsError] = [
    errors.HandoffsError("any"),
    errors.ConfigError("bad file"),
    errors.MissingKey(model="best", env_var="ANTHROPIC_API_KEY"),
    errors.LocalModelUnavailable(missing="xllamacpp", install="pip install 'handoffs[local]'"),
    errors.JobsDatabaseError("cannot reach the jobs database"),
    errors.UnknownJob(job_id="0123456789ab"),
    errors.HandoffError("gave up", task_id="t1", attempts=[ATTEMPT]),
    errors.VerificationFailed("no", task_id="t1", attempts=[ATTEMPT], verdicts=[VERDICT]),
    errors.NoRouteAvailable("no model", task_id="t1", reasons=["too small"]),
    errors.HandoffFailed("every route failed", task_id="t1", attempts=[ATTEMPT]),
    errors.ProviderRejected(
        "rejected", task_id="t1", model="cheap", cause="content_filter", attempts=[ATTEMPT]
    ),
    errors.HandoffTimeout("late", task_id="t1"),
    errors.BudgetExceeded(
        "over", limit=Decimal(1), spent=Decimal("0.9"), reserved=Decimal(0), requested=Decimal(1)
    ),
    errors.JobNotCompleted("job 0123456789ab cancelled", info=INFO),
    errors.Refused("cheap", "cheap@127.0.0.1: circuit open"),
    errors.MalformedResponse("cheap", "no choices"),
    errors.OutputOverrun("cheap", "640 output tokens, 64 allowed"),
]


def test_one_of_each_covers_the_tree() -> None:
    assert {type(e) for e in ONE_OF_EACH} == set(TREE)


@pytest.mark.parametrize("exc", ONE_OF_EACH, ids=lambda e: type(e).__name__)
def test_every_exception_pickles_with_its_class_and_fields(exc: errors.HandoffsError) -> None:
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is type(exc)
    assert str(again) == str(exc) and again.args == exc.args
    assert vars(again) == vars(exc)
