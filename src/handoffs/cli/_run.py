"""`handoffs run` a job and `handoffs doctor`: what the setup has, and whether it answers."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
import typer
from rich.table import Table

from handoffs.cli._render import baseline_table, job_summary, job_table, money
from handoffs.cli.terminal import JsonOpt, QuietOpt, Ticker, err, fail, out
from handoffs.engine import prompt_cached
from handoffs.errors import ConfigError, HandoffsError
from handoffs.handoff import HandoffRecord
from handoffs.project import Config, load_config, load_job
from handoffs.tracing import TRACE_DIR, TRACE_DIR_ENV

if TYPE_CHECKING:
    from handoffs.jobs import PendingBatch

__all__ = ["doctor", "run"]

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Catalog and policy file.", show_default=True)
]
TraceDirOpt = Annotated[
    Path,
    typer.Option(
        "--trace-dir",
        help="Where job traces (JSONL) are kept.",
        show_default=True,
        envvar=TRACE_DIR_ENV,
    ),
]


def run(
    job: Annotated[Path, typer.Argument(help="The job file (TOML).")],
    config: ConfigOpt = Path("handoffs.toml"),
    as_json: JsonOpt = False,
    trace_dir: TraceDirOpt = TRACE_DIR,
    trace_console: Annotated[
        bool, typer.Option("--trace-console", help="Also print every span on stderr.")
    ] = False,
    trace_content: Annotated[
        bool,
        typer.Option(
            "--trace-content",
            help="Record prompts, responses and task inputs in spans ([tracing] content).",
        ),
    ] = False,
    quiet: QuietOpt = False,
    baseline: Annotated[
        Literal["single-model"] | None,
        typer.Option(
            "--baseline",
            help="Then run the same job again with every tier set to the orchestrator's model "
            "(simulated offline, real with keys) and report both runs.",
        ),
    ] = None,
) -> None:
    """Run a job: the orchestrator delegates, verifies and escalates; print what it cost.

    With --baseline single-model the job runs a second time (not journaled, not traced) with
    every task routed to the orchestrator's own model, and the report compares the two runs:
    cost, calls, latency and, when the job names gold labels, accuracy against them.

    The job id and where its trace goes come first, on stderr; then progress on stderr (a line
    every few seconds when stderr is not a terminal; none with --quiet). The job's trace is
    written to TRACE_DIR/<job id>.jsonl and its metrics to TRACE_DIR/<job id>.metrics.jsonl,
    and both are sent over OTLP/HTTP too when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    """
    from handoffs.jobs import run_in_foreground
    from handoffs.project import (
        job_simulation,
        open_portfolio,
        run_job,
        setting_line,
        single_model,
    )
    from handoffs.tracing import Tracing, job_meter_provider, job_tracer_provider, trace_path

    try:
        cfg = load_config(config)
    except HandoffsError as exc:
        raise fail(str(exc), 2) from None
    job_id = uuid.uuid4().hex[:12]
    console = sys.stderr if trace_console else None
    provider = job_tracer_provider(job_id, directory=trace_dir, env=os.environ, console=console)
    meters = job_meter_provider(job_id, directory=trace_dir, env=os.environ, console=console)
    tracing = Tracing(
        tracer_provider=provider,
        meter_provider=meters,
        include_content=trace_content or cfg.trace_content,
    )
    path = trace_path(trace_dir, job_id)
    seen: list[HandoffRecord] = []
    spent = Decimal(0)
    batches: dict[str, int] = {}  # pending provider batch id -> its handoffs

    def status() -> str:
        problems = sum(1 for r in seen if r.status != "delivered")
        done = {b: sum(1 for r in seen if r.batch_id == b) for b in batches}
        pending = [f"{n - done[b]} pending in batch {b}" for b, n in batches.items() if n > done[b]]
        return (
            f"job {job_id}: {len(seen)} handoffs done"
            + (f" ({problems} degraded or failed)" if problems else "")
            + (f" · {', '.join(pending)}" if pending else "")
            + f" · handoffs cost {money(spent)}"
        )

    try:
        spec = load_job(job, cfg.catalog)
        with open_portfolio(cfg, simulation=job_simulation(spec)) as portfolio:
            # first, once the input is known good (a missing key is one line, nothing else)
            err.print(f"job {job_id} — trace: {path}", highlight=False, soft_wrap=True)
            (err if as_json else out).print(
                setting_line(portfolio), highlight=False, soft_wrap=True
            )
            with Ticker(status, quiet=quiet) as ticker:

                def tick(record: HandoffRecord) -> None:
                    nonlocal spent
                    spent += record.cost_usd
                    seen.append(record)
                    ticker.update()

                def waiting(batch: PendingBatch) -> None:
                    batches[batch.batch_id] = len(batch.labels)
                    if not quiet:
                        err.print(
                            f"batch {batch.batch_id}: {len(batch.labels)} handoffs pending on "
                            f"{batch.model} (at most {money(batch.hold_usd)} at the batch price, "
                            f"{money(batch.ordinary_usd)} at the ordinary one)",
                            highlight=False,
                            soft_wrap=True,
                        )
                    ticker.update()

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
                        on_batch=waiting,
                        trace_dir=trace_dir,
                        env=os.environ,
                    )
                )
        if baseline == "single-model":
            alone = single_model(cfg, spec.orchestrator.model)
            err.print(
                f"baseline: the same job with every task on {spec.orchestrator.model}",
                highlight=False,
            )
            with open_portfolio(alone, simulation=job_simulation(spec)) as portfolio:
                base = anyio.run(lambda: run_job(spec, alone, portfolio, tracing=False))
            report = report.model_copy(update={"baseline": base})
    except HandoffsError as exc:
        raise fail(str(exc), 2) from None
    except KeyboardInterrupt:
        raise fail(f"interrupted: `handoffs worker` resumes job {job_id}", 130) from None
    finally:
        provider.shutdown()
        meters.shutdown()
    if as_json:
        out.print_json(report.model_dump_json(), highlight=False)
        if report.status != "completed":
            raise typer.Exit(1)  # the document says why; the exit code says it failed
        return
    out.print(job_table(report))
    out.print(job_summary(report), highlight=False)
    if report.baseline is not None:
        out.print(baseline_table(report))
    if report.output:
        out.print(f"\n[bold]orchestrator:[/] {report.output}", highlight=False)
    out.print(f"job {job_id} — trace: {path}", highlight=False, soft_wrap=True)
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
    from handoffs.providers import Portfolio, local_problem

    portfolio = Portfolio(cfg.catalog, simulate_missing=cfg.simulate_missing_keys)
    rows: list[dict[str, Any]] = []
    for entry in cfg.catalog.values():
        label = portfolio.label(entry.id)
        if entry.embedded:
            problem = local_problem(entry.embedded)
            endpoint = "in-process llama.cpp: " + (
                f"not installed ({problem})" if problem else "installed"
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
                "prompt_cache": prompt_cached(entry),
                "cache_price_usd_per_mtok": [  # read, write
                    str(entry.cache_read_price),
                    str(entry.cache_write_price),
                ],
                "endpoint": endpoint,
            }
        )
    return rows


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
