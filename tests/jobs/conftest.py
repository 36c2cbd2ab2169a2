"""Fixtures for durable jobs: the fake provider, a SQLite jobs database, worker subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from handoffs.testing.postgres import TemporaryPostgres, available

from .harness import Models, WorkerProcess


@pytest.fixture
def models() -> Iterator[Models]:
    served = Models()
    with served.server:
        yield served
    for gate in served.gates:
        gate.release.set()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jobs.sqlite'}"


@pytest.fixture
def spawn(tmp_path: Path) -> Generator[Callable[..., WorkerProcess], None, None]:
    """Start `handoffs worker` subprocesses (stopped at teardown)."""
    started: list[WorkerProcess] = []
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")}

    def start(
        url: str,
        config: Path,
        *,
        concurrency: int = 2,
        run: Path | None = None,
        args: tuple[str, ...] = (),
    ) -> WorkerProcess:
        """`handoffs worker` on `url`; with `run`, `handoffs run RUN` (which runs that job only)."""
        log = tmp_path / f"worker-{len(started)}.log"
        cli = [sys.executable, "-c", "from handoffs.cli import main; main()"]
        if run is None:
            command = [
                *cli, "worker", "--database-url", url, "--config", str(config),
                "--concurrency", str(concurrency), *args,
            ]  # fmt: skip
        else:
            command = [*cli, "run", str(run), "--config", str(config), "--trace-dir", "traces"]
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                command,
                cwd=tmp_path,
                env={**env, "HANDOFFS_DATABASE_URL": url},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(proc=proc, log=log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="module")
def postgres() -> Iterator[TemporaryPostgres]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (skips when the binaries are absent)."""
    why = available()
    if why is not None:
        pytest.skip(why)
    with TemporaryPostgres() as cluster:
        yield cluster
