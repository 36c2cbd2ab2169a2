"""The `handoffs` command line: `run` a job, check the setup with `doctor`. `--json` everywhere.

User errors (bad config or job file, unknown model, missing key) print one line on stderr and exit
with code 2; runtime faults exit with code 1. No tracebacks.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from handoffs.cli.terminal import JsonOpt, err, fail, out
from handoffs.errors import ConfigError, HandoffsError
from handoffs.handoff import HandoffRecord
from handoffs.project._config import Config, load_config
from handoffs.project._job import JobReport, load_job
from handoffs.tracing._export import TRACE_DIR

__all__ = ["app", "main"]

app = typer.Typer(
    name="handoffs",
    help="Delegate typed subtasks to cheaper models, verify, escalate, stay in budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Catalog and policy file.", show_default=True)
]
TraceDirOpt = Annotated[
    Path, typer.Option("--trace-dir", help="Where job traces (JSONL) are kept.", show_default=True)
]


def _money(value: Decimal) -> str:
    return f"${value:.6f}"


def _verdict_marks(record: HandoffRecord) -> str:
    """`✓✓✓` for the delivered output's checks, after `✗judgex2` for what earlier attempts failed."""
    failed = Counter(
        next((v.check.removeprefix("predicate:") for v in a.verdicts if not v.passed), a.outcome)
        for a in record.attempts
        if a.outcome != "accepted"
    )
    rejected = [f"✗{name}" + (f"x{n}" if n > 1 else "") for name, n in failed.items()]
    final = (
        "".join("✓" if v.passed else "✗" for v in record.verdicts) if not record.degraded else ""
    )
    return " ".join([*rejected, final]).strip() or "—"


def _table(report: JobReport) -> Table:
    table = Table(title=f"job {report.job} ({report.job_id})", title_justify="left")
    for col in ("subtask", "route", "model", "attempts", "verdicts", "cost"):
        table.add_column(col, justify="right" if col in ("attempts", "cost") else "left")
    for r in report.handoffs:
        style = "yellow" if r.degraded else ("cyan" if r.escalations else None)
        model = r.model or ("degraded" if r.degraded else "failed")
        if r.escalations:
            model += f" (↑{r.escalations})"
        table.add_row(
            f"{r.task_kind} {r.label or r.task_id}",
            "→".join(r.route),
            model,
            str(len(r.attempts)),
            _verdict_marks(r),
            _money(r.cost_usd),
            style=style,
        )
    return table


def _summary(report: JobReport) -> str:
    saved = report.all_frontier_cost_usd - report.total_cost_usd
    share = (
        f" ({report.total_cost_usd / report.all_frontier_cost_usd:.0%} of all-frontier)"
        if report.all_frontier_cost_usd
        else ""
    )
    lines = [
        f"status: {report.status}" + (f" — {report.error}" if report.error else ""),
        f"handoffs: {len(report.handoffs)}   escalations: {report.escalations}   "
        f"degraded: {report.degraded}",
        f"spent: {_money(report.total_cost_usd)}{share}"
        + (f" of a {_money(report.budget_usd)} budget" if report.budget_usd is not None else ""),
        f"all-frontier would cost: {_money(report.all_frontier_cost_usd)}   saved: {_money(saved)}",
    ]
    return "\n".join(lines)


