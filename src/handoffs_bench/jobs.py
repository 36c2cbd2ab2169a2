"""`handoffs bench jobs`: durable-job throughput through `handoffs worker`, and recovery time.

For each backend (SQLite; PostgreSQL when Debian's binaries are installed — a throwaway cluster on
127.0.0.1) and each worker count (1, 2, 4 `handoffs worker` processes, `--concurrency` jobs each):
start the workers, wait until their heartbeats show, submit `--jobs` copies of the bundled ticket
job cut to `--tickets` tickets, and time them to the last report. Every model is a scripted model
of the fake provider, in this process, answering after a fixed `--latency-ms`.

Reported: jobs/s and handoffs/s, each against a baseline measured in the same run: the same jobs
run by `run_job` in this process, `--concurrency` at a time, with no durability (it shares the
process with the fake provider; the workers do not). Then, per backend, the time from SIGKILL of a worker that holds running jobs to those
jobs being back on the queue (handed over by a survivor's supervisor) and running again.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from handoffs.cli.terminal import JsonOpt, err, fail, out
from handoffs_bench.harness import Bench, finished, submit, until
from handoffs_bench.recovery import Recovery, measure_recovery
from handoffs_bench.spread import SpreadRun, print_spread, spread_runs
from handoffs_bench.spread import as_json as spread_json

__all__ = ["JobsFigures", "Recovery", "Throughput", "jobs", "run_jobs_bench"]

_POLL_S = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class Throughput:
    """One backend and worker count: how fast the jobs went through."""

    backend: str
    workers: int
    concurrency: int
    jobs: int
    handoffs: int
    seconds: float

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds

    @property
    def handoffs_per_s(self) -> float:
        return self.handoffs / self.seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class JobsFigures:
    """Everything one `handoffs bench jobs` run measured."""

    tickets: int
    latency_ms: float
    throughput: list[Throughput]
    recovery: list[Recovery]
    skipped: list[str]
    spread: list[SpreadRun]

    def as_json(self) -> dict[str, Any]:
        base = self.throughput[0] if self.throughput else None
        return {
            "tickets_per_job": self.tickets,
            "model_latency_ms": self.latency_ms,
            "throughput": [
                {
                    **asdict(t),
                    "jobs_per_s": round(t.jobs_per_s, 3),
                    "handoffs_per_s": round(t.handoffs_per_s, 2),
                    "vs_in_process": round(t.jobs_per_s / base.jobs_per_s, 2) if base else None,
                }
                for t in self.throughput
            ],
            "recovery": [asdict(r) for r in self.recovery],
            "spread": spread_json(self.spread),
            "skipped": self.skipped,
        }


def _throughput(
    bench: Bench, backend: str, url: str, workers: int, concurrency: int, jobs: int
) -> Throughput:
    from handoffs.jobs import JobQueue

    with JobQueue(url, config=bench.config) as queue, bench.workers(url, workers, concurrency):
        started = time.perf_counter()
        ids = set(submit(queue, bench.job, jobs))
        until(lambda: finished(queue, ids), 600, "the jobs to finish")
        seconds = time.perf_counter() - started
        handoffs = 0
        for job_id in ids:
            info = queue.get(job_id).status()
            if info.state != "completed":
                raise RuntimeError(f"job {job_id} ended {info.state}: {info.error}")
            assert info.progress is not None
            handoffs += info.progress.done + info.progress.failed
    return Throughput(
        backend=backend,
        workers=workers,
        concurrency=concurrency,
        jobs=jobs,
        handoffs=handoffs,
        seconds=round(seconds, 3),
    )


def _in_process(bench: Bench, concurrency: int, jobs: int) -> Throughput:
    """The same jobs run by `run_job` in this process, `concurrency` at a time: not durable."""
    import anyio

    from handoffs.project import load_config, load_job, open_portfolio, run_job

    config = load_config(bench.config)
    spec = load_job(bench.job, config.catalog)
    handoffs = 0

    async def all_jobs() -> None:
        limiter = anyio.CapacityLimiter(concurrency)

        async def one() -> None:
            nonlocal handoffs
            async with limiter:
                with open_portfolio(config) as portfolio:
                    report = await run_job(spec, config, portfolio, tracing=False)
            if report.status != "completed":
                raise RuntimeError(f"in-process job ended {report.status}: {report.error}")
            handoffs += len(report.handoffs)

        async with anyio.create_task_group() as group:
            for _ in range(jobs):
                group.start_soon(one)

    started = time.perf_counter()
    anyio.run(all_jobs)
    return Throughput(
        backend="in-process, not durable",
        workers=1,
        concurrency=concurrency,
        jobs=jobs,
        handoffs=handoffs,
        seconds=round(time.perf_counter() - started, 3),
    )


def run_jobs_bench(
    *,
    job: Path,
    tickets: int,
    jobs: int,
    workers: Sequence[int],
    concurrency: int,
    latency_s: float,
    postgres: bool = True,
    spread_tickets: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> JobsFigures:
    """Measure throughput per backend and worker count, then recovery per backend."""
    from handoffs.testing.postgres import TemporaryPostgres, available

    throughput: list[Throughput] = []
    recovery: list[Recovery] = []
    skipped: list[str] = []
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="handoffs-bench-")))
        bench = Bench(job, tickets, latency_s, directory)
        stack.callback(bench.close)
        backends: list[tuple[str, Callable[[str], str]]] = [
            ("sqlite", lambda name: f"sqlite:///{directory / name}.sqlite")
        ]
        why = available() if postgres else "--no-postgres"
        if why is None:
            cluster = stack.enter_context(TemporaryPostgres(fsync=True))  # as durable as SQLite
            backends.append(("postgres", cluster.url))
        else:
            skipped.append(f"postgres: {why}")
        progress(f"in-process (not durable): {jobs} jobs")
        throughput.append(_in_process(bench, concurrency, jobs))
        for backend, url_for in backends:
            for count in workers:
                progress(f"{backend}: {count} worker(s), {jobs} jobs")
                url = url_for(f"throughput_{count}")
                throughput.append(_throughput(bench, backend, url, count, concurrency, jobs))
            progress(f"{backend}: killing a worker")
            recovery.append(
                measure_recovery(bench, backend, url_for("recovery"), concurrency, jobs)
            )
        spread = spread_runs(bench, backends, workers, spread_tickets, progress)
    return JobsFigures(
        tickets=tickets,
        latency_ms=latency_s * 1000,
        throughput=throughput,
        recovery=recovery,
        skipped=skipped,
        spread=spread,
    )


def jobs(
    job: Annotated[Path, typer.Option(help="The job whose roster and tickets are used.")] = Path(
        "examples/jobs/support-triage.toml"
    ),
    count: Annotated[int, typer.Option("--jobs", help="Jobs per measurement.")] = 24,
    tickets: Annotated[int, typer.Option(help="Tickets per job (about 2.5 handoffs each).")] = 4,
    workers: Annotated[
        str, typer.Option(help="Worker counts to measure, comma-separated.")
    ] = "1,2,4",
    concurrency: Annotated[int, typer.Option(help="Jobs each worker runs at once.")] = 4,
    latency_ms: Annotated[float, typer.Option(help="Every scripted model's latency.")] = 50.0,
    postgres: Annotated[bool, typer.Option(help="Also measure PostgreSQL (if installed).")] = True,
    spread_tickets: Annotated[
        int, typer.Option(help="Tickets of the one wide job run spread and not (0: skip).")
    ] = 24,
    as_json: JsonOpt = False,
) -> None:
    """Jobs/s and handoffs/s through `handoffs worker` on SQLite and PostgreSQL with 1, 2 and 4
    workers (scripted models, fixed latency), and the time from a worker's death to its jobs
    running elsewhere."""
    try:
        counts = [int(w) for w in workers.split(",") if w.strip()]
    except ValueError:
        raise fail(f"--workers must be comma-separated integers, not {workers!r}") from None
    if (
        not counts
        or min(counts) < 1
        or count < 1
        or tickets < 1
        or concurrency < 1
        or latency_ms < 0
        or spread_tickets < 0
    ):
        raise fail("--jobs, --tickets, --concurrency and every worker count must be at least 1")
    if not job.is_file():
        raise fail(f"job file not found: {job}")
    try:
        figures = run_jobs_bench(
            job=job.resolve(),
            tickets=tickets,
            jobs=count,
            workers=counts,
            concurrency=concurrency,
            latency_s=latency_ms / 1000,
            postgres=postgres,
            spread_tickets=spread_tickets,
            progress=lambda line: None if as_json else err.print(line, highlight=False),
        )
    except RuntimeError as exc:
        raise fail(str(exc), 1) from None
    data = figures.as_json()
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table(
        title=f"jobs through `handoffs worker`: {tickets} tickets a job, models answer in "
        f"{latency_ms:g} ms; ratio: jobs/s against the in-process run",
        title_justify="left",
    )
    for col in (
        "backend",
        "workers",
        "jobs",
        "handoffs",
        "seconds",
        "jobs/s",
        "handoffs/s",
        "ratio",
    ):
        table.add_column(col, justify="left" if col == "backend" else "right")
    for row in data["throughput"]:
        table.add_row(
            row["backend"],
            f"{row['workers']} x {row['concurrency']}",
            str(row["jobs"]),
            str(row["handoffs"]),
            f"{row['seconds']:.2f}",
            f"{row['jobs_per_s']:.2f}",
            f"{row['handoffs_per_s']:.1f}",
            f"{row['vs_in_process']:.2f}",
        )
    out.print(table)
    for r in figures.recovery:
        out.print(
            f"{r.backend}: worker killed holding {r.jobs} running job(s): back on the queue after "
            f"{r.handed_over_s:.2f} s, running on the survivor after {r.running_again_s:.2f} s",
            highlight=False,
        )
    print_spread(figures.spread, spread_tickets)
    for note in figures.skipped:
        out.print(f"skipped {note}", highlight=False)
