"""Training the router's scorer on a team's recorded outcomes: `handoffs router train`.

`fit_linear_scorer` fits `handoffs.routing.LinearScorer`: per model, an L2-regularised logistic
regression over hashed n-grams and prompt-shape numbers, by L-BFGS (numpy only). `read_examples`
reads what to learn from:

- the export layout of `docs/routing-benchmark.md` (CSV or JSONL, one row per prompt and model:
  `task, prompt, model, correct`, optionally `prompt_id`, `cost_usd`, `response`), which is what
  the product's own outcome log writes (`handoffs.routing`, `[policy] outcomes`), and the
  RouterBench and RouteLLM layouts, from a file or every file under a folder;
- or a folder of `handoffs` job traces (`.handoffs/traces`): each attempt's task kind, model and
  whether its output passed the checks. Traces do not keep prompt text, so a scorer trained on
  them learns per task kind and model only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from handoffs.errors import ConfigError
from handoffs.routing._recorded import load_examples
from handoffs.routing._scorer import SHAPE_SIZE, HashedRows, LinearScorer, hashed_features, shape

__all__ = ["L2_GRID", "Example", "fit_linear_scorer", "read_examples"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Example:
    """One recorded outcome: did `model`'s answer to `prompt` (a task of `kind`) pass?"""

    kind: str
    prompt: str
    model: str
    passed: bool


def _lbfgs(
    f: Callable[[NDArray[np.float64]], tuple[float, NDArray[np.float64]]],
    x: NDArray[np.float64],
    *,
    iterations: int,
    memory: int = 10,
) -> NDArray[np.float64]:
    """Minimise f (value, gradient) by L-BFGS with a backtracking (Armijo) line search."""
    fx, g = f(x)
    pairs: list[tuple[NDArray[np.float64], NDArray[np.float64]]] = []
    for _ in range(iterations):
        q = g.copy()
        alphas: list[float] = []
        for s, y in reversed(pairs):
            a = float(s @ q) / float(y @ s)
            alphas.append(a)
            q -= a * y
        if pairs:
            s, y = pairs[-1]
            q *= float(s @ y) / float(y @ y)
        for (s, y), a in zip(pairs, reversed(alphas), strict=True):
            q += s * (a - float(y @ q) / float(y @ s))
        d = -q if float(g @ q) > 0 else -g
        slope, t = float(g @ d), 1.0
        while True:
            fn, gn = f(x + t * d)
            if fn <= fx + 1e-4 * t * slope or t < 1e-10:
                break
            t *= 0.5
        s, y = t * d, gn - g
        x, fx, g = x + s, fn, gn
        if float(s @ y) > 1e-12:
            pairs = [*pairs[-memory + 1 :], (s, y)]
        if float(np.abs(g).max()) < 1e-7:
            break
    return x


L2_GRID = (3e-4, 1e-3, 3e-3)
"""The regularisation strengths `fit_linear_scorer` chooses from on held-out outcomes."""


@dataclass(frozen=True, slots=True)
class _Design:
    x: HashedRows
    d: NDArray[np.float64]
    y: NDArray[np.float64]


