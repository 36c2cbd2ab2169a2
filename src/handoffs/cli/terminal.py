"""What every `handoffs` command shares: the two consoles, the one-line error, common options, and
progress on stderr (`Ticker`).

Outside a terminal (a file, a pipe, a CI log) the consoles do not wrap or cut at 80 columns: tables
and ids print whole, unless `COLUMNS` says how wide to be.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Annotated, cast

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

__all__ = [
    "PROGRESS_EVERY_S",
    "WIDE",
    "JsonOpt",
    "QuietOpt",
    "Ticker",
    "WideConsole",
    "err",
    "fail",
    "out",
]

WIDE = 1000
"""The width of a console that is not a terminal (and has no `COLUMNS`): wide enough that no
table or id is cut, as a log file or a pipe has no width of its own."""
PROGRESS_EVERY_S = 5.0
"""How often a plain progress line is printed when stderr is not a terminal."""


class WideConsole(Console):
    """A Rich console as wide as its terminal, or `WIDE` when it is not writing to one."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        fixed = cast(int | None, self._width)  # Rich types it int; it is None unless given
        if self.is_terminal or fixed is not None or os.environ.get("COLUMNS"):
            return size
        return ConsoleDimensions(WIDE, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


out = WideConsole()
"""stdout: tables and `--json` documents."""
err = WideConsole(stderr=True)
"""stderr: progress, the setting line under `--json`, errors."""

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress on stderr (errors still are).")
]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` as one `error:` line on stderr; return the `Exit` to raise."""
    text = escape(" ".join(message.split()))  # "[health] ..." is text, not Rich markup
    err.print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


class Ticker:
    """Progress of a long command on stderr, worded by `status()`.

    In a terminal, a Rich spinner line, refreshed by `update()`. Elsewhere (a file, a pipe, a CI
    log), a plain line `[  12s] <status>` at most every `every_s` seconds: on `update()` when that
    long has passed, and from a background thread when nothing has happened for that long, so a
    quiet stretch still shows the command is alive; and one last line when it ends. With `quiet`,
    nothing.

    ```python
    with Ticker(lambda: f"handoffs done: {done}") as ticker:
        ...
        ticker.update()
    ```
    """

    def __init__(
        self,
        status: Callable[[], str],
        *,
        quiet: bool = False,
        console: Console | None = None,
        every_s: float | None = None,
    ) -> None:
        self.status = status
        self.quiet = quiet
        self.console = console or err
        self.every_s = PROGRESS_EVERY_S if every_s is None else every_s
        self._started = time.monotonic()
        self._last = self._started
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress: Progress | None = None
        self._bar = None

    @property
    def plain(self) -> bool:
        """Whether progress is printed as plain lines (stderr is not a terminal)."""
        return not self.console.is_terminal

    def __enter__(self) -> Ticker:
        self._started = self._last = time.monotonic()
        if self.quiet:
            return self
        if self.plain:
            self._thread = threading.Thread(target=self._beat, name="progress", daemon=True)
            self._thread.start()
        else:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._bar = self._progress.add_task(escape(self.status()), total=None)
        return self

    def update(self) -> None:
        """Show the current status: at once in a terminal, else if `every_s` has passed."""
        if self.quiet:
            return
        if self._progress is not None and self._bar is not None:
            self._progress.update(self._bar, description=escape(self.status()))
        elif self.plain and time.monotonic() - self._last >= self.every_s:
            self._line()

    def _line(self, final: bool = False) -> None:
        with self._lock:
            self._last = now = time.monotonic()
            text = self.status()
            self.console.print(
                f"[{now - self._started:5.0f}s] {text}{' (done)' if final else ''}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

    def _beat(self) -> None:
        while not self._stop.wait(max(self.every_s, 0.05)):
            if time.monotonic() - self._last >= self.every_s:
                self._line()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            if exc_type is None:
                self._line(final=True)
        if self._progress is not None:
            self._progress.stop()
