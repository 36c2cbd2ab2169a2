"""Where durable jobs live: the DBOS system database, its URL, and the names pinned in it.

The URL comes from, in order: an explicit argument, `HANDOFFS_DATABASE_URL`, `[jobs] database_url`
in `handoffs.toml`, and otherwise SQLite at `.handoffs/jobs.sqlite` (no server to install).
PostgreSQL (`postgresql://user:pass@host:port/db`) lets workers on many machines share one queue.

Everything DBOS writes is keyed by names below. They are compatibility data: renaming one strands
the jobs already in a database. `APP_VERSION` is the one to bump on purpose (see docs/jobs.md).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path

from dbos import DBOS, DBOSClient, DBOSConfig
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from handoffs.errors import JobsDatabaseError
from handoffs.project import JobsTable, parse, read_toml

__all__ = [
    "APP_NAME",
    "APP_VERSION",
    "DEFAULT_URL",
    "HANDOFF_QUEUE",
    "HANDOFF_WORKFLOW",
    "QUEUE",
    "URL_ENV",
    "WORKFLOW",
    "dbos_config",
    "describe",
    "exists",
    "open_client",
    "resolve_url",
]

APP_NAME = "handoffs"
"""The DBOS application name every worker and client uses."""
APP_VERSION = "handoffs-jobs-2"
"""The DBOS application version, pinned so that editing code does not strand in-flight jobs.

A worker only runs and resumes jobs of its own version. Bump it (`handoffs-jobs-2`) when a change
alters the sequence of steps a job records — the job workflow, the step names, what a step returns —
and keep one worker of the old release running until `handoffs jobs list --status running` shows
no job of the old version.
"""
QUEUE = "handoffs-jobs"
"""The DBOS queue `handoffs worker` processes take jobs from."""
WORKFLOW = "handoffs.job"
"""The registered name of the job workflow."""
HANDOFF_QUEUE = "handoffs-handoffs"
"""The DBOS queue a spreading job puts its handoffs on (`[jobs] spread`); every worker takes
them, up to its `--handoff-concurrency` at once."""
HANDOFF_WORKFLOW = "handoffs.handoff.child"
"""The registered name of the workflow that runs one spread handoff."""
DRIFT_WORKFLOW = "handoffs.drift"
"""The registered name of the scheduled drift check (`[drift]`)."""
URL_ENV = "HANDOFFS_DATABASE_URL"
DEFAULT_URL = "sqlite:///.handoffs/jobs.sqlite"

logging.getLogger("dbos").addHandler(logging.NullHandler())
"""DBOS logs connection failures itself; the CLI reports them in one line instead."""


def _config_url(config: Path | None) -> str | None:
    """`[jobs] database_url` of `config` (only that table is read: the rest need not be valid)."""
    if config is None or not config.is_file():
        return None
    table = read_toml(config, "config file").get("jobs", {})
    return parse(JobsTable, table, source=str(config), within=("jobs",)).database_url


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        raise JobsDatabaseError(f"not a database URL: {describe(url)!r}") from None


def resolve_url(
    explicit: str | None = None,
    *,
    config: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """The jobs database URL, with a SQLite path made absolute (`open_client` creates it).

    Raises `JobsDatabaseError` for a URL that is neither SQLite nor PostgreSQL.
    """
    env = env if env is not None else {}
    url = explicit or env.get(URL_ENV) or _config_url(config) or DEFAULT_URL
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return url
    if backend != "sqlite":
        raise JobsDatabaseError(
            f"unsupported jobs database {describe(url)!r}: use sqlite:///PATH or postgresql://..."
        )
    if not parsed.database or parsed.database == ":memory:":
        raise JobsDatabaseError("the jobs database must be a file: sqlite:///PATH")
    path = Path(parsed.database)
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    return f"sqlite:///{path}"


def describe(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1]


def _one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def dbos_config(url: str, *, executor_id: str) -> DBOSConfig:
    """The DBOS configuration of a worker process."""
    return {
        "name": APP_NAME,
        "system_database_url": url,
        "application_version": APP_VERSION,
        "executor_id": executor_id,
        "log_level": "WARNING",
        "enable_otlp": False,
    }


def exists(url: str) -> bool:
    """Whether the jobs database at `url` is there already (a server database always counts:
    only a SQLite file can be absent)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return True
    return Path(parsed.database).exists()


def _use_wal(url: str) -> None:
    """Put a SQLite database in write-ahead-log mode (persistent, set once): every commit is
    still synced, but a step costs about half as much as in the default rollback-journal mode,
    and readers (`handoffs jobs watch`) do not block the workers' writes."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return
    with closing(sqlite3.connect(parsed.database, timeout=30)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def open_client(url: str) -> DBOSClient:
    """A DBOS client on `url`, creating or migrating the system database first.

    Raises `JobsDatabaseError` in one line when the database cannot be reached.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JobsDatabaseError(f"cannot create {folder}: {exc.strerror or exc}") from None
    try:
        _use_wal(url)
        DBOS.migrate(url)
        return DBOSClient(
            system_database_url=url, application_name=APP_NAME, retry_connection_errors=False
        )
    except Exception as exc:  # driver errors: report, don't trace back
        raise JobsDatabaseError(
            f"cannot reach the jobs database {describe(url)}: {_one_line(exc)}"
        ) from None
