"""A policy's figures on recorded outcomes: accuracy, cost, AIQ, APGR, intervals, per task kind.

`Figures` turns a fitted policy's plans on the data into a `PolicyScore`; a `Report` is every
policy on one dataset, with the `--json` document.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from handoffs.routing import Outcomes
from handoffs_bench import metric
from handoffs_bench.policy import Context, Plan, Planned, plan_random

__all__ = ["Figures", "PolicyScore", "Report"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyScore:
    """One policy's figures on the data."""

    name: str
    accuracy: float
    cost_usd: float
    cost_fraction: float
    """Cost as a share of always-frontier's cost on the same data."""
    escalation_rate: float
    aiq: float
    """RouterBench AIQ of the policy's sweep over the single models' cost range (cost per prompt)."""
    reach: dict[str, float | None]
    """Cost fraction at which the sweep's hull reaches 90/95/100 % of always-frontier accuracy."""
    apgr: float | None = None
    cpt50: float | None = None
    cpt80: float | None = None
    false_accept: float | None = None
    false_reject: float | None = None
    accuracy_std: float | None = None
    """Random policies: the standard deviation of accuracy over seeds."""
    accuracy_ci: tuple[float, float] | None = None
    """95 % bootstrap interval of the accuracy (prompts resampled)."""
    cost_fraction_ci: tuple[float, float] | None = None
    """95 % bootstrap interval of the cost fraction (prompts resampled, frontier cost with them)."""
    note: str = ""
    curve: tuple[tuple[float, float], ...] = ()
    """The policy's sweep as (cost fraction, accuracy) operating points."""
    apgr_ci: tuple[float, float] | None = None
    """95 % bootstrap interval of the APGR (prompts resampled, scores fixed)."""
    by_task: dict[str, dict[str, float]] | None = None
    """Per task kind (when there are at most ten): accuracy, cost fraction, escalation rate."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """Every policy on one dataset."""

    dataset: str
    frontier: str
    cheap: str
    frontier_accuracy: float
    frontier_cost_usd: float
    two_model: bool
    protocol: str
    policies: tuple[PolicyScore, ...]

    def document(self) -> dict[str, object]:
        """The `--json` document."""
        policies: list[dict[str, object]] = []
        for p in self.policies:
            entry: dict[str, object] = {
                "name": p.name,
                "accuracy": p.accuracy,
                "cost_usd": p.cost_usd,
                "cost_fraction": p.cost_fraction,
                "escalation_rate": p.escalation_rate,
                "aiq": p.aiq,
                "cost_fraction_to_reach": p.reach,
            }
            if self.two_model:
                entry |= {"apgr": p.apgr, "cpt50": p.cpt50, "cpt80": p.cpt80}
            if p.false_accept is not None:
                entry |= {"false_accept_rate": p.false_accept, "false_reject_rate": p.false_reject}
            if p.accuracy_ci is not None and p.cost_fraction_ci is not None:
                entry |= {
                    "accuracy_ci95": list(p.accuracy_ci),
                    "cost_fraction_ci95": list(p.cost_fraction_ci),
                }
            if p.accuracy_std is not None:
                entry["accuracy_std_over_seeds"] = p.accuracy_std
            if p.apgr_ci is not None:
                entry["apgr_ci95"] = list(p.apgr_ci)
            if p.note:
                entry["note"] = p.note
            if p.by_task is not None:
                entry["by_task"] = p.by_task
            entry["curve"] = [list(point) for point in p.curve]
            policies.append(_finite(entry))
        return {
            "dataset": self.dataset,
            "protocol": self.protocol,
            "frontier": {
                "model": self.frontier,
                "accuracy": self.frontier_accuracy,
                "cost_usd": self.frontier_cost_usd,
            },
            "cheap_model": self.cheap,
            "policies": policies,
        }


def _finite(entry: dict[str, object]) -> dict[str, object]:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in entry.items()}


class Figures:
    """Turns plans on the data into figures."""

    def __init__(self, data: Outcomes, ctx: Context, two_model: bool) -> None:
        self.data, self.ctx, self.two_model = data, ctx, two_model
        n = max(len(data), 1)
        singles = [data.model_cost(m) / n for m in data.models]
        self.c_min, self.c_max = min(singles), max(singles)
        self.frontier_acc = data.model_accuracy(ctx.frontier)
        self.frontier_cost = data.model_cost(ctx.frontier)
        w, s = data.index(ctx.cheap), data.index(ctx.frontier)
        self.weak = [row[w] for row in data.correct]
        self.strong = [row[s] for row in data.correct]

    def _curve(self, planned: Planned) -> list[tuple[float, float]]:
        n = max(len(self.data), 1)
        return [(p.cost(self.data) / n, p.accuracy(self.data)) for p in planned.sweep]

    def score(self, name: str, planned: Planned, note: str) -> PolicyScore:
        data, plan = self.data, planned.chosen
        curve = self._curve(planned)
        n = max(len(data), 1)
        reach = {
            f"{q:.0%}": (
                None
                if (c := metric.cost_to_reach(curve, q * self.frontier_acc)) is None
                else c * n / self.frontier_cost
            )
            for q in (0.9, 0.95, 1.0)
        }
        fa = fr = None
        gated = [i for i, g in enumerate(plan.gated) if g]
        if gated:
            fa, fr = metric.verifier_rates(
                [not plan.escalated[i] for i in gated],
                [
                    data.correct[i][plan.judged[i] if plan.judged else plan.calls[i][0]]
                    for i in gated
                ],
            )
        apgr = cpt50 = cpt80 = None
        apgr_ci: tuple[float, float] | None = None
        if self.two_model and planned.scores is not None:
            apgr, cpt50, cpt80 = self._share_metrics(planned.scores)
            apgr_ci = self._apgr_interval(planned.scores)
        cost = plan.cost(data)
        acc_ci, cost_ci = self._bootstrap(plan)
        return PolicyScore(
            name=name,
            accuracy=plan.accuracy(data),
            cost_usd=cost,
            cost_fraction=cost / self.frontier_cost if self.frontier_cost else math.nan,
            escalation_rate=metric.escalation_rate(plan.escalated),
            aiq=metric.aiq(curve, self.c_min, self.c_max) if self.c_max > self.c_min else math.nan,
            reach=reach,
            apgr=apgr,
            cpt50=cpt50,
            cpt80=cpt80,
            false_accept=fa,
            false_reject=fr,
            accuracy_ci=acc_ci,
            cost_fraction_ci=cost_ci,
            note=note,
            curve=tuple((c * n / self.frontier_cost, q) for c, q in curve)
            if self.frontier_cost
            else (),
            apgr_ci=apgr_ci,
            by_task=self._by_task(plan),
        )

    def _bootstrap(
        self, plan: Plan, *, resamples: int = 1000
    ) -> tuple[tuple[float, float], tuple[float, float]]:
        """95 % percentile intervals of accuracy and cost fraction over resampled prompts."""
        data = self.data
        hits = np.asarray([data.correct[i][j] for i, j in enumerate(plan.delivered)])
        spent = np.asarray(
            [sum(data.cost_usd[i][j] for j in calls) for i, calls in enumerate(plan.calls)]
        )
        frontier = np.asarray([row[data.index(self.ctx.frontier)] for row in data.cost_usd])
        rows = np.random.default_rng(self.ctx.seed).integers(0, len(data), (resamples, len(data)))
        accs = hits[rows].mean(axis=1)
        fractions = spent[rows].sum(axis=1) / np.maximum(frontier[rows].sum(axis=1), 1e-300)

        def interval(values: NDArray[np.float64]) -> tuple[float, float]:
            low, high = np.quantile(values, [0.025, 0.975])
            return float(low), float(high)

        return interval(accs), interval(fractions)

    def _by_task(self, plan: Plan) -> dict[str, dict[str, float]] | None:
        data, f = self.data, self.data.index(self.ctx.frontier)
        kinds = sorted(set(data.tasks))
        if len(kinds) > 10:
            return None
        out: dict[str, dict[str, float]] = {}
        for kind in kinds:
            rows = [i for i, t in enumerate(data.tasks) if t == kind]
            spent = sum(data.cost_usd[i][j] for i in rows for j in plan.calls[i])
            frontier = sum(data.cost_usd[i][f] for i in rows)
            out[kind] = {
                "prompts": len(rows),
                "accuracy": sum(data.correct[i][plan.delivered[i]] for i in rows) / len(rows),
                "frontier_accuracy": sum(data.correct[i][f] for i in rows) / len(rows),
                "cost_fraction": spent / frontier if frontier else math.nan,
                "escalation_rate": sum(plan.escalated[i] for i in rows) / len(rows),
            }
        return out

    def _apgr_interval(
        self, scores: Sequence[float], *, resamples: int = 1000
    ) -> tuple[float, float] | None:
        """95 % percentile interval of the APGR over resampled prompts (scores fixed)."""
        rows = np.random.default_rng(self.ctx.seed).integers(
            0, len(self.data), (resamples, len(self.data))
        )
        values = metric.apgr_resampled(scores, self.weak, self.strong, rows)
        finite = values[np.isfinite(values)]
        if not len(finite):
            return None
        low, high = np.quantile(finite, [0.025, 0.975])
        return float(low), float(high)

    def _share_metrics(self, scores: Sequence[float]) -> tuple[float, float | None, float | None]:
        curve = metric.share_curve(scores, self.weak, self.strong)
        acc_w, acc_s = metric.accuracy(self.weak), metric.accuracy(self.strong)
        return (
            metric.apgr(curve, acc_w, acc_s),
            metric.cpt(curve, acc_w, acc_s, 0.5),
            metric.cpt(curve, acc_w, acc_s, 0.8),
        )

    def random(self, seeds: int) -> PolicyScore:
        runs = [
            self.score("random", plan_random(self.data, self.ctx, seed=s), "") for s in range(seeds)
        ]

        def mean(values: Callable[[PolicyScore], float | None]) -> float | None:
            got = [v for r in runs if (v := values(r)) is not None]
            return statistics.fmean(got) if got else None

        accs = [r.accuracy for r in runs]
        return PolicyScore(
            name="random-50%",
            accuracy=statistics.fmean(accs),
            cost_usd=statistics.fmean(r.cost_usd for r in runs),
            cost_fraction=statistics.fmean(r.cost_fraction for r in runs),
            escalation_rate=0.0,
            aiq=statistics.fmean(r.aiq for r in runs),
            reach=runs[0].reach,
            apgr=mean(lambda r: r.apgr),
            cpt50=mean(lambda r: r.cpt50),
            cpt80=mean(lambda r: r.cpt80),
            accuracy_std=statistics.stdev(accs) if len(accs) > 1 else 0.0,
            note=f"frontier or {self.ctx.cheap} at 50/50, mean over {seeds} seeds",
            curve=runs[0].curve,
        )
