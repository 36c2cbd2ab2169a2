"""`handoffs jobs submit/list/status/watch/cancel/result/recover` and `handoffs worker`.

Every command takes `--json`. Bad input (a job file that fails validation, an unknown job id, a
malformed or unreachable database URL) prints one line and exits 2, leaving nothing half-created;
a fault while a command runs exits 1.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Generator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import anyio
import typer
from rich.table import Table

from handoffs.cli._render import handoff_line, job_summary, job_table
from handoffs.cli.terminal import JsonOpt, QuietOpt, Ticker, err, fail, out
from handoffs.errors import ConfigError, HandoffsError
from handoffs.tracing import TRACE_DIR, TRACE_DIR_ENV

if TYPE_CHECKING:
    from handoffs.jobs import Handover, JobInfo, JobQueue, JobState

__all__ = ["jobs_app", "worker"]

jobs_app = typer.Typer(
    help="Durable jobs: submit, follow, cancel; `handoffs worker` runs them.",
    no_args_is_help=True,
    rich_markup_mode=None,  # help texts say [jobs]: a config section, not Rich markup
)
ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="handoffs.toml ([jobs] database_url).")
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="HANDOFFS_DATABASE_URL",
        help="sqlite:///PATH or postgresql://... [default: [jobs] in the config, else "
        "sqlite:///.handoffs/jobs.sqlite]",
        show_default=False,
    ),
]
JobIdArg = Annotated[str, typer.Argument(help="The job id `handoffs jobs submit` printed.")]


def _money(value: Decimal) -> str:
    return f"${value:.6f}"


@contextmanager
def _queue(
    database_url: str | None, config: Path, *, existing: bool = False
) -> Generator[JobQueue]:
    """A queue, with every failure turned into one line: exit 2 for input, 1 for faults.
    `existing`: a command that only reads jobs fails, rather than create an empty database."""
    from handoffs.jobs import JobQueue, describe, exists, resolve_url

    try:
        if existing:
            url = resolve_url(database_url, config=config.resolve(), env=os.environ)
            if not exists(url):
                raise fail(f"no jobs database at {describe(url)}: no job was submitted there", 2)
        with JobQueue(database_url, config=config, env={}) as queue:
            yield queue
    except typer.Exit:  # a command's own one-line failure (a RuntimeError to click)
        raise
    except HandoffsError as exc:
        raise fail(str(exc), 2) from None
    except (OSError, RuntimeError) as exc:
        raise fail(str(exc), 1) from None
    except Exception as exc:  # database driver faults mid-command
        raise fail(f"jobs database: {type(exc).__name__}: {exc}", 1) from None


def _progress_line(info: JobInfo) -> str:
    p = info.progress
    if p is None:
        return info.state
    spent = _money(p.spent_usd) + (f" of {_money(p.budget_usd)}" if p.budget_usd else "")
    batches = "".join(f"  {n} pending in batch {b}" for b, n in p.pending_batches.items())
    return (
        f"handoffs done: {p.done}  running: {p.running}  failed: {p.failed}"
        f"{f'  degraded: {p.degraded}' if p.degraded else ''}{batches}  spent {spent}"
    )


def _print_info(info: JobInfo) -> None:
    out.print(
        f"job {info.job_id} ({info.job}): {info.state}"
        + (f" on {info.worker}" if info.worker and info.active else ""),
        highlight=False,
        soft_wrap=True,
    )
    if info.progress is not None:
        out.print(_progress_line(info), highlight=False)
    if info.error:
        out.print(f"error: {info.error}", highlight=False, soft_wrap=True)


def _dump(info: JobInfo) -> str:
    return info.model_dump_json(exclude={"progress": {"handoffs"}})


@jobs_app.command()
def submit(
    job: Annotated[Path, typer.Argument(help="The job file (TOML).")],
    key: Annotated[
        str | None,
        typer.Option("--key", help="Idempotency key: submitting it again returns the same job."),
    ] = None,
    config: ConfigOpt = Path("handoffs.toml"),
    database_url: DatabaseOpt = None,
    trace_dir: Annotated[
        Path,
        typer.Option("--trace-dir", help="Where the job's trace is written.", envvar=TRACE_DIR_ENV),
    ] = TRACE_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Validate a job file and queue it; print its id. A worker runs it."""
    with _queue(database_url, config) as queue:
        handle = anyio.run(lambda: queue.submit(job, key=key, trace_dir=trace_dir))
        info = handle.status(progress=False)
    if as_json:
        out.print_json(_dump(info), highlight=False)
        return
    out.print(info.job_id, highlight=False)
    err.print(f"job {info.job_id} ({info.job}): {info.state}", highlight=False, soft_wrap=True)


