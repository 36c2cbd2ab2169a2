"""`handoffs bench routing`: replay routing policies over recorded outcomes and print their figures."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
import typer
from rich.table import Table

from handoffs.cli.terminal import QuietOpt, Ticker, err, fail, out
from handoffs.errors import ConfigError

if TYPE_CHECKING:
    from handoffs_bench.replay import Report

__all__ = ["bench_app"]

bench_app = typer.Typer(
    help="Benchmarks on recorded outcomes (no model is called).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@bench_app.callback()
def _bench() -> None:
    """Benchmarks on recorded outcomes (no model is called)."""


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None or math.isnan(value) else format(value, spec)


def _table(report: Report) -> Table:
    table = Table(
        title=f"{report.dataset}: {report.protocol}; frontier {report.frontier} "
        f"({report.frontier_accuracy:.3f}, ${report.frontier_cost_usd:.4f})",
        title_justify="left",
    )
    columns = ["policy", "accuracy", "cost $", "cost/frontier", "AIQ", "esc.", "FA/FR", "→95 %"]
    if report.two_model:
        columns[5:5] = ["APGR", "CPT50/80"]
    for col in columns:
        table.add_column(col, justify="left" if col == "policy" else "right")
    for p in report.policies:
        acc = _fmt(p.accuracy) + (
            f" ±{p.accuracy_std:.3f}"
            if p.accuracy_std is not None
            else f" [{p.accuracy_ci[0]:.3f}, {p.accuracy_ci[1]:.3f}]"
            if p.accuracy_ci is not None
            else ""
        )
        row = [
            p.name,
            acc,
            f"{p.cost_usd:.4f}",
            _fmt(p.cost_fraction, ".1%"),
            _fmt(p.aiq),
            _fmt(p.escalation_rate, ".0%"),
            "—"
            if p.false_accept is None
            else f"{_fmt(p.false_accept, '.2f')}/{_fmt(p.false_reject, '.2f')}",
            _fmt(p.reach["95%"], ".1%"),
        ]
        if report.two_model:
            row[5:5] = [_fmt(p.apgr), f"{_fmt(p.cpt50, '.0%')}/{_fmt(p.cpt80, '.0%')}"]
        table.add_row(*row, style="bold" if p.name == "handoffs" else None)
    return table


@bench_app.command()
def routing(
    train: Annotated[Path, typer.Option("--train", help="Recorded outcomes to learn from.")],
    data: Annotated[Path, typer.Option("--data", help="Recorded outcomes to evaluate on.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Cost-quality curves as a PNG (needs matplotlib).")
    ] = None,
    holdout: Annotated[
        float,
        typer.Option(
            help="When train is data: the share held out by hash (of prompts, or of task kinds "
            "with --split task) and scored; nothing is fitted or chosen on it. 0: cross-fit instead."
        ),
    ] = 0.3,
    folds: Annotated[int, typer.Option(help="Cross-fitting folds (with --holdout 0).")] = 5,
    split: Annotated[
        str, typer.Option(help="Cross-fit folds by 'prompt' or by 'task' (unseen kinds).")
    ] = "prompt",
    seeds: Annotated[int, typer.Option(help="Seeds for the random policy.")] = 20,
    quality: Annotated[
        float, typer.Option(help="Share of the frontier's accuracy the tuned policies aim for.")
    ] = 1.0,
    budget: Annotated[
        float, typer.Option(help="Budgeted baselines' share of the frontier's cost.")
    ] = 0.25,
    quiet: QuietOpt = False,
) -> None:
    """Fit policies on --train, replay them on --data, print accuracy, cost, AIQ, APGR, ...

    What it is doing goes to stderr as it goes (a line every few seconds when stderr is not a
    terminal; none with --quiet).
    """
    from handoffs.routing import load_outcomes
    from handoffs_bench.plot import plot_available, plot_report
    from handoffs_bench.replay import evaluate

    doing = ["loading outcomes"]
    try:
        if plot is not None:
            plot_available()
        if split not in ("prompt", "task"):
            raise ConfigError(f"--split must be prompt or task, not {split!r}")
        if folds < 2 or seeds < 1:
            raise ConfigError("--folds must be at least 2 and --seeds at least 1")
        if not 0 <= holdout < 1:
            raise ConfigError("--holdout must be in [0, 1)")
        with Ticker(lambda: f"bench routing: {doing[-1]}", quiet=quiet) as ticker:

            def step(text: str) -> None:
                doing.append(text)
                ticker.update()

            train_set = load_outcomes(train)
            same = train.resolve() == data.resolve()
            data_set = train_set if same else load_outcomes(data)
            mode: Literal["prompt", "task"] = "task" if split == "task" else "prompt"
            report = evaluate(
                train_set,
                data_set,
                same=same,
                folds=folds,
                split=mode,
                seeds=seeds,
                quality=quality,
                budget=budget,
                on_step=step,
                holdout=holdout,
            )
            step(f"done: {len(report.policies)} policies scored")
    except (ConfigError, ValueError) as exc:
        raise fail(str(exc)) from None
    if plot is not None:
        try:
            plot_report(report, plot)
        except OSError as exc:
            raise fail(f"cannot write {plot}: {exc.strerror or exc}") from None
        err.print(f"plot written to {plot}", highlight=False)
    if as_json:
        out.print_json(json.dumps(report.document()), highlight=False)
        return
    out.print(_table(report))


from handoffs_bench.failover import failover as _failover  # noqa: E402

bench_app.command("failover")(_failover)

from handoffs_bench.jobs import jobs as _jobs  # noqa: E402

bench_app.command("jobs")(_jobs)


def _throughput_table(document: dict[str, Any]) -> Table:
    title = (
        f"{document['bench']}: n={document['n']}, concurrency {document['concurrency']}, "
        f"{document['rounds']} rounds; ratios against {document['baseline']} in the same round"
    )
    table = Table(title=title, title_justify="left")
    for col in (
        "variant",
        "µs CPU/subtask",
        "subtasks/CPU-s",
        "subtasks/s wall",
        "speed vs baseline",
    ):
        table.add_column(col, justify="left" if col == "variant" else "right")

    def spread(s: dict[str, float | None], spec: str = ".0f") -> str:
        if s["median"] is None:
            return "—"
        return f"{s['median']:{spec}} [{s['min']:{spec}}-{s['max']:{spec}}]"

    for v in document["variants"]:
        ratio = v.get("throughput_vs_baseline")
        table.add_row(
            v["name"],
            spread(v["cpu_us_per_subtask"]),
            spread(v["subtasks_per_cpu_s"]),
            spread(v["subtasks_per_wall_s"]),
            "1.00" if ratio is None else spread(ratio, ".2f"),
        )
    return table


def _print_throughput(document: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(document), highlight=False)
        return
    out.print(_throughput_table(document))
    for note in document["notes"]:
        out.print(note, highlight=False)
    out.print(f"peak RSS {document['peak_rss_mb']} MB", highlight=False)


@bench_app.command()
def overhead(
    n: Annotated[int, typer.Option("--n", help="Subtasks per variant per round.")] = 500,
    rounds: Annotated[int, typer.Option(help="Rounds (variants rotate their order).")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """What one handoff costs over bare pydantic-ai: both on one scripted model, interleaved.

    Reports CPU per subtask (min/median/max over rounds) and each round's ratio to bare
    `Agent.run`; progress goes to stderr.
    """
    from handoffs_bench.throughput import run_overhead

    if n < 1 or rounds < 1:
        raise fail("--n and --rounds must be at least 1")
    doing = ["starting"]
    with Ticker(lambda: doing[-1], quiet=quiet) as ticker:

        def progress(text: str) -> None:
            doing.append(text)
            ticker.update()

        figures = anyio.run(lambda: run_overhead(n=n, rounds=rounds, progress=progress))
    _print_throughput(figures.document(), as_json)


@bench_app.command()
def fanout(
    n: Annotated[int, typer.Option("--n", help="Subtasks per variant per round.")] = 1000,
    concurrency: Annotated[int, typer.Option("--c", "--concurrency", help="In flight.")] = 32,
    rounds: Annotated[int, typer.Option(help="Rounds (variants rotate their order).")] = 3,
    litellm: Annotated[
        bool, typer.Option(help="Include LiteLLM's Router when installed ([bench] extra).")
    ] = True,
    memory: Annotated[
        bool,
        typer.Option(
            "--memory",
            help="Instead: N subtasks through one session, RSS and live objects every --step.",
        ),
    ] = False,
    step: Annotated[int, typer.Option(help="With --memory: report after every STEP.")] = 10_000,
    traced: Annotated[bool, typer.Option(help="With --memory: trace (lean) to JSONL.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """N tool-less subtasks at concurrency C against a loopback server in its own process: raw
    openai SDK, handoffs untraced and traced, LiteLLM's Router; subtasks per CPU-second and wall,
    peak RSS, ratios to the raw SDK in the same round. With --memory: one session's memory
    after every --step subtasks (e.g. --n 100000)."""
    from handoffs_bench.throughput import run_fanout

    if n < 1 or rounds < 1 or concurrency < 1 or step < 1:
        raise fail("--n, --c, --rounds and --step must be at least 1")
    if memory:
        _memory(
            n=n, concurrency=concurrency, step=step, traced=traced, as_json=as_json, quiet=quiet
        )
        return
    doing = ["starting the loopback server"]
    with Ticker(lambda: doing[-1], quiet=quiet) as ticker:

        def progress(text: str) -> None:
            doing.append(text)
            ticker.update()

        figures = anyio.run(
            lambda: run_fanout(
                n=n, concurrency=concurrency, rounds=rounds, litellm=litellm, progress=progress
            )
        )
    _print_throughput(figures.document(), as_json)


def _memory(
    *, n: int, concurrency: int, step: int, traced: bool, as_json: bool, quiet: bool
) -> None:
    from handoffs_bench.throughput import run_memory

    doing = ["starting the loopback server"]
    with Ticker(lambda: doing[-1], quiet=quiet) as ticker:

        def progress(text: str) -> None:
            doing.append(text)
            ticker.update()

        document = anyio.run(
            lambda: run_memory(
                n=n, concurrency=concurrency, step=step, traced=traced, progress=progress
            )
        )
    if as_json:
        out.print_json(json.dumps(document), highlight=False)
        return
    table = Table(
        title=f"fanout --memory: {document['variant']}, n={n}, concurrency {concurrency}",
        title_justify="left",
    )
    for col in ("subtasks", "RSS MB", "live objects", "CPU s"):
        table.add_column(col, justify="right")
    for row in document["checkpoints"]:
        table.add_row(
            str(row["subtasks"]), str(row["rss_mb"]), str(row["objects"]), str(row["cpu_s"])
        )
    out.print(table)
    out.print(
        f"after the first {step}: RSS {document['rss_growth_mb_after_first_step']:+} MB, "
        f"{document['objects_growth_after_first_step']:+} objects "
        f"(the session keeps {document['kept_records']} records)",
        highlight=False,
    )


from handoffs_bench.cache import cache as _cache  # noqa: E402

bench_app.command("cache")(_cache)

from handoffs_bench.cachestore import cache_store as _cache_store  # noqa: E402

bench_app.command("cache-store")(_cache_store)
