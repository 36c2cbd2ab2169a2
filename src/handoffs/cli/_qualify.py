"""`handoffs qualify`: replay recorded tasks on candidate models and the incumbent route; report
per task kind and write a candidate policy for `handoffs report shadow --policy`."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, cast

import anyio
import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from handoffs.budget import Budget, usd_text
from handoffs.cli.terminal import JsonOpt, err, fail, out
from handoffs.errors import HandoffsError
from handoffs.routing import Trial

__all__ = ["qualify"]

CANDIDATE = Path(".handoffs/qualify/candidate.toml")


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def _budget(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise fail(f"--budget must be a number of dollars, not {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise fail("--budget must be a positive number of dollars")
    return value


def qualify(
    source: Annotated[
        Path,
        typer.Option(
            "--from",
            help="Recorded tasks: job traces with inputs (a file or a folder such as "
            ".handoffs/traces), an outcome log with inputs, or a dataset.",
        ),
    ],
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Catalog and incumbent policy.")
    ] = Path("handoffs.toml"),
    kinds: Annotated[
        str | None, typer.Option("--kinds", help="Task kinds, comma-separated [default: all].")
    ] = None,
    candidates: Annotated[
        str | None,
        typer.Option(
            "--candidates", help="Catalog ids to try, comma-separated [default: all primaries]."
        ),
    ] = None,
    sample: Annotated[int, typer.Option("--sample", help="Recorded tasks per kind, at most.")] = 30,
    budget: Annotated[
        str | None, typer.Option("--budget", help="Stop when the replays have spent this (USD).")
    ] = None,
    margin: Annotated[
        float, typer.Option("--margin", help="Pass-rate drop below the incumbent that degrades.")
    ] = 0.05,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the candidate config.")
    ] = CANDIDATE,
    route_only: Annotated[
        bool, typer.Option("--route-only", help="Only the incumbent route (drift checks).")
    ] = False,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline", help="An earlier `qualify --json` document: flag pass-rate drops."
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Journal: trials are appended; a rerun skips those done."),
    ] = None,
    as_json: JsonOpt = False,
    job: Annotated[
        Path | None,
        typer.Argument(
            help="The job file whose subordinates define the kinds [default: the one the "
            "traces given to --from ran].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Replay recorded tasks on cheaper models and the incumbent route, with each task's checks
    and judge: pass rate [95 % CI], cost per verified answer, latency, disagreements; name the
    cheapest adequate model per kind and write a candidate policy."""
    from handoffs.project import (
        candidate_toml,
        job_simulation,
        load_config,
        load_job,
        nominal_prices,
        open_portfolio,
        read_recorded,
        recorded_job,
        run_qualification,
        setting_line,
    )
    from handoffs.routing import drift, qualification

    if sample < 1 or not 0 <= margin < 1:
        raise fail("--sample must be at least 1 and --margin in [0, 1)")
    limit = _budget(budget)
    before = _baseline(baseline)
    try:
        cfg = load_config(config)
        tasks = read_recorded(source)
        spec = load_job(job or recorded_job(source), cfg.catalog)
        wanted = _names(kinds) or sorted(
            {t.kind for t in tasks} & {s.kind for s in spec.subordinates}
        )
        standby = {m for e in cfg.catalog.values() for m in e.failover}
        models = (
            [] if route_only else _names(candidates) or [m for m in cfg.catalog if m not in standby]
        )
        counts = {k: min(sample, sum(t.kind == k for t in tasks)) for k in wanted}
        total = sum(counts.values()) * (len(models) + 1)
        spent = Budget(limit, name="qualify")
        with open_portfolio(cfg, simulation=job_simulation(spec)) as portfolio:
            (err if as_json else out).print(
                setting_line(portfolio), highlight=False, soft_wrap=True
            )
            labels = {m: portfolio.label(m) for m in cfg.catalog}
            progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=None),
                TextColumn("{task.completed}/{task.total} · {task.fields[spent]}"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
            with progress:
                bar = progress.add_task("qualifying", total=total, spent="$0")

                def tick(trial: Trial) -> None:
                    progress.update(
                        bar,
                        advance=1,
                        description=f"{trial.kind} on {trial.contender}",
                        spent=f"${usd_text(spent.spent_usd)}",
                    )

                ran = anyio.run(
                    lambda: run_qualification(
                        spec,
                        cfg,
                        portfolio,
                        tasks,
                        kinds=wanted,
                        candidates=models,
                        budget=spent,
                        sample=sample,
                        journal=resume,
                        on_trial=tick,
                    )
                )
    except HandoffsError as exc:
        raise fail(str(exc)) from None
    doc = qualification(
        ran.trials, prices=nominal_prices(cfg.catalog), labels=labels, margin=margin
    )
    chosen = {k: v["cheapest_adequate"] for k, v in doc["kinds"].items() if v["cheapest_adequate"]}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(candidate_toml(cfg, chosen), encoding="utf-8")
    doc: dict[str, Any] = {
        "job": spec.name,
        "source": str(source),
        "models": labels,
        "budget_usd": None if limit is None else str(limit),
        "spent_usd": usd_text(spent.spent_usd),
        "stopped": ran.stopped,
        "skipped": ran.skipped,
        **doc,
        "candidate_policy": str(output),
    }
    drifted: list[dict[str, Any]] = drift(doc, before) if before is not None else []
    if before is not None:
        doc["drift"] = drifted
    if as_json:
        out.print_json(json.dumps(doc), highlight=False)
    else:
        _print(doc)
    for d in drifted:  # on stderr whatever the format: cron mails it
        err.print(
            f"drift: {d['kind']} on {d['contender']}: pass rate {d['pass_rate']} below the "
            f"baseline's interval {d['baseline_ci95']} (was {d['baseline_pass_rate']})",
            highlight=False,
        )
    if ran.stopped or drifted:
        raise typer.Exit(1)


def _baseline(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(f"--baseline {path}: not a readable `qualify --json` document ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("kinds"), dict):  # pyright: ignore[reportUnknownMemberType]
        raise fail(f"--baseline {path}: not a `qualify --json` document")
    return cast(dict[str, Any], doc)


def _print(doc: dict[str, Any]) -> None:
    for kind, k in doc["kinds"].items():
        table = Table(
            title=f"{kind}: reference pass rate {k['reference_pass_rate']}", title_justify="left"
        )
        for col in (
            "contender",
            "setting",
            "tasks",
            "pass rate [95 % CI]",
            "$ / verified",
            "p50 s",
            "p95 s",
            "disagree",
        ):
            table.add_column(col, justify="left" if col in ("contender", "setting") else "right")
        for name, c in k["contenders"].items():
            low, high = c["pass_rate_ci95"]
            table.add_row(
                name,
                c["setting"],
                str(c["tasks"]),
                f"{c['pass_rate']:.2f} [{low:.2f}, {high:.2f}]"
                if c["pass_rate"] is not None
                else "—",
                c["cost_per_verified_usd"] or "—",
                str(c["latency_s"]["p50"]),
                str(c["latency_s"]["p95"]),
                str(len(c.get("disagreements", []))),
            )
        out.print(table)
        where = f" (quality degrades at {k['degrades_at']})" if k["degrades_at"] else ""
        out.print(
            f"cheapest adequate for {kind}: {k['cheapest_adequate'] or '— (keep the route)'}{where}",
            highlight=False,
        )
        for c in k["contenders"].values():
            for d in c.get("disagreements", [])[:3]:
                out.print(
                    f"  read: {d['task_id']} {d['candidate']} {'✓' if d['candidate_passed'] else '✗'} "
                    f"vs route {'✓' if d['incumbent_passed'] else '✗'}: {'; '.join(d['reasons'][:2])}",
                    highlight=False,
                )
    out.print(
        f"spent ${doc['spent_usd']}; candidate policy: {doc['candidate_policy']} "
        f"(check it: handoffs report shadow --policy {doc['candidate_policy']})",
        highlight=False,
    )
    if doc["stopped"]:
        err.print(f"stopped early: {doc['stopped']}", highlight=False)
