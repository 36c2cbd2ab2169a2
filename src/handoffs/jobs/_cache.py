"""Where the `[cache]` answers of the jobs this process runs are kept.

A `Worker` names its jobs database here when it starts (`use_database`). On PostgreSQL, every job
it runs — and every spread handoff of any job (`[jobs] spread`) — keeps its answers in that
database (`PostgresStore`), so that every worker on it, on any machine, serves and fills the same
cache. On SQLite they stay in the file `[cache] path` names (one per machine).
"""

from __future__ import annotations

from handoffs.cache import AnswerStore, is_postgres, postgres_store
from handoffs.project import Config

__all__ = ["job_cache_store", "use_database"]

_url: str | None = None
"""The jobs database of this process's worker (one worker per process)."""


def use_database(url: str | None) -> None:
    """Keep the cache of this process's jobs in `url` when it is PostgreSQL (None: the worker
    stopped)."""
    global _url
    _url = url


def job_cache_store(config: Config) -> AnswerStore | None:
    """The store of a job's `[cache]` here: the jobs database, when it is PostgreSQL; None: the
    SQLite file of `[cache] path` (or no cache at all)."""
    if config.cache is None or _url is None or not is_postgres(_url):
        return None
    return postgres_store(_url)
