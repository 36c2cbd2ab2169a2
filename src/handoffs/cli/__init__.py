"""The `handoffs` command line: `run` a job, check the setup with `doctor`. `--json` everywhere.

One module per command group; `terminal` holds what they share (the consoles, the one-line error,
`--json`). Packages may add command groups through the `handoffs.cli` entry point group (the
`handoffs_bench` package adds `bench`).

User errors (bad config or job file, unknown model, missing key) print one line on stderr and exit
with code 2; runtime faults exit with code 1. No tracebacks.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from handoffs.cli._config import config_app
from handoffs.cli._gauntlet import gauntlet, gauntlet_agentdojo
from handoffs.cli._jobs import jobs_app, worker
from handoffs.cli._models import models_app
from handoffs.cli._qualify import qualify
from handoffs.cli._report import report_app
from handoffs.cli._router import router_app
from handoffs.cli._run import doctor, run
from handoffs.cli._trace import trace_app
from handoffs.cli.terminal import err
from handoffs.errors import HandoffsError

__all__ = ["COMMANDS", "app", "main"]

COMMANDS = "handoffs.cli"
"""The entry point group of command groups other packages add (name -> a Typer app)."""

app = typer.Typer(
    name="handoffs",
    help="Delegate typed subtasks to cheaper models, verify, escalate, stay in budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts say [jobs], [default: ...]: text, not Rich markup
)
app.command()(run)
app.command()(doctor)
app.add_typer(trace_app, name="trace")
app.add_typer(report_app, name="report")
app.add_typer(jobs_app, name="jobs")
app.command()(worker)
app.command()(gauntlet)
app.command("gauntlet-agentdojo")(gauntlet_agentdojo)
app.add_typer(router_app, name="router")
app.add_typer(config_app, name="config")
app.add_typer(models_app, name="models")
app.command()(qualify)
for _plugin in entry_points(group=COMMANDS):
    try:
        app.add_typer(_plugin.load(), name=_plugin.name)
    except ImportError:  # a plugin whose extra is not installed adds nothing
        continue


def _usage_line(exc: Exception) -> str:
    """A usage mistake as one line, with where to read the command's help."""
    format_message = getattr(exc, "format_message", None)
    text = " ".join(str(format_message() if callable(format_message) else exc).split())
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None) or "handoffs"
    return f"{text} (see `{path} --help`)"


def main() -> None:
    """Entry point of the `handoffs` script: every error is one line on stderr (exit 2 for a
    usage mistake or a bad file, 1 for a runtime fault)."""
    try:
        code = app(standalone_mode=False, prog_name="handoffs")
    except typer.Abort:
        err.print("aborted", highlight=False)
        sys.exit(130)
    except typer.TyperException as exc:  # a missing argument, an unknown option or command
        err.print(f"error: {_usage_line(exc)}", highlight=False, soft_wrap=True)
        sys.exit(int(getattr(exc, "exit_code", 2)))
    except HandoffsError as exc:  # anything a command let through
        err.print(f"error: {exc}", highlight=False)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
