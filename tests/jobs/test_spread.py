"""Spreading a job's handoffs across workers (`[jobs] spread = true`): each handoff a child
workflow on the handoffs queue, taken by any worker; the job's budget holds; a worker killed while
it runs children loses only the handoff in flight; cancelling the job stops its children."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from handoffs.errors import ConfigError
from handoffs.jobs import HANDOFF_WORKFLOW, JobHandle, JobQueue, resolve_url
from handoffs.project import JobReport, load_config, load_job, open_portfolio, run_job
from handoffs.testing import FakeRequest
from handoffs.testing.postgres import TemporaryPostgres

from .harness import KIND, TICKETS, Models, WorkerProcess, all_but_one_done, write_job

HANDOFF_SLOTS = ("--handoff-concurrency", "2")


class Barrier:
    """Holds every classification request until `n` of them are held at once."""

    def __init__(self, models: Models, n: int) -> None:
        self.models, self.n = models, n
        self.held = 0
        self.lock = threading.Lock()
        self.release = threading.Event()

    async def hold(self, request: FakeRequest) -> None:
        if self.models.key(request) is None or self.models.key(request)[0] != "Triage":  # type: ignore[index]
            return
        with self.lock:
            self.held += 1
            if self.held >= self.n:
                self.release.set()
        await anyio.to_thread.run_sync(self.release.wait)


def spreading_job(tmp_path: Path, models: Models, tickets: int, budget: str = "1.00") -> Path:
    job = models.use(write_job(tmp_path, models.base_url, TICKETS[:tickets], "spread"))
    job.write_text(job.read_text().replace('budget_usd = "1.00"', f'budget_usd = "{budget}"'))
    config = tmp_path / "handoffs.toml"
    if "[jobs]" not in config.read_text():
        config.write_text(config.read_text() + "\n[jobs]\nspread = true\n")
    return job


async def in_process(job: Path) -> JobReport:
    """The same job run by `run_job` in this process, without a database."""
    config = load_config(job.parent / "handoffs.toml")
    spec = load_job(job, config.catalog)
    with open_portfolio(config) as portfolio:
        return await run_job(spec, config, portfolio)


SUBORDINATES = ("classify", "extract", "draft")
"""The job's roster, in order: a child's request names its subordinate by index."""


def children(handle: JobHandle) -> list[tuple[str, str | None, str]]:
    """(status, executor, "kind ticket") of every child workflow of the job."""
    found = handle.queue.client.list_workflows(
        name=HANDOFF_WORKFLOW, workflow_id_prefix=f"{handle.job_id}-handoff-"
    )
    rows: list[tuple[str, str | None, str]] = []
    for w in found:
        request = w.input["args"][0]  # type: ignore[index]
        what = f"{SUBORDINATES[request['subordinate']]} {request['task']['label']}"
        rows.append((w.status, w.executor_id, what))
    return rows


def outcome(report: JobReport) -> list[tuple[str, str | None, str, object]]:
    return sorted(
        ((r.task_kind, r.label, r.status, r.output) for r in report.handoffs),
        key=lambda x: (x[0], x[1] or "", x[2]),
    )


async def wait_for_workers(workers: list[WorkerProcess], url: str) -> None:
    from handoffs.jobs import Presence

    presence = Presence(url)
    try:
        with anyio.fail_after(90):
            while len(presence.alive(dead_after_s=30)) < len(workers):  # noqa: ASYNC110
                await anyio.sleep(0.1)
    except TimeoutError:
        raise AssertionError("\n".join(w.output() for w in workers)) from None
    finally:
        presence.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_parallel_handoffs_spread_across_two_workers_with_the_in_process_result(
    backend: str,
    tmp_path: Path,
    models: Models,
    sqlite_url: str,
    request: pytest.FixtureRequest,
    spawn: Callable[..., WorkerProcess],
) -> None:
    if backend == "postgres":
        cluster: TemporaryPostgres = request.getfixturevalue("postgres")
        url = cluster.url("spread")
    else:
        url = sqlite_url
    job = spreading_job(tmp_path, models, 4)
    expected = await in_process(job)
    models.provider.requests.clear()
    config = tmp_path / "handoffs.toml"
    barrier = Barrier(models, 4)  # 4 classifications held at once: 2 slots a worker, so 2 workers
    models.gates.append(barrier)  # type: ignore[arg-type]
    with JobQueue(url, config=config) as queue:
        workers = [spawn(url, config, args=HANDOFF_SLOTS) for _ in range(2)]
        await wait_for_workers(workers, url)
        handle = await queue.submit(job, trace_dir=tmp_path / "traces")
        try:
            with anyio.fail_after(90):
                report = await handle.result(poll_s=0.1)
        except TimeoutError:
            raise AssertionError("\n".join(w.output() for w in workers)) from None
        ran = children(handle)

    assert barrier.release.is_set()
    assert report.status == expected.status == "completed"
    assert outcome(report) == outcome(expected)
    assert report.total_cost_usd == expected.total_cost_usd
    assert report.output == expected.output
    assert len(ran) == len(report.handoffs) and {s for s, _, _ in ran} == {"SUCCESS"}
    pids = {e.split(":")[1] for _, e, _ in ran if e}
    assert pids == {str(w.proc.pid) for w in workers}  # both workers ran children
    assert sum(models.calls().values()) == len(models.calls())  # every handoff asked once

    # One trace: each child's spans continue the job's handoff span that waited for it.
    traces = tmp_path / "traces"
    job_spans = spans(traces / f"{handle.job_id}.jsonl")
    handoff_spans = {x["span_id"] for x in job_spans if x["name"].startswith("handoff ")}
    assert len(handoff_spans) == len(report.handoffs)
    child_files = [
        f for f in traces.glob(f"{handle.job_id}-handoff-*.jsonl") if ".metrics" not in f.name
    ]
    assert len(child_files) == len(ran)
    for file in child_files:
        child_spans = spans(file)
        assert child_spans and {x["trace_id"] for x in child_spans} == {job_spans[0]["trace_id"]}
        ids = {x["span_id"] for x in child_spans}
        roots = [x for x in child_spans if x["parent_span_id"] not in ids]
        assert roots and all(x["parent_span_id"] in handoff_spans for x in roots)


def spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_a_tight_budget_holds_across_workers(
    tmp_path: Path, models: Models, sqlite_url: str, spawn: Callable[..., WorkerProcess]
) -> None:
    budget = Decimal("0.3")
    job = spreading_job(tmp_path, models, 6, budget=str(budget))
    config = tmp_path / "handoffs.toml"
    # A dear subordinate: a classification's worst case (~$0.2) is most of what the job has left
    # after the orchestrator's first request, so few handoffs can hold their ceiling at once.
    config.write_text(
        config.read_text().replace(
            'input_usd_per_mtok = "0.4"\noutput_usd_per_mtok = "1.6"',
            'input_usd_per_mtok = "40"\noutput_usd_per_mtok = "160"',
        )
    )
    with JobQueue(sqlite_url, config=config) as queue:
        workers = [spawn(sqlite_url, config, args=HANDOFF_SLOTS) for _ in range(2)]
        handle = await queue.submit(job)
        try:
            with anyio.fail_after(90):
                info = await handle.wait(poll_s=0.1)
        except TimeoutError:
            raise AssertionError("\n".join(w.output() for w in workers)) from None
        after = handle.status()
        ran = children(handle)

    assert info.state in ("completed", "budget_exceeded")
    assert after.progress is not None
    assert after.progress.spent_usd <= budget
    records = after.progress.handoffs
    assert any(r.cause == "budget" for r in records), [(r.task_kind, r.cause) for r in records]
    assert any(r.cause is None and r.status == "delivered" for r in records)
    assert ran and {s for s, _, _ in ran} == {"SUCCESS"}


@pytest.mark.parametrize("victim", ["child", "job"])
async def test_a_killed_worker_loses_only_the_child_in_flight(
    victim: str,
    tmp_path: Path,
    models: Models,
    sqlite_url: str,
    spawn: Callable[..., WorkerProcess],
) -> None:
    """Kill the worker running the held child, or the one running the job: a resumed job finds
    its children (finished or running) and starts none of them again."""
    job = spreading_job(tmp_path, models, 4)
    config = tmp_path / "handoffs.toml"
    gate = models.gate("TicketFields", "T-002")  # held: in flight when its worker dies
    with JobQueue(sqlite_url, config=config) as queue:
        workers = [spawn(sqlite_url, config, args=HANDOFF_SLOTS) for _ in range(2)]
        handle = await queue.submit(job)
        try:
            await gate.wait_arrived()
        except TimeoutError:
            raise AssertionError("\n".join(w.output() for w in workers)) from None
        await all_but_one_done(handle)  # every other handoff of the step finishes first
        (runner,) = {e for _, e, what in children(handle) if what == "extract T-002" and e}
        before = handle.status()
        assert before.progress is not None and before.worker is not None
        owner = runner if victim == "child" else before.worker
        killed = next(w for w in workers if f":{w.proc.pid}:" in owner)
        survivor = next(w for w in workers if w is not killed)
        in_flight_lost = f":{killed.proc.pid}:" in runner
        journaled = {(r.task_kind, r.label) for r in before.progress.handoffs}
        killed.kill()
        gate.release.set()
        try:
            with anyio.fail_after(90):
                report = await handle.result(poll_s=0.1)
        except TimeoutError:
            raise AssertionError(survivor.output()) from None
        ran = children(handle)

    assert report.status == "completed"
    done = sorted((r.task_kind, r.label) for r in report.handoffs)
    assert len(done) == len(set(done)), "a handoff was delivered twice"
    calls = models.calls()
    for (title, ticket), n in calls.items():
        if (KIND[title], ticket) in journaled:
            assert n == 1, f"{title} for {ticket} was finished before the crash yet asked {n} times"
    again = 1 if in_flight_lost else 0  # the held child ran again only if its worker died
    assert calls[("TicketFields", "T-002")] == 1 + again
    assert sum(calls.values()) == len(calls) + again  # and nothing else
    assert len(ran) == len(report.handoffs)  # one child per handoff, none started twice
    after = handle.status().worker or ""
    assert f":{survivor.proc.pid}:" in after  # the survivor finished the job


async def test_cancelling_the_job_cancels_its_children(
    tmp_path: Path, models: Models, sqlite_url: str, spawn: Callable[..., WorkerProcess]
) -> None:
    job = spreading_job(tmp_path, models, 4)
    config = tmp_path / "handoffs.toml"
    gate = models.gate("Triage", "T-001")
    with JobQueue(sqlite_url, config=config) as queue:
        workers = [spawn(sqlite_url, config, args=HANDOFF_SLOTS)]
        handle = await queue.submit(job)
        try:
            await gate.wait_arrived()
        except TimeoutError:
            raise AssertionError(workers[0].output()) from None
        cancelled = handle.cancel()
        ran = children(handle)
        gate.release.set()
        final = handle.status()

    assert cancelled.state == "cancelled" and final.state == "cancelled"
    assert [s for s, _, what in ran if what == "classify T-001"] == ["CANCELLED"]
    assert {s for s, _, _ in ran} <= {"CANCELLED", "SUCCESS"}  # none queued or running
    assert len(ran) == 4  # the four classifications of the first request, and nothing after
    assert models.orchestrator_calls() == 1
    # only classifications were answered (as many as finished before the cancel), nothing after
    assert {models.key(r)[0] for r in models.answered() if models.key(r)} <= {"Triage"}  # type: ignore[index]


def test_spread_is_a_jobs_key(tmp_path: Path, models: Models) -> None:
    job = spreading_job(tmp_path, models, 1)
    config = job.parent / "handoffs.toml"
    assert load_config(config).spread
    assert resolve_url(None, config=config, env={}).startswith("sqlite:///")
    config.write_text(config.read_text().replace("spread = true", 'spread = "yes"'))
    with pytest.raises(ConfigError, match=r": jobs\.spread: must be true or false \(got 'yes'\)$"):
        load_config(config)
