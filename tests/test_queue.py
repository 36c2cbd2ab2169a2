"""A model with limited slots: the wait for one counts against the handoff's time, so a handoff that
cannot be answered in time where it would queue moves on to the next model of its route instead
of degrading; the route's last model is waited for."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import anyio
from pydantic import BaseModel

from handoffs.catalog import Catalog
from handoffs.engine import RetryPolicy, Session
from handoffs.engine._queue import ModelQueue
from handoffs.routing import Policy, Rule
from handoffs.task import Task
from handoffs.testing.scripted import ScriptCall

from .conftest import Scripts


class Ticket(BaseModel):
    text: str


class Triage(BaseModel):
    category: Literal["billing", "bug", "other"]


ANSWER = {"category": "billing"}


def task() -> Task[Triage]:
    return Task(kind="classify", input=Ticket(text="my invoice is wrong"), output_type=Triage)


def one_slot(catalog: Catalog, typical_s: float) -> Catalog:
    return Catalog(
        [
            replace(e, max_concurrency=1, typical_latency_s=typical_s) if e.id == "tiny" else e
            for e in catalog.values()
        ]
    )


class Gate:
    """The one-slot model's first call holds its slot until the test opens the gate."""

    def __init__(self) -> None:
        self.busy = anyio.Event()
        self.open = anyio.Event()

    async def answer(self, call: ScriptCall) -> dict[str, Any]:
        if not self.busy.is_set():
            self.busy.set()
            await self.open.wait()
        return ANSWER


def session(
    catalog: Catalog, scripts: Scripts, ladder: tuple[str, ...], handoff_s: float
) -> Session:
    return Session(
        catalog=catalog,
        models=scripts,
        policy=Policy(rules=(Rule(kind="classify", ladder=ladder),)),
        retry=RetryPolicy(max_handoff_s=handoff_s),
        tracing=False,
    )


async def test_a_handoff_that_cannot_be_served_in_time_moves_on_without_waiting(
    catalog: Catalog, scripts: Scripts
) -> None:
    # one call in service, 10 s each: a second would wait ~10 s and take ~10 s, past its 15 s
    gate = Gate()
    scripts.on("tiny", gate.answer)
    scripts.on("middle", lambda c: ANSWER)
    s = session(one_slot(catalog, 10.0), scripts, ("tiny", "middle"), 15.0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(s.delegate, task())
        await gate.busy.wait()
        second = await s.delegate(task())
        gate.open.set()
    assert second.model == "middle" and not second.degraded
    refused = second.attempts[0]
    assert (refused.model, refused.outcome) == ("tiny", "refused")
    assert refused.error is not None and refused.error.startswith("queue: 1 call(s) ahead")
    assert len(scripts.calls["tiny"]) == 1  # the second never reached the model
    first = next(r for r in s.records if r.model == "tiny")
    assert not first.degraded and [a.outcome for a in first.attempts] == ["accepted"]


async def test_a_queued_handoff_gives_up_its_place_while_an_answer_can_still_come(
    catalog: Catalog, scripts: Scripts
) -> None:
    # the estimate lets it queue (0.05 s calls, 30 s to spare); then the model's service time
    # turns out far longer (as the calls it answers would show): it leaves the line at its next
    # look, with time still in hand, and the next rung answers
    gate = Gate()
    scripts.on("tiny", gate.answer)
    scripts.on("middle", lambda c: ANSWER)
    s = session(one_slot(catalog, 0.05), scripts, ("tiny", "middle"), 30.0)
    queue = s._caller.queue(s.catalog["tiny"])  # pyright: ignore[reportPrivateUsage]
    assert queue is not None

    async def slow_down() -> None:
        await anyio.wait_all_tasks_blocked()  # the second is in line
        assert queue.waiting == 1
        queue.service_s = 100.0

    async with anyio.create_task_group() as tg:
        tg.start_soon(s.delegate, task())
        await gate.busy.wait()
        tg.start_soon(slow_down)
        second = await s.delegate(task())
        gate.open.set()
    assert second.model == "middle" and not second.degraded
    assert second.attempts[0].error is not None
    assert second.attempts[0].error.startswith("queue: left the line after")


async def test_the_last_model_of_a_route_is_waited_for(catalog: Catalog, scripts: Scripts) -> None:
    gate = Gate()
    scripts.on("tiny", gate.answer)
    s = session(one_slot(catalog, 10.0), scripts, ("tiny",), 15.0)
    deliveries: list[Any] = []

    async def second() -> None:
        deliveries.append(await s.delegate(task()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(s.delegate, task())
        await gate.busy.wait()
        tg.start_soon(second)
        await anyio.wait_all_tasks_blocked()
        gate.open.set()
    assert deliveries[0].model == "tiny" and not deliveries[0].degraded
    assert [a.outcome for a in deliveries[0].attempts] == ["accepted"]


async def test_the_service_time_follows_the_calls_and_the_wait_counts_the_line() -> None:
    queue = ModelQueue(model="m", slots=2, service_s=4.0)
    assert queue.expected_wait_s() == 0.0  # slots free

    async def in_line() -> None:
        async with queue.slot(left_s=None, patient=True, tracing=None) as refused:
            assert refused is None

    async with (
        queue.slot(left_s=None, patient=True, tracing=None),
        queue.slot(left_s=None, patient=True, tracing=None),
    ):
        assert queue.busy == 2
        assert queue.expected_wait_s() == 4.0 / 2  # the first of two calls to end
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(in_line)
            await anyio.wait_all_tasks_blocked()
            assert queue.waiting == 3
            assert queue.expected_wait_s() == 4 * 4.0 / 2  # three in line ahead, then this one
            assert queue.expected_wait_s(ahead=0) == 4.0 / 2
            tg.cancel_scope.cancel()  # leaving the line gives the places back
    assert queue.busy == 0 and queue.waiting == 0
    for _ in range(20):
        queue.served(10.0)
    assert 9.9 < queue.service_s <= 10.0
    queue.served(0.0)  # a call that reports no time does not move it
    assert 9.9 < queue.service_s


async def test_a_call_that_times_out_leaves_time_for_the_next_rung(
    catalog: Catalog, scripts: Scripts
) -> None:
    async def stalls(call: ScriptCall) -> dict[str, Any]:
        await anyio.sleep(5)  # the provider never answers in time
        return ANSWER

    scripts.on("tiny", stalls)
    scripts.on("middle", lambda c: ANSWER)
    quick = Catalog(
        [replace(e, typical_latency_s=0.2) if e.id == "middle" else e for e in catalog.values()]
    )
    delivery = await session(quick, scripts, ("tiny", "middle"), 1.0).delegate(task())
    assert delivery.model == "middle" and not delivery.degraded
    assert [(a.model, a.outcome) for a in delivery.attempts] == [
        ("tiny", "provider_error"),
        ("middle", "accepted"),
    ]
