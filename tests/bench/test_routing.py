"""Loading recorded outcomes: the RouterBench, RouteLLM and export layouts, from any file name."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from handoffs.errors import ConfigError
from handoffs.routing import Outcomes, load_outcomes


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def test_routerbench_layout_drops_missing_scores_and_duplicates(tmp_path: Path) -> None:
    header = [
        "",
        "sample_id",
        "prompt",
        "eval_name",
        "big",
        "small",
        "big|model_response",
        "small|model_response",
        "big|total_cost",
        "small|total_cost",
        "oracle_model_to_route_to",
    ]
    rows = [
        [
            "0",
            "q1",
            "['What is 1+1?']",
            "arith",
            "1.0",
            "0.0",
            "['2']",
            "['3']",
            "0.01",
            "0.001",
            "big",
        ],
        [
            "1",
            "q2",
            "['Pick A']",
            "mc",
            "1.0",
            "1.0",
            "['A']",
            "['A\\n']",
            "0.02",
            "0.002",
            "small",
        ],
        ["2", "q3", "['lost']", "mc", "", "1.0", "['A']", "['A']", "0.02", "0.002", "small"],
        ["3", "q1", "['dup']", "arith", "0.0", "0.0", "['x']", "['y']", "0.5", "0.5", "big"],
    ]
    _write_csv(tmp_path / "whatever-name.csv", header, rows)
    got = load_outcomes(tmp_path)
    assert got.models == ("big", "small")  # the oracle column is not a model
    assert got.prompt_ids == ("q1", "q2")
    assert got.tasks == ("arith", "mc")
    assert got.prompts[0] == "What is 1+1?"
    assert got.correct == ((1.0, 0.0), (1.0, 1.0))
    assert got.cost_usd == ((0.01, 0.001), (0.02, 0.002))
    assert got.responses["small"] == ("3", "A\n")
    assert not got.cost_estimated
    assert got.model_accuracy("small") == 0.5
    assert got.model_cost("big") == pytest.approx(0.03)


def test_routellm_layout_estimates_cost_and_drops_contaminated_prompts(tmp_path: Path) -> None:
    strong, weak = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
    folder = tmp_path / "mmlu"
    _write_csv(
        folder / "mmlu_anatomy.csv",
        ["prompt", weak, strong],
        [["12345678", "True", "True"], ["seen-before", "False", "True"], ["abcd", "False", "True"]],
    )
    (folder / "contaminated_prompts.jsonl").write_text(
        json.dumps({"train_prompt": "x", "eval_prompt": "seen-before"}) + "\n"
    )
    got = load_outcomes(tmp_path)
    assert got.prompts == ("12345678", "abcd")
    assert got.tasks == ("anatomy", "anatomy")
    assert got.cost_estimated
    j_strong, j_weak = got.index(strong), got.index(weak)
    # 8 characters = 2 input tokens, one output token: GPT-4 at $10/$30, Mixtral at $0.6/$0.6 per M
    assert got.cost_usd[0][j_strong] == pytest.approx((2 * 10 + 30) / 1e6)
    assert got.cost_usd[0][j_weak] == pytest.approx((2 * 0.6 + 0.6) / 1e6)
    assert [row[j_weak] for row in got.correct] == [1.0, 0.0]


def test_export_layout_reads_csv_and_jsonl_and_drops_incomplete_prompts(tmp_path: Path) -> None:
    _write_csv(
        tmp_path / "a.csv",
        ["prompt_id", "task", "prompt", "model", "correct", "cost_usd", "response"],
        [
            ["p1", "extract", "Get the date", "cheap", "1", "0.001", "2024-01-01"],
            ["p1", "extract", "Get the date", "strong", "true", "0.01", "2024-01-01"],
            ["p2", "extract", "Get the name", "cheap", "0", "0.001", "Bob"],
        ],
    )
    lines = [
        {"prompt_id": "p2", "task": "extract", "prompt": "Get the name", "model": "strong",
         "correct": False, "cost_usd": 0.02, "response": "Ann"},
        {"prompt_id": "p3", "task": "sum", "prompt": "Add", "model": "cheap",
         "correct": 1, "cost_usd": 0.001, "response": "4"},
    ]  # fmt: skip
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    got = load_outcomes(tmp_path)
    assert got.prompt_ids == ("p1", "p2")  # p3 has no outcome for "strong"
    assert got.models == ("cheap", "strong")
    assert got.correct == ((1.0, 1.0), (0.0, 0.0))
    assert got.cost_usd[1] == (0.001, 0.02)
    assert got.responses["strong"] == ("2024-01-01", "Ann")


def test_subset_keeps_rows_in_the_given_order(tmp_path: Path) -> None:
    table = Outcomes(
        dataset="t",
        models=("m",),
        prompt_ids=("a", "b", "c"),
        tasks=("x", "y", "z"),
        prompts=("A", "B", "C"),
        correct=((1.0,), (0.0,), (1.0,)),
        cost_usd=((1.0,), (2.0,), (3.0,)),
        responses={"m": ("1", "2", "3")},
    )
    part = table.subset([2, 0])
    assert part.prompt_ids == ("c", "a") and part.responses["m"] == ("3", "1")
    assert part.model_cost("m") == 4.0


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no .csv or .jsonl files"),
        (lambda p: (p / "x.csv").write_text("foo,bar\n1,2\n"), "unrecognised layout"),
        (
            lambda p: (p / "x.csv").write_text(
                "prompt_id,task,prompt,model,correct,cost_usd\n1,t,p,m,maybe,0.1\n"
            ),
            "correct must be",
        ),
        (lambda p: (p / "x.jsonl").write_text("[1, 2]\n"), "JSON object"),
    ],
)
def test_bad_folders_raise_config_errors(tmp_path: Path, setup: object, message: str) -> None:
    setup(tmp_path)  # type: ignore[operator]
    with pytest.raises(ConfigError, match=message):
        load_outcomes(tmp_path)


def test_a_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such directory"):
        load_outcomes(tmp_path / "absent")


def test_the_bench_package_exports_a_sorted_public_api() -> None:
    import handoffs_bench as bench

    assert bench.__all__ == sorted(bench.__all__)
    assert all(hasattr(bench, name) for name in bench.__all__)
    assert {"Outcomes", "load_outcomes", "aiq", "apgr"} <= set(bench.__all__)
