"""The router's learned scorer: features, fitting, the file, `router train`, and what it does to a route."""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from handoffs.catalog import Catalog
from handoffs.cli import app
from handoffs.errors import ConfigError
from handoffs.project import config_from_dict
from handoffs.routing import (
    Example,
    LinearScorer,
    Policy,
    Rule,
    fit_linear_scorer,
    load_scorer,
    read_examples,
    route,
    shape,
)
from handoffs.task import Task

from .conftest import entry

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ("rivers", "planets", "poems", "taxes", "birds", "trains")


def _examples(n: int) -> list[Example]:
    """Prompts saying "prove" defeat the cheap model; the frontier passes everything."""
    out: list[Example] = []
    for i in range(n):
        hard = i % 4 == 0
        prompt = f"{'prove the theorem about' if hard else 'list facts on'} {TOPICS[i % 6]} #{i}"
        out.append(Example(kind="qa", prompt=prompt, model="cheap", passed=not hard))
        out.append(Example(kind="qa", prompt=prompt, model="best", passed=True))
    return out


@pytest.fixture(scope="module")
def trained() -> LinearScorer:
    return fit_linear_scorer(_examples(160))


class Fixed:
    """A scorer with set chances (the `Scorer` protocol), to check the router's arithmetic."""

    def __init__(self, chances: Mapping[str, float]) -> None:
        self.chances = dict(chances)
        self.seen: list[tuple[str, str]] = []

    def pass_chances(self, kind: str, prompt: str) -> Mapping[str, float]:
        self.seen.append((kind, prompt))
        return self.chances


def _catalog() -> Catalog:
    return Catalog(
        [
            entry("cheap", "small", "0.15", "0.60"),
            entry("middle", "mid", "1", "5"),
            entry("best", "frontier", "3", "15"),
        ]
    )


def _task(text: str = "hello") -> Task[str]:
    return Task(kind="qa", input={"text": text}, output_type=str, instructions="Answer.")


LADDER = Rule(ladder=("cheap", "middle", "best"))


def test_shape_numbers_of_a_prompt_checked_by_hand() -> None:
    prompt = "Add 12 and 30?\nA. 42\nB. 24"  # 26 characters
    numbers = shape(prompt)
    assert numbers[0] == pytest.approx(math.log1p(26))
    assert numbers[1] == pytest.approx(math.log1p(len("Add 12 and 30?")))  # before "\nA."
    assert numbers[2] == pytest.approx(8 / 26)  # digits: 12 30 42 24
    assert numbers[3] == pytest.approx(3 / 26)  # capitals: A, A, B
    assert numbers[4] == pytest.approx(3 / 26)  # ? . .
    assert numbers[9] == 2.0  # line breaks
    assert numbers[10] == pytest.approx(math.log1p(2.0))  # options "42" and "24": mean length 2
    assert numbers[12] == 1.0  # every option has a digit
    assert numbers[13] == 1.0  # the question asks


def test_fitting_learns_which_prompts_each_model_passes(trained: LinearScorer) -> None:
    assert trained.models == ("best", "cheap")
    assert trained.examples == {"best": 160, "cheap": 160}
    hard = trained.pass_chances("qa", "prove the theorem about rivers #999")
    easy = trained.pass_chances("qa", "list facts on rivers #999")
    assert hard["cheap"] < 0.3 < 0.7 < easy["cheap"]
    assert hard["best"] > 0.9 and easy["best"] > 0.9
    assert set(trained.l2 or {}) == {"best", "cheap"}


def test_the_file_round_trips_to_the_same_chances(trained: LinearScorer, tmp_path: Path) -> None:
    path = tmp_path / "router.npz"
    trained.save(path)
    loaded = load_scorer(path)
    prompts = ["prove the theorem about taxes #1", "list facts on trains #2"]
    assert loaded.models == trained.models and loaded.l2 == trained.l2
    np.testing.assert_allclose(
        loaded.predict(["qa", "qa"], prompts), trained.predict(["qa", "qa"], prompts), atol=1e-5
    )
    assert path.stat().st_size < 200_000  # small: float32 weights, compressed


def test_a_file_that_is_not_a_scorer_is_one_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.npz"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="is not a handoffs scorer file"):
        load_scorer(bogus)
    with pytest.raises(ConfigError, match="scorer file not found"):
        load_scorer(tmp_path / "missing.npz")


def test_a_scorer_reorders_the_ladder_by_cost_per_pass_and_says_why() -> None:
    scorer = Fixed({"cheap": 0.1, "middle": 0.9, "best": 0.95})
    decision = route(_task(), _catalog(), Policy(rules=(LADDER,), scorer=scorer))
    est = decision.estimates_usd
    # middle's prices are 6.7x (input) to 8.3x (output) cheap's: per pass it costs 7.4x to 9.3x
    # cheap's estimate, cheap itself 10x; best (20x to 25x cheap's prices) 21x to 26x
    assert 6.6 < est["middle"] / est["cheap"] < 8.4 and 19.9 < est["best"] / est["cheap"] < 25.1
    per_pass = {m: est[m] / Decimal(p) for m, p in (("cheap", "0.1"), ("middle", "0.9"), ("best", "0.95"))}  # fmt: skip
    assert per_pass["middle"] < per_pass["cheap"] < per_pass["best"]
    assert decision.ladder == ("middle", "cheap", "best")
    reasons = {s.model: s.reason for s in decision.steps}
    assert "scorer P(pass) 0.10" in reasons["cheap"] and "scorer P(pass) 0.90" in reasons["middle"]
    assert scorer.seen == [("qa", 'Answer.\n{"text": "hello"}')]
    plain = route(_task(), _catalog(), Policy(rules=(LADDER,)))
    assert plain.ladder == ("cheap", "middle", "best")  # no scorer: the rule's order


