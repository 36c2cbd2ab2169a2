"""The product's own traffic as training data: the outcome log, and a scorer a Session obeys."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

from handoffs import checks
from handoffs.catalog import Catalog
from handoffs.engine import Session
from handoffs.errors import ConfigError
from handoffs.project import config_from_dict
from handoffs.routing import OutcomeLog, Policy, Rule, fit_linear_scorer, read_examples, scorer_text
from handoffs.task import Task
from handoffs.testing.scripted import fail

from .conftest import Scripts, entry

ROOT = Path(__file__).resolve().parents[1]


class Ticket(BaseModel):
    text: str


class Triage(BaseModel):
    category: Literal["billing", "bug", "other"]


LADDER = Policy(rules=(Rule(kind="classify", ladder=("tiny", "cheap", "best")),))
IS_BILLING = checks.predicate(lambda t: t.category == "billing", name="billing")


def classify(text: str = "my invoice is wrong") -> Task[Triage]:
    return Task(
        kind="classify",
        input=Ticket(text=text),
        output_type=Triage,
        instructions="Classify.",
        checks=[IS_BILLING],
        fallback=Triage(category="other"),
    )


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_session_logs_one_row_per_checked_model(
    catalog: Catalog, scripts: Scripts, tmp_path: Path
) -> None:
    scripts.on("tiny", lambda c: {"category": "other"})  # rejected, and so is its feedback retry
    scripts.on("cheap", lambda c: {"category": "billing"})
    log = OutcomeLog(tmp_path / "logs" / "outcomes.jsonl")
    session = Session(catalog=catalog, models=scripts, policy=LADDER, outcomes=log)
    task = classify()
    delivery = await session.delegate(task)
    assert [a.model for a in delivery.attempts] == ["tiny", "tiny", "cheap"]
    rows = _lines(log.path)
    tiny_cost = sum((a.cost_usd for a in delivery.attempts if a.model == "tiny"), Decimal(0))
    row = {"prompt_id": task.id, "task": "classify", "prompt": scorer_text(task)}
    assert rows == [
        row | {"model": "tiny", "correct": False, "cost_usd": str(tiny_cost)},
        row | {"model": "cheap", "correct": True, "cost_usd": str(delivery.attempts[2].cost_usd)},
    ]
    assert scorer_text(task) == 'Classify.\n{"text": "my invoice is wrong"}'


async def test_provider_errors_say_nothing_and_degraded_handoffs_still_log(
    catalog: Catalog, scripts: Scripts, tmp_path: Path
) -> None:
    def down(call: object) -> object:
        raise fail(503)

    scripts.on("tiny", down)
    for model in ("cheap", "best"):
        scripts.on(model, lambda c: {"category": "bug"})
    log = OutcomeLog(tmp_path / "outcomes.jsonl")
    session = Session(catalog=catalog, models=scripts, policy=LADDER, outcomes=log)
    delivery = await session.delegate(classify())
    assert delivery.degraded and any(a.outcome == "provider_error" for a in delivery.attempts)
    assert [(r["model"], r["correct"]) for r in _lines(log.path)] == [
        ("cheap", False),
        ("best", False),
    ]


async def test_the_log_trains_a_scorer_that_the_session_then_follows(
    catalog: Catalog, scripts: Scripts, tmp_path: Path
) -> None:
    """The loop: traffic -> outcomes.jsonl -> scorer -> the next handoffs skip the rung that fails."""
    scripts.on("tiny", lambda c: {"category": "billing" if "invoice" in c.prompt else "other"})
    scripts.on("cheap", lambda c: {"category": "billing"})
    log = OutcomeLog(tmp_path / "outcomes.jsonl")
    first = Session(catalog=catalog, models=scripts, policy=LADDER, outcomes=log)
    for i in range(12):
        text = f"my invoice #{i} is wrong" if i % 2 else f"refund the charge on card {i}"
        await first.delegate(classify(text))
    scorer = fit_linear_scorer(read_examples(log.path))
    learned = Session(
        catalog=catalog, models=scripts, policy=Policy(rules=LADDER.rules, scorer=scorer)
    )
    hard = await learned.delegate(classify("refund the charge on card 99"))
    easy = await learned.delegate(classify("my invoice #99 is wrong"))
    assert [a.model for a in hard.attempts] == ["cheap"]  # tiny's rung is now tried after
    assert learned.route(classify("refund the charge on card 99")).ladder[:2] == ("cheap", "tiny")
    assert [a.model for a in easy.attempts] == ["tiny"]


class Fixed:
    def __init__(self, chances: Mapping[str, float]) -> None:
        self.chances = dict(chances)

    def pass_chances(self, kind: str, prompt: str) -> Mapping[str, float]:
        return self.chances


async def test_a_scorer_moves_whole_rungs_and_the_engine_climbs_them_in_that_order(
    scripts: Scripts,
) -> None:
    catalog = Catalog(
        [
            entry("cheap", "small", "0.15", "0.60", failover=("cheap-b",)),
            entry("cheap-b", "small", "0.15", "0.60"),
            entry("best", "frontier", "3", "15"),
        ]
    )
    policy = Policy(
        rules=(Rule(kind="classify", ladder=("cheap", "best")),),
        scorer=Fixed({"cheap": 0.01, "cheap-b": 0.9, "best": 0.99}),
    )
    session = Session(catalog=catalog, models=scripts, policy=policy)
    decision = session.route(classify())
    assert decision.rungs == (("best",), ("cheap", "cheap-b"))
    assert decision.ladder == ("best", "cheap", "cheap-b")
    scripts.on("best", lambda c: {"category": "billing"})
    delivery = await session.delegate(classify())
    assert [a.model for a in delivery.attempts] == ["best"]


def test_config_names_the_outcome_log_beside_it(tmp_path: Path) -> None:
    with (ROOT / "handoffs.toml").open("rb") as fh:
        data = tomllib.load(fh)
    data.setdefault("policy", {})["outcomes"] = "traffic/outcomes.jsonl"
    config = config_from_dict(data, path=tmp_path / "handoffs.toml")
    assert config.outcomes == tmp_path / "traffic" / "outcomes.jsonl"
    data["policy"]["outcomes"] = 3
    with pytest.raises(ConfigError, match=r"policy\.outcomes: must be a string \(got 3\)$"):
        config_from_dict(data, path=tmp_path / "handoffs.toml")


def test_every_configured_session_logs_where_the_config_says(tmp_path: Path) -> None:
    """`handoffs run`, workers and spread handoffs all build their session from the config."""
    from handoffs.budget import Budget
    from handoffs.project import configured_session
    from handoffs.providers import Portfolio

    with (ROOT / "handoffs.toml").open("rb") as fh:
        data = tomllib.load(fh)
    data.setdefault("policy", {})["outcomes"] = "outcomes.jsonl"
    config = config_from_dict(data, path=tmp_path / "handoffs.toml")
    portfolio = Portfolio(config.catalog, env={})
    session = configured_session(config, portfolio, Budget("1"))
    assert session.outcomes is not None and session.outcomes.path == tmp_path / "outcomes.jsonl"
    data["policy"].pop("outcomes")
    plain = configured_session(config_from_dict(data), portfolio, Budget("1"))
    assert plain.outcomes is None
