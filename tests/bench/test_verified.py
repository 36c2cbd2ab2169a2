"""Verifiers built from what a router paid for: programs run in the sandbox, votes, the verified cascade."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from handoffs.cli import app
from handoffs.routing import Outcomes
from handoffs_bench import metric
from handoffs_bench.cascade import fit_verified
from handoffs_bench.evidence import gather
from handoffs_bench.gate import fit_key_vote
from handoffs_bench.policy import Context
from handoffs_bench.program import parse_program
from handoffs_bench.replay import evaluate
from handoffs_bench.sandbox import Job, run_cases

ADDER = """Here you go:
```python
def add(x, y):
    return x + y

print(add(2, 3))  # Output: 5
```
"""
SUBTRACTER = "```python\ndef plus(a, b):\n    return a - b\n```\n"
TESTED = """[PYTHON]
def add_nums(a, b):
    return a + b
[/PYTHON]
[TESTS]
assert add_nums(1, 1) == 2
assert add_nums(0, 5) == 5
[/TESTS]"""


def test_a_program_is_its_definitions_entry_point_and_stated_cases() -> None:
    program = parse_program(ADDER)
    assert program is not None and program.entry == "add"
    assert "print" not in program.definitions  # the example usage is not part of the program
    assert [(c.call, c.expected, c.printed) for c in program.cases] == [("add(2, 3)", "5", True)]
    tested = parse_program(TESTED)
    assert tested is not None and tested.entry == "add_nums"
    assert [(c.call, c.expected) for c in tested.cases] == [
        ("add_nums(1, 1)", "2"),
        ("add_nums(0, 5)", "5"),
    ]
    javascript = "```javascript\nfunction add(a, b) { return a + b; }\n```"
    assert parse_program(javascript) is None


def test_names_assigned_a_literal_are_resolved_in_stated_cases() -> None:
    text = "```python\ndef f(xs):\n    return sum(xs)\n\nnums = [1, 2]\nprint(f(nums))  # 3\n```"
    program = parse_program(text)
    assert program is not None
    assert [(c.call, c.expected) for c in program.cases] == [("f([1, 2])", "3")]


def test_the_sandbox_reports_pass_fail_error_and_timeout_per_call() -> None:
    calls = (("f", "f(2)", "4", False), ("f", "f(3)", "4", False), ("f", "f('x')", "0", False))
    jobs = [
        Job(definitions="def f(x):\n    return x * 2", entry="f", calls=calls),
        Job(definitions="def g(x):\n    while True:\n        pass", entry="g", calls=calls[:1]),
        Job(definitions="raise SystemExit(3)", entry=None, calls=calls[:1]),
    ]
    doubled, looping, broken = run_cases(jobs, per_call_s=0.2, workers=2)
    assert doubled == [("pass", "4"), ("fail", "6"), ("fail", "'xx'")]
    assert looping == [("timeout", "")]  # f is bound to g, the entry point, and never returns
    assert broken == [("error", "")]


def _code_outcomes() -> Outcomes:
    return Outcomes(
        dataset="code",
        models=("a", "b", "f"),
        prompt_ids=("p1",),
        tasks=("code",),
        prompts=("Write a function to add two numbers.",),
        correct=((1.0, 0.0, 1.0),),
        cost_usd=((1.0, 1.0, 10.0),),
        responses={"a": (ADDER,), "b": (SUBTRACTER,), "f": (TESTED,)},
    )


def test_evidence_runs_every_program_on_every_stated_case() -> None:
    evidence = gather(_code_outcomes())
    assert evidence.code_kinds == {"code"} and evidence.keys["p1"] == (None, None, None)
    run = evidence.code["p1"]
    a, b, f = 0, 1, 2
    assert run.runnable.tolist() == [True, True, True]
    assert run.stated.tolist() == [1, 0, 2]
    # passed[k, s]: of the cases s stated, how many k's program passes (names bound to k's entry)
    assert run.passed.tolist() == [[1, 0, 2], [0, 0, 0], [1, 0, 2]]
    assert run.equal[a, f].tolist() == [1, 0, 2] and run.compared[a, f].tolist() == [1, 0, 2]
    assert run.equal[a, b].tolist() == [0, 0, 0] and run.compared[a, b].tolist() == [1, 0, 2]


def test_the_key_vote_is_naive_bayes_over_the_answers_checked_by_hand() -> None:
    # right keys A, A, B, B; model 0 is wrong on the last prompt, model 1 on the second
    keys = [("A", "A"), ("A", "B"), ("B", "B"), ("A", "B")]
    correct = [(1.0, 1.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
    vote = fit_key_vote(keys, correct, 2)
    # Laplace counts: model 0 says A given A with (2+1)/5, A given B with (1+1)/5;
    # model 1 says A given A with (1+1)/5, A given B with (0+1)/5; prior 1/2 each
    chosen, confidence = vote.judge([("A", "A")], [0, 1])
    assert chosen.tolist() == [0]
    assert confidence[0] == pytest.approx((0.6 * 0.4) / (0.6 * 0.4 + 0.4 * 0.2))
    chosen, confidence = vote.judge([("B", "A")], [1])  # only model 1 was paid for
    assert chosen.tolist() == [1] and confidence[0] == pytest.approx(0.4 / (0.4 + 0.2))


def _votes(n: int) -> Outcomes:
    """Two cheap models (cost 1) right together on half the prompts, apart on the other half."""
    letters = "ABCD"
    rows: list[tuple[float, float, float]] = []
    answers: dict[str, list[str]] = {"a": [], "b": [], "f": []}
    for i in range(n):
        right = letters[(i // 4) % 4]
        wrong = random.Random(i).choice([x for x in letters if x != right])  # no learnable pattern
        a_ok, b_ok = i % 4 != 2, i % 4 != 3
        answers["a"].append(right if a_ok else wrong)
        answers["b"].append(right if b_ok else wrong)
        answers["f"].append(right)
        rows.append((float(a_ok), float(b_ok), 1.0))
    return Outcomes(
        dataset="votes",
        models=("a", "b", "f"),
        prompt_ids=tuple(str(i) for i in range(n)),
        tasks=("mc",) * n,
        prompts=("",) * n,
        correct=tuple(rows),
        cost_usd=((1.0, 1.0, 10.0),) * n,
        responses={m: tuple(v) for m, v in answers.items()},
    )


def test_the_verified_cascade_delivers_agreement_and_pays_the_frontier_otherwise() -> None:
    train, data = _votes(96), _votes(40)
    evidence = gather(train).merged(gather(data))
    ctx = Context(frontier="f", cheap="a", cheapest="a", evidence=evidence)
    chosen = fit_verified(train, ctx, evidence=evidence, quality=1.0)(data).chosen
    assert chosen.accuracy(data) == 1.0
    agree = [i % 4 in (0, 1) for i in range(40)]
    assert chosen.escalated == tuple(not a for a in agree)
    assert all(sorted(c) == [0, 1] for c, a in zip(chosen.calls, agree, strict=True) if a)
    assert all(sorted(c) == [0, 1, 2] for c, a in zip(chosen.calls, agree, strict=True) if not a)
    assert chosen.cost(data) == 20 * 2 + 20 * 12  # every cheap call charged, escalated or not


def test_evaluate_recommends_the_verified_cascade_when_answers_are_recorded() -> None:
    data = _votes(120)
    report = evaluate(data, data, same=True, folds=3, seeds=2)
    by_name = {p.name: p for p in report.policies}
    assert by_name["handoffs"].note == "= verified"
    verified = by_name["verified"]
    assert verified.accuracy == 1.0 and verified.cost_fraction == pytest.approx(0.7)
    assert verified.false_accept == 0.0  # it never accepted a wrong cheap answer
    assert verified.escalation_rate == pytest.approx(0.5)
    assert len(verified.curve) > 2 and all(0 <= c <= 1.3 for c, _ in verified.curve)


def test_tied_scores_are_taken_in_expectation() -> None:
    weak, strong = [1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0]
    curve = metric.share_curve([0.0] * 4, weak, strong)
    # one run of four ties: a straight line from weak's 0.5 to strong's 0.75
    assert curve == [(0.0, 0.5), (0.25, 0.5625), (0.5, 0.625), (0.75, 0.6875), (1.0, 0.75)]
    assert metric.apgr(curve, 0.5, 0.75) == pytest.approx(0.5)
    rows = np.asarray([[0, 1, 2, 3], [3, 2, 1, 0]])
    scores = [0.3, 0.9, 0.1, 0.0]
    got = metric.apgr_resampled(scores, weak, strong, rows)
    expected = metric.apgr(metric.share_curve(scores, weak, strong), 0.5, 0.75)
    assert got.tolist() == pytest.approx([expected, expected])


def _export(folder: Path) -> Path:
    folder.mkdir()
    lines = [
        json.dumps(
            {"prompt_id": str(i), "task": "qa", "prompt": f"q{i}", "model": m,
             "correct": m == "frontier" or i % 3 > 0, "cost_usd": c}
        )
        for i in range(30)
        for m, c in (("cheap", 0.001), ("frontier", 0.02))
    ]  # fmt: skip
    (folder / "export.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    data, png = _export(tmp_path / "d"), tmp_path / "curves.png"
    args = ["bench", "routing", "--train", str(data), "--data", str(data), "--seeds", "2"]
    result = CliRunner().invoke(app, [*args, "--plot", str(png), "--json"])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(result.stdout)["policies"][0]["curve"]


def test_plot_without_matplotlib_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    data = _export(tmp_path / "d")
    args = ["bench", "routing", "--train", str(data), "--data", str(data)]
    result = CliRunner().invoke(app, [*args, "--plot", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "matplotlib" in lines[0] and "handoffs[bench]" in lines[0]
    assert not (tmp_path / "x.png").exists()
