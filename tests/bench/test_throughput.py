"""`handoffs bench overhead` and `handoffs bench fanout`: the JSON documents' shape (tiny N; the
figures themselves are measured by the commands, never asserted)."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from handoffs.cli import app

SPREAD = {"min", "median", "max"}


def _run(*args: str) -> dict[str, Any]:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["bench", *args, "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _check_variants(document: dict[str, Any], names: list[str]) -> None:
    variants = {v["name"]: v for v in document["variants"]}
    assert list(variants) == names
    for name, variant in variants.items():
        for key in ("cpu_us_per_subtask", "subtasks_per_cpu_s", "subtasks_per_wall_s", "rss_mb"):
            assert set(variant[key]) == SPREAD
        if name == document["baseline"]:
            assert "cpu_vs_baseline" not in variant
        else:  # one ratio per round, against the baseline of the same round
            assert set(variant["cpu_vs_baseline"]) == SPREAD
            assert variant["throughput_vs_baseline"]["median"] > 0


def test_overhead_interleaves_bare_pydantic_ai_and_delegate() -> None:
    document = _run("overhead", "--n", "3", "--rounds", "2")
    assert (document["bench"], document["n"], document["rounds"]) == ("overhead", 3, 2)
    assert document["baseline"] == "pydantic-ai"
    _check_variants(
        document,
        [
            "pydantic-ai",
            "pydantic-ai traced",
            "handoffs (agent loop)",
            "handoffs",
            "handoffs traced",
            "handoffs traced lean",
        ],
    )
    assert any("pydantic-ai traced" in note for note in document["notes"])


def test_fanout_runs_against_a_loopback_server_in_its_own_process() -> None:
    document = _run("fanout", "--n", "4", "--c", "2", "--rounds", "1", "--no-litellm")
    assert (document["bench"], document["concurrency"]) == ("fanout", 2)
    assert document["baseline"] == "raw openai SDK"
    _check_variants(
        document, ["raw openai SDK", "handoffs", "handoffs traced", "handoffs traced lean"]
    )
    assert document["peak_rss_mb"] > 0


def test_bad_sizes_are_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(app, ["bench", "fanout", "--n", "0"])
    assert result.exit_code == 2 and "--n" in result.output


def test_fanout_memory_reports_every_step() -> None:
    document = _run("fanout", "--memory", "--n", "6", "--step", "3", "--c", "2")
    assert (document["bench"], document["n"], document["step"]) == ("fanout-memory", 6, 3)
    assert [c["subtasks"] for c in document["checkpoints"]] == [0, 3, 6]
    for checkpoint in document["checkpoints"]:
        assert checkpoint["rss_mb"] > 0 and checkpoint["objects"] > 0
    assert document["kept_records"] == 100
