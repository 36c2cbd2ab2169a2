"""Routing policies replayed over recorded outcomes, without calling any model.

Every policy is fitted on train outcomes only and then *planned* on data: for each prompt, which
models it calls (every call is charged, including a cheap answer a verifier rejected before
escalating) and whose answer it delivers. A policy gives its chosen operating point plus a fixed
sweep of operating points (its cost-quality curve); policies that rank prompts also give a score
(higher = send to the strong model) for RouteLLM's share curves.

The oracle reads the data's correctness: it is an upper bound, never an input to anything else.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations, pairwise

from handoffs.routing import Example, LinearScorer, Outcomes, fit_linear_scorer
from handoffs_bench.evidence import Evidence, answer_key

__all__ = [
    "Context",
    "Plan",
    "Planned",
    "agreement",
    "answer_key",
    "fit_cascade",
    "fit_learned",
    "fit_task_rules",
    "fit_zero_router",
    "oracle",
    "plan_random",
    "single",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What a policy does on each prompt at one operating point."""

    calls: tuple[tuple[int, ...], ...]
    """The models called on each prompt (columns of the outcomes), all of them charged."""
    delivered: tuple[int, ...]
    """The model whose answer is delivered on each prompt."""
    escalated: tuple[bool, ...]
    """Whether a cheap answer was rejected and a stronger model called."""
    gated: tuple[bool, ...] = ()
    """Cascades only: whether the verifier looked at a cheap answer (False when routed past it)."""
    judged: tuple[int, ...] = ()
    """Cascades only: the cheap answer the verifier last judged (delivered unless escalated);
    empty: the first model called."""

    def accuracy(self, data: Outcomes) -> float:
        """The share of prompts whose delivered answer is correct."""
        hits = sum(data.correct[i][j] for i, j in enumerate(self.delivered))
        return hits / len(data) if len(data) else 0.0

    def cost(self, data: Outcomes) -> float:
        """Total USD charged for every call the policy made."""
        return sum(data.cost_usd[i][j] for i, calls in enumerate(self.calls) for j in calls)


@dataclass(frozen=True, slots=True, kw_only=True)
class Planned:
    """A fitted policy's plans on some data."""

    chosen: Plan
    sweep: tuple[Plan, ...]
    """Operating points of the policy's cost-quality curve (a fixed number of them per policy)."""
    scores: tuple[float, ...] | None = None
    """Per prompt: how strongly the policy wants the strong model (two-model data)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What every policy shares: the models fixed from the whole train set."""

    frontier: str
    """The most accurate model on train (the costlier one on a tie)."""
    cheap: str
    """The cheap model a two-tier policy tries first: the most accurate one within the budget."""
    cheapest: str
    budget: float = 0.25
    """The budget of the budgeted baselines, as a fraction of the frontier's cost."""
    seed: int = 0
    evidence: Evidence | None = None
    """What the answers show (keys, sandboxed runs) for every train and data prompt."""


Fit = Callable[[Outcomes, Context], Callable[[Outcomes], Planned]]


def single_plan(data: Outcomes, model: int) -> Plan:
    """Every prompt to one model."""
    n = len(data)
    return Plan(calls=((model,),) * n, delivered=(model,) * n, escalated=(False,) * n)


def _singles(data: Outcomes) -> tuple[Plan, ...]:
    return tuple(single_plan(data, j) for j in range(len(data.models)))


def single(model: str) -> Fit:
    """Always the same model."""

    def fit(train: Outcomes, ctx: Context) -> Callable[[Outcomes], Planned]:
        def plan(data: Outcomes) -> Planned:
            j = data.index(model)
            return Planned(chosen=single_plan(data, j), sweep=_singles(data))

        return plan

    return fit


