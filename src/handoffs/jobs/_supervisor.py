"""Handing a dead worker's jobs to the live ones.

DBOS resumes a crashed process's workflows when a process with the same executor id starts again;
nothing resumes them if it never does. So each worker keeps a heartbeat row (`handoffs_workers`,
beside DBOS's tables in the same database), and `recover` — run by every worker between jobs, and
by `handoffs jobs recover` — finds jobs still PENDING on a worker that is gone and puts them back
on the queue with DBOS's client API (`resume_workflow`), where any live worker takes them. Their
journaled steps are not run again.

A worker is gone when it said so (stopped), when it ran on this host and its process no longer
exists, or when its heartbeat is older than `dead_after_s`. A worker with no heartbeat row (not
started by `handoffs worker`) counts as gone once its job has not moved for `dead_after_s`.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from dbos import DBOSClient
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError

from handoffs.jobs._database import DRIFT_WORKFLOW, HANDOFF_QUEUE, HANDOFF_WORKFLOW, QUEUE, WORKFLOW

__all__ = ["Handover", "Presence", "new_worker_id", "recover"]

_metadata = sa.MetaData()
_workers = sa.Table(
    "handoffs_workers",
    _metadata,
    sa.Column("worker_id", sa.Text, primary_key=True),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("beat_at", sa.Float, nullable=False),
    sa.Column("stopped_at", sa.Float, nullable=True),
)


def new_worker_id() -> str:
    """A unique worker (DBOS executor) id: host, process id and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _process_gone(pid: int) -> bool:
    """Whether process `pid` of this host has exited (a zombie not yet reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # Linux: a killed child its parent has not reaped yet still answers kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Handover:
    """One job put back on the queue because its worker is gone."""

    job_id: str
    worker: str
    """The worker it was running on."""
    reason: str


class Presence:
    """The heartbeat table of the workers sharing one jobs database."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        args = {"timeout": 30} if parsed.get_backend_name() == "sqlite" else {}
        self._engine = sa.create_engine(parsed, connect_args=args, pool_pre_ping=True)
        try:
            _metadata.create_all(self._engine, checkfirst=True)
        except DatabaseError:  # another worker created it between the check and the CREATE
            _metadata.create_all(self._engine, checkfirst=True)

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    def announce(self, worker_id: str) -> None:
        """Record a worker of this process as started and alive."""
        now = time.time()
        with self._engine.begin() as conn:
            conn.execute(sa.delete(_workers).where(_workers.c.worker_id == worker_id))
            conn.execute(
                sa.insert(_workers).values(
                    worker_id=worker_id,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    started_at=now,
                    beat_at=now,
                )
            )

    def beat(self, worker_id: str) -> None:
        """Say the worker is still alive."""
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(_workers)
                .where(_workers.c.worker_id == worker_id)
                .values(beat_at=time.time())
            )

    def leave(self, worker_id: str) -> None:
        """Record that the worker stopped: its unfinished jobs may be handed over at once."""
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(_workers)
                .where(_workers.c.worker_id == worker_id)
                .values(stopped_at=time.time())
            )

    def alive(self, *, dead_after_s: float) -> list[str]:
        """The workers that look alive now."""
        with self._engine.begin() as conn:
            rows = conn.execute(sa.select(_workers)).all()
        gone = self.gone([r.worker_id for r in rows], dead_after_s=dead_after_s)
        return sorted(r.worker_id for r in rows if r.worker_id not in gone)

    def gone(self, worker_ids: Collection[str], *, dead_after_s: float) -> dict[str, str]:
        """Which of `worker_ids` are gone, and why (`unregistered` for ids with no row)."""
        if not worker_ids:
            return {}
        with self._engine.begin() as conn:
            rows = conn.execute(
                sa.select(_workers).where(_workers.c.worker_id.in_(list(worker_ids)))
            ).all()
        found = {r.worker_id: r for r in rows}
        here, now = socket.gethostname(), time.time()
        gone: dict[str, str] = {}
        for worker_id in worker_ids:
            row = found.get(worker_id)
            if row is None:
                gone[worker_id] = "unregistered"
            elif row.stopped_at is not None:
                gone[worker_id] = "worker stopped"
            elif row.host == here and _process_gone(row.pid):
                gone[worker_id] = f"process {row.pid} is gone"
            elif now - row.beat_at > dead_after_s:
                gone[worker_id] = f"no heartbeat for {now - row.beat_at:.0f} s"
        return gone


def recover(
    client: DBOSClient,
    presence: Presence,
    *,
    dead_after_s: float,
    force: Collection[str] = (),
) -> list[Handover]:
    """Put every job PENDING on a gone worker (or on one in `force`) back on the queue (a
    scheduled drift check too: on the jobs queue)."""
    pending = client.list_workflows(
        status="PENDING",
        name=[WORKFLOW, HANDOFF_WORKFLOW, DRIFT_WORKFLOW],
        load_input=False,
        load_output=False,
    )
    owners = {wf.executor_id for wf in pending if wf.executor_id}
    gone = presence.gone(owners, dead_after_s=dead_after_s)
    gone.update({w: "declared dead" for w in force})
    now_ms = time.time() * 1000
    handed: list[Handover] = []
    for wf in pending:
        owner = wf.executor_id or ""
        reason = gone.get(owner)
        if reason is None:
            continue
        if reason == "unregistered" and now_ms - (wf.updated_at or 0) < dead_after_s * 1000:
            continue
        # Look again just before: another supervisor may have handed it over already.
        current = client.list_workflows(
            workflow_ids=[wf.workflow_id], load_input=False, load_output=False
        )
        if not current or current[0].status != "PENDING" or current[0].executor_id != owner:
            continue
        client.resume_workflow(
            wf.workflow_id, queue_name=HANDOFF_QUEUE if wf.name == HANDOFF_WORKFLOW else QUEUE
        )
        handed.append(Handover(job_id=wf.workflow_id, worker=owner, reason=reason))
    return handed
