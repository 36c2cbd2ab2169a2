"""Where cached answers live: `AnswerStore`, what the cache needs of a store, and `CacheStore`, the
one on a SQLite file, with a vector index for the semantic lookups (`PostgresStore`, in `_pgstore`,
keeps them in the jobs' PostgreSQL database).

```
entries   one row per stored answer: scope, reuse key, exact hash, output, verdicts, source, expiry
vec_<dim> sqlite-vec `vec0` table (cosine), rowid = entries.id, partitioned by scope + key + model
```
With the `[cache]` extra, SQLite comes from `pysqlite3` (the stdlib build here cannot load
extensions) and the index from `sqlite-vec`: a k-nearest-neighbour query inside one partition.
Without it, the stdlib `sqlite3` keeps the same rows and `nearest` scans the partition's vectors
in Python (`index == "scan"`): exact, and linear in the partition's size.

Blocking: the cache calls it from a worker thread. One connection, one lock.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import re
import sqlite3
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

__all__ = ["AnswerStore", "CacheStore", "Stored", "shared_store"]

_SCHEMA = """
create table if not exists entries (
    id integer primary key,
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
    embedding blob,
    created real not null,
    expires real
);
create index if not exists entries_exact on entries(scope, exact);
create index if not exists entries_space on entries(space);
create index if not exists entries_expires on entries(expires);  -- each put purges
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    """One cached answer, as a lookup found it."""

    id: int
    task_id: str
    """The handoff that produced the answer."""
    model: str | None
    provider: str | None
    tier: str | None
    output: Any
    """The delivered output, as JSON data."""
    verdicts: list[dict[str, Any]]
    """The verdicts it was delivered with."""
    cost_usd: str
    """What producing it cost."""
    similarity: float = 1.0
    """Cosine similarity of its input to the one looked up (1 for an exact hit)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """One verified answer to keep: where it is found (`scope`, reuse `key`, `exact` digest,
    semantic partition `space`) and what a lookup serves from it."""

    scope: str
    key: str
    exact: str
    space: str
    task_id: str
    model: str | None
    provider: str | None
    tier: str | None
    output: Any
    verdicts: list[dict[str, Any]]
    cost_usd: str

    def row(self) -> tuple[Any, ...]:
        """Its columns, in the order of `ANSWER_COLUMNS` (output and verdicts as JSON text)."""
        return (self.scope, self.key, self.exact, self.space, self.task_id, self.model,
                self.provider, self.tier, json.dumps(self.output), json.dumps(self.verdicts),
                self.cost_usd)  # fmt: skip


ANSWER_COLUMNS: Final = (
    "scope, key, exact, space, task_id, model, provider, tier, output, verdicts, cost_usd"
)
"""The columns an `Answer` fills, in `Answer.row()`'s order (both stores' tables have them)."""


class AnswerStore(Protocol):
    """What `ResponseCache` needs of a store: answers kept by scope and exact input, and found
    again exactly or by the nearness of their inputs' vectors within one partition (`space`).
    Blocking: the cache calls it from a worker thread, so it must be safe across threads.

    Every store keeps the same rules: `put` replaces the answer stored for the same exact input
    in the same scope and purges expired answers; expired answers are never returned."""

    @property
    def index(self) -> str:
        """How `nearest` finds its answers (`sqlite-vec`, `pgvector`, or `scan`: every vector of
        the partition compared, exact and linear in its size)."""
        ...

    def space(self, scope: str, key: str, model: str) -> str:
        """The partition one semantic lookup searches: one scope, reuse key and embedding model."""
        ...

    def put(self, answer: Answer, *, vector: Sequence[float] | None, ttl_s: float | None) -> int:
        """Store one answer (replacing an older one for the same exact input); returns its id."""
        ...

    def exact(self, scope: str, exact: str) -> Stored | None:
        """The live answer stored for exactly this input in `scope`, if any."""
        ...

    def nearest(self, space: str, vector: Sequence[float], *, k: int = 4) -> list[Stored]:
        """The (at most) `k` live answers of partition `space` whose inputs are nearest `vector`,
        nearest first, each with its cosine similarity."""
        ...

    def count(self) -> int:
        """How many answers are stored (live or expired and not yet purged)."""
        ...

    def close(self) -> None:
        """Close the store's connection."""
        ...


def space_of(scope: str, key: str, model: str) -> str:
    """`AnswerStore.space`, the same for every store."""
    return hashlib.sha256(f"{scope}\x1f{key}\x1f{model}".encode()).hexdigest()[:32]


def _connect(path: str, index: str) -> tuple[Any, Literal["sqlite-vec", "scan"]]:
    if index == "scan":
        return sqlite3.connect(path, check_same_thread=False), "scan"
    try:  # the [cache] extra
        sqlite_vec: Any = importlib.import_module("sqlite_vec")
        dbapi2: Any = importlib.import_module("pysqlite3.dbapi2")
    except ImportError:
        return sqlite3.connect(path, check_same_thread=False), "scan"
    conn: Any = dbapi2.connect(path, check_same_thread=False)
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.enable_load_extension(False)
    return conn, "sqlite-vec"


def vector_blob(vector: Sequence[float]) -> bytes:
    """A vector as both stores keep it: little-endian float32s."""
    return struct.pack(f"<{len(vector)}f", *vector)


def _floats(blob: bytes) -> tuple[float, ...]:
    return struct.unpack(f"<{len(blob) // 4}f", blob)


