"""Tracing on by default: where a `Session` built without `tracing=` sends its spans.

A script that makes handoffs (`Session(...)` without `tracing=`) is traced like `handoffs run`: one
JSONL file per process, `.handoffs/traces/<run id>.jsonl` (and OTLP/HTTP when
`OTEL_EXPORTER_OTLP_ENDPOINT` is set), which `handoffs trace show`, `trace html` and `report`
read. The file is written to `<run id>.jsonl.part` and appears, complete, when the process exits
(or when `finish_default_tracing()` is called). Turned off by `HANDOFFS_TRACING=off` (or `0`,
`false`, `no`) or by `Session(tracing=False)`; `HANDOFFS_TRACING=lean` leaves out pydantic-ai's
per-request `chat` spans (`Tracing.lean`); `HANDOFFS_TRACE_DIR` moves the folder. The standard
`OTEL_TRACES_SAMPLER` (`traceidratio`) and `OTEL_TRACES_SAMPLER_ARG` sample handoffs
(`job_tracer_provider`).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from handoffs.tracing._export import TRACE_DIR, job_tracer_provider, trace_path
from handoffs.tracing._spans import Tracing

__all__ = [
    "TRACE_DIR_ENV",
    "TRACING_ENV",
    "default_trace_dir",
    "default_tracing",
    "finish_default_tracing",
]

TRACING_ENV = "HANDOFFS_TRACING"
"""`off` (or `0`, `false`, `no`) turns the default tracing of sessions off; `lean` keeps it on
without pydantic-ai's per-request spans where the engine skips the agent loop."""
TRACE_DIR_ENV = "HANDOFFS_TRACE_DIR"
"""Where traces are written and read instead of `.handoffs/traces` (scripts and the CLI alike)."""
_OFF = frozenset({"off", "0", "false", "no", "none"})


@dataclass(frozen=True, slots=True, kw_only=True)
class _Run:
    """One process's default trace in one folder."""

    tracing: Tracing
    provider: TracerProvider
    path: Path


_lock = threading.Lock()
_open: dict[Path, _Run] = {}


def default_trace_dir(env: Mapping[str, str] | None = None) -> Path:
    """`HANDOFFS_TRACE_DIR` when set in `env` (default: the process environment), else
    `.handoffs/traces`."""
    env = os.environ if env is None else env
    return Path(env.get(TRACE_DIR_ENV, "").strip() or TRACE_DIR)


def default_tracing(env: Mapping[str, str] | None = None) -> Tracing | None:
    """This process's default `Tracing` for its trace folder, or None when `HANDOFFS_TRACING`
    turns it off. `env` defaults to the process environment.

    Every session of the process shares it: one run id, one file, `<folder>/<run id>.jsonl`,
    complete when the process exits or `finish_default_tracing()` is called.
    """
    env = os.environ if env is None else env
    setting = env.get(TRACING_ENV, "").strip().lower()
    if setting in _OFF:
        return None
    directory = default_trace_dir(env).absolute()  # the file is renamed at exit, from any cwd
    with _lock:
        run = _open.get(directory)
        if run is None:
            run_id = uuid.uuid4().hex[:12]
            provider = job_tracer_provider(run_id, directory=directory, env=env)
            run = _open[directory] = _Run(
                tracing=Tracing(tracer_provider=provider, lean=setting == "lean"),
                provider=provider,
                path=trace_path(directory, run_id),
            )
        return run.tracing


def finish_default_tracing() -> list[Path]:
    """Flush and close every default trace of this process (their files appear complete) and
    return their paths; sessions built afterwards start a new run id."""
    with _lock:
        opened = list(_open.values())
        _open.clear()
    for run in opened:
        run.provider.shutdown()
    return [run.path for run in opened if run.path.is_file()]