def best_single(train: Outcomes, ctx: Context) -> Callable[[Outcomes], Planned]:
    """The most accurate single model whose train cost is within the budget."""
    cap = ctx.budget * train.model_cost(ctx.frontier)
    affordable = [m for m in train.models if train.model_cost(m) <= cap] or [ctx.cheapest]
    model = max(affordable, key=lambda m: (train.model_accuracy(m), -train.model_cost(m)))
    return single(model)(train, ctx)


def fit_zero_router(train: Outcomes, ctx: Context) -> Callable[[Outcomes], Planned]:
    """RouterBench's Zero router: the best blend of two single models on train's convex hull.

    At the budget it sends a fixed share of prompts (a seeded random subset) to the costlier of the
    two hull models that bracket the budget.
    """
    from handoffs_bench.metric import upper_hull

    points = {(train.model_cost(m), train.model_accuracy(m)): m for m in train.models}
    hull = upper_hull(list(points))
    cap = ctx.budget * train.model_cost(ctx.frontier)
    low, high, share = hull[0], hull[0], 0.0
    for a, b in pairwise(hull):
        if a[0] <= cap:
            low, high, share = a, a, 0.0
            if cap < b[0]:
                high, share = b, (cap - a[0]) / (b[0] - a[0])
    if cap >= hull[-1][0]:
        low, high, share = hull[-1], hull[-1], 0.0
    low_model, high_model = points[low], points[high]

    def plan(data: Outcomes) -> Planned:
        rng = random.Random(ctx.seed)
        lo, hi = data.index(low_model), data.index(high_model)
        picks = tuple(hi if rng.random() < share else lo for _ in range(len(data)))
        chosen = Plan(
            calls=tuple((j,) for j in picks), delivered=picks, escalated=(False,) * len(data)
        )
        return Planned(chosen=chosen, sweep=_singles(data))

    return plan


def oracle(train: Outcomes, ctx: Context) -> Callable[[Outcomes], Planned]:
    """The cheapest correct model per prompt (the cheapest model when none is): an upper bound.

    Its sweep adds the single models (it can always do what one model does).
    """

    def plan(data: Outcomes) -> Planned:
        picks: list[int] = []
        for correct, cost in zip(data.correct, data.cost_usd, strict=True):
            right = [j for j, c in enumerate(correct) if c >= 0.5] or list(range(len(correct)))
            picks.append(min(right, key=lambda j: cost[j]))
        chosen = Plan(
            calls=tuple((j,) for j in picks), delivered=tuple(picks), escalated=(False,) * len(data)
        )
        weak, strong = data.index(ctx.cheap), data.index(ctx.frontier)
        scores = tuple(
            float(row[strong] > row[weak]) - float(row[weak] > row[strong]) for row in data.correct
        )
        return Planned(chosen=chosen, sweep=(chosen, *_singles(data)), scores=scores)

    return plan


def plan_random(data: Outcomes, ctx: Context, *, seed: int, share: float = 0.5) -> Planned:
    """Each prompt to the frontier with probability `share`, else to the cheap model."""
    rng = random.Random(seed)
    draws = [rng.random() for _ in range(len(data))]
    weak, strong = data.index(ctx.cheap), data.index(ctx.frontier)

    def at(p: float) -> Plan:
        picks = tuple(strong if d < p else weak for d in draws)
        return Plan(
            calls=tuple((j,) for j in picks), delivered=picks, escalated=(False,) * len(data)
        )

    return Planned(
        chosen=at(share),
        sweep=tuple(at(k / 10) for k in range(11)),
        scores=tuple(1.0 - d for d in draws),
    )


TASK_QUALITY = (0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)


