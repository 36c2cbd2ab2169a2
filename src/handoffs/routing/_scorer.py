"""The router's learned scorer: per model, the chance its answer passes verification, known before the call.

A `Scorer` maps a task's kind and prompt text to a probability per model it knows. The router
(`handoffs.routing.route`) uses one, when the policy has it, to reorder and prune its ladder.

`LinearScorer` is the offline one: no model download, numpy only. Features are what a router has
before calling anything - the task kind (as a token, and its words so that unseen kinds sharing
words with known ones are not blank), the prompt's last `tail` characters as hashed word 1-2-grams
and character 3-5-grams (CRC-32 into `buckets` columns, log counts, L2-normalised), and a few
numbers about its shape (length, share of digits, of capitals, of punctuation, of mathematical
symbols, option lengths ...), standardised. One L2-regularised logistic regression per model is
fitted by L-BFGS on that team's recorded outcomes (`handoffs router train`), and saved as one
small `.npz` file that `handoffs.toml` names:

```toml
[policy]
scorer = "router.npz"     # relative to the config file
```

Deterministic: the same data gives the same file.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
from numpy.typing import NDArray

from handoffs.errors import ConfigError

__all__ = [
    "SHAPE_SIZE",
    "HashedRows",
    "LinearScorer",
    "Scorer",
    "hashed_features",
    "load_scorer",
    "shape",
]

FORMAT = "handoffs-linear-scorer/1"
_WORD = re.compile(r"[a-z0-9]+")
_LETTERS = re.compile(r"[A-Za-z]+")
_OPTION = re.compile(r"^\s*\(?[A-Ea-e][.)]\s*(.*)$", re.MULTILINE)


class Scorer(Protocol):
    """Predicts, before any call, how likely each model's answer is to pass verification."""

    def pass_chances(self, kind: str, prompt: str) -> Mapping[str, float]:
        """Model id -> probability in [0, 1], for the models the scorer knows (others absent)."""
        ...


_DIGIT = re.compile(r"\d")
_UPPER = re.compile(r"[A-Z]")
_PUNCT = re.compile(r"[.,;:!?]")
_WIDE = re.compile(r"[^\x00-\x7f]")
_MATH = re.compile(r"[-+*/=^<>]")


@lru_cache(maxsize=65536)
def _shape(prompt: str) -> tuple[float, ...]:
    n = max(len(prompt), 1)
    question = prompt.split("\nA.")[0]
    found = _OPTION.findall(prompt)
    options = [len(o) for o in found] or [0]
    numeric = [any(c.isdigit() for c in o) for o in found] or [False]
    words = _LETTERS.findall(prompt)
    return (
        math.log1p(len(prompt)),
        math.log1p(len(question)),
        len(_DIGIT.findall(prompt)) / n,
        len(_UPPER.findall(prompt)) / n,
        len(_PUNCT.findall(prompt)) / n,
        len(_WIDE.findall(prompt)) / n,
        float("$" in prompt),
        float("\\" in prompt),
        len(_MATH.findall(prompt)) / n,
        float(prompt.count("\n")),
        math.log1p(sum(options) / len(options)),
        math.log1p(max(options)),
        sum(numeric) / len(numeric),
        float("?" in question),
        sum(len(w) >= 10 for w in words) / max(len(words), 1),
    )


def shape(prompt: str) -> list[float]:
    """Numbers about a prompt's shape that carry over between kinds of task."""
    return list(_shape(prompt))


SHAPE_SIZE = len(shape(""))


def _grams(kind: str, prompt: str, chars: tuple[int, int]) -> Counter[str]:
    words = _WORD.findall(prompt.lower())
    grams: Counter[str] = Counter(words)
    grams.update(f"{a} {b}" for a, b in itertools.pairwise(words))
    text = " ".join(words)
    for size in range(chars[0], chars[1] + 1):
        grams.update(f"#{text[i : i + size]}" for i in range(len(text) - size + 1))
    grams[f"__kind={kind}"] += 1
    grams.update(f"__kind~{w}" for w in _WORD.findall(kind.lower()))
    grams[f"__len={min(int(math.log2(len(prompt) + 1)), 16)}"] += 1
    return grams


