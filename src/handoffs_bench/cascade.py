"""The verified cascade: cheap models in a learned order, a learned judge after each call, the frontier last.

For each task kind seen in train, `fit_verified` considers every sequence of up to `depth` cheap
models (non-frontier models with recorded answers costing at most the budget share of the
frontier on that kind, the `pool` most accurate of them), each followed either by the frontier or
by nothing, and every stopping threshold tau: after each call the kind's judge
(`handoffs_bench.gate`) names the answer it would deliver and its probability of being right; the
cascade stops and delivers it when that probability reaches tau, else calls the next model. Single
models (the frontier among them) are options too.

Every option is scored on train with *out-of-fold* judgements (the judge is fitted on the other
`folds` - 1 inner folds of train), giving per kind a set of (cost, correct answers) points. The
kinds are then combined along their upper convex hulls, buying the best marginal correct answers
per dollar first, until the policy reaches `quality` x the frontier's train accuracy overall; the
sweep repeats this for the levels in `LEVELS`. Kinds unseen in train go to the frontier.

Every call is charged, including the cheap answers the judge rejected before the frontier was called.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from handoffs.routing import Outcomes
from handoffs_bench.evidence import Evidence
from handoffs_bench.gate import CodeVote, Judgement, KeyVote, fit_code_vote, fit_key_vote, subsets
from handoffs_bench.metric import upper_hull
from handoffs_bench.policy import Context, Plan, Planned

__all__ = ["LEVELS", "TAUS", "Option", "fit_verified"]

TAUS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)
"""Stopping thresholds on the judge's probability that the answer it would deliver is right."""
LEVELS = (0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 1.0, 1.01, 1.02)
"""The sweep: shares of the frontier's train accuracy to reach at the least train cost."""

Judge = KeyVote | CodeVote


@dataclass(frozen=True, slots=True, kw_only=True)
class Option:
    """What the policy does on one task kind."""

    sequence: tuple[int, ...]
    """The models called in order (columns of the outcomes) until the judge is sure enough."""
    tau: float
    final: int | None
    """The model called when the judge never reached tau (the frontier), or None: deliver its pick."""
    judged: bool = True
    """False for a single model delivered as is."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Kind:
    rows: list[int]
    ids: list[str]
    judge_type: str | None
    pool: list[int]


def _judge_of(
    kind: _Kind, train: Outcomes, evidence: Evidence, rows: Sequence[int], depth: int
) -> Judge:
    ids = [train.prompt_ids[i] for i in rows]
    correct = [train.correct[i] for i in rows]
    if kind.judge_type == "code":
        return fit_code_vote([evidence.code[p] for p in ids], correct, kind.pool, depth=depth)
    return fit_key_vote([evidence.keys[p] for p in ids], correct, len(train.models))


def _judge(
    judge: Judge, evidence: Evidence, ids: Sequence[str], called: Sequence[int]
) -> Judgement:
    if isinstance(judge, CodeVote):
        return judge.judge([evidence.code[p] for p in ids], called)
    return judge.judge([evidence.keys[p] for p in ids], called)


def _run(
    option: Option,
    judgements: Mapping[tuple[int, ...], Judgement],
    cost: NDArray[np.float64],
    n: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """(calls made, delivered model, cost) per row; calls made counts the sequence's models used."""
    if not option.judged:
        j = option.sequence[0]
        return np.ones(n, np.int64), np.full(n, j, np.int64), cost[:, j].copy()
    stopped = np.zeros(n, dtype=bool)
    delivered = np.full(n, -1, dtype=np.int64)
    used = np.zeros(n, dtype=np.int64)
    spent = np.zeros(n)
    for d, model in enumerate(option.sequence):
        going = ~stopped
        spent[going] += cost[going, model]
        used[going] += 1
        chosen, confidence = judgements[tuple(sorted(option.sequence[: d + 1]))]
        last = d == len(option.sequence) - 1
        stop = going & ((confidence >= option.tau) | (last and option.final is None))
        delivered[stop] = chosen[stop]
        stopped |= stop
    if option.final is not None:
        rest = ~stopped
        spent[rest] += cost[rest, option.final]
        delivered[rest] = option.final
    return used, delivered, spent


