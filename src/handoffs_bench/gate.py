"""Learned verifiers for cascades: from the answers a policy paid for to "deliver this one, sure to p".

A judge looks at the answers of a set of called models on one prompt and names the answer to deliver
and its probability of being right. Both judges are fitted on train outcomes (which answers were
right) and read, at replay time, only the evidence of the models called:

- `KeyVote` (answers with a comparable key, e.g. choice letters): naive Bayes over the answers in
  the style of Dawid and Skene - a prior over the right key and, per model, the probability of each
  key it gives when a given key is right (Laplace-smoothed); the delivered key is the most probable
  of the keys the called models gave.
- `CodeVote` (programs): a logistic regression, per called program, on what the sandbox showed -
  which model wrote it, whether it runs, the share of its own stated cases and of the other called
  models' cases it passes, and how many other called programs return the same values - and the
  delivered program is the most probable.

Judgements depend only on the *set* of models called, so they are computed per set.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from handoffs_bench.evidence import CodeRun

__all__ = [
    "CodeVote",
    "Judgement",
    "KeyVote",
    "fit_code_vote",
    "fit_key_vote",
    "logistic",
    "subsets",
]

Judgement = tuple[NDArray[np.int64], NDArray[np.float64]]
"""Per prompt: the model whose answer is delivered, and the judge's probability that it is right."""

_MAX_KEYS = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyVote:
    """Naive Bayes over answer keys."""

    labels: tuple[str, ...]
    log_prior: NDArray[np.float64]
    """[g]: log P(the right key is labels[g])."""
    log_confusion: NDArray[np.float64]
    """[model, g, a]: log P(model answers labels[a] | labels[g] is right); a = len(labels): other."""

    def judge(self, keys: Sequence[Sequence[str | None]], called: Sequence[int]) -> Judgement:
        """Deliver the most probable key any called model gave (the first model giving it)."""
        n, g = len(keys), len(self.labels)
        if g == 0:
            return np.full(n, called[0], dtype=np.int64), np.zeros(n)
        index = {k: a for a, k in enumerate(self.labels)}
        post = np.tile(self.log_prior, (n, 1))
        given = np.zeros((n, g), dtype=bool)
        first = np.full((n, g), -1, dtype=np.int64)
        for j in called:
            col = np.asarray([g if (key := row[j]) is None else index.get(key, g) for row in keys])
            post += self.log_confusion[j][:, col].T
            hit = col < g
            fresh = hit & ~given[np.arange(n), np.minimum(col, g - 1)]
            first[np.nonzero(fresh)[0], col[fresh]] = j
            given[np.nonzero(hit)[0], col[hit]] = True
        prob = np.exp(post - post.max(axis=1, keepdims=True))
        prob /= prob.sum(axis=1, keepdims=True)
        masked = np.where(given, prob, -1.0)
        best = masked.argmax(axis=1)
        rows = np.arange(n)
        chosen = np.where(given[rows, best], first[rows, best], called[0])
        return chosen, np.where(given[rows, best], prob[rows, best], 0.0)


def _right_key(keys: Sequence[str | None], correct: Sequence[float]) -> str | None:
    right = [k for k, c in zip(keys, correct, strict=True) if c >= 0.5 and k is not None]
    return Counter(right).most_common(1)[0][0] if right else None


def fit_key_vote(
    keys: Sequence[Sequence[str | None]], correct: Sequence[Sequence[float]], models: int
) -> KeyVote:
    """Count, on train prompts whose right key is known (some model gave it), who answered what."""
    golds = [_right_key(k, c) for k, c in zip(keys, correct, strict=True)]
    labels = tuple(k for k, _ in Counter(g for g in golds if g is not None).most_common(_MAX_KEYS))
    g = len(labels)
    index = {k: a for a, k in enumerate(labels)}
    prior = np.ones(max(g, 1))
    confusion = np.ones((models, max(g, 1), g + 1))
    for row, gold in zip(keys, golds, strict=True):
        if gold is None or gold not in index:
            continue
        prior[index[gold]] += 1
        for j, key in enumerate(row):
            confusion[j, index[gold], index.get(key, g) if key is not None else g] += 1
    prior /= prior.sum()
    confusion /= confusion.sum(axis=2, keepdims=True)
    return KeyVote(labels=labels, log_prior=np.log(prior[:g]), log_confusion=np.log(confusion))


