"""What the durable-job figures share: the fake provider, job files and worker processes of one
run (`Bench`), and polling the queue (`until`, `submit`, `states`, `finished`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

__all__ = ["Bench", "finished", "states", "submit", "until"]

_POLL_S = 0.05


class Bench:
    """The fake provider, the job files and the worker processes of one run."""

    def __init__(self, job: Path, tickets: int, latency_s: float, directory: Path) -> None:
        from handoffs.project import JobFile, job_simulation, load_config, load_job, read
        from handoffs.testing import FakeProvider, FakeRequest, LoopbackServer, Reply, ScriptedModel
        from handoffs.testing.simulation import simulate

        self.directory = directory
        scripted: list[ScriptedModel] = []

        def answer(request: FakeRequest) -> Reply:
            reply = scripted[0].answer(request)
            assert isinstance(reply, Reply)
            return reply

        provider = FakeProvider(
            {m: ScriptedModel(answer=answer, latency_s=latency_s) for m in ("frontier", "mid")}
        )
        self.server = LoopbackServer(provider)
        url = f"{self.server.start()}/v1"
        self.config = directory / "handoffs.toml"
        models = "".join(
            f'[models.{m}]\nprovider = "openai-compatible"\nname = "{m}"\nbase_url = "{url}"\n'
            f'tier = "{m}"\ninput_usd_per_mtok = "1"\noutput_usd_per_mtok = "1"\n'
            f'context_window = 128000\nstructured_output = "native"\n\n'
            for m in ("frontier", "mid")
        )
        rules = "".join(
            f'[[policy.rules]]\nkind = "{k}"\nladder = ["mid"]\n\n'
            for k in ("classify", "extract", "draft")
        )
        self.config.write_text(f"[portfolio]\nsimulate_missing_keys = false\n\n{models}{rules}")
        raw = read(JobFile, job, "job file")
        spec = load_job(job, load_config(self.config).catalog)
        data: Any = spec.data
        if not isinstance(data, list):
            raise RuntimeError(f"{job}: the bench needs a job whose data is a list of tickets")
        self.rows = cast(list[Any], data)
        rows = self.rows[:tickets]
        (directory / "tickets.jsonl").write_text("".join(json.dumps(t) + "\n" for t in rows))
        tools = f'tools = "{(job.parent / raw.tools).resolve()}"\n' if raw.tools else ""
        names = ", ".join(json.dumps(n) for n in raw.subordinates)
        self.job = directory / "bench.toml"
        self.job.write_text(
            f"name = {json.dumps(spec.name)}\ngoal = {json.dumps(spec.goal)}\n"
            f'roster = "{spec.roster}"\n{tools}'
            f"orchestrator = {json.dumps(raw.orchestrator)}\nsubordinates = [{names}]\n"
            'data = "tickets.jsonl"\n'
        )
        scripted.append(simulate(job_simulation(spec)))

    def close(self) -> None:
        self.server.stop()

    @contextmanager
    def workers(
        self, url: str, count: int, concurrency: int, *, config: Path | None = None
    ) -> Generator[list[subprocess.Popen[bytes]]]:
        """`count` worker processes on `url`, stopped (SIGTERM) at the end."""
        from handoffs.jobs import Presence

        env = {
            k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")
        }
        command = [
            sys.executable, "-c", "from handoffs.cli import main; main()", "worker",
            "--database-url", url, "--config", str(config or self.config), "--concurrency", str(concurrency),
        ]  # fmt: skip
        procs = [
            subprocess.Popen(
                command,
                cwd=self.directory,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(count)
        ]
        presence = Presence(url)
        try:
            until(lambda: len(presence.alive(dead_after_s=60)) >= count, 120, "workers to start")
            yield procs
        finally:
            presence.close()
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def until(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(_POLL_S)


def submit(queue: Any, job: Path, count: int) -> list[str]:
    import anyio

    async def all_of_them() -> list[str]:
        return [(await queue.submit(job, trace_dir=None)).job_id for _ in range(count)]

    return anyio.run(all_of_them)


def states(queue: Any, ids: Collection[str]) -> dict[str, tuple[str, str]]:
    """DBOS status and executor of each job, without loading inputs or outputs (cheap to poll)."""
    found = queue.client.list_workflows(workflow_ids=list(ids), load_input=False, load_output=False)
    return {w.workflow_id: (w.status, w.executor_id or "") for w in found}


def finished(queue: Any, ids: Collection[str]) -> bool:
    return all(s not in ("ENQUEUED", "PENDING") for s, _ in states(queue, ids).values())
