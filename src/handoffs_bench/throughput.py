"""What the framework itself costs per subtask: `handoffs bench overhead` and `handoffs bench fanout`.

`overhead` runs one scripted pydantic-ai model (no wire, no I/O) in rounds; in each round every
variant makes `n` subtasks, one after another, in rotated order: bare pydantic-ai `Agent.run`
(the baseline), the same traced, `Session.delegate` on the agent loop (`thin=False`, the
engine before the thin path), and `Session.delegate` untraced and traced.

`fanout` runs `n` subtasks at concurrency `c` against an OpenAI-compatible server in its own
process (`handoffs_bench.loopback`, which answers at once), through the raw `openai` SDK (the
baseline: the same request and a pydantic validation of the answer), `Session.delegate` untraced
and traced, and LiteLLM's `Router.acompletion` when it is installed, in rotated order.

`fanout --memory` makes `n` subtasks with one session (`handoffs`, untraced or `--traced`
lean) and reports the process's RSS, live Python objects and CPU after every `step` of them:
memory must stay flat however many subtasks a session makes.

Both report, per variant, CPU-seconds per subtask of this process (the server's CPU is not
counted), subtasks per CPU-second and per wall-second, min/median/max over rounds, and each
round's ratio to the baseline measured in that same round. Tracing, when on, writes JSONL to a
temporary folder, as `handoffs run` does. Timing is measured here, never asserted in tests.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Generator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import BaseModel

__all__ = ["Figures", "Variant", "run_fanout", "run_memory", "run_overhead"]

Progress = Callable[[str], None]


class Ticket(BaseModel):
    """A subtask's input."""

    id: str
    text: str


class Triage(BaseModel):
    """A subtask's typed output."""

    category: Literal["billing", "bug", "other"]
    urgent: bool


INSTRUCTIONS = "Sort the ticket: its category, and whether it is urgent."
TEXT = "My invoice for November charged me twice; please refund the second payment."


@dataclass(kw_only=True)
class Variant:
    """One way of making subtasks, and what each round of it measured."""

    name: str
    cpu_s: list[float] = field(default_factory=list[float])
    """CPU-seconds of this process per round."""
    wall_s: list[float] = field(default_factory=list[float])
    rss_mb: list[float] = field(default_factory=list[float])
    """Resident memory after each round."""

    def document(self, n: int, baseline: Variant | None) -> dict[str, Any]:
        per_cpu = [n / c for c in self.cpu_s if c > 0]
        per_wall = [n / w for w in self.wall_s if w > 0]
        doc: dict[str, Any] = {
            "name": self.name,
            "cpu_us_per_subtask": _spread([c / n * 1e6 for c in self.cpu_s]),
            "subtasks_per_cpu_s": _spread(per_cpu),
            "subtasks_per_wall_s": _spread(per_wall),
            "rss_mb": _spread(self.rss_mb),
        }
        if baseline is not None and baseline is not self:
            # per round: this variant's CPU per subtask over the baseline's in the same round
            ratios = [c / b for c, b in zip(self.cpu_s, baseline.cpu_s, strict=True) if b > 0]
            doc["cpu_vs_baseline"] = _spread(ratios)
            doc["throughput_vs_baseline"] = _spread([1 / r for r in ratios if r > 0])
        return doc


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"min": None, "median": None, "max": None}
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


@dataclass(kw_only=True)
class Figures:
    """One benchmark's document: its settings, the variants, and the baseline's name."""

    bench: str
    n: int
    rounds: int
    concurrency: int
    baseline: str
    variants: list[Variant]
    notes: list[str] = field(default_factory=list[str])
    peak_rss_mb: float = 0.0

    def document(self) -> dict[str, Any]:
        base = next(v for v in self.variants if v.name == self.baseline)
        return {
            "bench": self.bench,
            "n": self.n,
            "rounds": self.rounds,
            "concurrency": self.concurrency,
            "baseline": self.baseline,
            "cpus": os.cpu_count(),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "variants": [v.document(self.n, base) for v in self.variants],
            "notes": self.notes,
        }


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def _measure(variant: Variant, make: Callable[[], Awaitable[None]]) -> None:
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    await make()
    variant.cpu_s.append(time.process_time() - cpu)
    variant.wall_s.append(time.perf_counter() - wall)
    variant.rss_mb.append(round(_rss_mb(), 1))