class CacheStore:
    """Cached answers in the SQLite file at `path` (`":memory:"` for one process's lifetime);
    `index="scan"` keeps the stdlib SQLite and its linear scan even where sqlite-vec is installed.
    """

    def __init__(
        self, path: Path | str = ":memory:", *, index: Literal["auto", "scan"] = "auto"
    ) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._conn, self.index = _connect(self.path, index)
        """`sqlite-vec` (a vector index) or `scan` (the fallback: every vector compared)."""
        self._lock = threading.Lock()
        self._dims: set[int] = set()
        with self._lock, self._conn:
            self._conn.executescript(_SCHEMA)
            if self.index == "sqlite-vec":  # the vector tables an earlier process made
                names = self._conn.execute("select name from sqlite_master where type = 'table'")
                self._dims = {int(n[4:]) for (n,) in names if re.fullmatch(r"vec_\d+", n)}

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    @staticmethod
    def space(scope: str, key: str, model: str) -> str:
        """The partition of the vector index one lookup searches: one scope, one reuse key, one
        embedding model."""
        return space_of(scope, key, model)

    def _vec_table(self, dim: int) -> str:
        table = f"vec_{dim}"
        if self.index == "sqlite-vec" and dim not in self._dims:
            self._conn.execute(
                f"create virtual table if not exists {table} using vec0("
                f"space text partition key, embedding float[{dim}] distance_metric=cosine)"
            )
            self._dims.add(dim)
        return table

    def put(self, answer: Answer, *, vector: Sequence[float] | None, ttl_s: float | None) -> int:
        """Store one answer (replacing an older one for the same exact input); returns its id."""
        now = time.time()
        expires = now + ttl_s if ttl_s is not None else None
        blob = vector_blob(vector) if vector is not None else None
        with self._lock, self._conn:
            self._purge(now)
            old = [
                r[0]
                for r in self._conn.execute(
                    "select id from entries where scope = ? and exact = ?",
                    (answer.scope, answer.exact),
                )
            ]
            self._delete(old)
            cursor = self._conn.execute(
                f"insert into entries ({ANSWER_COLUMNS}, embedding, created, expires) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*answer.row(), blob, now, expires),
            )
            row_id = int(cursor.lastrowid or 0)
            if vector is not None and self.index == "sqlite-vec":
                table = self._vec_table(len(vector))
                self._conn.execute(
                    f"insert into {table} (rowid, space, embedding) values (?, ?, ?)",
                    (row_id, answer.space, blob),
                )
        return row_id

    def exact(self, scope: str, exact: str) -> Stored | None:
        """The live answer stored for exactly this input in `scope`, if any."""
        with self._lock:
            row = self._conn.execute(
                f"select {STORED_COLUMNS} from entries where scope = ? and exact = ? "
                "and (expires is null or expires > ?) order by id desc limit 1",
                (scope, exact, time.time()),
            ).fetchone()
        return stored_row(row, 1.0) if row else None

    def nearest(self, space: str, vector: Sequence[float], *, k: int = 4) -> list[Stored]:
        """The (at most) `k` live answers of partition `space` whose inputs are nearest `vector`,
        nearest first, each with its cosine similarity."""
        now = time.time()
        with self._lock:
            if self.index == "sqlite-vec":
                table = self._vec_table(len(vector))
                hits: list[tuple[int, float]] = [
                    (int(r[0]), 1.0 - float(r[1]))
                    for r in self._conn.execute(
                        f"select rowid, distance from {table} "
                        "where embedding match ? and k = ? and space = ?",
                        (vector_blob(vector), k * 2, space),
                    )
                ]
            else:
                hits = sorted(
                    (
                        (int(r[0]), _cosine(vector, _floats(r[1])))
                        for r in self._conn.execute(
                            "select id, embedding from entries where space = ? "
                            "and embedding is not null and (expires is null or expires > ?)",
                            (space, now),
                        )
                    ),
                    key=lambda h: -h[1],
                )[: k * 2]
            found: list[Stored] = []
            for row_id, similarity in hits:
                row = self._conn.execute(
                    f"select {STORED_COLUMNS} from entries where id = ? "
                    "and (expires is null or expires > ?)",
                    (row_id, now),
                ).fetchone()
                if row is not None:
                    found.append(stored_row(row, similarity))
        return found[:k]

    def count(self) -> int:
        """How many answers are stored (live or expired and not yet purged)."""
        with self._lock:
            return int(self._conn.execute("select count(*) from entries").fetchone()[0])

    def _purge(self, now: float) -> None:
        expired = [
            r[0]
            for r in self._conn.execute(
                "select id from entries where expires is not null and expires <= ?", (now,)
            )
        ]
        self._delete(expired)

    def _delete(self, ids: list[int]) -> None:
        for row_id in ids:
            self._conn.execute("delete from entries where id = ?", (row_id,))
            for dim in self._dims:
                self._conn.execute(f"delete from vec_{dim} where rowid = ?", (row_id,))


_SHARED: dict[Path, CacheStore] = {}
_SHARED_LOCK = threading.Lock()


def shared_store(path: Path | str) -> CacheStore:
    """This process's one `CacheStore` on the file at `path` (opened on first use)."""
    key = Path(path).resolve()
    with _SHARED_LOCK:
        store = _SHARED.get(key)
        if store is None:
            store = _SHARED[key] = CacheStore(key)
        return store


STORED_COLUMNS: Final = "id, task_id, model, provider, tier, output, verdicts, cost_usd"
"""The columns `stored_row` reads, in its order."""


def stored_row(row: Any, similarity: float) -> Stored:
    """A `Stored` from a row of `STORED_COLUMNS` (both stores select them in this order)."""
    return Stored(
        id=int(row[0]),
        task_id=str(row[1]),
        model=row[2],
        provider=row[3],
        tier=row[4],
        output=json.loads(row[5]),
        verdicts=json.loads(row[6]),
        cost_usd=str(row[7]),
        similarity=similarity,
    )


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0