def _points(
    sequence: tuple[int, ...],
    final: int | None,
    judgements: Mapping[tuple[int, ...], Judgement],
    cost: NDArray[np.float64],
    correct: NDArray[np.float64],
) -> list[tuple[float, float]]:
    """(total cost, correct answers) of a sequence at every threshold in `TAUS`, all at once."""
    n, depth = len(cost), len(sequence)
    rows = np.arange(n)
    sure = np.zeros((n, depth))
    right = np.zeros((n, depth))
    for d in range(depth):
        chosen, confidence = judgements[tuple(sorted(sequence[: d + 1]))]
        sure[:, d] = confidence
        right[:, d] = correct[rows, chosen]
    spent = np.cumsum(cost[:, list(sequence)], axis=1)
    stops = sure[None, :, :] >= np.asarray(TAUS)[:, None, None]
    if final is None:
        stops[:, :, -1] = True
    stopped = stops.any(axis=2)
    first = stops.argmax(axis=2)
    total = np.where(
        stopped, spent[rows, first], spent[:, -1] + (cost[:, final] if final is not None else 0)
    )
    hits = np.where(stopped, right[rows, first], correct[:, final] if final is not None else 0)
    return [(float(c), float(h)) for c, h in zip(total.sum(axis=1), hits.sum(axis=1), strict=True)]


def _scored(
    pool: Sequence[int],
    frontier: int,
    depth: int,
    judgements: Mapping[tuple[int, ...], Judgement],
    cost: NDArray[np.float64],
    correct: NDArray[np.float64],
) -> list[tuple[Option, tuple[float, float]]]:
    """Every option on one kind with its (cost, correct answers) on train."""
    options = [
        (
            Option(sequence=(j,), tau=0.0, final=None, judged=False),
            (float(cost[:, j].sum()), float(correct[:, j].sum())),
        )
        for j in range(cost.shape[1])
    ]
    if not judgements:
        return options
    for size in range(1, depth + 1):
        for sequence in itertools.permutations(pool, size):
            for final in (frontier, None) if size > 1 else (frontier,):
                points = _points(sequence, final, judgements, cost, correct)
                options += [
                    (Option(sequence=sequence, tau=tau, final=final), point)
                    for tau, point in zip(TAUS, points, strict=True)
                ]
    return options


def _walk(
    hulls: Mapping[str, list[tuple[float, float, int]]], targets: Sequence[float]
) -> list[dict[str, int]]:
    """For each target (correct answers), the hull point per kind reached buying the best ratios first."""
    at = dict.fromkeys(hulls, 0)
    total = sum(h[0][1] for h in hulls.values())
    picks: list[dict[str, int]] = []
    for target in targets:
        while total < target:
            steps = [
                ((h[at[k] + 1][1] - h[at[k]][1]) / max(h[at[k] + 1][0] - h[at[k]][0], 1e-12), k)
                for k, h in hulls.items()
                if at[k] + 1 < len(h)
            ]
            if not steps:
                break
            _, kind = max(steps)
            total += hulls[kind][at[kind] + 1][1] - hulls[kind][at[kind]][1]
            at[kind] += 1
        picks.append({k: hulls[k][at[k]][2] for k in hulls})
    return picks


