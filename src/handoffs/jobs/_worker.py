"""`Worker`: runs queued jobs in this process, on the event loop it is started from.

```python
async with Worker(url, concurrency=4):     # DBOS launched, taking jobs from the queue
    ...                                    # submit, watch, cancel from here or anywhere
```
or `await Worker(url).run()` until cancelled (what `handoffs worker` does). A worker beats a
heartbeat every `beat_s` and, between beats, hands the jobs of dead workers to the queue
(`supervisor.recover`). Given the project's `handoffs.toml`, it also keeps the `[drift]` schedule
(`_drift`): the scheduled re-qualification runs in whichever worker DBOS hands it to. One worker
per process: DBOS has one instance per process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Self

import anyio
from anyio.abc import TaskGroup, TaskStatus
from dbos import DBOS, DBOSClient

from handoffs.jobs._cache import use_database
from handoffs.jobs._child import serve
from handoffs.jobs._database import HANDOFF_QUEUE, QUEUE, dbos_config, describe, open_client
from handoffs.jobs._drift import schedule_drift
from handoffs.jobs._supervisor import Handover, Presence, new_worker_id, recover
from handoffs.jobs._workflow import running_jobs, stop_running_jobs
from handoffs.project import load_config

__all__ = ["Worker"]

log = logging.getLogger("handoffs.jobs")
log.addHandler(logging.NullHandler())  # `handoffs worker` shows these on stderr
_STOP_WAIT_S = 10.0


class Worker:
    """A DBOS executor that takes jobs from the `handoffs-jobs` queue."""

    _active = False
    """Whether some worker of this process is running (DBOS allows one instance per process)."""

    def __init__(
        self,
        database_url: str,
        *,
        concurrency: int = 4,
        handoff_concurrency: int = 8,
        worker_id: str | None = None,
        beat_s: float = 1.0,
        dead_after_s: float = 15.0,
        poll_s: float = 0.1,
        supervise: bool = True,
        listen: bool = True,
        config: Path | None = None,
    ) -> None:
        """Prepare a worker; `run()` or `async with` starts it.

        `concurrency` is how many jobs one worker runs at once (stored with the queue, so the
        last worker started sets it for all); `handoff_concurrency` is how many handoffs of
        spreading jobs (`[jobs] spread`) it runs at once, from any job; `dead_after_s` is how long a worker on another
        host may stay silent before its jobs are handed over; `poll_s` is how often the queue
        is polled. `listen=False` takes no job from the queue: the process only runs the jobs it
        starts itself (`handoffs run`). With `config` (a `handoffs.toml`), a listening worker
        stores that file's `[drift]` schedule in the jobs database, or removes it when the file
        has no `[drift]` table.
        """
        if concurrency < 1 or handoff_concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.database_url = database_url
        self.concurrency = concurrency
        self.handoff_concurrency = handoff_concurrency
        self.worker_id = worker_id or new_worker_id()
        self.beat_s = beat_s
        self.dead_after_s = dead_after_s
        self.poll_s = poll_s
        self.supervise = supervise
        self.listen = listen
        self.config = None if config is None else config.resolve()
        self.handovers: list[Handover] = []
        """Jobs this worker put back on the queue because their worker was gone."""
        self.ready = anyio.Event()
        """Set once the worker takes jobs."""
        self._group: TaskGroup | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Launch DBOS, take jobs until cancelled, then stop them (they stay resumable)."""
        if Worker._active:
            raise RuntimeError("a worker is already running in this process (one DBOS per process)")
        Worker._active = True
        client = presence = None
        try:
            client = await anyio.to_thread.run_sync(open_client, self.database_url)
            presence = await anyio.to_thread.run_sync(Presence, self.database_url)
            await anyio.to_thread.run_sync(presence.announce, self.worker_id)
            use_database(self.database_url)  # jobs on PostgreSQL keep [cache] answers there
            try:
                DBOS(config=dbos_config(self.database_url, executor_id=self.worker_id))
                if not self.listen:
                    DBOS.listen_queues([])
                DBOS.launch()  # on this thread: DBOS runs workflows on the loop that launched it
                if self.listen:
                    await DBOS.register_queue_async(
                        QUEUE,
                        worker_concurrency=self.concurrency,
                        polling_interval_sec=self.poll_s,
                        on_conflict="always_update",
                    )
                    await DBOS.register_queue_async(
                        HANDOFF_QUEUE,
                        worker_concurrency=self.handoff_concurrency,
                        polling_interval_sec=self.poll_s,
                        on_conflict="always_update",
                    )
                    serve(client)  # this process's jobs may spread their handoffs
                    if self.config is not None:
                        await schedule_drift(self.config, load_config(self.config).drift)
                log.debug("worker %s on %s", self.worker_id, describe(self.database_url))
                self.ready.set()
                task_status.started()
                while True:
                    await self._tend(client, presence)
                    await anyio.sleep(self.beat_s)
            finally:
                with anyio.CancelScope(shield=True):
                    await self._stop()
        finally:
            Worker._active = False
            serve(None)
            use_database(None)
            if presence is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(presence.leave, self.worker_id)
                presence.close()
            if client is not None:
                client.destroy()

    async def _tend(self, client: DBOSClient, presence: Presence) -> None:
        try:
            await anyio.to_thread.run_sync(presence.beat, self.worker_id)
            if self.supervise:
                handed = await anyio.to_thread.run_sync(
                    lambda: recover(client, presence, dead_after_s=self.dead_after_s)
                )
                for h in handed:
                    log.warning("job %s handed over from %s (%s)", h.job_id, h.worker, h.reason)
                self.handovers.extend(handed)
        except Exception as exc:  # a flaky database must not kill the worker
            log.warning("worker %s: heartbeat failed: %s", self.worker_id, exc)

    async def _stop(self) -> None:
        stop_running_jobs()
        with anyio.move_on_after(_STOP_WAIT_S):
            while running_jobs():  # noqa: ASYNC110 — jobs leave a module-level set as they stop
                await anyio.sleep(0.02)
        await anyio.to_thread.run_sync(DBOS.destroy)

    async def __aenter__(self) -> Self:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        try:
            await self._group.start(self.run)
        except BaseException:
            await self._group.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        assert self._group is not None
        self._group.cancel_scope.cancel()
        return await self._group.__aexit__(exc_type, exc, traceback)