def _fit_one(
    design: _Design, l2: float, iterations: int, start: NDArray[np.float64] | None = None
) -> NDArray[np.float64]:
    """Weights [hashed | shape | bias] of one L2-regularised logistic regression."""
    x, d, y = design.x, design.d, design.y
    buckets, n = x.buckets, max(len(y), 1)

    def loss(w: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        wh, wd, b = w[:buckets], w[buckets:-1], w[-1]
        z: NDArray[np.float64] = x.times(wh) + np.einsum("ij,j->i", d, wd) + b
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        value = float(np.mean(np.logaddexp(0.0, z) - y * z))
        value += 0.5 * l2 * float(wh @ wh + wd @ wd)
        r = (p - y) / n
        grad = np.concatenate(
            [x.t_times(r) + l2 * wh, np.einsum("ij,i->j", d, r) + l2 * wd, [r.sum()]]
        )
        return value, grad

    if start is None:
        prior = min(max(float(y.mean()) if len(y) else 0.5, 1e-3), 1 - 1e-3)
        first: NDArray[np.float64] = np.zeros(buckets + SHAPE_SIZE + 1)
        first[-1] = math.log(prior / (1 - prior))
        return _lbfgs(loss, first, iterations=iterations)
    return _lbfgs(loss, start, iterations=iterations)


def _log_loss(design: _Design, w: NDArray[np.float64]) -> float:
    buckets = design.x.buckets
    z: NDArray[np.float64] = design.x.times(w[:buckets]) + w[-1]
    z += np.einsum("ij,j->i", design.d, w[buckets:-1])
    return float(np.mean(np.logaddexp(0.0, z) - design.y * z))


def _held_out(examples: Sequence[Example]) -> list[bool]:
    """A third of the outcomes to choose the regularisation on: whole kinds when there are 3+."""
    kinds = sorted({e.kind for e in examples})
    if len(kinds) >= 3:
        held = {k for n, k in enumerate(kinds) if n % 3 == 2}
        return [e.kind in held for e in examples]
    return [n % 3 == 2 for n in range(len(examples))]


def fit_linear_scorer(
    examples: Sequence[Example],
    *,
    l2: float | None = None,
    iterations: int = 100,
    buckets: int = 2**14,
    tail: int = 1000,
    chars: tuple[int, int] = (3, 5),
) -> LinearScorer:
    """Fit one regularised logistic regression per model on its recorded outcomes.

    `l2` None: per model, the strength in `L2_GRID` with the least log-loss on a held-out third of
    its outcomes (whole task kinds when there are three or more, so that the choice favours what
    carries over to kinds not seen yet), then refitted on all of them.
    """
    models = tuple(sorted({e.model for e in examples}))
    if not models:
        raise ConfigError("no outcomes to learn from")
    prompts = sorted({e.prompt[-tail:] for e in examples})
    shapes = np.asarray([shape(p) for p in prompts]).reshape(-1, SHAPE_SIZE)
    # standardised, then shrunk so that the shape block's row norm (~1) matches the hashed block's
    mean, scale = shapes.mean(axis=0), (shapes.std(axis=0) + 1e-9) * math.sqrt(SHAPE_SIZE)

    def design(rows: Sequence[Example]) -> _Design:
        encoded = [hashed_features(e.kind, e.prompt[-tail:], buckets, chars) for e in rows]
        d = (
            np.asarray([shape(e.prompt[-tail:]) for e in rows]).reshape(-1, SHAPE_SIZE) - mean
        ) / scale
        return _Design(
            x=HashedRows.of(encoded, buckets), d=d, y=np.asarray([float(e.passed) for e in rows])
        )

    weights = np.zeros((len(models), buckets + SHAPE_SIZE + 1))
    counts: dict[str, int] = {}
    chosen: dict[str, float] = {}
    for m, model in enumerate(models):
        mine = [e for e in examples if e.model == model]
        counts[model] = len(mine)
        strength = l2
        held = _held_out(mine)
        if strength is None and 0 < sum(held) < len(mine):
            inside = design([e for e, h in zip(mine, held, strict=True) if not h])
            outside = design([e for e, h in zip(mine, held, strict=True) if h])
            losses: list[tuple[float, float]] = []
            start = None
            for value in sorted(
                L2_GRID, reverse=True
            ):  # strongest first: each warm-starts the next
                start = _fit_one(inside, value, iterations, start)
                losses.append((_log_loss(outside, start), value))
            strength = min(losses)[1]
        chosen[model] = strength if strength is not None else L2_GRID[1]
        weights[m] = _fit_one(design(mine), chosen[model], iterations)
    return LinearScorer(
        models=models,
        hashed=weights[:, :buckets],
        shaped=weights[:, buckets:-1],
        bias=weights[:, -1],
        mean=mean,
        scale=scale,
        buckets=buckets,
        tail=tail,
        chars=chars,
        examples=counts,
        l2=chosen,
    )


def read_examples(path: Path) -> list[Example]:
    """Recorded outcomes to learn from (see the module docstring); a bad path is a `ConfigError`."""
    if path.is_dir() and any(path.glob("*.jsonl")):
        first = next(p for p in sorted(path.glob("*.jsonl")))
        line = first.read_text(encoding="utf-8").split("\n", 1)[0]
        if '"span_id"' in line and '"trace_id"' in line:
            raise ConfigError(
                f"{path}: traces, not recorded outcomes (read them with `router train`)"
            )
    rows = load_examples(path)
    return [Example(kind=t, prompt=p, model=m, passed=c >= 0.5) for t, p, m, c in rows]