def fit_task_rules(train: Outcomes, ctx: Context) -> Callable[[Outcomes], Planned]:
    """Per task kind, the cheapest model that matched the frontier's accuracy on that kind in train.

    The sweep relaxes "matched" to 70..100 % of the frontier's accuracy; unseen kinds go to the
    frontier.
    """
    rules: list[dict[str, str]] = []
    for quality in TASK_QUALITY:
        rule: dict[str, str] = {}
        for task in sorted(set(train.tasks)):
            part = train.subset([i for i, t in enumerate(train.tasks) if t == task])
            target = quality * part.model_accuracy(ctx.frontier)
            fit = [m for m in part.models if part.model_accuracy(m) >= target]
            rule[task] = min(fit, key=part.model_cost)
        rules.append(rule)

    def plan(data: Outcomes) -> Planned:
        def at(rule: dict[str, str]) -> Plan:
            picks = tuple(data.index(rule.get(t, ctx.frontier)) for t in data.tasks)
            return Plan(
                calls=tuple((j,) for j in picks), delivered=picks, escalated=(False,) * len(data)
            )

        plans = tuple(at(r) for r in rules)
        return Planned(chosen=plans[-1], sweep=plans)

    return plan


def agreement(data: Outcomes, a: str, b: str, frontier: str) -> Plan:
    """Models a and b answer; their agreement is accepted, anything else goes to the frontier."""
    ja, jb, jf = data.index(a), data.index(b), data.index(frontier)
    agree = [
        ka is not None and ka == answer_key(rb)
        for ka, rb in zip(map(answer_key, data.responses[a]), data.responses[b], strict=True)
    ]
    return Plan(
        calls=tuple((ja, jb) if ok else (ja, jb, jf) for ok in agree),
        delivered=tuple(ja if ok else jf for ok in agree),
        escalated=tuple(not ok for ok in agree),
        gated=(True,) * len(data),
    )


Option = tuple[str, str] | str
"""A pair of cheap models in an agreement cascade, or one model alone."""


def _option_plan(data: Outcomes, option: Option, frontier: str) -> Plan:
    if isinstance(option, str):
        return single_plan(data, data.index(option))
    return agreement(data, *option, frontier)


def _pick(train: Outcomes, options: Sequence[Option], frontier: str, quality: float) -> Option:
    """The cheapest option reaching `quality` x the frontier's accuracy on train, else the best."""
    target = quality * train.model_accuracy(frontier)
    plans = [(_option_plan(train, o, frontier), o) for o in options]
    reaching = [(p.cost(train), k) for k, (p, _) in enumerate(plans) if p.accuracy(train) >= target]
    if reaching:
        return plans[min(reaching)[1]][1]
    return max(plans, key=lambda po: (po[0].accuracy(train), -po[0].cost(train)))[1]


def fit_cascade(
    train: Outcomes, ctx: Context, *, quality: float = 0.97
) -> Callable[[Outcomes], Planned]:
    """Per task kind: an agreement cascade of two cheap models, or one model, chosen on train.

    The verifier sees only the two paid-for answers (their final answer: a letter or a number).
    For each task kind the cheapest option, among every pair of answer-recording non-frontier
    models and every single model, whose train accuracy on that kind reaches `quality` x the
    frontier's is used; kinds unseen in train use the option chosen on all of train. The sweep
    varies `quality` over 70..100 %.
    """
    candidates = sorted(m for m in train.responses if m != ctx.frontier)
    options: list[Option] = [*combinations(candidates, 2), *train.models]
    if len(candidates) < 2:
        raise ValueError("the agreement cascade needs answers recorded for two non-frontier models")
    kinds = sorted(set(train.tasks))
    parts = {t: train.subset([i for i, k in enumerate(train.tasks) if k == t]) for t in kinds}
    levels = sorted({*TASK_QUALITY, quality})
    rules = [
        (
            {t: _pick(parts[t], options, ctx.frontier, q) for t in kinds},
            _pick(train, options, ctx.frontier, q),
        )
        for q in levels
    ]

    def at(data: Outcomes, rule: tuple[dict[str, Option], Option]) -> Plan:
        by_kind, fallback = rule
        plans = {o: _option_plan(data, o, ctx.frontier) for o in {*by_kind.values(), fallback}}
        chosen = [plans[by_kind.get(t, fallback)] for t in data.tasks]
        return Plan(
            calls=tuple(p.calls[i] for i, p in enumerate(chosen)),
            delivered=tuple(p.delivered[i] for i, p in enumerate(chosen)),
            escalated=tuple(p.escalated[i] for i, p in enumerate(chosen)),
            gated=tuple(bool(p.gated) for p in chosen),
        )

    def plan(data: Outcomes) -> Planned:
        sweep = tuple(at(data, r) for r in rules)
        return Planned(chosen=sweep[levels.index(quality)], sweep=sweep)

    return plan


