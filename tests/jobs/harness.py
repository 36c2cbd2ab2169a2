"""The harness of the durable-jobs tests: the ticket roster's job served by the fake provider on loopback.

Every model of the job (`frontier` orchestrates and judges, `mid` answers every subtask) is a
scripted model of one `FakeProvider`, reached through the real OpenAI SDK as a self-hosted
endpoint, so a worker in another process calls the same server and its request log sees every
call. A `Gate` holds one request until the test lets it go.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from handoffs.jobs import JobHandle
from handoffs.project import load_config, load_job, load_module
from handoffs.testing import FakeProvider, FakeRequest, LoopbackServer, Reply, ScriptedModel
from handoffs.testing.simulation import Simulation, simulate

ROOT = Path(__file__).resolve().parents[2]
TICKETS = [
    json.loads(line)
    for line in (ROOT / "examples" / "data" / "tickets.jsonl").read_text().splitlines()
    if line.strip()
]
KIND = {
    "Triage": "classify",
    "TicketFields": "extract",
    "ReplyDraft": "draft",
    "JudgeScore": "draft",
}
"""The task kind each answer type belongs to (the writer's judge call is part of its handoff)."""


@dataclass
class Gate:
    """Holds the first request `matches` picks until `release` is set."""

    matches: Callable[[FakeRequest], bool]
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    tripped: bool = False

    async def hold(self, request: FakeRequest) -> None:
        if self.tripped or not self.matches(request):
            return
        self.tripped = True
        self.arrived.set()
        await anyio.to_thread.run_sync(self.release.wait)

    async def wait_arrived(self, timeout_s: float = 60) -> None:
        with anyio.fail_after(timeout_s):
            while not await anyio.to_thread.run_sync(self.arrived.wait, 0.2):
                pass


class Models:
    """The fake provider serving the job's models, and what it was asked.

    It answers with the roster's simulation once `use(job)` has loaded it.
    """

    def __init__(self) -> None:
        self.simulation = Simulation()
        self.scripted = simulate(self.simulation)
        self.gates: list[Gate] = []

        async def answer(request: FakeRequest) -> Reply:
            for gate in self.gates:
                await gate.hold(request)
            reply = self.scripted.answer(request)
            assert isinstance(reply, Reply)
            return reply

        self.provider = FakeProvider(
            {"frontier": ScriptedModel(answer=answer), "mid": ScriptedModel(answer=answer)}
        )
        self.server = LoopbackServer(self.provider)

    def use(self, job: Path) -> Path:
        """Answer as `job`'s roster simulation says; returns `job`."""
        spec = load_job(job, load_config(job.parent / "handoffs.toml").catalog)
        self.simulation = Simulation.from_module(
            load_module(spec.roster, "simulation"), [s.output_type for s in spec.subordinates]
        )
        self.scripted = simulate(self.simulation)
        return job

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def gate(self, title: str, ticket: str) -> Gate:
        """Hold the first request for an answer of type `title` about `ticket`."""
        gate = Gate(lambda r: self.key(r) == (title, ticket))
        self.gates.append(gate)
        return gate

    def title(self, request: FakeRequest) -> str | None:
        schema = request.output_schema or (
            request.output_tool.parameters if request.output_tool else None
        )
        if schema is None or (
            request.tools and not request.output_schema and not request.output_tool
        ):
            return None
        return self.simulation.title_of(schema) or None

    def key(self, request: FakeRequest) -> tuple[str, str] | None:
        """(answer type, ticket id) of a subordinate or judge request; None for the orchestrator."""
        title = self.title(request)
        if title is None or title not in KIND:
            return None
        found = re.search(r"T-\d{3}", request.last_user_text)
        return (title, found.group(0)) if found else None

    def answered(self) -> list[FakeRequest]:
        return [e.request for e in self.provider.requests if e.request is not None]

    def calls(self) -> Counter[tuple[str, str]]:
        """How many times each (answer type, ticket) was asked for."""
        return Counter(k for r in self.answered() if (k := self.key(r)) is not None)

    def orchestrator_calls(self) -> int:
        return sum(1 for r in self.answered() if r.model == "frontier" and self.key(r) is None)


def write_job(
    directory: Path,
    base_url: str,
    tickets: list[dict[str, Any]],
    name: str,
    *,
    roster: Path = ROOT / "agents",
    tools: Path = ROOT / "tools",
) -> Path:
    """A job over `tickets` and a `handoffs.toml` whose models are the fake provider's."""
    data = directory / f"{name}.jsonl"
    data.write_text("".join(json.dumps(t) + "\n" for t in tickets))
    job = directory / f"{name}.toml"
    job.write_text(
        f'name = "{name}"\n'
        'goal = "Triage these tickets."\n'
        f'roster = "{roster}"\n'
        f'tools = "{tools}"\n'
        'orchestrator = "orchestrator"\n'
        'subordinates = ["classifier", "extractor", "writer"]\n'
        f'data = "{data.name}"\n'
        'budget_usd = "1.00"\n'
    )
    config = directory / "handoffs.toml"
    if not config.exists():
        url = f"{base_url}/v1"
        config.write_text(
            "[portfolio]\nsimulate_missing_keys = false\n\n"
            f'[models.frontier]\nprovider = "openai-compatible"\nname = "frontier"\n'
            f'base_url = "{url}"\ntier = "frontier"\ninput_usd_per_mtok = "3"\n'
            'output_usd_per_mtok = "15"\ncontext_window = 200000\n\n'
            f'[models.mid]\nprovider = "openai-compatible"\nname = "mid"\nbase_url = "{url}"\n'
            'tier = "mid"\ninput_usd_per_mtok = "0.4"\noutput_usd_per_mtok = "1.6"\n'
            'context_window = 128000\nstructured_output = "native"\n\n'
            + "".join(
                f'[[policy.rules]]\nkind = "{kind}"\nladder = ["mid"]\n\n'
                for kind in ("classify", "extract", "draft")
            )
        )
    return job


@dataclass
class WorkerProcess:
    """A `handoffs worker` in a subprocess; its output goes to files shown when a test fails."""

    proc: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


async def all_but_one_done(handle: JobHandle) -> None:
    """Wait until every handoff of a 4-ticket triage job but one has finished (the one a test
    holds in flight): 4 classifications, 4 extractions, a draft per urgent ticket."""
    with anyio.fail_after(60):
        async with aclosing(handle.watch(poll_s=0.05)) as updates:
            async for info in updates:
                assert info.progress is not None
                urgent = sum(
                    1
                    for r in info.progress.handoffs
                    if r.task_kind == "classify" and r.output["urgent"]
                )
                if info.progress.done == 4 + 4 + urgent - 1:
                    return
