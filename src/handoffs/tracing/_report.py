"""`handoffs report`: figures over stored traces, and `report shadow`: replay a candidate policy.

Everything is read back from the JSONL traces under `.handoffs/traces/` with `load_trace`; no model
is called. Gauntlet runs (their workflow span names the attack they played) are left out unless
asked for: their hostile models are not real traffic. The total is the handoffs' cost plus what the
jobs' orchestrators cost (from the workflow spans). Per model: attempts, latency percentiles (the subordinate run spans' durations), the share
of provider errors and cost (each attempt charged to the model it called, see `charges`); per task kind: cost and where it went; the provider prompt cache (input tokens
read from it and written to it by the handoffs, the share of their input read, the dollars saved
against the same tokens at the input price, the orchestrators' saving included; per model, the
tokens read); the route distribution (share of
handoffs delivered per tier and per model); `--compare`: the previous period of equal length and the
change. `report shadow --policy candidate.toml` routes every logged handoff again through the
candidate's policy and catalog (with the breakers that were open at the time) and estimates the
change in cost.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from handoffs.budget import usd_text
from handoffs.tracing._metrics import METRICS_SUFFIX
from handoffs.tracing._view import (
    GAUNTLET_ATTACK,
    SpanNode,
    charges,
    handoff_summary,
    is_handoff,
    load_trace,
    money,
    workflow_of,
)

__all__ = [
    "HandoffRow",
    "JobRow",
    "collect",
    "collect_jobs",
    "parse_since",
    "percentile",
    "report_document",
]

_SINCE = re.compile(r"(\d+)([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
_SUBORDINATE = "invoke_agent subordinate:"
_ESTIMATE = re.compile(r"~(\d+) input tokens")


def parse_since(text: str) -> timedelta:
    """`7d`, `24h`, `30m` as a timedelta; anything else is a `ValueError`."""
    match = _SINCE.fullmatch(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"--since must look like 7d, 24h or 30m, not {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def percentile(values: list[float], p: float) -> float | None:
    """The `p`-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (k - lo), 6)


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoffRow:
    """What the report needs from one handoff span."""

    job_id: str
    start_ns: int
    summary: dict[str, Any]
    """`handoff_summary` of the span (what `trace show --json` says about it)."""
    attempt_models: tuple[str, ...]
    attempt_latency_s: tuple[float | None, ...]
    """Duration of the subordinate run span matched to each attempt (None when none matched)."""
    delivered_tokens: tuple[int, int] | None
    """Input and output tokens of the delivered attempt's run span, when one matched."""
    route_estimate_tokens: int | None
    """The router's recorded prompt-size estimate (`~N input tokens` in its reasons)."""

    @property
    def cost(self) -> Decimal:
        return Decimal(str(self.summary["cost_usd"] or 0))

    @property
    def delivered(self) -> bool:
        return self.summary["status"] == "delivered"