def logistic(
    x: NDArray[np.float64], y: NDArray[np.float64], *, l2: float = 1.0, steps: int = 25
) -> NDArray[np.float64]:
    """L2-regularised logistic regression by Newton's method; the last column is an unpenalised bias.

    Products use `einsum`, not BLAS: a threaded BLAS on a busy machine is a hundred times slower
    on these small matrices.
    """
    size = int(x.shape[1])
    w: NDArray[np.float64] = np.zeros(size, dtype=np.float64)
    penalty: NDArray[np.float64] = np.full(size, l2, dtype=np.float64)
    penalty[-1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(np.einsum("ij,j->i", x, w), -30, 30)))
        grad: NDArray[np.float64] = np.einsum("ij,i->j", x, p - y) + penalty * w
        hess: NDArray[np.float64] = np.einsum("ij,ik,i->jk", x, x, p * (1 - p))
        step = np.asarray(np.linalg.solve(hess + np.diag(penalty + 1e-9), grad), np.float64)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return w


@dataclass(frozen=True, slots=True, kw_only=True)
class _Batch:
    """`CodeRun`s of many prompts stacked on a first axis."""

    runnable: NDArray[np.bool_]
    stated: NDArray[np.float64]
    passed: NDArray[np.float64]
    equal: NDArray[np.float64]
    compared: NDArray[np.float64]


def _batch(runs: Sequence[CodeRun]) -> _Batch:
    return _Batch(
        runnable=np.stack([r.runnable for r in runs]),
        stated=np.stack([r.stated for r in runs]).astype(np.float64),
        passed=np.stack([r.passed for r in runs]).astype(np.float64),
        equal=np.stack([r.equal for r in runs]).astype(np.float64),
        compared=np.stack([r.compared for r in runs]).astype(np.float64),
    )


def _features(batch: _Batch, k: int, called: Sequence[int], models: int) -> NDArray[np.float64]:
    """One row per prompt: the evidence about program k when the models `called` were paid for."""
    n = int(batch.stated.shape[0])
    others = [j for j in called if j != k]
    own = batch.stated[:, k]
    zero: NDArray[np.float64] = np.zeros(n, dtype=np.float64)
    stated = batch.stated[:, others].sum(axis=1)
    passed = batch.passed[:, k, others].sum(axis=1)
    agree = np.zeros(n)
    for j in others:
        compared: NDArray[np.float64] = batch.compared[:, k, j, list(called)].sum(axis=1)
        equal: NDArray[np.float64] = batch.equal[:, k, j, list(called)].sum(axis=1)
        agree += batch.runnable[:, j] & (compared > 0) & (equal == compared)
    onehot: NDArray[np.float64] = np.zeros((n, models), dtype=np.float64)
    onehot[:, k] = 1.0
    columns = [
        batch.runnable[:, k].astype(np.float64),
        (own > 0).astype(np.float64),
        np.divide(batch.passed[:, k, k], own, out=zero.copy(), where=own > 0),
        (stated > 0).astype(np.float64),
        np.divide(passed, stated, out=zero.copy(), where=stated > 0),
        agree / len(others) if others else agree,
        (agree > 0).astype(np.float64),
        np.ones(n),
    ]
    return np.column_stack([onehot, *columns])


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeVote:
    """Logistic regression over execution evidence, one row per (prompt, called program)."""

    weights: NDArray[np.float64]
    models: int

    def judge(self, runs: Sequence[CodeRun], called: Sequence[int]) -> Judgement:
        """Deliver the called program most likely right."""
        if not runs:
            return np.zeros(0, np.int64), np.zeros(0)
        batch = _batch(runs)
        z = np.column_stack(
            [
                np.einsum("ij,j->i", _features(batch, k, called, self.models), self.weights)
                for k in called
            ]
        )
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        best = p.argmax(axis=1)
        return np.asarray(called, np.int64)[best], p[np.arange(len(runs)), best]


def fit_code_vote(
    runs: Sequence[CodeRun],
    correct: Sequence[Sequence[float]],
    pool: Sequence[int],
    *,
    depth: int = 3,
) -> CodeVote:
    """Fit on every set of up to `depth` models from `pool`, every program in the set."""
    models = len(correct[0]) if correct else 0
    if not runs or not pool:
        return CodeVote(weights=np.zeros(models + 8), models=models)
    batch = _batch(runs)
    right = np.asarray(correct, dtype=np.float64)
    xs: list[NDArray[np.float64]] = []
    ys: list[NDArray[np.float64]] = []
    for called in subsets(pool, depth):
        for k in called:
            xs.append(_features(batch, k, called, models))
            ys.append(right[:, k])
    return CodeVote(weights=logistic(np.concatenate(xs), np.concatenate(ys)), models=models)


def subsets(pool: Sequence[int], depth: int) -> list[tuple[int, ...]]:
    """Every set of 1..depth models from the pool, as sorted tuples."""
    return [c for size in range(1, depth + 1) for c in itertools.combinations(sorted(pool), size)]
