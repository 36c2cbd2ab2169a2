"""The replay harness: fit every policy on train, plan it on data, and measure it side by side.

When train and data are the same folder, every policy is *cross-fitted*: the data is cut into
`folds` folds (by prompt, or by task kind so that each fold's kinds are unseen), each fold is
planned by policies fitted on the other folds, and the plans are stitched back together. Only the
identity of the frontier and cheap models comes from the whole set.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from handoffs.bench import metric
from handoffs.bench.policy import (
    Context,
    Fit,
    Plan,
    Planned,
    best_single,
    fit_cascade,
    fit_learned,
    fit_task_rules,
    fit_zero_router,
    oracle,
    plan_random,
    single,
)
from handoffs.bench.routing import Outcomes

__all__ = ["PolicyScore", "Report", "evaluate"]

Split = Literal["prompt", "task"]


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
            if p.note:
                entry["note"] = p.note
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


def context_of(train: Outcomes, *, budget: float = 0.25, seed: int = 0) -> Context:
    """Pick the frontier, the cheapest model and the budgeted cheap model from train."""
    frontier = max(train.models, key=lambda m: (train.model_accuracy(m), train.model_cost(m)))
    cheapest = min(train.models, key=train.model_cost)
    cap = budget * train.model_cost(frontier)
    affordable = [m for m in train.models if m != frontier and train.model_cost(m) <= cap]
    cheap = max(
        affordable or [cheapest], key=lambda m: (train.model_accuracy(m), -train.model_cost(m))
    )
    return Context(frontier=frontier, cheap=cheap, cheapest=cheapest, budget=budget, seed=seed)


def _merge(parts: Sequence[tuple[Sequence[int], Plan]], n: int) -> Plan:
    calls: list[tuple[int, ...]] = [()] * n
    delivered = [0] * n
    escalated = [False] * n
    gated = [False] * n
    for rows, plan in parts:
        for k, i in enumerate(rows):
            calls[i], delivered[i], escalated[i] = (
                plan.calls[k],
                plan.delivered[k],
                plan.escalated[k],
            )
            gated[i] = plan.gated[k] if plan.gated else False
    has_gate = any(plan.gated for _, plan in parts)
    return Plan(
        calls=tuple(calls),
        delivered=tuple(delivered),
        escalated=tuple(escalated),
        gated=tuple(gated) if has_gate else (),
    )


def _crossfit(fit: Fit, data: Outcomes, ctx: Context, folds: Sequence[Sequence[int]]) -> Planned:
    n = len(data)
    parts: list[tuple[Sequence[int], Planned]] = []
    for held in folds:
        held_set = set(held)
        inside = data.subset([i for i in range(n) if i not in held_set])
        parts.append((held, fit(inside, ctx)(data.subset(held))))
    sweep_len = min(len(p.sweep) for _, p in parts)
    scores: list[float] = [0.0] * n
    has_scores = all(p.scores is not None for _, p in parts)
    for rows, p in parts:
        for k, i in enumerate(rows):
            scores[i] = p.scores[k] if p.scores is not None else 0.0
    return Planned(
        chosen=_merge([(rows, p.chosen) for rows, p in parts], n),
        sweep=tuple(_merge([(rows, p.sweep[s]) for rows, p in parts], n) for s in range(sweep_len)),
        scores=tuple(scores) if has_scores else None,
    )


def folds_of(data: Outcomes, k: int, split: Split) -> list[list[int]]:
    """Fold membership: round-robin over prompts, or over task kinds (so each fold's kinds are unseen)."""
    if split == "task":
        kinds = sorted(set(data.tasks))
        k = min(k, len(kinds))
        fold_of = {t: n % k for n, t in enumerate(kinds)}
        return [[i for i, t in enumerate(data.tasks) if fold_of[t] == f] for f in range(k)]
    return [[i for i in range(len(data)) if i % k == f] for f in range(k)]


def evaluate(
    train: Outcomes,
    data: Outcomes,
    *,
    same: bool,
    folds: int = 5,
    split: Split = "prompt",
    seeds: int = 20,
    budget: float = 0.25,
    quality: float = 0.97,
) -> Report:
    """Fit every policy on train, replay it on data, and score it.

    `quality` is the share of the frontier's train accuracy the tuned policies (cascade, learned)
    aim for at the least cost; `budget` is the budgeted baselines' share of the frontier's cost.
    """
    ctx = context_of(train, budget=budget)
    missing = [m for m in (ctx.frontier, ctx.cheap) if m not in data.models]
    if missing or set(data.models) != set(train.models):
        raise ValueError("train and data must record the same models")
    fold_rows = folds_of(data, folds, split) if same else []

    def run(fit: Fit) -> Planned:
        return _crossfit(fit, data, ctx, fold_rows) if same else fit(train, ctx)(data)

    two_model = len(data.models) == 2
    scorer = _Scorer(data, ctx, two_model)
    fits: list[tuple[str, Fit, str]] = [
        ("always-frontier", single(ctx.frontier), ctx.frontier),
        ("always-cheapest", single(ctx.cheapest), ctx.cheapest),
        (f"best-single@{budget:.0%}", best_single, "most accurate model within the budget"),
        (f"zero-router@{budget:.0%}", fit_zero_router, "blend of two hull models at the budget"),
        ("task-rules", fit_task_rules, "per task kind: cheapest model matching the frontier"),
    ]
    cascade_ok = len([m for m in train.responses if m != ctx.frontier]) >= 2
    if cascade_ok:
        fits.append(
            (
                "cascade-agree",
                partial(fit_cascade, quality=quality),
                "per task: two cheap answers agree, else the frontier; or one model",
            )
        )
    fits.append(
        (
            "learned",
            partial(fit_learned, quality=quality),
            f"n-gram LR margin: {ctx.cheap} or the frontier",
        )
    )
    scores: list[PolicyScore] = []
    for name, fit, note in fits:
        scores.append(scorer.score(name, run(fit), note))
    scores.append(scorer.random(seeds))
    scores.append(scorer.score("oracle", oracle(train, ctx)(data), "upper bound only"))
    recommended = next(
        s for s in scores if s.name == ("cascade-agree" if cascade_ok else "learned")
    )
    scores.insert(0, replace(recommended, name="handoffs", note=f"= {recommended.name}"))
    protocol = (
        f"cross-fitted, {len(fold_rows)} folds by {split}"
        if same
        else "fitted on train, scored on data"
    )
    return Report(
        dataset=data.dataset,
        frontier=ctx.frontier,
        cheap=ctx.cheap,
        frontier_accuracy=data.model_accuracy(ctx.frontier),
        frontier_cost_usd=data.model_cost(ctx.frontier),
        two_model=two_model,
        protocol=protocol,
        policies=tuple(scores),
    )


class _Scorer:
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
                [data.correct[i][plan.calls[i][0]] for i in gated],
            )
        apgr = cpt50 = cpt80 = None
        if self.two_model and planned.scores is not None:
            apgr, cpt50, cpt80 = self._share_metrics(planned.scores)
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
        )