@lru_cache(maxsize=65536)
def hashed_features(
    kind: str, prompt: str, buckets: int, chars: tuple[int, int]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    cells: dict[int, float] = {}
    for gram, count in _grams(kind, prompt, chars).items():
        col = zlib.crc32(gram.encode()) % buckets
        cells[col] = cells.get(col, 0.0) + 1 + math.log(count)
    values = np.asarray(list(cells.values()), dtype=np.float64)
    norm = float(np.sqrt((values * values).sum())) or 1.0
    order = np.argsort(np.asarray(list(cells), dtype=np.int64))
    return np.asarray(list(cells), dtype=np.int64)[order], (values / norm)[order]


@dataclass(frozen=True, slots=True)
class HashedRows:
    """Rows of hashed features (CSR-like, plus a column-sorted copy) with the products a fit needs."""

    cols: NDArray[np.int64]
    vals: NDArray[np.float64]
    starts: NDArray[np.int64]
    """Where each row starts in cols/vals (rows are never empty: the kind token is always there)."""
    by_col: NDArray[np.int64]
    """Row of each entry, in column order."""
    col_vals: NDArray[np.float64]
    col_starts: NDArray[np.int64]
    nonempty: NDArray[np.int64]
    """The columns that occur, in order (the segments of the column-sorted copy)."""
    buckets: int

    @classmethod
    def of(
        cls, encoded: Sequence[tuple[NDArray[np.int64], NDArray[np.float64]]], buckets: int
    ) -> HashedRows:
        sizes = np.asarray([len(c) for c, _ in encoded], dtype=np.int64)
        cols = np.concatenate([c for c, _ in encoded]) if encoded else np.zeros(0, np.int64)
        vals = np.concatenate([v for _, v in encoded]) if encoded else np.zeros(0)
        rows = np.repeat(np.arange(len(encoded), dtype=np.int64), sizes)
        order = np.argsort(cols, kind="stable")
        nonempty, col_starts = np.unique(cols[order], return_index=True)
        return cls(
            cols=cols,
            vals=vals,
            starts=np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
            if len(sizes)
            else np.zeros(0, np.int64),
            by_col=rows[order],
            col_vals=vals[order],
            col_starts=col_starts.astype(np.int64),
            nonempty=nonempty.astype(np.int64),
            buckets=buckets,
        )

    def times(self, w: NDArray[np.float64]) -> NDArray[np.float64]:
        """X @ w."""
        if not len(self.cols):
            return np.zeros(len(self.starts))
        return np.add.reduceat(w[self.cols] * self.vals, self.starts)

    def t_times(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        """X.T @ u."""
        out = np.zeros(self.buckets)
        if len(self.cols):
            out[self.nonempty] = np.add.reduceat(u[self.by_col] * self.col_vals, self.col_starts)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class LinearScorer:
    """One logistic regression per model over hashed n-grams and prompt-shape numbers."""

    models: tuple[str, ...]
    hashed: NDArray[np.float64]
    """[model, bucket] weights of the hashed features."""
    shaped: NDArray[np.float64]
    """[model, feature] weights of the standardised shape numbers."""
    bias: NDArray[np.float64]
    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    """Shape numbers are fed as (x - mean) / scale: standardised and divided by sqrt(count)."""
    buckets: int = 2**14
    tail: int = 1000
    chars: tuple[int, int] = (3, 5)
    examples: Mapping[str, int] | None = None
    """How many outcomes each model was fitted on (recorded in the file, for the curious)."""
    l2: Mapping[str, float] | None = None
    """The regularisation strength each model was fitted with."""

    def logits(self, kinds: Sequence[str], prompts: Sequence[str]) -> NDArray[np.float64]:
        """[prompt, model] log-odds of passing."""
        encoded = [
            hashed_features(k, p[-self.tail :], self.buckets, self.chars)
            for k, p in zip(kinds, prompts, strict=True)
        ]
        x = HashedRows.of(encoded, self.buckets)
        dense = (
            np.asarray([shape(p[-self.tail :]) for p in prompts]).reshape(-1, SHAPE_SIZE)
            - self.mean
        ) / self.scale
        out = (
            np.column_stack([x.times(w) for w in self.hashed])
            if len(self.models)
            else np.zeros((len(prompts), 0))
        )
        return out + np.einsum("ij,mj->im", dense, self.shaped) + self.bias

    def predict(self, kinds: Sequence[str], prompts: Sequence[str]) -> NDArray[np.float64]:
        """[prompt, model] probability of passing."""
        return 1.0 / (1.0 + np.exp(-np.clip(self.logits(kinds, prompts), -30, 30)))

    def pass_chances(self, kind: str, prompt: str) -> Mapping[str, float]:
        """Model id -> probability that its answer passes (the `Scorer` protocol)."""
        row = self.predict([kind], [prompt])[0]
        return {m: float(p) for m, p in zip(self.models, row, strict=True)}

    def save(self, path: Path) -> None:
        """Write the scorer as one compressed `.npz` (no pickles)."""
        meta = {
            "format": FORMAT,
            "models": list(self.models),
            "buckets": self.buckets,
            "tail": self.tail,
            "chars": list(self.chars),
            "examples": dict(self.examples or {}),
            "l2": dict(self.l2 or {}),
        }
        with path.open("wb") as handle:
            np.savez_compressed(
                handle,
                meta=np.asarray(json.dumps(meta)),
                hashed=self.hashed.astype(np.float32),
                shaped=self.shaped,
                bias=self.bias,
                mean=self.mean,
                scale=self.scale,
            )


def load_scorer(path: Path) -> LinearScorer:
    """Read a scorer written by `LinearScorer.save`; a bad file is a one-line `ConfigError`."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            arrays = {
                k: np.asarray(npz[k], dtype=np.float64)
                for k in ("hashed", "shaped", "bias", "mean", "scale")
            }
    except FileNotFoundError:
        raise ConfigError(f"scorer file not found: {path}") from None
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not a handoffs scorer file ({exc})") from None
    if not isinstance(meta, dict) or cast(dict[str, Any], meta).get("format") != FORMAT:
        raise ConfigError(f"{path} is not a {FORMAT} file")
    info = cast(dict[str, Any], meta)
    try:
        return LinearScorer(
            models=tuple(str(m) for m in info["models"]),
            buckets=int(info["buckets"]),
            tail=int(info["tail"]),
            chars=(int(info["chars"][0]), int(info["chars"][1])),
            examples={str(k): int(v) for k, v in dict(info.get("examples", {})).items()},
            l2={str(k): float(v) for k, v in dict(info.get("l2", {})).items()},
            **arrays,
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"{path} is not a valid {FORMAT} file ({exc})") from None
