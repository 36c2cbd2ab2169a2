"""What every `handoffs` command shares: the two consoles, the one-line error, common options."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["JsonOpt", "err", "fail", "out"]

out = Console()
"""stdout: tables and `--json` documents."""
err = Console(stderr=True)
"""stderr: progress, the setting line under `--json`, errors."""

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` as one `error:` line on stderr; return the `Exit` to raise."""
    text = escape(" ".join(message.split()))  # "[health] ..." is text, not Rich markup
    err.print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)
    return typer.Exit(code)
