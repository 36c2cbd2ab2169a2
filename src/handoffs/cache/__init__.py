"""The cache wing: the verified response cache (`ResponseCache`), its SQLite store with a vector
index (`CacheStore`) and the embedders of task inputs. A semantic hit is served only when the
task's own checks pass on the cached output against the new input; see `_cache` for the rules.
"""

from handoffs.cache._cache import CachePolicy, Lookup, ResponseCache, input_text
from handoffs.cache._embed import E5Embedder, Embedder, NgramEmbedder, default_embedder
from handoffs.cache._store import CacheStore, Stored, shared_store

__all__ = [
    "CachePolicy",
    "CacheStore",
    "E5Embedder",
    "Embedder",
    "Lookup",
    "NgramEmbedder",
    "ResponseCache",
    "Stored",
    "default_embedder",
    "input_text",
    "shared_store",
]