@app.command()
def run(
    job: Annotated[Path, typer.Argument(help="The job file (TOML).")],
    config: ConfigOpt = Path("handoffs.toml"),
    as_json: JsonOpt = False,
    trace_dir: TraceDirOpt = TRACE_DIR,
    trace_console: Annotated[
        bool, typer.Option("--trace-console", help="Also print every span on stderr.")
    ] = False,
    trace_content: Annotated[
        bool, typer.Option("--trace-content", help="Record prompt and response text in spans.")
    ] = False,
) -> None:
    """Run a job: the orchestrator delegates, verifies and escalates; print what it cost.

    The job's trace is written to TRACE_DIR/<job id>.jsonl and its metrics to
    TRACE_DIR/<job id>.metrics.jsonl, and both are sent over OTLP/HTTP too when
    OTEL_EXPORTER_OTLP_ENDPOINT is set.
    """
    from handoffs.jobs._foreground import run_in_foreground
    from handoffs.project._run import job_simulation, open_portfolio, setting_line
    from handoffs.tracing._export import job_tracer_provider, trace_path
    from handoffs.tracing._metrics import job_meter_provider
    from handoffs.tracing._spans import Tracing

    job_id = uuid.uuid4().hex[:12]
    console = sys.stderr if trace_console else None
    provider = job_tracer_provider(job_id, directory=trace_dir, env=os.environ, console=console)
    meters = job_meter_provider(job_id, directory=trace_dir, env=os.environ, console=console)
    tracing = Tracing(
        tracer_provider=provider, meter_provider=meters, include_content=trace_content
    )
    try:
        cfg = load_config(config)
        spec = load_job(job, cfg.catalog)
        with open_portfolio(cfg, simulation=job_simulation(spec)) as portfolio:
            (err if as_json else out).print(
                setting_line(portfolio), highlight=False, soft_wrap=True
            )
            progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=None),
                TextColumn("{task.fields[spent]}"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
            spent = Decimal(0)
            with progress:
                bar = progress.add_task("handoffs done: 0", total=None, spent="$0")

                def tick(record: HandoffRecord) -> None:
                    nonlocal spent
                    spent += record.cost_usd
                    done = len(seen) + 1
                    seen.append(record)
                    progress.update(
                        bar, description=f"handoffs done: {done}", spent=f"spent {_money(spent)}"
                    )

                seen: list[HandoffRecord] = []
                # A durable job run here: recorded in the jobs database, so an interrupted run
                # is resumed from its journal by `handoffs worker`.
                report = anyio.run(
                    lambda: run_in_foreground(
                        job,
                        config,
                        job_id=job_id,
                        portfolio=portfolio,
                        tracing=tracing,
                        on_record=tick,
                        trace_dir=trace_dir,
                        env=os.environ,
                    )
                )
    except HandoffsError as exc:
        raise fail(str(exc), 2) from None
    except KeyboardInterrupt:
        raise fail(f"interrupted: `handoffs worker` resumes job {job_id}", 130) from None
    finally:
        provider.shutdown()
        meters.shutdown()
    (err if as_json else out).print(
        f"job {job_id} — trace: {trace_path(trace_dir, job_id)}", highlight=False, soft_wrap=True
    )
    if as_json:
        out.print_json(report.model_dump_json(), highlight=False)
        return
    out.print(_table(report))
    out.print(_summary(report), highlight=False)
    if report.output:
        out.print(f"\n[bold]orchestrator:[/] {report.output}", highlight=False)
    if report.status != "completed":
        raise typer.Exit(1)


def _probe(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url.rstrip("/") + "/models", timeout=3) as response:
            return f"answers ({response.status})"
    except Exception as exc:  # report, don't raise: doctor diagnoses
        return f"no answer ({type(exc).__name__})"


def _doctor_rows(cfg: Config) -> list[dict[str, Any]]:
    from handoffs.providers._local import local_available
    from handoffs.providers._portfolio import Portfolio

    portfolio = Portfolio(cfg.catalog, simulate_missing=cfg.simulate_missing_keys)
    rows: list[dict[str, Any]] = []
    for entry in cfg.catalog.values():
        label = portfolio.label(entry.id)
        if entry.embedded:
            endpoint = "in-process llama.cpp: " + (
                "installed"
                if local_available()
                else "not installed (pip install 'handoffs[local]')"
            )
        elif entry.base_url:
            endpoint = f"{entry.base_url}: {_probe(entry.base_url)}"
        elif label == "simulated":
            endpoint = "fake provider on loopback (started per run)"
        else:
            endpoint = f"{entry.provider} API"
        rows.append(
            {
                "model": entry.id,
                "name": entry.name,
                "provider": entry.provider,
                "tier": entry.tier,
                "setting": label,
                "key": entry.key_env,
                "key_present": portfolio.has_key(entry) if entry.key_env else None,
                "price_usd_per_mtok": [
                    str(entry.input_usd_per_mtok),
                    str(entry.output_usd_per_mtok),
                ],
                "endpoint": endpoint,
            }
        )
    return rows


@app.command()
def doctor(config: ConfigOpt = Path("handoffs.toml"), as_json: JsonOpt = False) -> None:
    """Show what is configured, which keys are present and which endpoints answer."""
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    rows = _doctor_rows(cfg)
    if as_json:
        out.print_json(json.dumps({"config": str(config), "models": rows}), highlight=False)
        return
    table = Table(title=f"handoffs doctor — {config}", title_justify="left")
    for col in ("model", "tier", "provider", "setting", "key", "$/M in/out", "endpoint"):
        table.add_column(col)
    for row in rows:
        key = "—" if row["key"] is None else f"{row['key']} {'✓' if row['key_present'] else '✗'}"
        table.add_row(
            row["model"],
            row["tier"],
            f"{row['provider']} {row['name']}",
            row["setting"],
            key,
            " / ".join(row["price_usd_per_mtok"]),
            row["endpoint"],
        )
    out.print(table)
    rules = ", ".join(r.label for r in cfg.policy.rules) or "(none: everything to the frontier)"
    out.print(f"policy rules: {rules}", highlight=False)


trace_app = typer.Typer(help="Inspect the traces jobs leave.", no_args_is_help=True)


@trace_app.command("show")
def trace_show(
    job_id: Annotated[str, typer.Argument(help="The job id `handoffs run` printed.")],
    directory: Annotated[
        Path, typer.Option("--dir", help="Where job traces are kept.", show_default=True)
    ] = TRACE_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Show a job's trace as a tree: orchestrator, each handoff's route, model, attempts, cost."""
    from handoffs.tracing._view import load_trace, render_tree, trace_document

    roots = load_trace(directory, job_id)
    if roots is None:
        raise fail(f"no trace for job {job_id!r} in {directory}", 2)
    document = trace_document(job_id, roots)
    if as_json:
        out.print_json(json.dumps(document), highlight=False)
        return
    out.print(render_tree(document, roots))


@trace_app.command("html")
def trace_html(
    job_id: Annotated[str, typer.Argument(help="The job id `handoffs run` printed.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")],
    directory: Annotated[
        Path, typer.Option("--dir", help="Where job traces are kept.", show_default=True)
    ] = TRACE_DIR,
) -> None:
    """Write a job's trace as one self-contained HTML page: tree, timeline, costs, filters."""
    from handoffs.tracing._html import render_html, write_html
    from handoffs.tracing._view import load_trace

    roots = load_trace(directory, job_id)
    if roots is None:
        raise fail(f"no trace for job {job_id!r} in {directory}", 2)
    try:
        write_html(output, render_html(job_id, roots))
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}", 2) from None
    err.print(f"job {job_id} — page: {output}", highlight=False, soft_wrap=True)


app.add_typer(trace_app, name="trace")


from handoffs_bench.cli import bench_app  # noqa: E402

app.add_typer(bench_app, name="bench")

from handoffs.cli._report import report_app  # noqa: E402

app.add_typer(report_app, name="report")

from handoffs.cli._jobs import jobs_app, worker  # noqa: E402

app.add_typer(jobs_app, name="jobs")
app.command()(worker)


def main() -> None:
    """Entry point of the `handoffs` script."""
    try:
        app()
    except HandoffsError as exc:  # anything a command let through
        err.print(f"error: {exc}", highlight=False)
        sys.exit(2)


from handoffs.cli._gauntlet import gauntlet, gauntlet_agentdojo  # noqa: E402

app.command()(gauntlet)
app.command("gauntlet-agentdojo")(gauntlet_agentdojo)

from handoffs.cli._router import router_app  # noqa: E402

app.add_typer(router_app, name="router")

from handoffs.cli._config import config_app  # noqa: E402

app.add_typer(config_app, name="config")
