"""`[alerts]`: the alert conditions evaluated in-process and posted to a webhook, here a real HTTP
server on loopback; the same alert names, labels and (with the default thresholds) annotations as
the shipped Prometheus rules."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
import yaml

from handoffs import Budget
from handoffs.errors import ConfigError
from handoffs.handoff import HandoffRecord
from handoffs.project import (
    AlertSettings,
    AlertStore,
    AlertWatch,
    breaker_readings,
    budget_reading,
    load_config,
)
from handoffs.project._conditions import conditions
from handoffs.tracing import BudgetReading

from .scenario import JOB, Clock, World, one_round, session_for

RULES = Path(__file__).resolve().parents[2] / "ops" / "prometheus" / "alerts.yml"


class Hook:
    """A webhook receiver on 127.0.0.1: keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers["Content-Length"])
                hook.bodies.append(json.loads(self.rfile.read(size)))
                self.send_response(200)
                self.end_headers()
                hook.arrived.set()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def alerts(self) -> list[tuple[str, str, dict[str, str]]]:
        return [
            (a["status"], a["labels"]["alertname"], a["labels"])
            for body in self.bodies
            for a in body["alerts"]
        ]


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join()


def test_alerts_table_is_read_and_checked(tmp_path: Path) -> None:
    config = tmp_path / "handoffs.toml"
    base = '[models.m]\nprovider = "openai"\nname = "gpt-4.1-nano"\ntier = "small"\ncontext_window = 8000\n'
    config.write_text(base + '[alerts]\nwebhook = "http://127.0.0.1:9/hook"\nbudget_used = 0.9\n')
    alerts = load_config(config).alerts
    assert alerts is not None and alerts.budget_used == 0.9 and alerts.interval_s == 60
    for bad, message in (
        (
            'webhook = "ftp://x"',
            "alerts.webhook: must be an http:// or https:// URL (got 'ftp://x')",
        ),
        ('webhook = "http://x"\nbudget = 1', "alerts.budget: "),
        ('webhook = "http://x"\nerror_rate = 2', "alerts.error_rate: "),
    ):
        config.write_text(base + "[alerts]\n" + bad + "\n")
        with pytest.raises(ConfigError) as caught:
            load_config(config)
        assert str(caught.value).startswith(f"{config}: {message}")


def test_an_outage_of_the_primary_is_posted_when_it_fires_and_when_it_resolves(
    hook: Hook,
) -> None:
    """A real session: the frontier primary goes down for 6 minutes on the breakers' clock."""
    clock = Clock()
    watch = AlertWatch(AlertSettings(webhook=hook.url), clock=clock)
    world = World()
    budget = Budget(None)

    async def minutes(n: int) -> None:
        for _ in range(n):
            await one_round(session, 3, 1)
            watch.tick()
            clock.now += 60

    session = session_for(world, budget, meters=None, clock=clock, on_record=watch.observe)
    unwatch = watch.watch(breaker_readings(session), budget_reading(JOB, budget))
    anyio.run(minutes, 10)
    assert hook.bodies == []  # healthy: nothing posted
    world.incident = True
    anyio.run(minutes, 8)
    fired = {(status, name) for status, name, _ in hook.alerts()}
    assert ("firing", "HandoffsPrimaryProviderDown") in fired
    assert ("firing", "HandoffsErrorRateSpike") in fired
    [down] = [a for s, n, a in hook.alerts() if n == "HandoffsPrimaryProviderDown"]
    assert down == {
        "alertname": "HandoffsPrimaryProviderDown",
        "handoffs_model": "best",
        "gen_ai_provider_name": "openai-compatible",
    }
    world.incident = False
    anyio.run(minutes, 2)
    assert ("resolved", "HandoffsPrimaryProviderDown") in {(s, n) for s, n, _ in hook.alerts()}
    assert hook.bodies[-1]["version"] == "4"
    unwatch()


