"""The replay harness: fit every policy on train, plan it on data, and measure it side by side.

When train and data are the same folder, the default protocol is a fixed **hold-out**
(`holdout_rows`): a share of the prompts, or of the task kinds (`split="task"`: whole subjects),
chosen by a hash of their id, is set aside before anything is fitted or chosen - the frontier and
cheap models' identities, every policy's fit, regularisation and operating point see only the rest -
and the figures are computed on the held-out part alone. With `holdout=0` every policy is
*cross-fitted* instead: the data is cut into `folds` folds, each fold is planned by policies
fitted on the other folds and the plans are stitched back together; there the identity of the
frontier and cheap models comes from the whole set, and every design choice made while looking at
those figures has seen every fold, so cross-fitted figures are optimistic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Literal

from handoffs.routing import Outcomes
from handoffs_bench.cascade import fit_verified
from handoffs_bench.evidence import gather
from handoffs_bench.figure import Figures, PolicyScore, Report
from handoffs_bench.policy import (
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
    single,
)

__all__ = ["PolicyScore", "Report", "context_of", "evaluate", "folds_of", "holdout_rows"]

Split = Literal["prompt", "task"]


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
    judged = [0] * n
    for rows, plan in parts:
        for k, i in enumerate(rows):
            calls[i], delivered[i], escalated[i] = (
                plan.calls[k],
                plan.delivered[k],
                plan.escalated[k],
            )
            gated[i] = plan.gated[k] if plan.gated else False
            judged[i] = plan.judged[k] if plan.judged else (plan.calls[k] or (0,))[0]
    has_gate = any(plan.gated for _, plan in parts)
    has_judged = any(plan.judged for _, plan in parts)
    return Plan(
        calls=tuple(calls),
        delivered=tuple(delivered),
        escalated=tuple(escalated),
        gated=tuple(gated) if has_gate else (),
        judged=tuple(judged) if has_judged else (),
    )


def _crossfit(
    fit: Fit,
    data: Outcomes,
    ctx: Context,
    folds: Sequence[Sequence[int]],
    on_fold: Callable[[int], None] | None = None,
) -> Planned:
    n = len(data)
    parts: list[tuple[Sequence[int], Planned]] = []
    for number, held in enumerate(folds, 1):
        if on_fold is not None:
            on_fold(number)
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


def _unit(key: str) -> float:
    """A fixed number in [0, 1) for a key: the same split on every machine and every run."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / 16**12


def holdout_rows(data: Outcomes, share: float, split: Split) -> tuple[list[int], list[int]]:
    """(train rows, held-out rows): the prompts (or whole task kinds) whose hash falls below
    `share` are held out. Each side keeps at least one task kind (or prompt)."""
    if split == "task":
        kinds = sorted(set(data.tasks))
        held = {t for t in kinds if _unit(f"{data.dataset}/{t}") < share}
        if not held or len(held) == len(kinds):
            ranked = sorted(kinds, key=lambda t: _unit(f"{data.dataset}/{t}"))
            held = set(ranked[: max(1, min(len(kinds) - 1, round(share * len(kinds))))])
        test = [i for i, t in enumerate(data.tasks) if t in held]
    else:
        test = [i for i, p in enumerate(data.prompt_ids) if _unit(f"{data.dataset}/{p}") < share]
    chosen = set(test)
    train = [i for i in range(len(data)) if i not in chosen]
    if not train or not test:
        raise ValueError(f"--holdout {share} leaves nothing to fit on or nothing to score")
    return train, test


def evaluate(
    train: Outcomes,
    data: Outcomes,
    *,
    same: bool,
    folds: int = 5,
    split: Split = "prompt",
    seeds: int = 20,
    budget: float = 0.25,
    quality: float = 1.0,
    on_step: Callable[[str], None] | None = None,
    holdout: float = 0.0,
) -> Report:
    """Fit every policy on train, replay it on data, and score it.

    `quality` is the share of the frontier's train accuracy the tuned policies (cascade, learned)
    aim for at the least cost; `budget` is the budgeted baselines' share of the frontier's cost.
    `on_step` is told what is being done (`policy 3/9 best-single@25%: fold 2/5`), for progress.
    With `same` and `holdout` > 0, a fixed `holdout` share of data (by `split`) is scored and only
    the rest is fitted on; with `holdout` 0 the policies are cross-fitted over `folds`.
    """

    def step(text: str) -> None:
        if on_step is not None:
            on_step(text)

    if same and holdout > 0:
        fit_rows, test_rows = holdout_rows(data, holdout, split)
        kinds = "task kinds" if split == "task" else "prompts"

        def unit(rows: Sequence[int]) -> int:
            return len({data.tasks[i] for i in rows}) if split == "task" else len(rows)

        report = evaluate(
            data.subset(fit_rows),
            data.subset(test_rows),
            same=False,
            seeds=seeds,
            budget=budget,
            quality=quality,
            on_step=on_step,
        )
        return replace(
            report,
            protocol=f"fixed hold-out by {split}: fitted on {unit(fit_rows)} {kinds}, scored on "
            f"{unit(test_rows)} held-out {kinds}"
            + (f" ({len(test_rows)} prompts)" if split == "task" else "")
            + " that no fit or choice saw",
        )
    ctx = context_of(train, budget=budget)
    if len([m for m in train.responses if m != ctx.frontier]) >= 2:
        step("gathering the cheap models' agreement evidence")
        found = gather(data) if same else gather(train).merged(gather(data))
        ctx = replace(ctx, evidence=found)
    missing = [m for m in (ctx.frontier, ctx.cheap) if m not in data.models]
    if missing or set(data.models) != set(train.models):
        raise ValueError("train and data must record the same models")
    fold_rows = folds_of(data, folds, split) if same else []

    def run(fit: Fit, what: str) -> Planned:
        step(what)
        if not same:
            return fit(train, ctx)(data)
        folds = len(fold_rows)
        return _crossfit(
            fit, data, ctx, fold_rows, on_fold=lambda k: step(f"{what}: fold {k}/{folds}")
        )

    two_model = len(data.models) == 2
    scorer = Figures(data, ctx, two_model)
    fits: list[tuple[str, Fit, str]] = [
        ("always-frontier", single(ctx.frontier), ctx.frontier),
        ("always-cheapest", single(ctx.cheapest), ctx.cheapest),
        (f"best-single@{budget:.0%}", best_single, "most accurate model within the budget"),
        (f"zero-router@{budget:.0%}", fit_zero_router, "blend of two hull models at the budget"),
        ("task-rules", fit_task_rules, "per task kind: cheapest model matching the frontier"),
    ]
    cascade_ok = ctx.evidence is not None
    if ctx.evidence is not None:
        fits.append(
            (
                "cascade-agree",
                partial(fit_cascade, quality=quality),
                "per task: two cheap answers agree, else the frontier; or one model",
            )
        )
        fits.append(
            (
                "verified",
                partial(fit_verified, evidence=ctx.evidence, quality=quality),
                "per task: cheap models in a learned order, a learned judge after each call, "
                "the frontier when it is unsure",
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
    for number, (name, fit, note) in enumerate(fits, 1):
        scores.append(scorer.score(name, run(fit, f"policy {number}/{len(fits)} {name}"), note))
    step(f"random policy, {seeds} seeds")
    scores.append(scorer.random(seeds))
    scores.append(scorer.score("oracle", oracle(train, ctx)(data), "upper bound only"))
    recommended = next(s for s in scores if s.name == ("verified" if cascade_ok else "learned"))
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
