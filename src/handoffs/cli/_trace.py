"""`handoffs trace show` and `trace html`: a job's handoff tree, in the terminal or one page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from handoffs.cli.terminal import JsonOpt, err, fail, out
from handoffs.tracing import TRACE_DIR, TRACE_DIR_ENV

__all__ = ["DirOpt", "trace_app"]

trace_app = typer.Typer(
    help="Inspect the traces jobs and scripts leave.", no_args_is_help=True, rich_markup_mode=None
)
DirOpt = Annotated[
    Path,
    typer.Option("--dir", help="Where traces are kept.", show_default=True, envvar=TRACE_DIR_ENV),
]
JobIdArg = Annotated[
    str | None,
    typer.Argument(
        help="The job id `handoffs run` printed, or a script's run id [default: the newest trace]",
        show_default=False,
    ),
]


def _job_id(job_id: str | None, directory: Path) -> str:
    if job_id is not None:
        return job_id
    from handoffs.tracing import newest_trace

    newest = newest_trace(directory) if directory.is_dir() else None
    if newest is None:
        raise fail(f"no finished trace in {directory}", 2)
    return newest


@trace_app.command("show")
def trace_show(
    job_id: JobIdArg = None,
    directory: DirOpt = TRACE_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Show a trace as a tree: orchestrator, each handoff's route, model, attempts, cost."""
    from handoffs.tracing import load_trace, render_tree, trace_document

    job_id = _job_id(job_id, directory)
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
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")],
    job_id: JobIdArg = None,
    directory: DirOpt = TRACE_DIR,
) -> None:
    """Write a trace as one self-contained HTML page: tree, timeline, costs, filters, search."""
    from handoffs.tracing import load_trace, render_html, write_html

    job_id = _job_id(job_id, directory)
    roots = load_trace(directory, job_id)
    if roots is None:
        raise fail(f"no trace for job {job_id!r} in {directory}", 2)
    try:
        write_html(output, render_html(job_id, roots))
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}", 2) from None
    err.print(f"job {job_id} — page: {output}", highlight=False, soft_wrap=True)