def fit_verified(
    train: Outcomes,
    ctx: Context,
    *,
    evidence: Evidence,
    quality: float = 1.0,
    folds: int = 3,
    pool_size: int = 6,
    depth: int = 3,
) -> Callable[[Outcomes], Planned]:
    """Fit the verified cascade on train (see the module docstring)."""
    frontier = train.index(ctx.frontier)

    kinds: dict[str, _Kind] = {}
    for name in sorted(set(train.tasks)):
        rows = [i for i, t in enumerate(train.tasks) if t == name]
        part = train.subset(rows)
        cap = ctx.budget * part.model_cost(ctx.frontier)
        cheap = [
            j
            for j, model in enumerate(train.models)
            if j != frontier and model in train.responses and part.model_cost(model) <= cap
        ]
        pool = sorted(cheap, key=lambda j: -part.model_accuracy(train.models[j]))[:pool_size]
        ids = [train.prompt_ids[i] for i in rows]
        if name in evidence.code_kinds and all(p in evidence.code for p in ids):
            judge_type: str | None = "code"
        else:
            keyed = [
                j
                for j in pool
                if sum(evidence.keys[p][j] is not None for p in ids) >= 0.5 * len(ids)
            ]
            pool = keyed
            judge_type = "keys" if len(keyed) >= 2 else None
        kinds[name] = _Kind(rows=rows, ids=ids, judge_type=judge_type, pool=pool)

    chosen_options: dict[str, list[Option]] = {}
    hulls: dict[str, list[tuple[float, float, int]]] = {}
    for name, kind in kinds.items():
        n = len(kind.rows)
        cost = np.asarray([train.cost_usd[i] for i in kind.rows], dtype=np.float64)
        correct = np.asarray([train.correct[i] for i in kind.rows], dtype=np.float64)
        judgements: dict[tuple[int, ...], Judgement] = {}
        if kind.judge_type is not None:
            sets = subsets(kind.pool, depth)
            chosen = {s: np.zeros(n, np.int64) for s in sets}
            confidence = {s: np.zeros(n) for s in sets}
            for f in range(folds):
                held = [k for k in range(n) if k % folds == f]
                inside = [kind.rows[k] for k in range(n) if k % folds != f]
                if not held or not inside:
                    continue
                judge = _judge_of(kind, train, evidence, inside, depth)
                held_ids = [kind.ids[k] for k in held]
                for s in sets:
                    c, p = _judge(judge, evidence, held_ids, s)
                    chosen[s][held], confidence[s][held] = c, p
            judgements = {s: (chosen[s], confidence[s]) for s in sets}
        scored = _scored(kind.pool, frontier, depth, judgements, cost, correct)
        options = [o for o, _ in scored]
        points = [p for _, p in scored]
        best = {p: k for k, p in reversed(list(enumerate(points)))}  # first option per point
        hull = upper_hull(points)
        hulls[name] = [(c, q, best[c, q]) for c, q in hull]
        chosen_options[name] = options
    target = train.model_accuracy(ctx.frontier) * len(train)
    levels = sorted({*LEVELS, quality})
    picks = _walk(hulls, [q * target for q in levels])
    rules = [{k: chosen_options[k][i] for k, i in pick.items()} for pick in picks]
    judges = {
        name: _judge_of(kind, train, evidence, kind.rows, depth)
        for name, kind in kinds.items()
        if kind.judge_type is not None
    }

    def plan(data: Outcomes) -> Planned:
        f = data.index(ctx.frontier)
        sweep = tuple(_plan(data, rule, judges, evidence, f) for rule in rules)
        return Planned(chosen=sweep[levels.index(quality)], sweep=sweep)

    return plan


def _plan(
    data: Outcomes,
    rule: Mapping[str, Option],
    judges: Mapping[str, Judge],
    evidence: Evidence,
    frontier: int,
) -> Plan:
    n = len(data)
    calls: list[tuple[int, ...]] = [(frontier,)] * n
    delivered = [frontier] * n
    escalated = [False] * n
    gated = [False] * n
    judged = [frontier] * n
    for name in sorted(set(data.tasks)):
        option = rule.get(name)
        if option is None:
            continue  # an unseen kind: the frontier
        rows = [i for i, t in enumerate(data.tasks) if t == name]
        ids = [data.prompt_ids[i] for i in rows]
        cost = np.asarray([data.cost_usd[i] for i in rows], dtype=np.float64)
        judgements: dict[tuple[int, ...], Judgement] = {}
        if option.judged:
            for d in range(len(option.sequence)):
                s = tuple(sorted(option.sequence[: d + 1]))
                judgements[s] = _judge(judges[name], evidence, ids, s)
        used, picks, _ = _run(option, judgements, cost, len(rows))
        for k, i in enumerate(rows):
            made = option.sequence[: int(used[k])]
            went_up = option.final is not None and int(picks[k]) == option.final and option.judged
            calls[i] = (*made, option.final) if went_up and option.final is not None else made
            delivered[i] = int(picks[k])
            escalated[i] = went_up
            gated[i] = option.judged
            if option.judged:
                judged[i] = int(judgements[tuple(sorted(made))][0][k])
    return Plan(
        calls=tuple(calls),
        delivered=tuple(delivered),
        escalated=tuple(escalated),
        gated=tuple(gated),
        judged=tuple(judged),
    )
