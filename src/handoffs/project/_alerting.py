"""`[alerts]` in `handoffs.toml`: the shipped Prometheus alerts, evaluated in the worker and posted
to a webhook, for teams that run no Prometheus.

(`handoffs.project._alert_settings` reads the table: a webhook URL, how often to evaluate, and
the thresholds.)

The conditions are those of `ops/prometheus/alerts.yml`, over the same instruments: the watch
records every handoff of this process into its own `HandoffMetrics` (the breakers and budgets of
running jobs too), snapshots them at each evaluation and takes increases over the same windows.
The POST body follows Alertmanager's webhook format (`version` 4, `status`, `alerts` with
`labels`, `annotations`, `startsAt`, `endsAt`), so receivers written for Alertmanager read it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Histogram, InMemoryMetricReader, Sum

from handoffs.handoff import HandoffRecord
from handoffs.project._alert_settings import AlertSettings
from handoffs.project._alert_store import AlertStore
from handoffs.project._conditions import Condition, Snapshot, Value, conditions
from handoffs.tracing import BreakerReading, BudgetReading, HandoffMetrics

__all__ = ["ALERT_STATE", "Alert", "AlertWatch", "alert_watch"]

log = logging.getLogger("handoffs.alerts")
log.addHandler(logging.NullHandler())


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One firing (or resolved) alert, as posted."""

    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: str
    ends_at: str | None = None

    def document(self) -> dict[str, Any]:
        """The alert in Alertmanager's webhook shape."""
        return {
            "status": "resolved" if self.ends_at else "firing",
            "labels": {"alertname": self.name, **self.labels},
            "annotations": dict(self.annotations),
            "startsAt": self.starts_at,
            "endsAt": self.ends_at or "0001-01-01T00:00:00Z",
        }


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _snapshot(reader: InMemoryMetricReader, kinds: dict[str, str]) -> Snapshot:
    """The cumulative value of every series: counters and gauges by value, histograms as
    (bounds, cumulative bucket counts); `kinds` learns each metric's kind."""
    data = reader.get_metrics_data()
    snap: Snapshot = {}
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kinds[metric.name] = (
                    "histogram"
                    if isinstance(metric.data, Histogram)
                    else "sum"
                    if isinstance(metric.data, Sum)
                    else "gauge"
                )
                series = snap.setdefault(metric.name, {})
                for point in metric.data.data_points:
                    key = tuple(
                        sorted((k, str(v).lower()) for k, v in (point.attributes or {}).items())
                    )
                    if isinstance(metric.data, Histogram):
                        hp = cast(Any, point)
                        series[key] = (tuple(hp.explicit_bounds), tuple(hp.bucket_counts))
                    else:
                        series[key] = float(cast(Any, point).value)
    return snap


def _add(a: Value, b: Value) -> Value:
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0]:
        return (a[0], tuple(x + y for x, y in zip(a[1], b[1], strict=True)))
    if isinstance(a, float) and isinstance(b, float):
        return a + b
    return b  # the buckets changed: this process's own counts


def _carried(base: Snapshot, snap: Snapshot) -> Snapshot:
    """`snap` (this process's counts) on top of `base` (an earlier process's last counts)."""
    if not base:
        return snap
    merged: Snapshot = {name: dict(series) for name, series in snap.items()}
    for name, series in base.items():
        into = merged.setdefault(name, {})
        for key, value in series.items():
            into[key] = _add(value, into[key]) if key in into else value
    return merged


def _alert_doc(alert: Alert) -> dict[str, Any]:
    return {
        "name": alert.name,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": alert.starts_at,
    }


