"""`handoffs report`: figures over stored traces, and `report shadow`: replay a candidate policy."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from handoffs.cli._trace import DirOpt
from handoffs.cli.terminal import JsonOpt, err, fail, out
from handoffs.errors import ConfigError
from handoffs.project import load_config
from handoffs.routing import shadow_document
from handoffs.tracing import (
    TRACE_DIR,
    HandoffRow,
    JobRow,
    collect,
    collect_jobs,
    parse_since,
    report_document,
)

__all__ = ["report_app"]

report_app = typer.Typer(
    help="Figures over stored traces; `shadow` replays them through a candidate policy.",
    no_args_is_help=False,
    rich_markup_mode=None,
)
GauntletOpt = Annotated[
    bool,
    typer.Option(
        "--gauntlet",
        help="Count Gauntlet runs too (traces whose workflow names an attack); left out by "
        "default: hostile models are not real traffic.",
    ),
]


def _rows(directory: Path, *, gauntlet: bool = False) -> list[HandoffRow]:
    if not directory.is_dir():
        raise fail(f"no trace directory {directory}")
    return collect(directory, gauntlet=gauntlet)


def _jobs(directory: Path) -> list[JobRow]:
    if not directory.is_dir():
        raise fail(f"no trace directory {directory}")
    return collect_jobs(directory)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _print_report(doc: dict[str, Any]) -> None:
    period = doc["period"]
    out.print(
        f"{_plural(doc['handoffs'], 'handoff')} in {_plural(doc['jobs'], 'job')} · "
        f"${doc['total_cost_usd']} = handoffs ${doc['cost_usd']} + orchestrators "
        f"${doc['orchestrator_cost_usd']} "
        f"({period['since'] or 'all time'} → {period['until']})",
        style="bold",
        highlight=False,
        markup=False,
    )
    left_out = doc.get("left_out", {}).get("gauntlet_runs", 0)
    if left_out:
        out.print(
            f"left out: {_plural(left_out, 'Gauntlet run')} (--gauntlet to count them)",
            highlight=False,
            markup=False,
        )
    cache: dict[str, Any] = doc.get("prompt_cache") or {}
    if cache.get("read_tokens") or cache.get("write_tokens") or cache.get("saved_usd", "0") != "0":
        out.print(
            f"prompt cache saved ${cache['saved_usd']} (orchestrators "
            f"${cache['orchestrator_saved_usd']}) · handoffs: {cache['read_tokens']:,} input "
            f"tokens read ({cache['read_share']:.1%} of their input), "
            f"{cache['write_tokens']:,} written",
            highlight=False,
            markup=False,
        )
    change = doc.get("change", {})
    models = Table(title="per model", title_justify="left")
    for col in ("model", "attempts", "p50 s", "p95 s", "p99 s", "errors", "cost $", "cached in"):
        models.add_column(col, justify="left" if col == "model" else "right")
    if change:
        models.add_column("Δ cost $", justify="right")
    for name, m in doc["models"].items():
        lat = m["latency_s"]
        row = [name, str(m["attempts"]), _pct(lat["p50"]), _pct(lat["p95"]), _pct(lat["p99"])]
        row += [f"{m['error_rate']:.1%}", m["cost_usd"], f"{m.get('cache_read_tokens', 0):,}"]
        if change:
            row.append(str(change["models"].get(name, {}).get("cost_usd", "0")))
        models.add_row(*row)
    out.print(models)
    kinds = Table(title="per task kind", title_justify="left")
    for col in ("kind", "handoffs", "cost $", "delivered by"):
        kinds.add_column(col)
    for name, k in doc["task_kinds"].items():
        where = ", ".join(f"{m} {n}" for m, n in k["models"].items())
        kinds.add_row(name, str(k["handoffs"]), k["cost_usd"], where)
    out.print(kinds)
    routes = Table(title="route distribution (share of handoffs)", title_justify="left")
    for col in ("tier / model", "handoffs", "share"):
        routes.add_column(col)
    if change:
        routes.add_column("Δ share")
    for axis in ("by_tier", "by_model"):
        for name, r in doc["routes"][axis].items():
            row = [f"{axis[3:]} {name}", str(r["handoffs"]), f"{r['share']:.1%}"]
            if change:
                row.append(f"{change['routes'][axis][name]['share']:+.1%}")
            routes.add_row(*row)
    out.print(routes)


@report_app.callback(invoke_without_command=True)
def report(
    ctx: typer.Context,
    directory: DirOpt = TRACE_DIR,
    gauntlet: GauntletOpt = False,
    since: Annotated[
        str | None, typer.Option("--since", help="Only spans started this recently: 7d, 24h, 30m.")
    ] = None,
    compare: Annotated[
        bool,
        typer.Option("--compare", help="Also the previous period of equal length, and the change."),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Also write the JSON document to this file."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Per model, per task kind and per route: volume, latency, errors and cost from stored
    traces; the total adds what the jobs' orchestrators cost. Gauntlet runs are left out.

    With --compare the change also goes out as metrics (route shares per kind and model, tier
    shares, spend, per period, and their change), where a job's metrics go: DIR/report-<time>
    .metrics.jsonl, and OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        window = parse_since(since) if since is not None else None
    except ValueError as exc:
        raise fail(str(exc)) from None
    if compare and window is None:
        raise fail("--compare needs --since (the length of the period to compare)")
    doc = report_document(_jobs(directory), since=window, compare=compare, gauntlet=gauntlet)
    if compare:
        written = _export_change(doc, directory)
        err.print(f"period change as metrics: {written}", highlight=False, soft_wrap=True)
    if output is not None:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise fail(f"cannot write {output}: {exc.strerror or exc}") from None
    if as_json:
        out.print_json(json.dumps(doc), highlight=False)
        return
    _print_report(doc)


def _export_change(doc: dict[str, Any], directory: Path) -> Path:
    from handoffs.tracing import job_meter_provider, metrics_path, record_period_change

    run_id = "report-" + doc["period"]["until"].replace("-", "").replace(":", "")
    meters = job_meter_provider(run_id, directory=directory, env=os.environ)
    try:
        record_period_change(doc, meters)
    finally:
        meters.shutdown()
    return metrics_path(directory, run_id)


@report_app.command("shadow")
def shadow(
    policy: Annotated[
        Path, typer.Option("--policy", help="Candidate config: its [policy] and [models] are used.")
    ],
    directory: DirOpt = TRACE_DIR,
    gauntlet: GauntletOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Replay logged handoffs through a candidate policy (no model is called): what changes, and
    the estimated change in cost. Gauntlet runs are left out."""
    try:
        candidate = load_config(policy)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    doc = shadow_document(_rows(directory, gauntlet=gauntlet), candidate.catalog, candidate.policy)
    if as_json:
        out.print_json(json.dumps(doc), highlight=False)
        return
    cost = doc["cost_usd"]
    out.print(
        f"shadow routing with {policy} — ESTIMATE, no model was called",
        style="bold",
        highlight=False,
        markup=False,
    )
    out.print(
        f"{doc['decisions_changed']} of {doc['handoffs']} decisions change; cost "
        f"${cost['actual']} → ~${cost['estimated']} (Δ ~${cost['change']})",
        highlight=False,
        markup=False,
    )
    for change in doc["changes"]:
        out.print(
            f"  {change['before']} → {change['after']}: {change['handoffs']}", highlight=False
        )
    for ex in doc["examples"]:
        out.print(
            f"  e.g. {ex['task_kind']} {ex['label'] or ex['task_id']} ({ex['risk']}): "
            f"{'→'.join(ex['before'])}  ⇒  {'→'.join(ex['after'])}",
            highlight=False,
        )
    for note in doc["approximations"]:
        out.print(f"  note: {note}", highlight=False)