def _row(job_id: str, node: SpanNode) -> HandoffRow:
    summary = handoff_summary(node)
    models = tuple(str(m) for m in node.attributes.get("handoffs.attempt.models", []))
    runs = [c for c in node.children if c.name.startswith(_SUBORDINATE)]
    # Attempts and check calls (a judge) both run as `subordinate:{model}`; an attempt precedes its
    # checks, so each attempt takes the next unused run of its model, in start order.
    matched: list[SpanNode | None] = []
    cursor = 0
    for model in models:
        found = next(
            (i for i in range(cursor, len(runs)) if runs[i].name == _SUBORDINATE + model), None
        )
        matched.append(runs[found] if found is not None else None)
        cursor = found + 1 if found is not None else cursor
    outcomes = list(summary["outcomes"])
    delivered: tuple[int, int] | None = None
    if "accepted" in outcomes:
        run = matched[len(outcomes) - 1 - outcomes[::-1].index("accepted")]
        if run is not None and "gen_ai.aggregated_usage.input_tokens" in run.attributes:
            delivered = (
                int(run.attributes["gen_ai.aggregated_usage.input_tokens"]),
                int(run.attributes.get("gen_ai.aggregated_usage.output_tokens", 0)),
            )
    estimate = next(
        (int(m.group(1)) for r in summary["route_reasons"] if (m := _ESTIMATE.search(str(r)))),
        None,
    )
    return HandoffRow(
        job_id=job_id,
        start_ns=int(node.span.get("start_time_unix_nano") or 0),
        summary=summary,
        attempt_models=models,
        attempt_latency_s=tuple(r.duration_s if r is not None else None for r in matched),
        delivered_tokens=delivered,
        route_estimate_tokens=estimate,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRow:
    """One finished trace: a job (or a script's session) and its handoffs."""

    job_id: str
    start_ns: int
    orchestrator_cost: Decimal
    """What the job's orchestrator cost (0 for a script's trace, which has none)."""
    orchestrator_cache_saved: Decimal = Decimal(0)
    """What prompt caching saved on the job's orchestrator calls."""
    gauntlet: str | None
    """The attack a Gauntlet run played (`baseline` for none); None for real traffic."""
    handoffs: tuple[HandoffRow, ...]


def collect_jobs(directory: Path) -> list[JobRow]:
    """Every finished trace under `directory` (Gauntlet runs included, marked), in start order."""
    jobs: list[JobRow] = []
    for path in sorted(directory.glob("*.jsonl")):
        if path.name.endswith(METRICS_SUFFIX):
            continue
        roots = load_trace(directory, path.stem)
        if not roots:
            continue
        workflow = workflow_of(roots)
        attrs = workflow.attributes if workflow else {}
        rows = [_row(path.stem, n) for root in roots for n in root.walk() if is_handoff(n)]
        jobs.append(
            JobRow(
                job_id=path.stem,
                start_ns=min(int(r.span.get("start_time_unix_nano") or 0) for r in roots),
                orchestrator_cost=Decimal(money(attrs, "handoffs.orchestrator.cost_usd") or 0),
                orchestrator_cache_saved=Decimal(
                    money(attrs, "handoffs.orchestrator.prompt_cache.saved_usd") or 0
                ),
                gauntlet=attrs.get(GAUNTLET_ATTACK),
                handoffs=tuple(sorted(rows, key=lambda r: r.start_ns)),
            )
        )
    return sorted(jobs, key=lambda j: j.start_ns)


def collect(directory: Path, *, gauntlet: bool = False) -> list[HandoffRow]:
    """Every handoff in every finished trace under `directory`, in start order; Gauntlet runs'
    only with `gauntlet=True`."""
    rows = [
        row
        for job in collect_jobs(directory)
        if gauntlet or job.gauntlet is None
        for row in job.handoffs
    ]
    return sorted(rows, key=lambda r: r.start_ns)


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _figures(rows: list[HandoffRow], jobs: list[JobRow] | None = None) -> dict[str, Any]:
    attempts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: defaultdict[str, list[float]] = defaultdict(list)
    model_cost: defaultdict[str, Decimal] = defaultdict(Decimal)
    kind_cost: defaultdict[str, Decimal] = defaultdict(Decimal)
    kind_count: Counter[str] = Counter()
    kind_models: defaultdict[str, Counter[str]] = defaultdict(Counter)
    by_model: Counter[str] = Counter()
    by_tier: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    model_cached: Counter[str] = Counter()
    read = written = tokens_in = 0
    saved = Decimal(0)
    for row in rows:
        s = row.summary
        read += int(s.get("cache_read_tokens") or 0)
        written += int(s.get("cache_write_tokens") or 0)
        tokens_in += int(s.get("input_tokens") or 0)
        saved += Decimal(str(s.get("prompt_cache_saved_usd") or 0))
        for model, cached in zip(
            row.attempt_models, s.get("attempt_cache_read_tokens") or [], strict=False
        ):
            model_cached[model] += int(cached)
        for model, outcome, latency in zip(
            row.attempt_models, s["outcomes"], row.attempt_latency_s, strict=False
        ):
            attempts[model] += 1
            errors[model] += outcome == "provider_error"
            if latency is not None:
                latencies[model].append(latency)
        where = s["model"] if row.delivered and s["model"] else f"({s['status']})"
        for model, cost in charges(s).items():
            model_cost[model] += cost
        kind_cost[s["task_kind"]] += row.cost
        kind_count[s["task_kind"]] += 1
        kind_models[s["task_kind"]][where] += 1
        statuses[s["status"]] += 1
        by_model[where] += 1
        by_tier[s["tier"] if row.delivered and s["tier"] else f"({s['status']})"] += 1
    total = len(rows)
    models = {
        m: {
            "attempts": attempts[m],
            "provider_errors": errors[m],
            "error_rate": _share(errors[m], attempts[m]),
            "latency_s": {f"p{p}": percentile(latencies[m], p) for p in (50, 95, 99)},
            "cost_usd": usd_text(model_cost[m]),
            "cache_read_tokens": model_cached[m],
        }
        for m in sorted(set(attempts) | set(model_cost))
    }
    kinds = {
        k: {
            "handoffs": kind_count[k],
            "cost_usd": usd_text(kind_cost[k]),
            "models": dict(kind_models[k].most_common()),
        }
        for k in sorted(kind_count)
    }
    handoffs_cost = sum((r.cost for r in rows), Decimal(0))
    orchestrators = sum((j.orchestrator_cost for j in jobs or []), Decimal(0))
    orchestrators_saved = sum((j.orchestrator_cache_saved for j in jobs or []), Decimal(0))
    return {
        "jobs": len({r.job_id for r in rows} | {j.job_id for j in jobs or []}),
        "handoffs": total,
        "cost_usd": usd_text(handoffs_cost),
        "orchestrator_cost_usd": usd_text(orchestrators),
        "total_cost_usd": usd_text(handoffs_cost + orchestrators),
        "statuses": dict(statuses),
        "prompt_cache": {
            "read_tokens": read,
            "write_tokens": written,
            "read_share": _share(read, tokens_in),
            "saved_usd": usd_text(saved + orchestrators_saved),
            "orchestrator_saved_usd": usd_text(orchestrators_saved),
        },
        "models": models,
        "task_kinds": kinds,
        "routes": {
            "by_tier": {t: {"handoffs": n, "share": _share(n, total)} for t, n in by_tier.items()},
            "by_model": {
                m: {"handoffs": n, "share": _share(n, total)} for m, n in by_model.items()
            },
        },
    }


def _delta(now: str | float | int, before: str | float | int) -> str | float | int:
    if isinstance(now, str) or isinstance(before, str):
        return usd_text(Decimal(str(now)) - Decimal(str(before)))
    return round(now - before, 4)


def _changes(current: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """The change from `previous` to `current`: counts, dollars and shares (absent → 0)."""

    def diff(
        cur: dict[str, dict[str, Any]], prev: dict[str, dict[str, Any]], keys: tuple[str, ...]
    ) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name in sorted(set(cur) | set(prev)):
            c, p = cur.get(name, {}), prev.get(name, {})
            zero: dict[str, Any] = {"cost_usd": "0"}
            out[name] = {
                k: _delta(c.get(k, zero.get(k, 0)), p.get(k, zero.get(k, 0))) for k in keys
            }
        return out

    return {
        "handoffs": current["handoffs"] - previous["handoffs"],
        "cost_usd": _delta(current["cost_usd"], previous["cost_usd"]),
        "total_cost_usd": _delta(current["total_cost_usd"], previous["total_cost_usd"]),
        "models": diff(current["models"], previous["models"], ("attempts", "cost_usd")),
        "task_kinds": diff(current["task_kinds"], previous["task_kinds"], ("handoffs", "cost_usd")),
        "routes": {
            axis: diff(current["routes"][axis], previous["routes"][axis], ("handoffs", "share"))
            for axis in ("by_tier", "by_model")
        },
    }


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))


