"""`handoffs trace html`: a self-contained page for a traced job, checked as text and, when Debian's
Chromium is installed, rendered headless (the tree, a filter from the URL fragment, a screenshot)."""

from __future__ import annotations

import json
import re
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from typer.testing import CliRunner

from handoffs import Budget, Catalog, Task, checks
from handoffs.cli import app
from handoffs.errors import VerificationFailed
from handoffs.orchestrator import Orchestrator
from handoffs.tracing import JsonlSpanExporter, Tracing, embed_json, load_trace, page_data

from .conftest import Scripts
from .test_orchestrator import Planner, Ticket, Triage, classifier, make_session

JOB_ID = "job1"
HOSTILE = "</script><script>document.title='pwned'</script><!--"
"""A task label that would end the data element if it were embedded unescaped."""
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} not installed (Debian package `chromium`; .ci/run installs it)",
)


@pytest.fixture
async def traces(tmp_path: Path, catalog: Catalog, scripts: Scripts) -> Path:
    """A finished JSONL trace of job1: six tickets through the orchestrator (T2 and T5 escalate),
    then two direct handoffs whose check never passes: one degrades to its fallback, one fails."""

    def tiny(call: Any) -> dict[str, str]:
        return {"category": "other" if ('"T2"' in call.prompt or '"T5"' in call.prompt) else "bug"}

    scripts.on("tiny", tiny)
    scripts.on("cheap", lambda c: {"category": "billing"})
    directory = tmp_path / "traces"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter(directory / "job1.jsonl")))
    tracing = Tracing(tracer_provider=provider)
    session = make_session(catalog, scripts, Planner(), Budget("1"))
    session.tracing = tracing
    orch = Orchestrator(model="best", subordinates=[classifier], session=session)
    never = checks.predicate(lambda t, i: False, name="never")
    with tracing.workflow("triage", job_id=JOB_ID):
        result = await orch.run("Classify these tickets")
        assert result.status == "completed"
        degraded = await session.delegate(
            Task(
                kind="classify",
                input=Ticket(id="T8", text="?"),
                output_type=Triage,
                checks=(never,),
                fallback=Triage(category="other"),
                label=HOSTILE,
            )
        )
        assert degraded.degraded
        with pytest.raises(VerificationFailed):
            await session.delegate(
                Task(
                    kind="classify",
                    input=Ticket(id="T9", text="?"),
                    output_type=Triage,
                    checks=(never,),
                    label="T9",
                )
            )
    provider.shutdown()
    return directory


def render(traces: Path, output: Path) -> str:
    result = CliRunner().invoke(
        app, ["trace", "html", JOB_ID, "--dir", str(traces), "-o", str(output)]
    )
    assert result.exit_code == 0, result.output
    return output.read_text(encoding="utf-8")


def embedded(page: str) -> Any:
    match = re.search(
        r'<script type="application/json" id="trace-data">(.*?)</script>', page, re.DOTALL
    )
    assert match
    return json.loads(match.group(1))


def test_page_is_self_contained_and_its_data_round_trips(traces: Path, tmp_path: Path) -> None:
    output = tmp_path / "out" / "page.html"
    page = render(traces, output)
    assert [p.name for p in output.parent.iterdir()] == ["page.html"]  # no temp file left
    # no network: nothing fetched from anywhere, no external stylesheet, script or font
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert not re.search(r"<link\b|@import|url\(", page, re.I)
    assert "<script src" not in page
    # the hostile label is in the data, yet only the page's own two </script> appear
    assert page.count("</script>") == 2 and "<!--" not in page
    roots = load_trace(traces, JOB_ID)
    assert roots is not None
    data = embedded(page)
    assert data == json.loads(json.dumps(page_data(JOB_ID, roots)))
    handoffs = data["document"]["handoffs"]
    assert len(handoffs) == 8
    by_label = {h["label"]: h for h in handoffs}
    assert by_label["T2"]["flags"] == ["escalated"] and by_label["T5"]["flags"] == ["escalated"]
    assert "degraded" in by_label[HOSTILE]["flags"] and by_label[HOSTILE]["status"] == "degraded"
    assert "failed" in by_label["T9"]["flags"]
    assert by_label["T0"]["flags"] == [] and by_label["T0"]["route_reasons"]
    # cost per subordinate and per model add up to the handoffs' cost
    total = sum(Decimal(h["cost_usd"]) for h in handoffs)
    for table in ("cost_by_kind", "cost_by_model"):
        assert sum(Decimal(r["cost_usd"]) for r in data[table]) == total
    # per model, each attempt is charged to the model it called, degraded and failed ones too
    charged: dict[str, Decimal] = {}
    for h in handoffs:
        for model, cost in zip(h["attempt_models"], h["attempt_costs_usd"], strict=True):
            charged[model] = charged.get(model, Decimal(0)) + Decimal(cost)
    assert {r["name"]: Decimal(r["cost_usd"]) for r in data["cost_by_model"]} == charged
    assert set(by_label["T9"]["attempt_models"]) <= set(charged)  # the failed handoff's models
    assert (
        by_label[HOSTILE]["cause"] == "verification" and by_label["T9"]["cause"] == "verification"
    )
    # the waterfall: every span, inside the job's time span
    assert len(data["spans"]) == data["document"]["spans"]
    assert all(0 <= s["start_s"] <= s["end_s"] <= data["total_s"] for s in data["spans"])