def test_min_pass_drops_models_with_a_reason_but_never_the_last_one() -> None:
    scorer = Fixed({"cheap": 0.1, "middle": 0.4, "best": 0.95})
    decision = route(_task(), _catalog(), Policy(rules=(LADDER,), scorer=scorer, min_pass=0.5))
    assert decision.ladder == ("best",)
    dropped = {s.model: s.reason for s in decision.steps if not s.kept}
    assert dropped == {
        "cheap": "scorer: P(pass) 0.10 < min_pass 0.5",
        "middle": "scorer: P(pass) 0.40 < min_pass 0.5",
    }
    hopeless = Fixed({"cheap": 0.1, "middle": 0.2, "best": 0.15})
    decision = route(_task(), _catalog(), Policy(rules=(LADDER,), scorer=hopeless, min_pass=0.5))
    assert decision.ladder == ("middle",)  # the likeliest stays
    with pytest.raises(ConfigError, match="min_pass"):
        Policy(min_pass=1.5)


def test_models_the_scorer_does_not_know_keep_their_place() -> None:
    scorer = Fixed({"cheap": 0.1, "best": 0.99})  # no opinion on middle
    decision = route(_task(), _catalog(), Policy(rules=(LADDER,), scorer=scorer))
    assert decision.ladder[1] == "middle"
    assert [s.model for s in decision.steps if s.kept] == list(decision.ladder)


def test_a_trained_scorer_sends_hard_prompts_straight_up(trained: LinearScorer) -> None:
    policy = Policy(rules=(Rule(ladder=("cheap", "best")),), scorer=trained)
    catalog = _catalog()
    hard = route(Task(kind="qa", input={"text": "prove the theorem about poems"}, output_type=str), catalog, policy)  # fmt: skip
    easy = route(Task(kind="qa", input={"text": "list facts on poems"}, output_type=str), catalog, policy)  # fmt: skip
    assert easy.ladder == ("cheap", "best")
    assert hard.ladder == ("best", "cheap")


def test_the_config_names_a_scorer_file_beside_it(trained: LinearScorer, tmp_path: Path) -> None:
    trained.save(tmp_path / "router.npz")
    with (ROOT / "handoffs.toml").open("rb") as fh:
        data = tomllib.load(fh)
    data.setdefault("policy", {})
    data["policy"] |= {"scorer": "router.npz", "min_pass": 0.25}
    config = config_from_dict(data, path=tmp_path / "handoffs.toml")
    assert isinstance(config.policy.scorer, LinearScorer) and config.policy.min_pass == 0.25
    data["policy"]["scorer"] = "nowhere.npz"
    with pytest.raises(ConfigError, match="scorer file not found"):
        config_from_dict(data, path=tmp_path / "handoffs.toml")


def _export(path: Path, examples: list[Example]) -> Path:
    rows = [
        {"task": e.kind, "prompt": e.prompt, "model": e.model, "correct": e.passed}
        for e in examples
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_router_train_reads_an_export_and_writes_the_file(tmp_path: Path) -> None:
    data = _export(tmp_path / "outcomes.jsonl", _examples(80))
    assert len(read_examples(data)) == 160
    out = tmp_path / "router.npz"
    result = CliRunner().invoke(app, ["router", "train", "--data", str(data), "-o", str(out), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["output"] == str(out) and doc["kinds"] == 1 and doc["prompts"] == 80
    by_model = {m["model"]: m for m in doc["models"]}
    assert by_model["cheap"]["outcomes"] == 80 and by_model["cheap"]["pass_rate"] == 0.75
    assert by_model["best"]["pass_rate"] == 1.0
    assert load_scorer(out).models == ("best", "cheap")


def test_router_train_with_a_bad_path_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["router", "train", "--data", str(tmp_path / "nope"), "-o", str(tmp_path / "x.npz")]
    )
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "nope" in lines[0]


def test_router_train_on_traces_warns_that_it_learns_only_pass_rates(tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    traces.mkdir()
    spans = []
    for i in range(40):
        cheap_passes = i % 4 != 0
        spans.append(
            {
                "name": "handoff classify",
                "trace_id": f"{i:032x}",
                "span_id": f"{i + 1:016x}",
                "parent_span_id": None,
                "start_time_unix_nano": 1_000 + i,
                "end_time_unix_nano": 2_000 + i,
                "status": {"code": "UNSET", "description": None},
                "events": [],
                "attributes": {
                    "handoffs.task.id": f"t{i}",
                    "handoffs.task.kind": "classify",
                    "handoffs.status": "delivered",
                    "handoffs.attempt.models": ["cheap"] if cheap_passes else ["cheap", "best"],
                    "handoffs.attempt.outcomes": ["accepted"]
                    if cheap_passes
                    else ["rejected", "accepted"],
                    "handoffs.cost_usd": 0.001,
                },
            }
        )
    (traces / "job.jsonl").write_text("".join(json.dumps(s) + "\n" for s in spans))
    out = tmp_path / "router.npz"
    args = ["router", "train", "--data", str(traces), "-o", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "warning: the data carries no prompt text" in result.stderr
    assert "pass rate per task kind" in result.stderr
    assert json.loads(result.stdout)["warnings"] and out.is_file()
    # an export with prompt text learns from prompts: no warning
    data = _export(tmp_path / "outcomes.jsonl", _examples(40))
    plain = CliRunner().invoke(app, ["router", "train", "--data", str(data), "-o", str(out)])
    assert plain.exit_code == 0 and "warning" not in plain.stderr
