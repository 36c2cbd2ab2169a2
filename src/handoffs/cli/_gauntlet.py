"""`handoffs gauntlet JOB`: run a job against the hostile portfolio and print the scorecard.

Exit codes: 0 every invariant held; 1 some invariant broke (or the run failed); 2 bad input (job or
config file, unknown attack or defence name).
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, cast

import anyio
import typer
from rich.table import Table

from handoffs.cli.terminal import JsonOpt, err, fail, out
from handoffs.errors import HandoffsError
from handoffs.tracing import GAUNTLET_TRACE_DIR

__all__ = ["gauntlet", "gauntlet_agentdojo"]


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [n.strip() for n in value.split(",") if n.strip()]


def gauntlet(
    job: Annotated[Path | None, typer.Argument(help="The job file (TOML) to attack.")] = None,
    attacks: Annotated[
        str | None,
        typer.Option(
            "--attacks",
            "-a",
            help="Comma-separated attack or family names (output, injection, economic, "
            "provider, degradation); default: the full catalogue.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Which requests are hit, reproducibly.")] = 0,
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Catalog and policy file.", show_default=True)
    ] = Path("handoffs.toml"),
    quarantine: Annotated[
        bool | None,
        typer.Option(
            "--quarantine/--no-quarantine",
            help="Hide subordinate free text from the orchestrator (default: as the job says).",
        ),
    ] = None,
    weaken: Annotated[
        str | None,
        typer.Option(
            "--weaken",
            help="Turn defences off (verification, action_policy, guards): a weakened "
            "configuration the Gauntlet should catch breaking invariants.",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Use only the first N items of the job's data."),
    ] = None,
    trace_dir: Annotated[
        Path,
        typer.Option(
            "--trace-dir",
            help="Where each run's trace (JSONL) is written: apart from real jobs' traces, so "
            "`handoffs report` does not count attacks as traffic.",
        ),
    ] = GAUNTLET_TRACE_DIR,
    list_attacks: Annotated[
        bool, typer.Option("--list", help="List the catalogue and exit.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Attack a job's handoffs: hostile subordinates, injections, economic and provider attacks,
    degradation drills. Prints per attack caught / contained / missed, per invariant held or
    broken (with the trace id of the first breach). Exit code 1 if any invariant broke.

    Every model is played by the job's simulation on the fake provider (real SDKs, loopback):
    no key, no network, no local model is used.
    """
    from handoffs.gauntlet import AttackResult, Defences, Gauntlet, catalogue, opt_in
    from handoffs.project import load_config, load_job

    if list_attacks:
        everything = {**catalogue(), **opt_in()}
        if as_json:
            rows = [
                {"name": a.name, "family": a.family, "harm": a.harm, "description": a.description}
                for a in everything.values()
            ]
            out.print_json(data={"attacks": rows}, highlight=False)
            return
        for a in everything.values():
            extra = " (opt-in)" if a.name in opt_in() else ""
            out.print(f"{a.family:<12} {a.name:<24} {a.description}{extra}", highlight=False)
        return
    if job is None:
        raise fail("name the job file to attack: handoffs gauntlet JOB", 2)
    try:
        cfg = load_config(config)
        spec = load_job(job, cfg.catalog)
        defences = Defences.weakened(_names(weaken) or [], quarantine=quarantine)
        runner = Gauntlet(
            spec,
            cfg,
            seed=seed,
            defences=defences,
            trace_dir=trace_dir,
            data_limit=limit,
            on_run=None if as_json else _progress,
            env=os.environ,
        )
        chosen = runner.attacks(_names(attacks))
    except HandoffsError as exc:
        raise fail(str(exc), 2) from None
    mode = "quarantine" if runner.quarantine else "framed results"
    weak = f"; weakened: {weaken}" if weaken else ""
    err.print(
        f"gauntlet: {len(chosen)} attacks on {spec.name} (seed {seed}, {mode}{weak}) — every "
        "model simulated on the fake provider; orchestrator made gullible",
        highlight=False,
        soft_wrap=True,
    )
    try:
        card = anyio.run(runner.run, chosen)
    except HandoffsError as exc:
        raise fail(str(exc), 1) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None
    if as_json:
        out.print_json(card.model_dump_json(), highlight=False)
    else:
        out.print(card.table())
        for line in card.invariant_lines():
            out.print(line, highlight=False, soft_wrap=True)
        runs: list[AttackResult] = [card.baseline, *card.attacks]
        total = sum((a.cost_usd for a in runs), Decimal(0))
        escalations = sum(a.escalations for a in card.attacks)
        counts = {
            o: sum(a.outcome == o for a in card.attacks) for o in ("caught", "contained", "missed")
        }
        out.print(
            f"attacks: {counts['caught']} caught, {counts['contained']} contained, "
            f"{counts['missed']} missed   invariants: {len(card.invariants) - len(card.broken)}/"
            f"{len(card.invariants)} held   simulated spend: ${total:.4f}   escalations: {escalations}",
            highlight=False,
        )
        out.print(
            f"traces: {trace_dir}/JOB_ID.jsonl — handoffs trace show JOB_ID --dir {trace_dir}",
            highlight=False,
            markup=False,
        )
    if card.broken:
        raise typer.Exit(1)


