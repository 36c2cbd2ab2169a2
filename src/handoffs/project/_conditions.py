"""The alert conditions of `ops/prometheus/alerts.yml`, over snapshots of the handoffs metrics.

A snapshot maps metric name -> series (sorted attribute pairs) -> value (counters, gauges) or
(bounds, bucket counts) (histograms). An increase over a window is the latest snapshot minus the
last one at or before the window's start; before the watch started every counter was 0.
Quantiles interpolate inside buckets as Prometheus's `histogram_quantile` does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from handoffs.project._alert_settings import AlertSettings

__all__ = ["Condition", "Snapshot", "conditions"]

Series = tuple[tuple[str, str], ...]
Value = float | tuple[tuple[float, ...], tuple[int, ...]]
Snapshot = dict[str, dict[Series, Value]]
History = Sequence[tuple[float, Snapshot]]
Holding = list[tuple[dict[str, str], dict[str, str]]]

_CALLS = "gen_ai.client.operation.duration"
_HANDOFF_TIME = "handoffs.handoff.duration"
_VERIFIED = "handoffs.verifications"
_HANDOFFS = "handoffs.handoffs"
_LABEL = {
    "handoffs.model": "handoffs_model",
    "handoffs.task.kind": "handoffs_task_kind",
    "handoffs.job.name": "handoffs_job_name",
    "gen_ai.provider.name": "gen_ai_provider_name",
}


def _at(history: History, t: float, started: float) -> Snapshot:
    """The last snapshot at or before `t` (before the watch started: all zeros)."""
    if t < started:
        return {}
    found: Snapshot = {}
    for when, snap in history:
        if when > t:
            break
        found = snap
    return found


def _group(series: Series, by: tuple[str, ...]) -> tuple[str, ...]:
    attrs = dict(series)
    return tuple(attrs.get(k, "") for k in by)


def _increase(
    history: History,
    started: float,
    name: str,
    since: float,
    until: float,
    by: tuple[str, ...],
    where: Callable[[dict[str, str]], bool] = lambda a: True,
) -> dict[tuple[str, ...], float]:
    """Counter (or histogram count) increase per group over (since, until]."""
    late, early = (
        _at(history, until, started).get(name, {}),
        _at(history, since, started).get(name, {}),
    )
    out: defaultdict[tuple[str, ...], float] = defaultdict(float)
    for series, value in late.items():
        if not where(dict(series)):
            continue
        before = early.get(series, 0.0)
        out[_group(series, by)] += _count(value) - _count(before)
    return dict(out)


def _count(value: Value) -> float:
    return float(sum(value[1])) if isinstance(value, tuple) else value


def _quantile(
    history: History,
    started: float,
    name: str,
    since: float,
    until: float,
    by: tuple[str, ...],
    q: float,
) -> dict[tuple[str, ...], float]:
    """`histogram_quantile(q, sum by (le, by) (increase(name[since, until])))`."""
    late, early = (
        _at(history, until, started).get(name, {}),
        _at(history, since, started).get(name, {}),
    )
    buckets: dict[tuple[str, ...], tuple[tuple[float, ...], list[float]]] = {}
    for series, value in late.items():
        if not isinstance(value, tuple):
            continue
        bounds, counts = value
        before = early.get(series)
        old = before[1] if isinstance(before, tuple) else (0,) * len(counts)
        group = _group(series, by)
        _, acc = buckets.setdefault(group, (bounds, [0.0] * len(counts)))
        for i, (c, o) in enumerate(zip(counts, old, strict=True)):
            acc[i] += c - o
    out: dict[tuple[str, ...], float] = {}
    for group, (bounds, counts) in buckets.items():
        total = sum(counts)
        if total <= 0:
            continue
        rank, seen = q * total, 0.0
        for i, c in enumerate(counts):
            if seen + c >= rank and c > 0:
                if i >= len(bounds):  # the +Inf bucket: the highest finite bound
                    out[group] = bounds[-1]
                else:
                    lower = bounds[i - 1] if i > 0 else 0.0
                    out[group] = lower + (bounds[i] - lower) * (rank - seen) / c
                break
            seen += c
    return out


def _latest(history: History, name: str) -> dict[Series, float]:
    snap = history[-1][1] if history else {}
    return {s: v for s, v in snap.get(name, {}).items() if not isinstance(v, tuple)}


def _ratio(part: Mapping[Any, float], whole: Mapping[Any, float]) -> dict[Any, float]:
    return {k: part.get(k, 0.0) / w for k, w in whole.items() if w > 0}


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    """One alert: when it holds (per label set), and for how long before it fires."""

    name: str
    for_s: float
    history_s: float
    """How much history it reads."""
    summary: str
    description: str
    check: Callable[[History, float, float], list[dict[str, str]]]

    def holds(self, history: History, now: float, started: float) -> Holding:
        """The label sets for which it holds now, with their annotations."""
        return [
            (
                labels,
                {
                    "summary": self.summary.format(**labels),
                    "description": self.description.format(**labels),
                },
            )
            for labels in self.check(history, now, started)
        ]


def _labels(by: tuple[str, ...], group: tuple[str, ...]) -> dict[str, str]:
    return {_LABEL[k]: v for k, v in zip(by, group, strict=True)}


def conditions(s: AlertSettings) -> tuple[Condition, ...]:
    """The six conditions with the thresholds of `s`."""
    model, kind = ("handoffs.model",), ("handoffs.task.kind",)
    pair = ("handoffs.model", "handoffs.task.kind")

    def errors(h: History, now: float, t0: float) -> list[dict[str, str]]:
        bad = _increase(
            h,
            t0,
            _CALLS,
            now - 300,
            now,
            model,
            lambda a: a.get("handoffs.attempt.outcome") == "provider_error",
        )
        share = _ratio(bad, _increase(h, t0, _CALLS, now - 300, now, model))
        return [_labels(model, g) for g, r in share.items() if r > s.error_rate]

    def latency(h: History, now: float, t0: float) -> list[dict[str, str]]:
        recent = _quantile(h, t0, _HANDOFF_TIME, now - 600, now, kind, 0.95)
        before = _quantile(h, t0, _HANDOFF_TIME, now - 4200, now - 600, kind, 0.95)
        return [
            _labels(kind, g)
            for g, p in recent.items()
            if g in before and p > s.latency_factor * before[g] and p > s.latency_floor_s
        ]

    def budget(h: History, now: float, t0: float) -> list[dict[str, str]]:
        used = _latest(h, "handoffs.budget.used")
        jobs: dict[str, float] = {}
        for series, v in used.items():
            job = dict(series).get("handoffs.job.name", "")
            jobs[job] = max(jobs.get(job, 0.0), v)
        return [{"handoffs_job_name": j} for j, v in jobs.items() if v > s.budget_used]

    def down(h: History, now: float, t0: float) -> list[dict[str, str]]:
        out: dict[tuple[str, str], float] = {}
        for series, v in _latest(h, "handoffs.breaker.down_time").items():
            a = dict(series)
            if a.get("handoffs.primary") == "true":
                key = (a.get("handoffs.model", ""), a.get("gen_ai.provider.name", ""))
                out[key] = max(out.get(key, 0.0), v)
        return [
            {"handoffs_model": m, "gen_ai_provider_name": p}
            for (m, p), v in out.items()
            if v > s.primary_down_s
        ]

    def verification(h: History, now: float, t0: float) -> list[dict[str, str]]:
        def failed(a: dict[str, str]) -> bool:
            return a.get("handoffs.verification.result") == "fail"

        recent_all = _increase(h, t0, _VERIFIED, now - 900, now, pair)
        recent = _ratio(_increase(h, t0, _VERIFIED, now - 900, now, pair, failed), recent_all)
        before = _ratio(
            _increase(h, t0, _VERIFIED, now - 4500, now - 900, pair, failed),
            _increase(h, t0, _VERIFIED, now - 4500, now - 900, pair),
        )
        return [
            _labels(pair, g)
            for g, r in recent.items()
            if g in before and r - before[g] > s.verification_failure_rise and recent_all[g] >= 10
        ]

    def premium(h: History, now: float, t0: float) -> list[dict[str, str]]:
        def share(since: float, until: float) -> float | None:
            done = _increase(
                h,
                t0,
                _HANDOFFS,
                since,
                until,
                ("handoffs.tier",),
                lambda a: a.get("handoffs.status") == "delivered",
            )
            total = sum(done.values())
            return done.get(("frontier",), 0.0) / total if total > 0 else None

        recent, before = share(now - 3600, now), share(now - 25200, now - 3600)
        rising = (
            recent is not None and before is not None and recent - before > s.premium_share_rise
        )
        return [{}] if rising else []

    return (
        Condition(
            name="HandoffsErrorRateSpike",
            for_s=300,
            history_s=300,
            summary="Provider errors on {handoffs_model}",
            description=f"More than {s.error_rate * 100:g} % of the calls to {{handoffs_model}} failed at the provider over 5 minutes.",
            check=errors,
        ),
        Condition(
            name="HandoffsLatencyP95Degraded",
            for_s=300,
            history_s=4200,
            summary="p95 latency of {handoffs_task_kind} handoffs degraded",
            description=f"The p95 wall time of {{handoffs_task_kind}} handoffs over 10 minutes is more than {s.latency_factor:g} times its p95 over the hour before.",
            check=latency,
        ),
        Condition(
            name="HandoffsBudgetThreshold",
            for_s=0,
            history_s=0,
            summary=f"Job {{handoffs_job_name}} is past {s.budget_used * 100:g} % of its budget",
            description=f"Job {{handoffs_job_name}} has spent or reserved more than {s.budget_used * 100:g} % of its budget; at 100 % its handoffs are refused.",
            check=budget,
        ),
        Condition(
            name="HandoffsPrimaryProviderDown",
            for_s=0,
            history_s=0,
            summary=f"Primary provider of {{handoffs_model}} down for more than {s.primary_down_s / 60:g} minutes",
            description=f"The circuit breaker of {{handoffs_model}} ({{gen_ai_provider_name}}) has not closed for more than {s.primary_down_s / 60:g} minutes.",
            check=down,
        ),
        Condition(
            name="HandoffsVerificationFailureRateUp",
            for_s=600,
            history_s=4500,
            summary="{handoffs_model} fails verification more often on {handoffs_task_kind}",
            description=f"The share of {{handoffs_model}}'s {{handoffs_task_kind}} answers that fail their checks rose by more than {s.verification_failure_rise * 100:g} points over the last 15 minutes: the model or the inputs changed (run handoffs qualify).",
            check=verification,
        ),
        Condition(
            name="HandoffsPremiumShareCreeping",
            for_s=1800,
            history_s=25200,
            summary="Premium (frontier) share of handoffs is creeping up",
            description=f"The frontier tier delivered a share of handoffs over the last hour more than {s.premium_share_rise * 100:g} points above its share over the 6 hours before (handoffs report --since 7d --compare shows where).",
            check=premium,
        ),
    )
