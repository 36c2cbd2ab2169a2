"""Where the `[alerts]` watch keeps its state between processes: a small SQLite file beside the
project's other state (`.handoffs/alerts.sqlite`), so that a restarted worker resumes its
baselines and knows what it already posted.

```
snapshots(at REAL PRIMARY KEY, snapshot TEXT)   one per evaluation, back to the longest window
watch(id INTEGER PRIMARY KEY CHECK (id = 1),    one row: when the watch first started, the
      started REAL, kinds TEXT,                 kind of each metric, the conditions holding
      pending TEXT, firing TEXT)                (since when) and the alerts posted as firing
```
A snapshot is the cumulative value of every series (`_conditions.Snapshot`) as JSON. The times
are the watch's clock: wall-clock seconds, so that they mean the same in the next process.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Generator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from handoffs.project._conditions import Series, Snapshot, Value

__all__ = ["AlertStore", "StoredWatch"]

Key = tuple[str, Series]
"""An alert's identity: its name and its labels, sorted."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (at REAL PRIMARY KEY, snapshot TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS watch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    started REAL NOT NULL,
    kinds TEXT NOT NULL,
    pending TEXT NOT NULL,
    firing TEXT NOT NULL
);
"""


@dataclass(slots=True, kw_only=True)
class StoredWatch:
    """What an earlier watch left: enough for the next one to go on where it stopped."""

    started: float
    history: list[tuple[float, Snapshot]] = field(default_factory=list[tuple[float, Snapshot]])
    kinds: dict[str, str] = field(default_factory=dict[str, str])
    """Metric name -> `gauge`, `sum` or `histogram`: gauges are not carried into the next
    process (they read its own breakers and budgets), counters and histograms are."""
    pending: dict[Key, float] = field(default_factory=dict[Key, float])
    firing: dict[Key, dict[str, Any]] = field(default_factory=dict[Key, dict[str, Any]])
    """Alerts posted as firing: `name`, `labels`, `annotations`, `starts_at`."""


def _value_json(value: Value) -> Any:
    return [list(value[0]), list(value[1])] if isinstance(value, tuple) else value


def _value_of(data: Any) -> Value:
    if isinstance(data, list):
        pair = cast(list[list[Any]], data)
        return (tuple(float(b) for b in pair[0]), tuple(int(c) for c in pair[1]))
    return float(data)


def _series_of(data: Any) -> Series:
    return tuple((str(k), str(v)) for k, v in cast(list[list[Any]], data))


def dump_snapshot(snap: Snapshot) -> str:
    """A snapshot as JSON text."""
    return json.dumps(
        {name: [[list(map(list, s)), _value_json(v)] for s, v in series.items()]
         for name, series in snap.items()}
    )  # fmt: skip


def load_snapshot(text: str) -> Snapshot:
    """A snapshot from `dump_snapshot`'s text."""
    data = cast(dict[str, list[list[Any]]], json.loads(text))
    return {name: {_series_of(s): _value_of(v) for s, v in rows} for name, rows in data.items()}


class AlertStore:
    """The SQLite file at `path` (made on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _db(self) -> Generator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=10)) as db, db:
            db.executescript(_SCHEMA)
            yield db

    def load(self) -> StoredWatch | None:
        """What the last watch over this file left, or None for a new file."""
        with self._db() as db:
            row = db.execute("SELECT started, kinds, pending, firing FROM watch").fetchone()
            if row is None:
                return None
            snaps = db.execute("SELECT at, snapshot FROM snapshots ORDER BY at").fetchall()
        started, kinds, pending, firing = cast(tuple[float, str, str, str], row)
        return StoredWatch(
            started=started,
            history=[(float(at), load_snapshot(text)) for at, text in snaps],
            kinds=cast(dict[str, str], json.loads(kinds)),
            pending={(n, _series_of(s)): float(t) for n, s, t in json.loads(pending)},
            firing={(n, _series_of(s)): cast(dict[str, Any], a) for n, s, a in json.loads(firing)},
        )

    def save(
        self,
        *,
        started: float,
        at: float,
        snapshot: Snapshot,
        keep_from: float,
        kinds: dict[str, str],
        pending: dict[Key, float],
        firing: dict[Key, dict[str, Any]],
    ) -> None:
        """Add the snapshot taken `at`, drop those before `keep_from`, and replace the rest."""
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO snapshots (at, snapshot) VALUES (?, ?)",
                (at, dump_snapshot(snapshot)),
            )
            db.execute("DELETE FROM snapshots WHERE at < ?", (keep_from,))
            db.execute(
                "INSERT OR REPLACE INTO watch (id, started, kinds, pending, firing) "
                "VALUES (1, ?, ?, ?, ?)",
                (
                    started,
                    json.dumps(kinds),
                    json.dumps([[n, list(map(list, s)), t] for (n, s), t in pending.items()]),
                    json.dumps([[n, list(map(list, s)), a] for (n, s), a in firing.items()]),
                ),
            )
