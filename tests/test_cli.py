"""The CLI: `run` end to end on the simulated portfolio, `--json`, `doctor`, and bad input → exit 2."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from handoffs.cli import app

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "examples" / "jobs" / "support-triage.toml"

# The default portfolio with a simulated cheap tier in place of the embedded model: fast and keyless.
SIMULATED_CONFIG = """
[models.small]
provider = "openai"
name = "gpt-4.1-nano"
tier = "small"
context_window = 128000
structured_output = "native"

[models.frontier]
provider = "anthropic"
name = "claude-sonnet-4-6"
tier = "frontier"
context_window = 200000
prompt_variant = "xml"

[models.mid]
provider = "openai"
name = "gpt-4.1-mini"
tier = "mid"
context_window = 128000
structured_output = "native"

[[policy.rules]]
kind = "classify"
ladder = ["small", "mid", "frontier"]

[[policy.rules]]
kind = "extract"
ladder = ["small", "mid", "frontier"]

[[policy.rules]]
kind = "draft"
ladder = ["mid", "frontier"]
"""


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def simulated(tmp_path: Path) -> Path:
    path = tmp_path / "handoffs.toml"
    path.write_text(SIMULATED_CONFIG)
    return path


def test_run_json_reports_every_handoff_and_the_repriced_figure(
    runner: CliRunner, simulated: Path, tmp_path: Path
) -> None:
    traces = tmp_path / "traces"
    result = runner.invoke(
        app, ["run", str(JOB), "--config", str(simulated), "--json", "--trace-dir", str(traces)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "completed" and re.fullmatch(r"[0-9a-f]{12}", report["job_id"])
    assert report["models"] == {"small": "simulated", "frontier": "simulated", "mid": "simulated"}
    kinds = [h["task_kind"] for h in report["handoffs"]]
    assert kinds.count("classify") == 30 and kinds.count("extract") == 30
    assert kinds.count("draft") == 10  # replies only for the urgent third
    for h in report["handoffs"]:
        assert {
            "task_kind",
            "route",
            "model",
            "attempts",
            "verdicts",
            "cost_usd",
            "degraded",
        } <= set(h)
    # every model here is simulated: every delivered answer says it is a stand-in
    assert all(h["simulated"] for h in report["handoffs"] if h["status"] == "delivered")
    # and so do its trace (handoff spans) and the HTML page's rows
    page = tmp_path / "job.html"
    shown = runner.invoke(
        app, ["trace", "html", report["job_id"], "--dir", str(traces), "-o", str(page)]
    )
    assert shown.exit_code == 0, shown.output
    assert page.read_text().count('"simulated":true') >= 60
    total = Decimal(report["total_cost_usd"])
    assert total == Decimal(report["orchestrator_cost_usd"]) + sum(
        Decimal(h["cost_usd"]) for h in report["handoffs"]
    )
    assert 0 < total < Decimal(report["repriced_frontier_cost_usd"])
    assert report["items"] == 30 and report["orchestrator_input_tokens"] > 0
    assert report["gold"]["fields"] == 30 * 6 and report["baseline"] is None
    # the orchestrator's steps re-read its instructions, tools and conversation from Anthropic's
    # prompt cache; the subtasks' prefixes (~300 tokens) are under the 1,024 either caches
    assert 0 < report["orchestrator_cache_read_tokens"] < report["orchestrator_input_tokens"]
    assert Decimal(report["orchestrator_prompt_cache_saved_usd"]) > 0
    assert report["prompt_cache_read_tokens"] == 0 == Decimal(report["prompt_cache_saved_usd"])


def test_run_baseline_single_model_runs_the_job_again_on_the_orchestrators_model(
    runner: CliRunner, simulated: Path, tmp_path: Path
) -> None:
    args = ["run", str(JOB), "-c", str(simulated), "--json", "--trace-dir", str(tmp_path)]
    result = runner.invoke(app, [*args, "--baseline", "single-model"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    base = report["baseline"]
    assert base["status"] == "completed" and base["baseline"] is None
    assert len(base["handoffs"]) == len(report["handoffs"]) == 70
    assert {a["model"] for h in base["handoffs"] for a in h["attempts"]} == {"frontier"}
    assert any(a["model"] != "frontier" for h in report["handoffs"] for a in h["attempts"])
    for run in (report, base):
        assert run["calls"] > 70  # every handoff's attempts and the orchestrator's requests
        assert run["elapsed_s"] > 0 and 0 < run["gold"]["accuracy"] <= 1
    assert report["gold"]["accuracy"] >= base["gold"]["accuracy"]
    assert Decimal(report["total_cost_usd"]) < Decimal(base["total_cost_usd"])


def test_run_prints_the_setting_first_then_a_table_and_totals(
    runner: CliRunner, simulated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("handoffs.cli.terminal.PROGRESS_EVERY_S", 0.0)  # a line per handoff
    traces = tmp_path / "traces"
    result = runner.invoke(
        app, ["run", str(JOB), "--config", str(simulated), "--trace-dir", str(traces)]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("models — ") and "simulated" in lines[0]
    assert "classify T-001" in result.stdout
    assert "re-priced (this run's tokens at frontier rates, not a run)" in result.stdout
    assert "escalations:" in result.stdout and "orchestrator tokens:" in result.stdout
    assert re.search(r"prompt cache saved \$0\.\d{6} \(orchestrator \$0\.\d{6}", result.stdout)
    assert re.search(
        r"SIMULATED: \d+ of 70 answers are stand-ins from simulated models", result.stdout
    )
    # stderr is no terminal here: the job id first, then plain progress lines, the last one final
    first, *progress = result.stderr.splitlines()
    job_id = re.fullmatch(r"job ([0-9a-f]{12}) — trace: .+\.jsonl", first)
    assert job_id, first
    assert progress and all(
        re.fullmatch(rf"\[ *\d+s\] job {job_id[1]}: \d+ handoffs done.*", line) for line in progress
    ), progress
    assert re.search(r": 70 handoffs done.* · handoffs cost \$0\.\d{6} \(done\)$", progress[-1])
    assert lines[-1] == f"job {job_id[1]} — trace: {traces / (job_id[1] + '.jsonl')}"


def test_quiet_run_prints_no_progress_and_tables_are_not_cut_outside_a_terminal(
    simulated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr("handoffs.cli.terminal.PROGRESS_EVERY_S", 0.0)
    traces = tmp_path / "traces"
    result = CliRunner().invoke(
        app, ["run", str(JOB), "-c", str(simulated), "--trace-dir", str(traces), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    [line] = result.stderr.splitlines()  # the job id, and no progress
    assert line.startswith("job ") and "— trace:" in line
    # 80 columns would cut the route and the model; outside a terminal rows are whole
    assert "…" not in result.stdout
    assert re.search(r"classify T-001 +│ small→mid→frontier +│", result.stdout)
    assert max(len(row) for row in result.stdout.splitlines()) > 80


def test_help_keeps_bracketed_words(runner: CliRunner) -> None:
    worker = runner.invoke(app, ["worker", "--help"])
    assert "spreading jobs ([jobs] spread)" in worker.stdout
    assert "[default: host:pid:random]" in worker.stdout
    submit = runner.invoke(app, ["jobs", "submit", "--help"])
    assert "handoffs.toml ([jobs] database_url)" in submit.stdout
    shadow = runner.invoke(app, ["report", "shadow", "--help"])
    assert "its [policy] and [models] are used" in shadow.stdout


def test_doctor_lists_models_keys_and_endpoints(runner: CliRunner) -> None:
    result = runner.invoke(app, ["doctor", "--config", str(ROOT / "handoffs.toml"), "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["model"]: row for row in json.loads(result.stdout)["models"]}
    assert rows["frontier"]["setting"] == "simulated" and rows["frontier"]["key_present"] is False
    assert rows["local"]["setting"] == "local" and rows["local"]["key"] is None


def _one_line_error(result: object, *needles: str) -> None:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert result.exit_code == 2, stderr  # type: ignore[attr-defined]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0]


def test_missing_job_file_is_one_line_and_exit_2(runner: CliRunner, simulated: Path) -> None:
    result = runner.invoke(app, ["run", "nope.toml", "--config", str(simulated)])
    _one_line_error(result, "job file not found")


def test_malformed_job_file(runner: CliRunner, simulated: Path, tmp_path: Path) -> None:
    bad = tmp_path / "job.toml"
    bad.write_text("name = [unclosed\n")
    _one_line_error(
        runner.invoke(app, ["run", str(bad), "--config", str(simulated)]), "not valid TOML"
    )


def test_job_missing_a_required_key(runner: CliRunner, simulated: Path, tmp_path: Path) -> None:
    bad = tmp_path / "job.toml"
    bad.write_text('name = "x"\n')
    _one_line_error(runner.invoke(app, ["run", str(bad), "--config", str(simulated)]), "goal")


def _roster_job(tmp_path: Path, orchestrator_src: str, sub_src: str | None = None) -> Path:
    roster = tmp_path / "roster"
    roster.mkdir()
    (roster / "boss.py").write_text(orchestrator_src)
    (roster / "worker.py").write_text(
        sub_src
        or (
            "from pydantic import BaseModel\n"
            "from handoffs import Subordinate\n"
            "class In(BaseModel):\n    text: str\n"
            "agent = Subordinate(name='work', kind='classify', input_type=In, output_type=str,"
            " instructions='x')\n"
        )
    )
    job = tmp_path / "job.toml"
    job.write_text(
        'name = "t"\ngoal = "g"\nroster = "roster"\norchestrator = "boss"\nsubordinates = ["worker"]\n'
    )
    return job


def test_unknown_model_id_is_refused_before_running(
    runner: CliRunner, simulated: Path, tmp_path: Path
) -> None:
    job = _roster_job(
        tmp_path,
        "from handoffs import OrchestratorSpec\nagent = OrchestratorSpec(model='gpt-7', instructions='x')\n",
    )
    _one_line_error(runner.invoke(app, ["run", str(job), "--config", str(simulated)]), "'gpt-7'")


def test_output_type_without_a_json_schema_is_refused(
    runner: CliRunner, simulated: Path, tmp_path: Path
) -> None:
    job = _roster_job(
        tmp_path,
        "from handoffs import OrchestratorSpec\nagent = OrchestratorSpec(model='frontier', instructions='x')\n",
        "from pydantic import BaseModel\nfrom handoffs import Subordinate\n"
        "class In(BaseModel):\n    text: str\n"
        "class Opaque:\n    pass\n"
        "agent = Subordinate(name='work', kind='k', input_type=In, output_type=Opaque, instructions='x')\n",
    )
    _one_line_error(
        runner.invoke(app, ["run", str(job), "--config", str(simulated)]), "JSON Schema"
    )


def test_missing_key_for_a_required_model_is_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "handoffs.toml"
    config.write_text("[portfolio]\nsimulate_missing_keys = false\n" + SIMULATED_CONFIG)
    result = runner.invoke(app, ["run", str(JOB), "--config", str(config)])
    _one_line_error(result, "needs OPENAI_API_KEY in the environment")


def test_unknown_config_file_is_exit_2(runner: CliRunner) -> None:
    _one_line_error(
        runner.invoke(app, ["doctor", "--config", "missing.toml"]), "config file not found"
    )


def test_run_json_exits_1_when_the_job_failed(
    runner: CliRunner, simulated: Path, tmp_path: Path
) -> None:
    starved = tmp_path / "starved.toml"
    text = JOB.read_text().replace('budget_usd = "0.50"', 'budget_usd = "0.0001"')
    for key in ("roster", "tools", "data", "gold"):
        text = re.sub(
            rf'^{key} = "([^"]+)"',
            lambda m, k=key: f'{k} = "{(JOB.parent / m.group(1)).resolve()}"',
            text,
            flags=re.M,
        )
    starved.write_text(text)
    result = runner.invoke(
        app,
        ["run", str(starved), "--config", str(simulated), "--json", "--trace-dir", str(tmp_path)],
    )
    report = json.loads(result.stdout)
    assert report["status"] != "completed"
    assert result.exit_code == 1, result.output


def test_a_usage_mistake_is_one_line_and_exit_2() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", "from handoffs.cli import main; main()", "run", "--bogus"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: No such option: --bogus (see `handoffs run --help`)"
    ]
