"""Every example runs offline as a script and prints what it claims to show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from handoffs.providers import INSTALL_HINT, local_available

ROOT = Path(__file__).resolve().parent.parent


def run_example(
    name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> str:
    """Run `examples/<name>` with no API keys in the environment (plus `env`); return its stdout."""
    keep = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        cwd=ROOT,
        env={**keep, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_first_handoff_is_delivered_by_the_cheap_model_within_budget() -> None:
    out = run_example("01_first_handoff.py")
    assert "rule low-risk: ladder cheap -> strong" in out
    assert "output:   Triage(category='billing', urgent=True)" in out
    assert "model:    cheap (simulated)" in out
    assert "attempt:  cheap rung 0 -> accepted" in out
    assert "verdict:  schema passed" in out
    assert "of $0.01 limit" in out


def test_verify_retries_with_feedback_escalates_then_degrades() -> None:
    out = run_example("02_verify_and_escalate.py")
    ticket_a, ticket_b = out.split("ticket B:")
    # A: predicate rejects, the feedback retry passes it but the judge rejects, mid is accepted.
    assert "predicate:amount_in_ticket FAIL" in ticket_a
    assert "rejected yes" in ticket_a and "judge FAIL 0.20" in ticket_a
    assert "judge ok 0.95 ($0." in ticket_a and "on strong)" in ticket_a
    assert "=> delivered by mid: Refund(amount=Decimal('59.90'), currency='EUR'" in ticket_a
    assert "escalations 1" in ticket_a
    # B: every rung fails the judge, the declared fallback comes back marked degraded.
    assert ticket_b.count("judge FAIL 0.40") == 3
    assert (
        "=> DEGRADED (fallback): Refund(amount=Decimal('0'), currency='EUR', needs_review=True)"
        in ticket_b
    )


def test_orchestrator_fans_out_four_handoffs_in_one_step_and_gets_framed_results() -> None:
    out = run_example("03_orchestrator_fan_out.py")
    assert "status: completed; output: 4 results in" in out
    assert "4 handoffs from 2 orchestrator steps" in out
    assert out.count(" delivered $") == 4
    for label, kind in [
        ("T-1", "classify"),
        ("T-1", "draft"),
        ("T-2", "classify"),
        ("T-2", "draft"),
    ]:
        assert f"{label:<4} {kind:<9} -> mid" in out
    assert '<subordinate_result subordinate="draft_reply">{"status": "delivered"' in out
    frame = out.split("<subordinate_result")[1].split("</subordinate_result>")[0]
    assert '"reply": "⟦q:' in frame and "Ignore all" not in frame  # held behind a handle
    assert "held behind handles: 2 texts" in out and "Ignore all previous instructions" in out
    assert "budget: spent $0.00" in out and "of $0.10 limit" in out


def test_self_hosted_endpoint_escalates_when_its_answer_fails_the_check() -> None:
    out = run_example("04_self_hosted_endpoint.py", "--fake")
    assert "endpoint: fake provider at http://127.0.0.1:" in out
    assert "selfhosted (self-hosted), mid (simulated)" in out
    assert out.count("selfhosted rejected") == 2
    assert "delivered by mid: Triage(severity='high')" in out
    assert "escalations 1" in out


@pytest.mark.local
@pytest.mark.skipif(not local_available(), reason=f"the [local] extra is absent: {INSTALL_HINT}")
def test_self_hosted_endpoint_runs_on_the_embedded_smollm2() -> None:
    out = run_example("04_self_hosted_endpoint.py")
    assert "endpoint: SmolLM2-135M via llama.cpp at http://127.0.0.1:" in out
    assert "selfhosted (self-hosted), mid (simulated)" in out
    # A 135M model is often wrong: either it passed the check, or the check sent it up a rung.
    assert "delivered by selfhosted: Triage(severity='high')" in out or (
        "delivered by mid: Triage(severity='high')" in out and "escalations 1" in out
    )


QWEN = "qwen2.5-coder-1.5b"


@pytest.mark.local
@pytest.mark.skipif(not local_available(), reason=f"the [local] extra is absent: {INSTALL_HINT}")
def test_your_own_task_without_the_stronger_tier_says_so_and_marks_placeholders_degraded(
    tmp_path: Path,
) -> None:
    out = run_example(
        "09_your_own_task.py", env={"HANDOFFS_MODELS_DIR": str(tmp_path)}, timeout=300
    )
    lines = out.splitlines()
    assert lines[0].startswith("stronger local tier: NOT installed") and "placeholders" in lines[0]
    assert f"handoffs models install {QWEN}" in lines[0]
    assert "local (local)" in lines[1] and "mid (simulated)" in lines[1]
    assert "local-strong" not in out
    results = [line for line in lines if line.startswith("  => ")]
    assert len(results) == 4
    for review in out.split("\nR-")[1:]:
        attempts = [
            line.split()[0] for line in review.splitlines()[1:] if not line.startswith("  =>")
        ]
        assert attempts[0] == "local"  # the real cheap model answers first, every time
        if "DEGRADED" in review:  # what SmolLM2 got wrong, the simulated placeholders did not fix
            assert "'simulated' is not written in the review" in review
    assert lines[-1].startswith("delivered by: ")


@pytest.mark.local
@pytest.mark.skipif(
    not local_available(QWEN), reason=f"{QWEN} is not installed: handoffs models install {QWEN}"
)
def test_your_own_task_is_answered_by_real_local_models_escalating_to_the_stronger_one() -> None:
    out = run_example("09_your_own_task.py", timeout=900)
    lines = out.splitlines()
    assert lines[0] == "stronger local tier: installed (handoffs.local.toml)"
    assert "local-strong (local)" in lines[1]
    for review in out.split("\nR-")[1:]:
        attempts = [
            line.split()[0] for line in review.splitlines()[1:] if not line.startswith("  =>")
        ]
        assert attempts[0] == "local"
        verdict = review.splitlines()[-1]
        if "(local-strong)" in verdict:  # escalated: SmolLM2 failed a check first
            assert "rejected" in review or "invalid" in review
    assert "local-strong" in lines[-1]  # at least one review needed the stronger tier


@pytest.mark.local
@pytest.mark.skipif(not local_available(), reason=f"the [local] extra is absent: {INSTALL_HINT}")
def test_local_tiers_scores_each_tier_against_the_gold_labels_and_skips_what_is_absent(
    tmp_path: Path,
) -> None:
    out = run_example(
        "10_local_tiers.py",
        "--limit",
        "2",
        "--only",
        "smollm2",
        "qwen",
        env={"HANDOFFS_MODELS_DIR": str(tmp_path)},
        timeout=300,
    )
    assert (
        out.splitlines()[0]
        == "command: python examples/10_local_tiers.py --limit 2 --only smollm2 qwen"
    )
    assert f"skipped qwen: the local model needs {QWEN}" in out
    assert f"handoffs models install {QWEN}" in out
    row = next(line for line in out.splitlines() if line.startswith("| smollm2 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:3] == ["smollm2", "local", "schema"] and cells[5] == "local 2"
    assert cells[3].endswith(tuple(f"{n}/2 = {n / 2:.2f}" for n in range(3)))


def test_provider_failover_routes_around_an_outage_and_brings_the_primary_back() -> None:
    out = run_example("07_provider_failover.py")
    assert "handoff 0: delivered by gpt4o  attempts sonnet:unavailable -> gpt4o:accepted" in out
    assert "handoff 3: delivered by gpt4o  attempts gpt4o:accepted " in out
    assert "requests that paid for the outage: 3 (the breaker's threshold is 3)" in out
    assert "- sonnet: unavailable: circuit open (retry in 30s)" in out
    assert "next handoff: delivered by sonnet; breaker closed" in out
    assert "attempts: sonnet:rate_limited, gpt4o:unavailable, sonnet:accepted" in out
    assert "degraded=True; cause=content_filter" in out


def test_learned_router_trains_on_recorded_traffic_and_stops_wasting_cheap_calls() -> None:
    out = run_example("08_learned_router.py")
    assert "week 1, rules only:   30 tickets" in out and "20 cheap answers rejected" in out
    assert "recorded: 40 outcomes in outcomes.jsonl" in out
    assert "rule refund/*: ladder strong -> cheap" in out  # a decimal-comma ticket
    assert "rule refund/*: ladder cheap -> strong" in out  # a decimal-dot ticket
    with_scorer = out.split("week 2, with scorer:")[1].splitlines()[0]
    rules_only = out.split("week 2, rules only:")[1].splitlines()[0]
    assert "0 cheap answers rejected, 10 sent straight to strong" in with_scorer
    assert "20 cheap answers rejected, 0 sent straight to strong" in rules_only


def test_constrained_fields_are_guarded_against_the_jobs_own_input() -> None:
    out = run_example("11_constrained_fields.py")
    unguarded, on_answer, on_action, honest = out.split("\n== ")[1:]
    assert "REFUNDED $5000.0 to C-100" in unguarded  # steered enum and number: schema-valid
    assert "degraded" in on_answer and "ORD-20001 is not an order of C-100" in on_answer
    assert "no refund" in on_answer
    assert "issue_refund: refused" in on_action and "not values of one record" in on_action
    assert "no refund" in on_action
    assert "REFUNDED $49.99 to C-100" in honest  # the customer's own order goes through
