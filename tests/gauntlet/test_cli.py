"""`handoffs gauntlet`: the scorecard as a table and as JSON, exit codes 0, 1 and 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from handoffs.cli import app

from .conftest import CONFIG, JOB


def _gauntlet(*args: str, trace_dir: Path) -> tuple[int, str, str]:
    runner = CliRunner()
    base = [
        "gauntlet",
        str(JOB),
        "--config",
        str(CONFIG),
        "--limit",
        "1",
        "--trace-dir",
        str(trace_dir),
    ]
    result = runner.invoke(app, [*base, *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_scorecard_has_attacks_invariants_missed_and_broken(tmp_path: Path) -> None:
    code, out, err = _gauntlet(
        "--attacks", "fake_tool_call,unavailable", "--seed", "3", "--json", trace_dir=tmp_path
    )
    assert code == 0, err
    card = json.loads(out)
    assert [(a["name"], a["outcome"]) for a in card["attacks"]] == [
        ("fake_tool_call", "contained"),
        ("unavailable", "caught"),
    ]
    assert all(len(a["trace_id"]) == 32 for a in card["attacks"])
    assert [i["name"] for i in card["invariants"]] == [
        "verified_or_marked", "no_side_effect_from_free_text", "budget_and_guards",
        "every_handoff_traced", "degraded_marked", "nothing_lost",
    ]  # fmt: skip
    assert all(i["held"] and i["breach"] is None for i in card["invariants"])
    assert card["missed"] == [] and card["broken"] == [] and card["seed"] == 3
    assert "gauntlet: 2 attacks on support-triage (seed 3" in err
    assert (tmp_path / f"{card['attacks'][0]['job_id']}.jsonl").is_file()


def test_a_broken_invariant_exits_1_and_names_the_first_breach(tmp_path: Path) -> None:
    code, out, _ = _gauntlet(
        "--attacks", "confident_lie", "--weaken", "verification", trace_dir=tmp_path
    )
    assert code == 1
    assert "BROKEN  verified_or_marked — confident_lie:" in " ".join(out.split("\n"))
    assert "missed" in out and "invariants: 5/6 held" in out


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for args, message in [
        (("--attacks", "nope"), "unknown attack 'nope'"),
        (("--weaken", "everything"), "unknown defence everything"),
    ]:
        code, _, err = _gauntlet(*args, trace_dir=tmp_path)
        assert code == 2 and message in err and err.count("error:") == 1
    result = CliRunner().invoke(app, ["gauntlet", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "job file not found" in result.stderr


def test_list_names_every_attack_by_family() -> None:
    result = CliRunner().invoke(app, ["gauntlet", "--list", "--json"])
    rows = json.loads(result.stdout)["attacks"]
    assert result.exit_code == 0 and len(rows) == len({r["name"] for r in rows}) >= 30
    assert {r["family"] for r in rows} == {
        "output",
        "injection",
        "economic",
        "provider",
        "degradation",
    }


def test_runs_trace_to_their_own_folder_and_trace_show_names_the_attack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app,
        ["gauntlet", str(JOB), "-c", str(CONFIG), "--limit", "1", "-a", "unavailable", "--json"],
    )
    assert result.exit_code == 0, result.stderr
    card = json.loads(result.stdout)
    folder = tmp_path / ".handoffs" / "gauntlet" / "traces"
    assert {p.stem for p in folder.glob("*.jsonl")} == {
        card["baseline"]["job_id"],
        card["attacks"][0]["job_id"],
    }
    assert not (tmp_path / ".handoffs" / "traces").exists()  # real traffic's folder untouched
    job_id = card["attacks"][0]["job_id"]
    shown = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["trace", "show", job_id, "--dir", str(folder)]
    )
    assert shown.exit_code == 0, shown.output
    header = shown.stdout.splitlines()[0]
    assert header.startswith(f"job support-triage ({job_id}) · Gauntlet: unavailable · ")
    assert "None" not in shown.stdout and re.search(r" · \$0\.\d+ · ", header), header