SHARES = tuple(k / 20 for k in range(21))
"""The learned router's sweep: shares of prompts sent to the frontier, the highest-scored first."""


def _by_share(margins: Sequence[float], weak: int, strong: int, share: float) -> Plan:
    order = sorted(range(len(margins)), key=lambda i: -margins[i])
    up = set(order[: round(share * len(margins))])
    picks = tuple(strong if i in up else weak for i in range(len(margins)))
    n = len(margins)
    return Plan(calls=tuple((j,) for j in picks), delivered=picks, escalated=(False,) * n)


def fit_learned(
    train: Outcomes, ctx: Context, *, quality: float = 1.0, folds: int = 2
) -> Callable[[Outcomes], Planned]:
    """The product's learned scorer (`handoffs.routing`) routing between the cheap model and the frontier.

    One logistic regression per model predicts P(correct) from the prompt and its task kind; a
    prompt's score is the predicted gain P(frontier) - P(cheap), less its mean over train (so that
    scores of different cross-fitting folds are comparable). The chosen operating point sends the
    top share of prompts up: the least share whose accuracy on train, routed by out-of-fold scores
    (`folds` folds inside train, same regularisation), reaches `quality` x the frontier's.
    """
    examples = _examples(train, ctx)
    scorer = fit_linear_scorer(examples)
    l2 = min(scorer.l2.values()) if scorer.l2 else None
    n = len(train)
    oof = [0.0] * n
    for k in range(folds):
        inside = train.subset([i for i in range(n) if i % folds != k])
        held = [i for i in range(n) if i % folds == k]
        if not held or len(inside) < 2:
            continue
        inner = fit_linear_scorer(_examples(inside, ctx), l2=l2, iterations=40)
        offset = sum(_gains(inner, inside, ctx)) / len(inside)
        for i, m in zip(held, _gains(inner, train.subset(held), ctx), strict=True):
            oof[i] = m - offset
    w, s = train.index(ctx.cheap), train.index(ctx.frontier)
    target = quality * train.model_accuracy(ctx.frontier)
    options = [(_by_share(oof, w, s, x), x) for x in SHARES]
    reaching = [x for p, x in options if p.accuracy(train) >= target - 1e-12]
    share = min(reaching) if reaching else max(options, key=lambda o: o[0].accuracy(train))[1]
    base = sum(_gains(scorer, train, ctx)) / max(n, 1)

    def plan(data: Outcomes) -> Planned:
        margins = [m - base for m in _gains(scorer, data, ctx)]
        w, s = data.index(ctx.cheap), data.index(ctx.frontier)
        return Planned(
            chosen=_by_share(margins, w, s, share),
            sweep=tuple(_by_share(margins, w, s, x) for x in SHARES),
            scores=tuple(margins),
        )

    return plan


def _examples(data: Outcomes, ctx: Context) -> list[Example]:
    return [
        Example(kind=kind, prompt=prompt, model=model, passed=row[data.index(model)] >= 0.5)
        for kind, prompt, row in zip(data.tasks, data.prompts, data.correct, strict=True)
        for model in (ctx.cheap, ctx.frontier)
    ]


def _gains(scorer: LinearScorer, data: Outcomes, ctx: Context) -> list[float]:
    """Predicted P(frontier right) - P(cheap right) per prompt."""
    p = scorer.predict(data.tasks, data.prompts)
    strong, weak = scorer.models.index(ctx.frontier), scorer.models.index(ctx.cheap)
    return [float(x) for x in p[:, strong] - p[:, weak]]