@jobs_app.command("list")
def list_jobs(
    state: Annotated[
        str | None,
        typer.Option(help="Only jobs in this state: queued, running, completed, failed, ..."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    config: ConfigOpt = Path("handoffs.toml"),
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    states = ("queued", "running", "completed", "budget_exceeded", "failed", "cancelled")
    if state is not None and state not in states:
        raise fail(f"--state must be one of {', '.join(states)}, not {state!r}", 2)
    with _queue(database_url, config, existing=True) as queue:
        picked: JobState | None = next((s for s in states if s == state), None)
        infos = queue.list(state=picked, limit=limit)
    if as_json:
        out.print_json(json.dumps([json.loads(i.model_dump_json()) for i in infos]))
        return
    table = Table(title=f"jobs in {queue.url}", title_justify="left")
    widest = max((len(i.job_id) for i in infos), default=2)
    table.add_column("id", no_wrap=True, min_width=widest)  # an id is never cut
    for col in ("job", "state", "worker", "submitted", "key", "version"):
        table.add_column(col)
    for i in infos:
        table.add_row(
            i.job_id,
            i.job,
            i.state,
            i.worker or "—",
            i.submitted_at.strftime("%Y-%m-%d %H:%M:%S") if i.submitted_at else "—",
            i.key or "—",
            i.version or "—",
        )
    out.print(table)


def _show(info: JobInfo, as_json: bool) -> None:
    """One job's state: a JSON document, or the human summary."""
    if as_json:
        out.print_json(_dump(info), highlight=False)
    else:
        _print_info(info)


@jobs_app.command()
def status(
    job_id: JobIdArg,
    config: ConfigOpt = Path("handoffs.toml"),
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A job's state, worker, handoffs done / running / failed and spend."""
    with _queue(database_url, config, existing=True) as queue:
        _show(queue.get(job_id).status(), as_json)


@jobs_app.command()
def watch(
    job_id: JobIdArg,
    config: ConfigOpt = Path("handoffs.toml"),
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Follow a job until it ends: handoffs done / running / failed, spend against budget.

    Progress goes to stderr (a line every few seconds when it is not a terminal; none with
    --quiet). Exits 0 when the job completed, 1 otherwise.
    """
    with _queue(database_url, config, existing=True) as queue:
        handle = queue.get(job_id)

        async def follow() -> JobInfo:
            last: JobInfo | None = None

            def status() -> str:
                return "…" if last is None else f"{last.state}  {_progress_line(last)}"

            with Ticker(status, quiet=quiet) as ticker:
                async for info in handle.watch():
                    last = info
                    ticker.update()
            assert last is not None
            return last

        try:
            info = anyio.run(follow)
        except KeyboardInterrupt:
            raise fail("interrupted (the job goes on)", 130) from None
    _show(info, as_json)
    if info.state != "completed":
        raise typer.Exit(1)


@jobs_app.command()
def cancel(
    job_id: JobIdArg,
    config: ConfigOpt = Path("handoffs.toml"),
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a job: its worker stops at once; finished handoffs are kept."""
    with _queue(database_url, config, existing=True) as queue:
        _show(queue.get(job_id).cancel(), as_json)


@jobs_app.command()
def result(
    job_id: JobIdArg,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to end.")] = False,
    config: ConfigOpt = Path("handoffs.toml"),
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A finished job's report (what `handoffs run` prints); for a cancelled or failed job, the
    handoffs that finished. Exits 1 unless the job completed."""
    from handoffs.jobs import JobNotCompleted

    with _queue(database_url, config, existing=True) as queue:
        handle = queue.get(job_id)
        info = handle.status(progress=False)
        if info.active and not wait:
            raise fail(f"job {job_id} is {info.state}: `handoffs jobs watch {job_id}`", 1)
        try:
            report = anyio.run(handle.result)
        except JobNotCompleted as exc:
            done = handle.status()
            if as_json:
                out.print_json(done.model_dump_json(), highlight=False)
            else:
                _print_info(done)
                for record in done.progress.handoffs if done.progress else []:
                    out.print(f"  {handoff_line(record)}", highlight=False, markup=False)
            raise fail(str(exc), 1) from None
    if as_json:
        out.print_json(report.model_dump_json(), highlight=False)
        return
    out.print(job_table(report))
    out.print(job_summary(report), highlight=False)
    if report.output:
        out.print(f"\n[bold]orchestrator:[/] {report.output}", highlight=False)
    if report.status != "completed":
        raise typer.Exit(1)


@jobs_app.command()
def recover(
    dead_after: Annotated[
        float, typer.Option("--dead-after", help="Seconds of silence after which a worker is dead.")
    ] = 15.0,
    worker_ids: Annotated[
        list[str] | None, typer.Option("--worker", help="Declare this worker dead (repeatable).")
    ] = None,
    config: ConfigOpt = Path("handoffs.toml"),
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hand the jobs of dead workers back to the queue (every worker also does this itself)."""
    if dead_after <= 0:
        raise fail("--dead-after must be positive", 2)
    with _queue(database_url, config) as queue:
        handed = queue.recover(dead_after_s=dead_after, force=worker_ids or [])
    if as_json:
        out.print_json(json.dumps([_handover(h) for h in handed]))
        return
    for h in handed:
        out.print(
            f"job {h.job_id}: from {h.worker} ({h.reason}) back to the queue", highlight=False
        )
    if not handed:
        out.print("no job of a dead worker", highlight=False)


def _handover(handover: Handover) -> dict[str, str]:
    return {"job_id": handover.job_id, "worker": handover.worker, "reason": handover.reason}


def _sole_cause(exc: BaseException) -> BaseException:
    """The one exception inside (nested) task-group exception groups, else `exc` itself."""
    found: BaseException = exc
    while isinstance(found, BaseExceptionGroup):
        inner: tuple[BaseException, ...] = cast(
            "BaseExceptionGroup[BaseException]", found
        ).exceptions
        if len(inner) != 1:
            break
        found = inner[0]
    return cast(BaseException, found)


def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs one worker runs at once.")] = 4,
    handoff_concurrency: Annotated[
        int,
        typer.Option(
            "--handoff-concurrency",
            help="Handoffs of spreading jobs ([jobs] spread) one worker runs at once.",
        ),
    ] = 8,
    worker_id: Annotated[
        str | None, typer.Option("--id", help="Worker id [default: host:pid:random]")
    ] = None,
    dead_after: Annotated[
        float, typer.Option("--dead-after", help="Seconds of silence after which a worker is dead.")
    ] = 15.0,
    config: ConfigOpt = Path("handoffs.toml"),
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run queued jobs until stopped (Ctrl-C, SIGTERM); hand dead workers' jobs to the queue."""
    from handoffs.jobs import Worker, describe, open_client, resolve_url

    if concurrency < 1 or handoff_concurrency < 1 or dead_after <= 0:
        raise fail(
            "--concurrency and --handoff-concurrency must be at least 1, --dead-after positive", 2
        )
    try:
        url = resolve_url(database_url, config=config.resolve(), env={})
        open_client(url).destroy()  # unreachable: one line now, not from inside the worker
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    runner = Worker(
        url,
        concurrency=concurrency,
        handoff_concurrency=handoff_concurrency,
        worker_id=worker_id,
        dead_after_s=dead_after,
        config=config if config.is_file() else None,
    )
    events = logging.getLogger("handoffs.jobs")  # handovers and heartbeat trouble, one line each
    events.setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    events.addHandler(handler)

    async def serve() -> None:
        async with anyio.create_task_group() as group:

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:
                        group.cancel_scope.cancel()
                        return

            group.start_soon(stop_on_signal)
            await group.start(runner.run)
            err.print(
                f"worker {runner.worker_id} taking jobs from {describe(url)} "
                f"(concurrency {concurrency})",
                highlight=False,
                soft_wrap=True,
            )

    try:
        anyio.run(serve)
    except Exception as exc:
        cause = _sole_cause(exc)
        if isinstance(cause, HandoffsError):
            raise fail(f"worker: {cause}", 2) from None
        raise fail(f"worker: {type(cause).__name__}: {cause}", 1) from None
    finally:
        events.removeHandler(handler)
    summary = {
        "worker": runner.worker_id,
        "handovers": [_handover(h) for h in runner.handovers],
    }
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        err.print(f"worker {runner.worker_id} stopped", highlight=False)
