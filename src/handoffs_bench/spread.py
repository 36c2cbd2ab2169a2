"""The spreading figure of `handoffs bench jobs`: one job with many parallel handoffs.

One job of `--spread-tickets` tickets (the orchestrator asks for every classification at once,
then every extraction and the urgent drafts at once) through 1, 2 and 4 `handoffs worker`
processes, with `[jobs] spread` off (every handoff runs in the worker that runs the job) and on
(each handoff a child workflow on the handoffs queue, taken by any worker). Handoffs/s, against
the first row (spread off, one worker) measured in the same run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from handoffs.cli.terminal import out

if TYPE_CHECKING:
    from handoffs_bench.harness import Bench

__all__ = ["SpreadRun", "print_spread", "spread_runs"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SpreadRun:
    """One job with many parallel handoffs, on `workers` workers, spread or not."""

    backend: str
    workers: int
    spread: bool
    handoffs: int
    seconds: float

    @property
    def handoffs_per_s(self) -> float:
        return self.handoffs / self.seconds


def _wide_job(bench: Bench, tickets: int) -> Path:
    """The bench's job over `tickets` tickets (the bundled data, repeated as needed)."""
    rows = [dict(bench.rows[i % len(bench.rows)]) for i in range(tickets)]
    for i, row in enumerate(rows):
        row["id"] = f"T-{i + 1:03d}"  # distinct tickets: the orchestrator asks once per id
    (bench.directory / "wide.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    job = bench.directory / "wide.toml"
    job.write_text(bench.job.read_text().replace('"tickets.jsonl"', '"wide.jsonl"'))
    return job


def _one(bench: Bench, job: Path, backend: str, url: str, workers: int, spread: bool) -> SpreadRun:
    from handoffs.jobs import JobQueue
    from handoffs_bench.harness import finished, submit

    config = bench.directory / ("spread.toml" if spread else "handoffs.toml")
    if spread and not config.exists():
        config.write_text(bench.config.read_text() + "\n[jobs]\nspread = true\n")
    with JobQueue(url, config=config) as queue, bench.workers(url, workers, 1, config=config):
        started = time.perf_counter()
        (job_id,) = submit(queue, job, 1)
        while not finished(queue, [job_id]):
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        info = queue.get(job_id).status()
        if info.state != "completed" or info.progress is None:
            raise RuntimeError(f"job {job_id} ended {info.state}: {info.error}")
        handoffs = info.progress.done + info.progress.failed
    return SpreadRun(
        backend=backend,
        workers=workers,
        spread=spread,
        handoffs=handoffs,
        seconds=round(seconds, 3),
    )


def spread_runs(
    bench: Bench,
    backends: Sequence[tuple[str, Callable[[str], str]]],
    workers: Sequence[int],
    tickets: int,
    progress: Callable[[str], None],
) -> list[SpreadRun]:
    """Every backend x worker count x spread off/on, one job of `tickets` tickets each."""
    runs: list[SpreadRun] = []
    if tickets < 1 or not bench.rows:
        return runs
    job = _wide_job(bench, tickets)
    for backend, url_for in backends:
        for count in workers:
            for spread in (False, True):
                progress(f"{backend}: one wide job, {count} worker(s), spread {spread}")
                url = url_for(f"spread_{count}_{int(spread)}")
                runs.append(_one(bench, job, backend, url, count, spread))
    return runs


def as_json(runs: Sequence[SpreadRun]) -> list[dict[str, Any]]:
    base = runs[0].handoffs_per_s if runs else 1.0
    return [
        {
            "backend": r.backend,
            "workers": r.workers,
            "spread": r.spread,
            "handoffs": r.handoffs,
            "seconds": r.seconds,
            "handoffs_per_s": round(r.handoffs_per_s, 2),
            "vs_first": round(r.handoffs_per_s / base, 2),
        }
        for r in runs
    ]


def print_spread(runs: Sequence[SpreadRun], tickets: int) -> None:
    """The figure as a table."""
    if not runs:
        return
    table = Table(
        title=f"one job of {tickets} tickets (parallel handoffs): spread off vs on; "
        "ratio: handoffs/s against the first row",
        title_justify="left",
    )
    for col in ("backend", "workers", "spread", "handoffs", "seconds", "handoffs/s", "ratio"):
        table.add_column(col, justify="left" if col in ("backend", "spread") else "right")
    for row in as_json(runs):
        table.add_row(
            row["backend"],
            str(row["workers"]),
            "on" if row["spread"] else "off",
            str(row["handoffs"]),
            f"{row['seconds']:.2f}",
            f"{row['handoffs_per_s']:.1f}",
            f"{row['vs_first']:.2f}",
        )
    out.print(table)
