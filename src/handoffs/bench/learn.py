"""A learned router's scorer: hashed word n-grams + logistic regression, numpy only, no downloads.

Features are what a router knows before the call: the last 2,000 characters' words and word pairs (hashed into
`buckets` columns with CRC-32, log term frequency, L2-normalised), the task kind, and a length
bucket. The model is an L2-regularised logistic regression fitted by full-batch gradient descent
with Adagrad steps. Deterministic: no randomness anywhere.
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["TextScorer", "fit_scorer"]

_WORD = re.compile(r"[a-z0-9]+")
_TAIL = 2000
"""Only the prompt's last characters are read: few-shot preambles are shared and say little."""


def _tokens(prompt: str, task: str) -> Counter[str]:
    words = _WORD.findall(prompt.lower())
    grams = Counter(words)
    grams.update(f"{a} {b}" for a, b in itertools.pairwise(words))
    grams[f"__task={task}"] += 1
    grams[f"__len={min(int(math.log2(len(prompt) + 1)), 14)}"] += 1
    return grams


@lru_cache(maxsize=65536)
def _row(prompt: str, task: str, buckets: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    cells: dict[int, float] = {}
    for gram, count in _tokens(prompt[-_TAIL:], task).items():
        col = zlib.crc32(gram.encode()) % buckets
        cells[col] = cells.get(col, 0.0) + 1 + math.log(count)
    values = np.asarray(list(cells.values()), dtype=np.float64)
    norm = float(np.sqrt((values * values).sum())) or 1.0
    return np.asarray(list(cells), dtype=np.int64), values / norm


def _encode(
    prompts: Sequence[str], tasks: Sequence[str], buckets: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    encoded = [_row(p, t, buckets) for p, t in zip(prompts, tasks, strict=True)]
    if not encoded:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    sizes = np.asarray([len(cols) for cols, _ in encoded], dtype=np.int64)
    rows = np.repeat(np.arange(len(encoded), dtype=np.int64), sizes)
    cols = np.concatenate([cols for cols, _ in encoded])
    vals = np.concatenate([vals for _, vals in encoded])
    return rows, cols, vals


def _sigmoid(z: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0))), dtype=np.float64)


@dataclass(frozen=True, slots=True, kw_only=True)
class TextScorer:
    """Predicts the probability that a prompt's label is 1 (e.g. "the cheap model gets it right")."""

    weights: NDArray[np.float64]
    bias: float
    buckets: int

    def predict(self, prompts: Sequence[str], tasks: Sequence[str]) -> list[float]:
        """The predicted probability for each prompt."""
        rows, cols, vals = _encode(prompts, tasks, self.buckets)
        z = np.bincount(rows, weights=self.weights[cols] * vals, minlength=len(prompts))
        return [float(p) for p in _sigmoid(z + self.bias)]


def fit_scorer(
    prompts: Sequence[str],
    tasks: Sequence[str],
    labels: Sequence[float],
    *,
    buckets: int = 2**16,
    l2: float = 1e-3,
    steps: int = 150,
    rate: float = 0.5,
) -> TextScorer:
    """Fit the logistic regression on 0/1 labels."""
    n = len(prompts)
    rows, cols, vals = _encode(prompts, tasks, buckets)
    y = np.asarray(labels, dtype=np.float64)
    w = np.zeros(buckets, dtype=np.float64)
    prior = min(max(float(y.mean()) if n else 0.5, 1e-3), 1 - 1e-3)
    b = math.log(prior / (1 - prior))
    g2w = np.full(buckets, 1e-8)
    g2b = 1e-8
    for _ in range(steps):
        z = np.bincount(rows, weights=w[cols] * vals, minlength=n) + b
        residual = (_sigmoid(z) - y) / max(n, 1)
        grad_w = np.bincount(cols, weights=residual[rows] * vals, minlength=buckets) + l2 * w
        grad_b = float(residual.sum())
        g2w += grad_w * grad_w
        g2b += grad_b * grad_b
        w -= rate * grad_w / np.sqrt(g2w)
        b -= rate * grad_b / math.sqrt(g2b)
    return TextScorer(weights=w, bias=b, buckets=buckets)
