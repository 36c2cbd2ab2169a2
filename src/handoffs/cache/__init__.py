"""The cache wing: the verified response cache (`ResponseCache`), its stores (`AnswerStore`: the
SQLite `CacheStore` with a vector index, and `PostgresStore` for jobs on PostgreSQL) and the
embedders of task inputs. A semantic hit is served only when the
task's own checks pass on the cached output against the new input; see `_cache` for the rules.
"""

from handoffs.cache._cache import CachePolicy, Lookup, ResponseCache, input_text
from handoffs.cache._embed import E5Embedder, Embedder, NgramEmbedder, default_embedder
from handoffs.cache._pgstore import PostgresStore, is_postgres, postgres_store
from handoffs.cache._store import Answer, AnswerStore, CacheStore, Stored, shared_store

__all__ = [
    "Answer",
    "AnswerStore",
    "CachePolicy",
    "CacheStore",
    "E5Embedder",
    "Embedder",
    "Lookup",
    "NgramEmbedder",
    "PostgresStore",
    "ResponseCache",
    "Stored",
    "default_embedder",
    "input_text",
    "is_postgres",
    "postgres_store",
    "shared_store",
]
