"""What a qualification run concludes: per task kind and contender, the pass rate with its Wilson
interval, cost per verified answer and latency; the cheapest adequate model; the disagreements.

Pure: the runner (`handoffs.project`) replays the recorded tasks and hands over one `Trial` per
task and contender. The rule for the cheapest adequate model is the product brief's: test
progressively cheaper models until quality degrades, and take the one a tier above. A model
*degrades* when its pass rate falls more than `margin` below the reference (the incumbent route's
pass rate on the same tasks); its interval says how sure that is. The sweep runs by price (a
nominal call's cost) from the costliest candidate down and stops at the first model that degrades;
of the models above that point, the one with the lowest cost per verified answer is named (the
tier above where quality degrades, unless a costlier model delivers verified answers for less: its
answers may skip the judge, or pass without a retry).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from handoffs.budget import usd_text

__all__ = ["INCUMBENT", "Trial", "drift", "qualification", "wilson"]

_MICRO = Decimal("1e-8")
INCUMBENT = "incumbent"
"""The contender name of the configured route (the policy as it is, escalations included)."""


def wilson(passed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a pass rate (95 % by default); (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = passed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


@dataclass(frozen=True, slots=True, kw_only=True)
class Trial:
    """One recorded task replayed on one contender."""

    kind: str
    task_id: str
    contender: str
    """A catalog id, or `INCUMBENT`."""
    passed: bool
    """Delivered, every check passed, not degraded."""
    delivered_by: str | None
    cost_usd: Decimal
    latency_s: float
    output: Any = None
    """The delivered output as JSON data (None when nothing was delivered)."""
    reasons: tuple[str, ...] = ()
    """Why it did not pass: the failed checks' reasons, or the error."""


def _percentile(values: list[float], p: float) -> float | None:
    return round(float(np.percentile(values, p)), 4) if values else None


def _stats(trials: Sequence[Trial]) -> dict[str, Any]:
    n = len(trials)
    passed = sum(t.passed for t in trials)
    cost = sum((t.cost_usd for t in trials), Decimal(0))
    latencies = [t.latency_s for t in trials]
    low, high = wilson(passed, n)
    return {
        "tasks": n,
        "passed": passed,
        "pass_rate": round(passed / n, 4) if n else None,
        "pass_rate_ci95": [low, high],
        "cost_usd": usd_text(cost),
        "cost_per_verified_usd": usd_text((cost / passed).quantize(_MICRO)) if passed else None,
        "latency_s": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95)},
    }


def _disagreements(
    mine: Sequence[Trial], reference: Mapping[str, Trial], limit: int
) -> list[dict[str, Any]]:
    """Tasks where a candidate and the incumbent differ: one passed and the other did not, or both
    passed with different answers."""
    out: list[dict[str, Any]] = []
    for t in mine:
        ref = reference.get(t.task_id)
        if ref is None or (t.passed == ref.passed and (not t.passed or t.output == ref.output)):
            continue
        out.append(
            {
                "task_id": t.task_id,
                "candidate": t.contender,
                "candidate_passed": t.passed,
                "incumbent_passed": ref.passed,
                "candidate_output": t.output,
                "incumbent_output": ref.output,
                "incumbent_model": ref.delivered_by,
                "reasons": list(t.reasons or ref.reasons),
            }
        )
        if len(out) >= limit:
            break
    return out


def qualification(
    trials: Sequence[Trial],
    *,
    prices: Mapping[str, Decimal],
    labels: Mapping[str, str],
    margin: float = 0.05,
    disagreements: int = 5,
) -> dict[str, Any]:
    """The report: per kind, each contender's figures, the sweep from the costliest candidate to
    the cheapest, and the cheapest adequate model. `prices` orders candidates (a nominal call's
    cost per model); `labels` says which models are real, simulated, local or self-hosted."""
    kinds: dict[str, Any] = {}
    for kind in dict.fromkeys(t.kind for t in trials):
        mine = [t for t in trials if t.kind == kind]
        contenders = list(dict.fromkeys(t.contender for t in mine))
        by = {c: [t for t in mine if t.contender == c] for c in contenders}
        stats = {c: _stats(ts) for c, ts in by.items()}
        for c in stats:
            stats[c]["setting"] = "route" if c == INCUMBENT else labels.get(c, "")
        reference = stats.get(INCUMBENT, {}).get("pass_rate")
        incumbent = {t.task_id: t for t in by.get(INCUMBENT, [])}
        candidates = sorted(
            (c for c in contenders if c != INCUMBENT), key=lambda c: prices.get(c, Decimal(0))
        )
        sweep: list[dict[str, Any]] = []
        fit: list[str] = []
        degrades_at: str | None = None
        for c in reversed(candidates):  # costliest first, then cheaper and cheaper
            rate = stats[c]["pass_rate"]
            ok = reference is None or (rate is not None and rate >= reference - margin)
            sweep.append({"model": c, "pass_rate": rate, "adequate": ok})
            if not ok:
                degrades_at = c
                break
            fit.append(c)
        per_answer = {
            c: Decimal(stats[c]["cost_per_verified_usd"])
            for c in fit
            if stats[c]["cost_per_verified_usd"] is not None
        }
        adequate = min(
            per_answer, key=lambda c: (per_answer[c], prices.get(c, Decimal(0))), default=None
        )
        for c in candidates:
            stats[c]["disagreements"] = _disagreements(by[c], incumbent, disagreements)
        kinds[kind] = {
            "reference_pass_rate": reference,
            "contenders": stats,
            "sweep": sweep,
            "degrades_at": degrades_at,
            "cheapest_adequate": adequate,
        }
    return {"margin": margin, "kinds": kinds}


def drift(current: Mapping[str, Any], baseline: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Where a qualification's pass rate fell below the lower end of an earlier run's 95 %
    interval, per kind and contender (both are `qualification` documents)."""
    flagged: list[dict[str, Any]] = []
    for kind, now in current.get("kinds", {}).items():
        before = baseline.get("kinds", {}).get(kind)
        if before is None:
            continue
        for name, c in now["contenders"].items():
            b = before["contenders"].get(name)
            if b is None or c["pass_rate"] is None or b["pass_rate"] is None:
                continue
            if c["pass_rate"] < b["pass_rate_ci95"][0]:
                flagged.append(
                    {
                        "kind": kind,
                        "contender": name,
                        "pass_rate": c["pass_rate"],
                        "pass_rate_ci95": c["pass_rate_ci95"],
                        "baseline_pass_rate": b["pass_rate"],
                        "baseline_ci95": b["pass_rate_ci95"],
                    }
                )
    return flagged