async def _rounds(
    makers: dict[str, Callable[[], Awaitable[None]]],
    *,
    rounds: int,
    progress: Progress,
    bench: str,
) -> list[Variant]:
    variants = {name: Variant(name=name) for name in makers}
    names = list(makers)
    for number in range(rounds):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:  # rotated: no variant always goes first
            progress(f"bench {bench}: round {number + 1}/{rounds}: {name}")
            await _measure(variants[name], makers[name])
    return list(variants.values())


@contextmanager
def _trace_folder() -> Generator[Any]:
    """A `Tracing` writing JSONL to a temporary folder, as `handoffs run` does; shut down after."""
    from handoffs.tracing import Tracing, job_tracer_provider

    with tempfile.TemporaryDirectory(prefix="handoffs-bench-") as folder:
        provider = job_tracer_provider("bench", directory=Path(folder), env={})
        try:
            yield Tracing(tracer_provider=provider)
        finally:
            provider.shutdown()


def _catalog(base_url: str | None) -> Any:
    from handoffs.catalog import Catalog, ModelEntry

    return Catalog(
        [
            ModelEntry(
                id="small",
                provider="openai-compatible",
                name="small",
                tier="small",
                input_usd_per_mtok=Decimal("0.15"),
                output_usd_per_mtok=Decimal("0.60"),
                context_window=8192,
                base_url=base_url or "http://127.0.0.1:9/v1",
            )
        ]
    )


def _task(number: int) -> Any:
    from handoffs.task import Task

    return Task(
        kind="classify",
        input=Ticket(id=f"T{number}", text=TEXT),
        output_type=Triage,
        instructions=INSTRUCTIONS,
    )


def _session(catalog: Any, model: Any, *, tracing: Any, thin: bool = True) -> Any:
    from handoffs.engine import Session
    from handoffs.routing import Policy, Rule

    policy = Policy(rules=(Rule(kind="classify", ladder=("small",)),))

    def models(entry: Any) -> Any:
        return model

    return Session(
        catalog=catalog,
        models=models,
        policy=policy,
        tracing=tracing if tracing is not None else False,
        thin=thin,
        keep_records=100,
    )


# -- overhead -------------------------------------------------------------------------------------


def _scripted() -> Any:
    from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    answer = {"category": "billing", "urgent": False}

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, answer)])

    return FunctionModel(respond, model_name="small")


async def run_overhead(*, n: int, rounds: int, progress: Progress) -> Figures:
    """Bare pydantic-ai against `Session.delegate` on one scripted model, interleaved."""
    from pydantic_ai import Agent, ToolOutput

    model = _scripted()
    catalog = _catalog(None)
    with ExitStack() as stack:
        tracing = stack.enter_context(_trace_folder())
        bare: Agent[None, Triage] = Agent(model, output_type=ToolOutput(Triage), name="bare")
        traced: Agent[None, Triage] = Agent(
            model,
            output_type=ToolOutput(Triage),
            name="bare",
            capabilities=[tracing.instrumentation()],
        )
        lean = dataclasses.replace(tracing, lean=True)
        sessions = {
            "handoffs (agent loop)": _session(catalog, model, tracing=None, thin=False),
            "handoffs": _session(catalog, model, tracing=None),
            "handoffs traced": _session(catalog, model, tracing=tracing),
            "handoffs traced lean": _session(catalog, model, tracing=lean),
        }

        def agent_maker(agent: Agent[None, Triage]) -> Callable[[], Awaitable[None]]:
            async def make() -> None:
                for number in range(n):
                    ticket = Ticket(id=f"T{number}", text=TEXT)
                    await agent.run(ticket.model_dump_json(), instructions=INSTRUCTIONS)

            return make

        def session_maker(session: Any) -> Callable[[], Awaitable[None]]:
            async def make() -> None:
                for number in range(n):
                    await session.delegate(_task(number))

            return make

        makers: dict[str, Callable[[], Awaitable[None]]] = {
            "pydantic-ai": agent_maker(bare),
            "pydantic-ai traced": agent_maker(traced),
            **{name: session_maker(s) for name, s in sessions.items()},
        }
        for make in makers.values():  # warm up: first calls build agents, schemas, shapes
            await _warm(make)
        variants = await _rounds(makers, rounds=rounds, progress=progress, bench="overhead")
    figures = Figures(
        bench="overhead",
        n=n,
        rounds=rounds,
        concurrency=1,
        baseline="pydantic-ai",
        variants=variants,
        peak_rss_mb=_peak_rss_mb(),
    )
    traced_pair = (_find(variants, "handoffs traced"), _find(variants, "pydantic-ai traced"))
    ratios = [t / b for t, b in zip(traced_pair[0].cpu_s, traced_pair[1].cpu_s, strict=True)]
    figures.notes.append(
        "handoffs traced vs pydantic-ai traced (median CPU ratio): "
        f"{statistics.median(ratios):.2f}x; the rest of the traced cost is pydantic-ai's own spans"
    )
    return figures


