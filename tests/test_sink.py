"""The seam around each handoff: records streamed to sinks, a bounded tally, and runners that make
a handoff here or adopt a record made elsewhere."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path
from typing import Any, TypeVar

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from handoffs import Budget, Catalog, Session, Task
from handoffs.engine import Recorder, Run
from handoffs.errors import HandoffError
from handoffs.handoff import Delivery, HandoffRecord
from handoffs.routing import OutcomeLog, Policy, Rule
from handoffs.testing.scripted import scripted
from handoffs.tracing import Tracing

from .conftest import Scripts

T = TypeVar("T")

ECHO = Policy(rules=(Rule(kind="echo", ladder=("tiny",)),))


def echo(**kw: Any) -> Task[str]:
    return Task(kind="echo", input="hi", output_type=str, **kw)


def session(catalog: Catalog, scripts: Scripts, **kw: Any) -> Session:
    scripts.on("tiny", lambda c: "ok")
    return Session(catalog=catalog, models=scripts, policy=ECHO, **kw)


async def test_every_record_reaches_every_sink_with_the_task_that_ran(
    catalog: Catalog, scripts: Scripts
) -> None:
    seen: list[tuple[str, str, str | None]] = []
    called: list[str] = []
    s = session(
        catalog,
        scripts,
        on_record=lambda r: called.append(r.task_id),
        sinks=[lambda r, t: seen.append(("first", r.task_id, t.id if t else None))],
    )
    s.sinks.append(lambda r, t: seen.append(("second", r.task_id, t.id if t else None)))
    task = echo()
    await s.delegate(task)
    assert called == [task.id]
    assert seen == [("first", task.id, task.id), ("second", task.id, task.id)]


async def test_an_attached_sink_sees_only_the_handoffs_of_its_block(
    catalog: Catalog, scripts: Scripts
) -> None:
    s = session(catalog, scripts)
    await s.delegate(echo(label="before"))
    with s.attached(Recorder()) as recorder:
        await s.delegate(echo(label="during"))
    await s.delegate(echo(label="after"))
    assert isinstance(recorder, Recorder)
    assert [r.label for r in recorder.records] == ["during"]
    assert s.sinks == []


async def test_records_are_a_bounded_window_and_the_tally_counts_them_all(
    catalog: Catalog, scripts: Scripts
) -> None:
    s = session(catalog, scripts, keep_records=3)
    for n in range(5):
        await s.delegate(echo(label=str(n)))
    assert [r.label for r in s.records] == ["2", "3", "4"]
    assert s.tally.handoffs == s.tally.delivered == 5
    assert s.tally.cost_usd == s.records[-1].cost_usd * 5 > 0  # the same call each time
    everything = session(catalog, scripts, keep_records=None)
    for _ in range(5):
        await everything.delegate(echo())
    assert len(everything.records) == 5


class Replaying:
    """A runner that never makes a handoff: it adopts a record as if made elsewhere."""

    def __init__(self, record: HandoffRecord) -> None:
        self.record = record

    async def __call__(self, task: Task[T], run: Run[T], /) -> Delivery[T]:
        record = self.record.model_copy(update={"task_id": task.id})
        run.adopt(record)
        return Delivery(output=task.parse_output(record.output), record=record)


async def test_an_adopted_record_is_charged_streamed_and_traced_but_not_logged_as_an_outcome(
    catalog: Catalog, scripts: Scripts, tmp_path: Path
) -> None:
    log = OutcomeLog(tmp_path / "outcomes.jsonl")
    made = await session(catalog, scripts, outcomes=log).delegate(echo())
    assert len(log.path.read_text().splitlines()) == 1  # a handoff made here is logged
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    budget = Budget("1")
    recorder = Recorder()
    s = Session(
        catalog=catalog,
        models=scripts,
        policy=ECHO,
        budget=budget,
        outcomes=log,
        runner=Replaying(made.record),
        sinks=[recorder],
        tracing=Tracing(tracer_provider=provider),
    )
    calls = len(scripts.calls["tiny"])
    delivery = await s.delegate(echo())
    assert delivery.output == "ok" and len(scripts.calls["tiny"]) == calls  # nothing called
    assert budget.spent_usd == made.record.cost_usd > 0
    assert recorder.records == [delivery.record] and s.tally.handoffs == 1
    assert len(log.path.read_text().splitlines()) == 1  # logged where it was made
    [span] = [x for x in exporter.get_finished_spans() if x.name == "handoff echo"]
    attrs = dict(span.attributes or {})
    assert attrs["handoffs.cost_usd_decimal"] == str(made.record.cost_usd)
    assert attrs["handoffs.cost_usd"] == float(made.record.cost_usd)


async def test_a_run_is_made_once_and_its_result_raises_its_failure_again(
    catalog: Catalog, scripts: Scripts
) -> None:
    s = Session(catalog=catalog, models=scripts, policy=ECHO)
    run = s.prepare(echo(requires=frozenset({"vision"})))  # no model can: NoRouteAvailable
    with pytest.raises(HandoffError) as first:
        await run()
    with pytest.raises(HandoffError) as again:
        run.result()
    assert again.value is first.value
    assert run.record is not None and run.record.status == "failed"
    assert s.records == (run.record,)
    with pytest.raises(RuntimeError, match="already made"):
        await run()
    with pytest.raises(RuntimeError, match="not made here"):
        s.prepare(echo()).result()


HANDOFFS = 1000
"""Handoffs measured for memory growth. Under tracemalloc a scripted handoff costs ~25 ms on a
loaded 2-core machine (~3.6 ms without), so 20,000 would take ~8 minutes: 1,000 against a window
of 50 records shows the same thing — growth that stops at the window."""


async def test_memory_stops_growing_at_the_window_of_recent_records(catalog: Catalog) -> None:
    """A session that kept every record would grow ~6.5 KB a handoff (6.5 MB here); one that
    streams them keeps the window and the tally, whatever the number of handoffs."""
    model = scripted(lambda c: "ok", name="tiny")  # records nothing per call
    s = Session(catalog=catalog, models=lambda e: model, policy=ECHO, keep_records=50)
    for _ in range(50):  # agents built, schemas cached, the window full
        await s.delegate(echo())
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(HANDOFFS):
            await s.delegate(echo())
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (current - start) < 2_000_000, f"{(current - start) / 1e6:.1f} MB retained"
    assert (peak - start) < 3_000_000, f"{(peak - start) / 1e6:.1f} MB at the peak"
    assert s.tally.handoffs == HANDOFFS + 50 and len(s.records) == 50


async def test_a_record_is_built_only_when_something_reads_it(
    catalog: Catalog, scripts: Scripts
) -> None:
    from handoffs.handoff import HandoffRecord, RecordDraft, held_record

    quiet = session(catalog, scripts, tracing=False)
    delivery = await quiet.delegate(echo())
    held = held_record(delivery)
    assert isinstance(held, RecordDraft) and held.built is None  # no sink, no trace: a draft
    assert (quiet.tally.handoffs, quiet.tally.delivered) == (1, 1)
    assert quiet.tally.cost_usd == held.cost_usd > 0
    record = delivery.record  # read: validated once, the same record everywhere after
    assert isinstance(record, HandoffRecord) and held.built is record
    assert quiet.records == (record,) and delivery.record is record
    assert record == HandoffRecord(**held.fields)

    seen: list[HandoffRecord] = []
    streamed = session(catalog, scripts, tracing=False, on_record=seen.append)
    delivered = await streamed.delegate(echo())
    assert seen == [delivered.record]  # a sink took it: built for the sink, the same one
    assert held_record(delivered) is seen[0] or held_record(delivered).build() is seen[0]