def report_document(
    rows: list[HandoffRow] | list[JobRow],
    *,
    since: timedelta | None = None,
    compare: bool = False,
    now_ns: int | None = None,
    gauntlet: bool = False,
) -> dict[str, Any]:
    """The `report --json` document; the period is `[now - since, now)` by the spans' start times.

    Given `JobRow`s (`collect_jobs`), the total adds the orchestrators' cost (a job counts in the
    period its trace started in) and Gauntlet runs are left out unless `gauntlet`, and counted
    in `left_out`.
    """
    now = now_ns if now_ns is not None else time.time_ns()
    jobs = [r for r in rows if isinstance(r, JobRow)]
    kept = [j for j in jobs if gauntlet or j.gauntlet is None]
    handoffs = [r for r in rows if isinstance(r, HandoffRow)] + [
        h for j in kept for h in j.handoffs
    ]
    left_out = {"gauntlet_runs": len(jobs) - len(kept)}

    def within(lo: int, hi: int) -> dict[str, Any]:
        return _figures(
            [r for r in handoffs if lo <= r.start_ns < hi],
            [j for j in kept if lo <= j.start_ns < hi],
        )

    if since is None:
        figures = _figures(handoffs, kept)
        doc: dict[str, Any] = {"period": {"since": None, "until": _iso(now)}, **figures}
        doc["left_out"] = left_out
        return doc
    width = int(since.total_seconds() * 1e9)
    doc = {"period": {"since": _iso(now - width), "until": _iso(now)}, **within(now - width, now)}
    doc["left_out"] = left_out
    if compare:
        previous = {
            "period": {"since": _iso(now - 2 * width), "until": _iso(now - width)},
            **within(now - 2 * width, now - width),
        }
        doc["previous"] = previous
        doc["change"] = _changes(doc, previous)
    return doc
