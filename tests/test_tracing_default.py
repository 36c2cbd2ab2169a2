"""Tracing is on by default: a script's `Session` (no `tracing=`) leaves a trace that `trace show`,
`trace html` and `report` read; `HANDOFFS_TRACING=off` or `tracing=False` turns it off; the test
suite's own traces go to a temporary folder, never into the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import handoffs
from handoffs import Catalog, Session
from handoffs.cli import app
from handoffs.tracing import default_trace_dir, default_tracing, finish_default_tracing

from .conftest import Scripts

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    from decimal import Decimal

    import anyio
    from pydantic import BaseModel

    from handoffs import Catalog, ModelEntry, Session, Task, checks
    from handoffs.testing.scripted import scripted


    class Review(BaseModel):
        text: str


    class Sentiment(BaseModel):
        positive: bool


    catalog = Catalog([
        ModelEntry(id="local", provider="openai-compatible", name="local", tier="local",
                   input_usd_per_mtok=Decimal("0.01"), output_usd_per_mtok=Decimal("0.01"),
                   context_window=8192, base_url="http://127.0.0.1:9/v1"),
    ])
    model = scripted(lambda call: {"positive": "love" in call.prompt})


    async def main() -> None:
        session = Session(catalog=catalog, models=lambda entry: model)  # no tracing= given
        for label, text in (("R-1", "I love it"), ("R-2", "It broke")):
            delivery = await session.delegate(Task(
                kind="sentiment", input=Review(text=text), output_type=Sentiment, label=label,
                checks=[checks.predicate(lambda s: isinstance(s.positive, bool))],
            ))
            print(delivery.output.positive, delivery.cost_usd)


    anyio.run(main)
    """
)


def test_a_scripts_handoffs_are_traced_and_read_back_by_trace_show_html_and_report(
    tmp_path: Path,
) -> None:
    (tmp_path / "script.py").write_text(SCRIPT)
    env = {
        k: v for k, v in os.environ.items() if k not in ("HANDOFFS_TRACE_DIR", "HANDOFFS_TRACING")
    }
    source = str(Path(handoffs.__file__).resolve().parents[1])  # this checkout's, from any cwd
    env["PYTHONPATH"] = os.pathsep.join([source, env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "script.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # a cost below a millionth prints as a plain decimal, not 9E-7
    costs = [line.split()[1] for line in done.stdout.splitlines()]
    assert len(costs) == 2 and all("E" not in c and c.startswith("0.000000") for c in costs), costs
    traces = tmp_path / ".handoffs" / "traces"
    [trace] = list(traces.iterdir())  # one file for the run, complete (no .part left)
    assert trace.suffix == ".jsonl"
    run_id = trace.stem

    runner = CliRunner(env={"COLUMNS": "200"})
    shown = runner.invoke(app, ["trace", "show", "--dir", str(traces)])  # no id: the newest
    assert shown.exit_code == 0, shown.output
    assert f"trace {run_id} · 2 handoffs · $" in shown.stdout
    assert "✓ sentiment R-1 · local" in shown.stdout and "✓ sentiment R-2" in shown.stdout
    assert "None" not in shown.stdout

    doc = json.loads(runner.invoke(app, ["report", "--dir", str(traces), "--json"]).stdout)
    assert doc["handoffs"] == 2 and doc["jobs"] == 1
    assert doc["task_kinds"]["sentiment"]["models"] == {"local": 2}

    page = tmp_path / "page.html"
    html = runner.invoke(app, ["trace", "html", run_id, "--dir", str(traces), "-o", str(page)])
    assert html.exit_code == 0, html.output
    assert "sentiment" in page.read_text()


def test_tracing_off_by_environment_or_argument_writes_nothing(
    tmp_path: Path, catalog: Catalog, scripts: Scripts, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Session(catalog=catalog, models=scripts, tracing=False).tracing is None
    for off in ("off", "0", "false", "no", "OFF"):
        assert default_tracing({"HANDOFFS_TRACING": off}) is None
    monkeypatch.setenv("HANDOFFS_TRACING", "off")
    monkeypatch.setenv("HANDOFFS_TRACE_DIR", str(tmp_path))
    assert Session(catalog=catalog, models=scripts).tracing is None
    assert list(tmp_path.iterdir()) == []


async def test_sessions_of_one_process_share_one_default_trace(
    tmp_path: Path, catalog: Catalog, scripts: Scripts, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import BaseModel

    from handoffs import Task
    from handoffs.routing import Policy, Rule

    class Ticket(BaseModel):
        text: str

    class Triage(BaseModel):
        category: str

    monkeypatch.setenv("HANDOFFS_TRACE_DIR", str(tmp_path / "traces"))
    assert default_trace_dir() == tmp_path / "traces"
    scripts.on("tiny", lambda c: {"category": "bug"})
    policy = Policy(rules=(Rule(kind="classify", ladder=("tiny",)),))
    one, two = (Session(catalog=catalog, models=scripts, policy=policy) for _ in range(2))
    assert one.tracing is not None and one.tracing is two.tracing
    for session in (one, two):
        await session.delegate(Task(kind="classify", input=Ticket(text="x"), output_type=Triage))
    [path] = [p for p in finish_default_tracing() if p.parent == tmp_path / "traces"]
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    assert sum(s["name"] == "handoff classify" for s in spans) == 2
    assert default_tracing() is not one.tracing  # after finishing, a new run starts


def test_the_suite_traces_into_a_temporary_folder_not_the_checkout() -> None:
    folder = Path(os.environ["HANDOFFS_TRACE_DIR"]).resolve()
    assert not folder.is_relative_to(ROOT)
    assert default_trace_dir() == Path(os.environ["HANDOFFS_TRACE_DIR"])