def test_the_watch_thread_posts_a_budget_crossing(hook: Hook) -> None:
    watch = AlertWatch(AlertSettings(webhook=hook.url, interval_s=0.05))
    spent = Decimal("0.45")
    watch.watch(
        lambda: [], lambda: BudgetReading(job=JOB, spent_usd=spent, limit_usd=Decimal("0.5"))
    )
    with watch.running():
        assert hook.arrived.wait(timeout=30)
    [(status, name, labels)] = hook.alerts()
    assert (status, name, labels["handoffs_job_name"]) == ("firing", "HandoffsBudgetThreshold", JOB)


def test_with_default_thresholds_the_annotations_are_the_prometheus_rules(hook: Hook) -> None:
    rules = {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    labels = {
        "handoffs_model": "m",
        "handoffs_task_kind": "k",
        "handoffs_job_name": "j",
        "gen_ai_provider_name": "p",
    }
    found = conditions(AlertSettings(webhook=hook.url))
    # the period alert reads `handoffs report --compare`'s gauges, which a worker does not make
    assert {c.name for c in found} == set(rules) - {"HandoffsPremiumShareUpOverPeriod"}
    for condition in found:
        rule = rules[condition.name]
        for key in ("summary", "description"):
            rendered = rule["annotations"][key]
            for name, value in labels.items():
                rendered = rendered.replace("{{ $labels." + name + " }}", value)
            ours = getattr(condition, key).format(**labels)
            assert ours == rendered, condition.name
        assert condition.for_s == _seconds(rule.get("for", "0s"))


def test_a_restarted_watch_resumes_its_baselines_and_does_not_post_an_alert_twice(
    hook: Hook, tmp_path: Path
) -> None:
    """Two watches over one state file, one after the other, as a worker and its restart: the
    second carries the first's counters on, knows what it posted, and posts the resolution. A
    watch restarted without the file, beside it, posts the same alerts again."""
    state = tmp_path / ".handoffs" / "alerts.sqlite"
    clock = Clock()
    settings = AlertSettings(webhook=hook.url)
    first = AlertWatch(settings, clock=clock, store=AlertStore(state))
    watching = [first]
    world = World()
    budget = Budget(None)

    def observe(record: HandoffRecord) -> None:
        for watch in watching:
            watch.observe(record)

    session = session_for(world, budget, meters=None, clock=clock, on_record=observe)

    def counted() -> float:
        stored = AlertStore(state).load()
        assert stored is not None
        return sum(cast(float, v) for v in stored.history[-1][1]["handoffs.handoffs"].values())

    async def minutes(n: int) -> None:
        for _ in range(n):
            await one_round(session, 3, 1)
            for watch in watching:
                watch.tick()
            clock.now += 60

    first.watch(breaker_readings(session), budget_reading(JOB, budget))
    anyio.run(minutes, 10)
    world.incident = True
    anyio.run(minutes, 8)
    posted = list(hook.alerts())
    assert {("firing", "HandoffsErrorRateSpike"), ("firing", "HandoffsPrimaryProviderDown")} <= {
        (s, n) for s, n, _ in posted
    }
    before = counted()
    # the worker restarts: a new watch with its own meters (from 0) over the same state file
    second = AlertWatch(settings, clock=clock, store=AlertStore(state))
    assert second.started == first.started and set(second.firing) == set(first.firing)
    fresh_posts: list[dict[str, Any]] = []
    fresh = AlertWatch(
        settings, clock=clock, post=lambda _, body: fresh_posts.append(json.loads(body))
    )
    watching[:] = [second, fresh]
    for watch in watching:
        watch.watch(breaker_readings(session), budget_reading(JOB, budget))
    anyio.run(minutes, 6)  # the incident goes on
    assert hook.alerts() == posted  # what fires was posted already
    assert counted() == before + 6 * 4  # counted on from where the first watch stopped
    again = {a["labels"]["alertname"] for b in fresh_posts for a in b["alerts"]}
    assert {"HandoffsPrimaryProviderDown", "HandoffsErrorRateSpike"} <= again  # posted twice
    world.incident = False
    watching[:] = [second]
    anyio.run(minutes, 8)
    later = hook.alerts()[len(posted) :]
    assert {n for s, n, _ in later if s == "resolved"} >= {
        "HandoffsPrimaryProviderDown",
        "HandoffsErrorRateSpike",
    }
    assert all(s == "resolved" for s, _, _ in later)


def _seconds(text: str) -> float:
    return float(text[:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]]