async def _warm(make: Callable[[], Awaitable[None]]) -> None:
    """Run a maker once, untimed (it makes its `n` subtasks)."""
    await make()


def _find(variants: list[Variant], name: str) -> Variant:
    return next(v for v in variants if v.name == name)


# -- fanout ---------------------------------------------------------------------------------------


@contextmanager
def loopback_server() -> Generator[str]:
    """`handoffs_bench.loopback` in its own process; yields its base URL."""
    from handoffs_bench import loopback

    process = subprocess.Popen(
        [sys.executable, loopback.__file__],  # as a script: no package import, starts fast
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError("the loopback server did not start")
        yield url
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


async def _fan(n: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> None:
    """`n` subtasks, `concurrency` at a time: workers taking the next number until none is left."""
    counter = iter(range(n))

    async def worker() -> None:
        for number in counter:
            await one(number)

    async with anyio.create_task_group() as group:
        for _ in range(min(concurrency, n)):
            group.start_soon(worker)


def litellm_available() -> bool:
    """Whether LiteLLM is installed (the `[bench]` extra)."""
    import importlib.util

    return importlib.util.find_spec("litellm") is not None


def _chat_variant(create: Callable[..., Awaitable[Any]]) -> Callable[[int], Awaitable[None]]:
    """A subtask made with `create` (an OpenAI-style chat completion call): the same request the
    engine sends (the output as a tool), its answer read and validated with pydantic."""
    tool = {
        "type": "function",
        "function": {
            "name": "final_result",
            "description": "The final response which ends this conversation",
            "parameters": Triage.model_json_schema(),
        },
    }

    async def one(number: int) -> None:
        ticket = Ticket(id=f"T{number}", text=TEXT)
        response = await create(
            model="small",
            messages=[
                {"role": "system", "content": INSTRUCTIONS},
                {"role": "user", "content": ticket.model_dump_json()},
            ],
            tools=[tool],
            tool_choice="required",
            max_tokens=512,
        )
        call = response.choices[0].message.tool_calls[0]
        Triage.model_validate_json(call.function.arguments)

    return one


def _raw_sdk(client: Any) -> Callable[[int], Awaitable[None]]:
    """The baseline: the raw `openai` SDK."""
    return _chat_variant(client.chat.completions.create)


def _litellm(router: Any) -> Callable[[int], Awaitable[None]]:
    """LiteLLM's Router, sending the same request."""
    return _chat_variant(router.acompletion)


def _litellm_router(base_url: str) -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    import importlib

    litellm: Any = importlib.import_module("litellm")
    litellm.telemetry = False
    litellm.suppress_debug_info = True
    params = {"model": "openai/small", "api_base": base_url, "api_key": "loopback"}
    return litellm.Router(model_list=[{"model_name": "small", "litellm_params": params}])


async def run_fanout(
    *, n: int, concurrency: int, rounds: int, litellm: bool, progress: Progress
) -> Figures:
    """`n` tool-less subtasks at `concurrency` against the loopback server, per variant."""
    import httpx2  # pyright: ignore[reportMissingImports]
    from openai import AsyncOpenAI
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    notes: list[str] = []
    with ExitStack() as stack:
        base_url = stack.enter_context(loopback_server())
        tracing = stack.enter_context(_trace_folder())
        limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]

        def client() -> AsyncOpenAI:
            http = httpx2.AsyncClient(limits=limits, timeout=60)  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
            return AsyncOpenAI(
                base_url=base_url, api_key="loopback", max_retries=0, http_client=http
            )  # pyright: ignore[reportUnknownArgumentType]

        raw, wrapped = client(), client()
        model = OpenAIChatModel("small", provider=OpenAIProvider(openai_client=wrapped))
        catalog = _catalog(base_url)
        untraced = _session(catalog, model, tracing=None)
        traced = _session(catalog, model, tracing=tracing)
        lean = _session(catalog, model, tracing=dataclasses.replace(tracing, lean=True))

        def delegate(session: Any) -> Callable[[int], Awaitable[None]]:
            async def one(number: int) -> None:
                await session.delegate(_task(number))

            return one

        ones: dict[str, Callable[[int], Awaitable[None]]] = {
            "raw openai SDK": _raw_sdk(raw),
            "handoffs": delegate(untraced),
            "handoffs traced": delegate(traced),
            "handoffs traced lean": delegate(lean),
        }
        if litellm and litellm_available():
            ones["LiteLLM Router"] = _litellm(_litellm_router(base_url))
        elif litellm:
            notes.append("LiteLLM is not installed (pip install 'handoffs[bench]'): left out")
        warm = min(n, max(concurrency, 20))
        for one in ones.values():
            await _fan(warm, concurrency, one)

        def maker(one: Callable[[int], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
            return lambda: _fan(n, concurrency, one)

        makers = {name: maker(one) for name, one in ones.items()}
        variants = await _rounds(makers, rounds=rounds, progress=progress, bench="fanout")
        await raw.close()
        await wrapped.close()
    return Figures(
        bench="fanout",
        n=n,
        rounds=rounds,
        concurrency=concurrency,
        baseline="raw openai SDK",
        variants=variants,
        notes=notes,
        peak_rss_mb=_peak_rss_mb(),
    )


# -- memory ---------------------------------------------------------------------------------------


async def run_memory(
    *, n: int, concurrency: int, step: int, traced: bool, progress: Progress
) -> dict[str, Any]:
    """`n` subtasks through one session against the loopback server, `concurrency` at a time;
    after every `step` of them: RSS, live objects (after a collection) and CPU-seconds."""
    import httpx2  # pyright: ignore[reportMissingImports]
    from openai import AsyncOpenAI
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    checkpoints: list[dict[str, Any]] = []
    with ExitStack() as stack:
        base_url = stack.enter_context(loopback_server())
        tracing = stack.enter_context(_trace_folder()) if traced else None
        limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
        http = httpx2.AsyncClient(limits=limits, timeout=60)  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
        client = AsyncOpenAI(base_url=base_url, api_key="loopback", max_retries=0, http_client=http)  # pyright: ignore[reportUnknownArgumentType]
        model = OpenAIChatModel("small", provider=OpenAIProvider(openai_client=client))
        lean = dataclasses.replace(tracing, lean=True) if tracing is not None else None
        session = _session(_catalog(base_url), model, tracing=lean)

        async def one(number: int) -> None:
            await session.delegate(_task(number))

        await _fan(min(n, max(concurrency, 20)), concurrency, one)  # warm up
        done = 0
        cpu = time.process_time()

        def checkpoint() -> None:
            gc.collect()
            checkpoints.append(
                {
                    "subtasks": done,
                    "rss_mb": round(_rss_mb(), 1),
                    "objects": len(gc.get_objects()),
                    "cpu_s": round(time.process_time() - cpu, 2),
                }
            )

        checkpoint()
        while done < n:
            batch = min(step, n - done)
            await _fan(batch, concurrency, lambda number, base=done: one(base + number))
            done += batch
            checkpoint()
            last = checkpoints[-1]
            progress(
                f"bench fanout --memory: {done}/{n} subtasks, RSS {last['rss_mb']} MB, "
                f"{last['objects']} objects"
            )
        await client.close()
    first, after = checkpoints[1] if len(checkpoints) > 1 else checkpoints[0], checkpoints[-1]
    return {
        "bench": "fanout-memory",
        "n": n,
        "concurrency": concurrency,
        "step": step,
        "variant": "handoffs traced lean" if traced else "handoffs",
        "kept_records": session.tally.keep,
        "checkpoints": checkpoints,
        "rss_growth_mb_after_first_step": round(after["rss_mb"] - first["rss_mb"], 1),
        "objects_growth_after_first_step": after["objects"] - first["objects"],
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