def test_embedded_json_cannot_end_the_script_element() -> None:
    data = {"x": "</script><!-- & \u2028 <b>"}
    text = embed_json(data)
    assert not set("<>&") & set(text) and json.loads(text) == data


def test_trace_html_of_an_unknown_job_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for job_id in ("nope", "../etc/passwd"):
        output = tmp_path / "page.html"
        result = CliRunner().invoke(
            app, ["trace", "html", job_id, "--dir", str(tmp_path), "-o", str(output)]
        )
        assert result.exit_code == 2
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: no trace for job")
        assert not output.exists()


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def tags(dom: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}\b[^>]*>", dom)


@needs_chromium
def test_page_renders_in_headless_chromium_and_a_filter_applies(
    traces: Path, tmp_path: Path
) -> None:
    page = tmp_path / "page.html"
    render(traces, page)
    dom = chromium(tmp_path, "--dump-dom", page.as_uri() + "#filter=escalated").stdout
    [body] = tags(dom, "body")
    assert 'data-rendered="yes"' in body and 'data-filter="escalated"' in body
    assert "pwned" not in "".join(tags(dom, "title"))  # the hostile label stayed data
    details = tags(dom, "details")
    assert len(details) == 8  # the tree: one <details> per handoff
    flags = {h["label"]: h["flags"] for h in embedded(page.read_text())["document"]["handoffs"]}
    expected = sum("escalated" in f for f in flags.values())
    assert expected == 2  # T2 and T5; those that climbed the ladder and then gave up are not
    assert "escalated" not in flags[HOSTILE] and "escalated" not in flags["T9"]
    escalated = [d for d in details if re.search(r'data-flags="[^"]*\bescalated\b', d)]
    others = [d for d in details if d not in escalated]
    assert len(escalated) == expected and len(others) == 8 - expected
    assert all("hidden" not in d and " open" in d for d in escalated)  # shown and expanded
    assert all(re.search(r'class="[^"]*\bhidden\b', d) for d in others)
    assert "router reasons" in dom and "kept: " in dom
    # each attempt's model, fault and cost; the breakers the router saw; cost charged per attempt
    assert "<th>fault</th>" in dom and "<th>cost</th>" in dom and "breakers when routed: " in dom
    assert "model (charged per attempt)" in dom
    rows = re.findall(r'<div class="wrow row[^"]*"', dom)
    assert len(rows) == len(embedded(page.read_text())["spans"])
    assert sum("hidden" not in r for r in rows) == expected  # only the escalated handoffs' bars

    shot = tmp_path / "page.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,900", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000


def test_page_labels_items_marks_checks_and_says_why_a_handoff_degraded(traces: Path) -> None:
    roots = load_trace(traces, JOB_ID)
    assert roots is not None
    data = page_data(JOB_ID, roots)
    by_label = {h["label"]: h for h in data["document"]["handoffs"]}
    # the waterfall names each handoff by its item, not only its kind
    handoff_bars = [s["name"] for s in data["spans"] if s["kind"] == "handoff"]
    assert "handoff classify T2" in handoff_bars and f"handoff classify {HOSTILE}" in handoff_bars
    assert len(handoff_bars) == 8
    # checks are checks (EVALUATOR spans), never subordinate runs
    checks_ = [s["name"] for s in data["spans"] if s["kind"] == "check"]
    assert "check schema pass" in checks_ and "check predicate:never fail" in checks_
    assert not [s for s in data["spans"] if s["name"].startswith("invoke_agent subordinate:check")]
    t2 = by_label["T2"]
    assert [(c["name"], c["label"], c["attempt"]) for c in t2["checks"]][:2] == [
        ("schema", "pass", 0),
        ("predicate:specific", "fail", 0),
    ]
    assert t2["input_tokens"] > 0 and t2["output_tokens"] > 0 and t2["queue_s"] == 0
    assert by_label[HOSTILE]["cause"] == "verification"


@needs_chromium
def test_the_row_of_a_degraded_handoff_says_why_and_search_keeps_matching_rows(
    traces: Path, tmp_path: Path
) -> None:
    page = tmp_path / "page.html"
    render(traces, page)
    dom = chromium(tmp_path, "--dump-dom", page.as_uri() + "#search=T9").stdout
    assert re.search(r'<span class="cause"> · degraded: verification</span>', dom)
    assert re.search(r'<span class="cause"> · failed: verification</span>', dom)
    assert re.search(r" · \d+/\d+ tok", dom)  # tokens in/out on every row
    details = tags(dom, "details")
    shown = [d for d in details if not re.search(r'class="[^"]*\bhidden\b', d)]
    assert len(details) == 8 and len(shown) == 1  # only T9's row matches the search
    assert 'id="handoff-7"' in shown[0]  # T9, the last of the eight
