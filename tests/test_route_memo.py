"""Routes memoised per (kind, risk, input size, breaker epoch): the router is asked again only
when something it reads has changed. Counted with the session's `route_memo`, never timed."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import BaseModel

from handoffs.catalog import Catalog
from handoffs.engine import Session
from handoffs.health import Health
from handoffs.routing import Policy, Rule
from handoffs.task import Task

from .conftest import Scripts


class Ticket(BaseModel):
    text: str


class Triage(BaseModel):
    category: Literal["billing", "bug", "other"]
    urgent: bool


LADDER = Policy(rules=(Rule(kind="classify", ladder=("tiny", "cheap", "best")),))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def session(catalog: Catalog, scripts: Scripts, **kw: object) -> Session:
    return Session(catalog=catalog, models=scripts, policy=LADDER, tracing=False, **kw)  # type: ignore[arg-type]


def classify(text: str = "my invoice is wrong", **kw: object) -> Task[Triage]:
    return Task(kind="classify", input=Ticket(text=text), output_type=Triage, **kw)  # type: ignore[arg-type]


def test_like_tasks_are_routed_once(catalog: Catalog, scripts: Scripts) -> None:
    s = session(catalog, scripts)
    first = s.route(classify())
    again = [s.route(classify()) for _ in range(5)]
    assert (s.route_memo.misses, s.route_memo.hits) == (1, 5)
    assert all(d == first for d in again)
    assert first.ladder == ("tiny", "cheap", "best")


def test_what_the_router_reads_is_part_of_the_key(catalog: Catalog, scripts: Scripts) -> None:
    s = session(catalog, scripts)
    s.route(classify())
    s.route(classify(risk="high"))  # another risk
    s.route(classify(text="x" * 4000))  # a longer input: another token estimate
    s.route(classify(max_output_tokens=64))
    assert (s.route_memo.misses, s.route_memo.hits) == (4, 0)
    longer = s.route(classify(text="y" * 4000))  # as long: the same bucket
    assert s.route_memo.hits == 1
    assert longer.input_tokens == s.route(classify(text="x" * 4000)).input_tokens


def test_a_breaker_opening_changes_the_next_route(catalog: Catalog, scripts: Scripts) -> None:
    clock = Clock()
    s = session(catalog, scripts, health=Health(clock=clock))
    assert s.route(classify()).ladder == ("tiny", "cheap", "best")
    s.route(classify())
    assert (s.route_memo.misses, s.route_memo.hits) == (1, 1)
    epoch = s.health.epoch
    s.breaker(catalog["tiny"]).trip("down")
    assert s.health.epoch > epoch
    opened = s.route(classify())
    assert opened.ladder == ("cheap", "best")
    assert "circuit open" in next(st.reason for st in opened.steps if st.model == "tiny")
    s.route(classify())  # while a breaker is open, every route is made afresh
    assert (s.route_memo.misses, s.route_memo.hits) == (3, 1)
    clock.now += s.health.settings.cooldown_s  # cooled down: half-open, callable again
    assert s.route(classify()).ladder == ("tiny", "cheap", "best")


def test_a_breaker_closing_again_lets_the_memo_back_in(catalog: Catalog, scripts: Scripts) -> None:
    clock = Clock()
    s = session(catalog, scripts, health=Health(clock=clock))
    breaker = s.breaker(catalog["tiny"])
    breaker.trip("down")
    clock.now += s.health.settings.cooldown_s
    for _ in range(s.health.settings.success_threshold):
        assert breaker.admit()
        breaker.success()
    assert breaker.state == "closed"
    s.route(classify())
    s.route(classify())
    assert (s.route_memo.misses, s.route_memo.hits) == (1, 1)


def test_a_new_policy_or_unavailable_model_is_routed_afresh(
    catalog: Catalog, scripts: Scripts
) -> None:
    down: dict[str, str] = {}
    s = session(catalog, scripts, unavailable=lambda: down)
    s.route(classify())
    down["cheap"] = "no key"
    assert s.route(classify()).ladder == ("tiny", "best")
    s.policy = replace(LADDER, rules=(Rule(kind="classify", ladder=("best",)),))
    assert s.route(classify()).ladder == ("best",)
    assert (s.route_memo.misses, s.route_memo.hits) == (3, 0)


async def test_handoffs_record_the_memoised_route(catalog: Catalog, scripts: Scripts) -> None:
    scripts.on("tiny", lambda c: {"category": "billing", "urgent": False})
    s = session(catalog, scripts)
    first = await s.delegate(classify())
    second = await s.delegate(classify())
    assert s.route_memo.hits == 1
    assert second.record.route == first.record.route == ("tiny", "cheap", "best")
    assert second.record.route_reasons == first.record.route_reasons
    assert (
        second.record.breakers
        == first.record.breakers
        == dict.fromkeys(first.record.route, "closed")
    )
