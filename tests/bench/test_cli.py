"""`handoffs bench routing`: the JSON document, bad paths, and a run on the real recorded data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from handoffs.cli import app

ROUTING = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "routing"


def _runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "200"})


def _export(folder: Path, n: int) -> Path:
    """A team's export: "hard" prompts defeat the cheap model; the frontier costs 20x more."""
    folder.mkdir()
    lines: list[str] = []
    for i in range(n):
        hard = i % 5 == 0
        prompt = f"{'hard' if hard else 'simple'} question number {i}"
        for model, correct, cost in (("cheap", not hard, 0.001), ("frontier", True, 0.02)):
            lines.append(
                json.dumps(
                    {"prompt_id": str(i), "task": "qa", "prompt": prompt, "model": model,
                     "correct": correct, "cost_usd": cost}
                )
            )  # fmt: skip
    (folder / "export.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_json_document_names_the_frontier_and_the_handoffs_policy(tmp_path: Path) -> None:
    train, data = _export(tmp_path / "train", 100), _export(tmp_path / "data", 50)
    result = _runner().invoke(
        app,
        ["bench", "routing", "--train", str(train), "--data", str(data), "--json", "--seeds", "3"],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["dataset"] == "data"
    assert doc["frontier"] == {"model": "frontier", "accuracy": 1.0, "cost_usd": pytest.approx(1.0)}
    policies = {p["name"]: p for p in doc["policies"]}
    assert doc["policies"][0]["name"] == "handoffs"
    for entry in doc["policies"]:
        assert {"name", "accuracy", "cost_usd", "cost_fraction", "apgr", "escalation_rate"} <= set(
            entry
        )
    assert policies["always-frontier"]["cost_fraction"] == pytest.approx(1.0)
    assert policies["always-cheapest"]["accuracy"] == pytest.approx(0.8)
    # the learned router sends exactly the hard fifth to the frontier
    assert policies["handoffs"]["accuracy"] == pytest.approx(1.0)
    assert policies["handoffs"]["cost_fraction"] == pytest.approx((40 * 0.001 + 10 * 0.02) / 1.0)


def test_table_output_lists_every_policy_and_progress_goes_to_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("handoffs.cli.terminal.PROGRESS_EVERY_S", 0.0)  # a line per step
    train = _export(tmp_path / "train", 60)
    args = ["bench", "routing", "--train", str(train), "--data", str(train), "--seeds", "2"]
    result = _runner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("handoffs", "always-frontier", "zero-router@25%", "oracle", "random-50%"):
        assert name in result.stdout
    # by default a fixed share is held out and scored; nothing is fitted or chosen on it
    assert "fixed hold-out by prompt" in result.stdout
    # stderr is no terminal: a plain line per step, each policy and fold named
    progress = result.stderr.splitlines()
    assert any(re.search(r"\] bench routing: policy 1/\d+ always-frontier", line) for line in progress)  # fmt: skip
    assert progress[-1].endswith("policies scored (done)")
    quiet = _runner().invoke(app, [*args, "--quiet"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    crossed = _runner().invoke(
        app,
        ["bench", "routing", "--train", str(train), "--data", str(train), "--seeds", "2",
         "--holdout", "0"],
    )  # fmt: skip
    assert crossed.exit_code == 0, crossed.output
    assert "cross-fitted, 5 folds by prompt" in crossed.stdout


@pytest.mark.parametrize("flag", ["--train", "--data"])
def test_a_bad_path_is_one_line_on_stderr_and_exit_2(tmp_path: Path, flag: str) -> None:
    good = _export(tmp_path / "good", 10)
    args = {"--train": str(good), "--data": str(good), flag: str(tmp_path / "missing")}
    result = _runner().invoke(app, ["bench", "routing", *(x for kv in args.items() for x in kv)])
    stderr: str = result.stderr
    assert result.exit_code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "missing" in lines[0], stderr
    assert result.stdout == ""


def test_real_routellm_gsm8k_data(tmp_path: Path) -> None:
    folder = ROUTING / "routellm" / "gsm8k"
    if not folder.is_dir():
        pytest.skip(f"recorded routing data not present at {ROUTING}")
    result = _runner().invoke(
        app,
        [
            "bench",
            "routing",
            "--train",
            str(folder),
            "--data",
            str(folder),
            "--json",
            "--seeds",
            "5",
            "--folds",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["frontier"]["model"] == "gpt-4-1106-preview"
    policies = {p["name"]: p for p in doc["policies"]}
    frontier = doc["frontier"]["accuracy"]
    assert policies["always-cheapest"]["accuracy"] < frontier < policies["oracle"]["accuracy"]
    assert 0.4 < policies["random-50%"]["apgr"] < 0.6
    assert policies["handoffs"]["apgr"] > policies["random-50%"]["apgr"]
    assert 0 < policies["handoffs"]["cost_fraction"] <= 1.0