def _progress(result: object) -> None:
    from handoffs.gauntlet import AttackResult

    if isinstance(result, AttackResult):
        outcome = "—" if result.name == "baseline" else result.outcome
        err.print(f"  {result.name:<24} {outcome:<9} {result.seconds:.1f}s", highlight=False)


def gauntlet_agentdojo(
    suites: Annotated[
        str | None,
        typer.Option("--suites", help="Comma-separated: workspace, travel, banking, slack (all)."),
    ] = None,
    attacks: Annotated[
        str,
        typer.Option("--attacks", help="Comma-separated AgentDojo attack names."),
    ] = "important_instructions",
    modes: Annotated[
        str, typer.Option("--modes", help="Comma-separated: none, policy, quarantine.")
    ] = "none,policy,quarantine",
    user_tasks: Annotated[
        str | None, typer.Option("--user-tasks", help="Only these user task ids.")
    ] = None,
    injection_tasks: Annotated[
        str | None, typer.Option("--injection-tasks", help="Only these injection task ids.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run AgentDojo's injection tasks through handoffs with a gullible subordinate, offline.

    Reports utility and attack success rate (AgentDojo's security=True) per suite, attack and
    defence mode. Needs the [gauntlet] extra: pip install 'handoffs[gauntlet]'.
    """
    try:
        import agentdojo  # noqa: F401  # pyright: ignore[reportMissingImports, reportMissingTypeStubs, reportUnusedImport]
    except ImportError:
        raise fail("AgentDojo is not installed: pip install 'handoffs[gauntlet]'", 2) from None
    from handoffs.gauntlet.agentdojo import MODES, Cell, run_agentdojo

    chosen_modes = _names(modes) or list(MODES)
    unknown = sorted(set(chosen_modes) - set(MODES))
    if unknown:
        raise fail(f"unknown mode {', '.join(unknown)}; known: {', '.join(MODES)}", 2)

    def progress(cell: Cell) -> None:
        if not as_json:
            err.print(
                f"  {cell.suite:<10} {cell.attack:<24} {cell.mode:<10} utility {cell.utility:6.1%}  "
                f"attack success {cell.attack_success:6.1%}  relayed {cell.relayed:6.1%}  "
                f"({cell.pairs} pairs)",
                highlight=False,
            )

    err.print(
        "agentdojo: every model scripted in-process (a ground-truth planner, a gullible reader)",
        highlight=False,
    )
    try:
        report = run_agentdojo(
            suites=_names(suites),
            attacks=_names(attacks) or [],
            modes=cast(Any, chosen_modes),
            user_tasks=_names(user_tasks),
            injection_tasks=_names(injection_tasks),
            on_cell=progress,
        )
    except (KeyError, ValueError) as exc:
        raise fail(f"agentdojo: {exc}", 2) from None
    if as_json:
        out.print_json(report.model_dump_json(), highlight=False)
        return
    table = Table(title=f"AgentDojo {report.version} through handoffs", title_justify="left")
    columns = ("suite", "attack", "mode", "pairs", "utility", "attack success", "relayed")
    for col in (*columns, "utility (no attack)"):
        table.add_column(col, justify="left" if col in ("suite", "attack", "mode") else "right")
    for c in report.cells:
        table.add_row(
            c.suite, c.attack, c.mode, str(c.pairs), f"{c.utility:.1%}", f"{c.attack_success:.1%}",
            f"{c.relayed:.1%}", f"{c.utility_no_attack:.1%}",
        )  # fmt: skip
    for mode, total in report.totals.items():
        table.add_row(
            "all", "", mode, str(int(total["pairs"])), f"{total['utility']:.1%}",
            f"{total['attack_success']:.1%}", f"{total['relayed']:.1%}",
            f"{total['utility_no_attack']:.1%}", style="bold",
        )  # fmt: skip
    out.print(table)
    out.print(f"{report.seconds:.0f} s", highlight=False)
