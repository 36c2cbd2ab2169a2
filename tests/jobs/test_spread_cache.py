"""A spreading job with `[cache]`: its child handoffs, run by any worker, look up and fill the
job's cache (in the jobs database on PostgreSQL, else the `[cache] path` file), in the job's
tenant scope: a second run is served from it, and a look-alike ticket whose right answer differs
is asked of the model again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from handoffs.cache import PostgresStore
from handoffs.handoff import HandoffRecord
from handoffs.jobs import JobQueue
from handoffs.project import JobReport
from handoffs.testing.postgres import TemporaryPostgres

from .harness import TICKETS, Models, WorkerProcess, write_job
from .test_spread import HANDOFF_SLOTS, spreading_job, wait_for_workers

CACHE = '\n[cache]\nkinds = ["extract"]\nthreshold = 0.8\n'


def extracts(report: JobReport) -> dict[str | None, HandoffRecord]:
    return {r.label: r for r in report.handoffs if r.task_kind == "extract"}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_spread_jobs_children_serve_and_fill_the_jobs_cache(
    backend: str,
    tmp_path: Path,
    models: Models,
    sqlite_url: str,
    request: pytest.FixtureRequest,
    spawn: Callable[..., WorkerProcess],
) -> None:
    if backend == "postgres":
        cluster: TemporaryPostgres = request.getfixturevalue("postgres")
        url = cluster.url("spread_cache")
    else:
        url = sqlite_url
    job = spreading_job(tmp_path, models, 2)
    config = tmp_path / "handoffs.toml"
    config.write_text(config.read_text() + CACHE)
    look_alike = dict(TICKETS[0], body=TICKETS[0]["body"].replace("$49.99", "$59.99"))
    assert look_alike["body"] != TICKETS[0]["body"]
    other = write_job(tmp_path, models.base_url, [look_alike, TICKETS[1]], "look_alike")
    with JobQueue(url, config=config) as queue:
        workers = [spawn(url, config, args=HANDOFF_SLOTS)]
        await wait_for_workers(workers, url)
        reports: list[JobReport] = []
        try:
            with anyio.fail_after(120):
                for submitted in (job, job, other):
                    reports.append(await (await queue.submit(submitted)).result(poll_s=0.1))
        except TimeoutError:
            raise AssertionError(workers[0].output()) from None

    first, second, third = (extracts(r) for r in reports)
    assert set(first) == {"T-001", "T-002"}
    assert {r.cache for r in first.values()} == {"miss"}
    # the second run: every extraction served from the cache, none asked of a model again
    assert {label: r.cache for label, r in second.items()} == {"T-001": "exact", "T-002": "exact"}
    assert all(r.cache_source == first[label].task_id for label, r in second.items())
    assert reports[1].cache_hits == 2 and reports[1].cache_saved_usd > 0
    # the look-alike: its nearest cached answer was tried, its checks refused it, the model asked
    changed = third["T-001"]
    assert changed.cache == "miss" and changed.cache_source == first["T-001"].task_id
    assert changed.output is not None and changed.output["amount_usd"] == 59.99
    assert third["T-002"].cache == "exact"
    calls = models.calls()
    assert calls[("TicketFields", "T-001")] == 2 and calls[("TicketFields", "T-002")] == 1

    sqlite_file = tmp_path / ".handoffs" / "cache.sqlite"
    if backend == "postgres":  # kept in the jobs database, which every worker shares
        assert not sqlite_file.exists()
        store = PostgresStore(url)
        try:
            assert store.count() == 3
        finally:
            store.close()
    else:
        assert sqlite_file.is_file()