class AlertWatch:
    """Evaluates the alert conditions over this process's handoffs and posts changes.

    `observe` each finished handoff, `watch` each running job's session and budget, and `tick`
    (the background thread of `running()` calls it every `interval_s`).

    With a `store`, the watch starts from what the last watch over that file left - its history
    of snapshots (the baselines of the relative conditions), the conditions holding and the
    alerts already posted as firing - carries that watch's counters on under its own, and saves
    each evaluation: a restarted worker neither loses its baselines nor posts an alert twice.
    The clock is wall-clock seconds so that stored times mean the same in the next process.
    One watching process per store."""

    def __init__(
        self,
        settings: AlertSettings,
        *,
        clock: Callable[[], float] = time.time,
        post: Callable[[str, bytes], None] | None = None,
        store: AlertStore | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._post = post or _post_json
        self._reader = InMemoryMetricReader()
        self._provider = MeterProvider(metric_readers=[self._reader])
        self.metrics = HandoffMetrics(self._provider)
        """The watch's own instruments: the ones the job metrics use, fed by `observe`."""
        self.conditions: tuple[Condition, ...] = conditions(settings)
        self.store = store
        stored = store.load() if store is not None else None
        self.started = stored.started if stored is not None else clock()
        self._history: list[tuple[float, Snapshot]] = (
            stored.history if stored is not None and stored.history else [(self.started, {})]
        )
        self._kinds: dict[str, str] = dict(stored.kinds) if stored is not None else {}
        self._base: Snapshot = {
            name: series
            for name, series in self._history[-1][1].items()
            if self._kinds.get(name, "gauge") != "gauge"
        }
        """The last counts of the watch this one took over from: this process starts at 0."""
        self._pending: dict[tuple[str, tuple[tuple[str, str], ...]], float] = (
            dict(stored.pending) if stored is not None else {}
        )
        self.firing: dict[tuple[str, tuple[tuple[str, str], ...]], Alert] = {
            key: Alert(
                name=doc["name"],
                labels=doc["labels"],
                annotations=doc["annotations"],
                starts_at=doc["starts_at"],
            )
            for key, doc in (stored.firing.items() if stored is not None else ())
        }
        """What is firing now, by alert name and labels."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def observe(self, record: HandoffRecord) -> None:
        """Measure one finished handoff."""
        self.metrics.record(record)

    def watch(
        self, breakers: Callable[[], list[BreakerReading]], budget: Callable[[], BudgetReading]
    ) -> Callable[[], None]:
        """Observe a running job's breakers and budget; call the result when the job ends."""
        stop_breakers = self.metrics.watch_breakers(breakers)
        stop_budget = self.metrics.watch_budget(budget)

        def unwatch() -> None:
            stop_breakers()
            stop_budget()

        return unwatch

    def tick(self) -> list[Alert]:
        """Evaluate every condition now; post and return what started firing or resolved."""
        with self._lock:
            now = self._clock()
            snap = _carried(self._base, _snapshot(self._reader, self._kinds))
            self._history.append((now, snap))
            horizon = now - max(c.history_s for c in self.conditions)
            while len(self._history) > 2 and self._history[1][0] <= horizon:
                self._history.pop(0)
            changed = self._evaluate(now)
            if self.store is not None:
                self._save(now, snap)
        if changed:
            body = {
                "version": "4",
                "receiver": "handoffs",
                "status": "firing" if any(a.ends_at is None for a in changed) else "resolved",
                "alerts": [a.document() for a in changed],
            }
            try:
                self._post(self.settings.webhook, json.dumps(body).encode())
            except Exception as exc:  # a webhook that is down must not stop the worker
                log.warning("alerts: posting to the webhook failed: %s", type(exc).__name__)
        return changed

    def _save(self, now: float, snap: Snapshot) -> None:
        assert self.store is not None
        try:
            self.store.save(
                started=self.started,
                at=now,
                snapshot=snap,
                keep_from=self._history[0][0],
                kinds=self._kinds,
                pending=self._pending,
                firing={key: _alert_doc(a) for key, a in self.firing.items()},
            )
        except sqlite3.Error as exc:  # a full disk must not stop the worker
            log.warning("alerts: saving the watch's state failed: %s", exc)

    def _evaluate(self, now: float) -> list[Alert]:
        wall = datetime.now(UTC)
        holding: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        changed: list[Alert] = []
        for condition in self.conditions:
            for labels, notes in condition.holds(self._history, now, self.started):
                key = (condition.name, tuple(sorted(labels.items())))
                holding.add(key)
                since = self._pending.setdefault(key, now)
                if key not in self.firing and now - since >= condition.for_s:
                    alert = Alert(
                        name=condition.name, labels=labels, annotations=notes, starts_at=_iso(wall)
                    )
                    self.firing[key] = alert
                    changed.append(alert)
        for key in [k for k in self._pending if k not in holding]:
            del self._pending[key]
            alert = self.firing.pop(key, None)
            if alert is not None:
                changed.append(
                    Alert(
                        name=alert.name,
                        labels=alert.labels,
                        annotations=alert.annotations,
                        starts_at=alert.starts_at,
                        ends_at=_iso(wall),
                    )
                )
        return changed

    def start(self) -> None:
        """Tick every `interval_s` on a daemon thread until `stop()`."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.settings.interval_s):
                self.tick()

        self._thread = threading.Thread(target=loop, name="handoffs-alerts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking (what is firing stays recorded in `firing`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @contextmanager
    def running(self) -> Generator[AlertWatch]:
        """`start()` for the block's length."""
        self.start()
        try:
            yield self
        finally:
            self.stop()


def _post_json(url: str, body: bytes) -> None:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        response.read()


ALERT_STATE = ".handoffs/alerts.sqlite"
"""Where a project's alert watch keeps its state, relative to `handoffs.toml`."""

_WATCHES: dict[tuple[AlertSettings, Path | None], AlertWatch] = {}
_WATCHES_LOCK = threading.Lock()


def alert_watch(settings: AlertSettings, *, state: Path | None = None) -> AlertWatch:
    """The process's watch for these settings, ticking on a daemon thread from its first use:
    one per worker, so baselines and firing alerts outlive the jobs that fed them; with `state`
    (a SQLite file), they outlive the worker too."""
    with _WATCHES_LOCK:
        found = _WATCHES.get((settings, state))
        if found is None:
            store = AlertStore(state) if state is not None else None
            found = _WATCHES[(settings, state)] = AlertWatch(settings, store=store)
            found.start()
        return found
