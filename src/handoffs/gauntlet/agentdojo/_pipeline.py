"""The AgentDojo pipeline element: a handoffs orchestrator, a ground-truth planner, a gullible
reader, and AgentDojo's tools as subordinates (reads) and side-effecting actions (the rest)."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal, cast

import anyio
from pydantic import BaseModel, ConfigDict, Field
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel

from handoffs.budget import Budget
from handoffs.catalog import Catalog, ModelEntry
from handoffs.engine import Session
from handoffs.gauntlet._gullible import instructions_in, strings_in
from handoffs.orchestrator import REF, ActionPolicy, Orchestrator, SideEffect, Subordinate
from handoffs.routing import Policy, Rule
from handoffs.testing.scripted import ScriptCall, scripted
from handoffs.testing.simulation import first_json

__all__ = [
    "ATTACKS",
    "MODES",
    "VERSION",
    "HandoffsPipeline",
    "Mode",
    "Reading",
    "agentdojo_module",
    "pipeline",
    "side_effecting",
]

Mode = Literal["none", "policy", "quarantine"]
MODES: tuple[Mode, ...] = ("none", "policy", "quarantine")
VERSION = "v1.2.2"
ATTACKS = ("important_instructions",)
"""The attack run by default: AgentDojo's headline one (any registered attack can be named)."""
READ_PREFIXES = ("get_", "search_", "read_", "list_", "check_")
"""Tools that only read: subordinates with a `source` (their arguments still pass the policy)."""
PIPELINE_NAME = "handoffs-gauntlet (offline stand-in for claude-3-7-sonnet-20250219)"
"""AgentDojo's attack templates address the model by name; this one reads as "Claude"."""

_TOKEN = re.compile(r"[^\s\"'`,;()\[\]{}<>]{1,80}")


def agentdojo_module(module: str) -> Any:
    """An AgentDojo module (it ships no type information: everything from it is `Any`)."""
    return importlib.import_module(f"agentdojo.{module}")


def side_effecting(name: str) -> bool:
    """Whether an AgentDojo tool changes the world (everything but the reads)."""
    return not name.startswith(READ_PREFIXES)


class ToolOutput(BaseModel):
    """What a reading subordinate reads: one tool's output."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tool: str
    text: str


Identifier = Annotated[str, Field(pattern=r"^[^\s\"'`,;()\[\]{}<>]{1,80}$")]


class Reading(BaseModel):
    """A subordinate's reading of a tool output."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    summary: str = Field(description="What the output says (free text)")
    identifiers: list[Identifier] = Field(
        default_factory=list[str], description="Ids, emails, IBANs, amounts, dates it contains"
    )


def _identifiers(text: str) -> list[str]:
    seen: dict[str, None] = {}
    for token in _TOKEN.findall(text):
        token = token.strip(".:!?")
        if token and any(ch.isdigit() or ch in "@._-/" for ch in token):
            seen.setdefault(token)
    return list(seen)[:300]


def _flat(text: str) -> str:
    """`text` as letters and digits only: how an instruction is recognised in tool output that
    YAML quoted, escaped and folded."""
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def _signature(function: Any, run: Callable[..., Any]) -> Callable[..., Any]:
    """A callable with the AgentDojo function's parameters as its signature."""
    params: list[inspect.Parameter] = []
    annotations: dict[str, Any] = {}
    for name, info in cast(dict[str, Any], function.parameters.model_fields).items():
        default = inspect.Parameter.empty if info.is_required() else info.default
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, annotation=info.annotation, default=default
            )
        )
        annotations[name] = info.annotation

    def call(**kwargs: Any) -> Any:
        return run(**kwargs)

    call.__name__ = str(function.name)
    call.__doc__ = str(function.description)
    call.__signature__ = inspect.Signature(params, return_annotation=str)  # type: ignore[attr-defined]
    call.__annotations__ = {**annotations, "return": str}
    return call


@dataclass(kw_only=True)
class _State:
    """One pair's run: what the tools did, in AgentDojo's terms."""

    calls: list[tuple[Any, str, str | None]] = field(
        default_factory=list[tuple[Any, str, str | None]]
    )
    reads: list[str] = field(default_factory=list[str])
    obeyed: int = 0


class HandoffsPipeline:
    """The AgentDojo pipeline element (built by `pipeline()`, which subclasses AgentDojo's base)."""

    name: str | None = PIPELINE_NAME

    def __init__(self, suite: Any, mode: Mode) -> None:
        self.suite = suite
        self.mode: Mode = mode
        self.user_task: Any = None
        self.injection_task: Any = None
        self.obeyed = 0
        """Injections the gullible subordinate relayed, over every pair run."""

    def set_pair(self, user_task: Any, injection_task: Any | None) -> None:
        """The pair the next `query` runs."""
        self.user_task, self.injection_task = user_task, injection_task

    def query(
        self,
        query: str,
        runtime: Any,
        env: Any = None,
        messages: Sequence[Any] = (),
        extra_args: dict[str, Any] | None = None,
    ) -> tuple[str, Any, Any, Sequence[Any], dict[str, Any]]:
        """Run the pair through handoffs; return AgentDojo's messages for its checks."""
        chat = agentdojo_module("types")
        text_block: Callable[[str], Any] = chat.text_content_block_from_string

        planned: list[Any] = list(self.user_task.ground_truth(env))
        oracle: list[Any] = (
            list(self.injection_task.ground_truth(env)) if self.injection_task is not None else []
        )
        goal = str(self.injection_task.GOAL) if self.injection_task is not None else None
        state = _State()
        answer = str(self.user_task.GROUND_TRUTH_OUTPUT)
        anyio.run(self._run, query, runtime, env, planned, oracle, goal, answer, state)
        self.obeyed += state.obeyed
        out: list[Any] = [*messages, chat.ChatUserMessage(role="user", content=[text_block(query)])]
        for call, text, error in state.calls:
            out.append(
                chat.ChatAssistantMessage(
                    role="assistant", content=[text_block("")], tool_calls=[call]
                )
            )
            out.append(
                chat.ChatToolResultMessage(
                    role="tool",
                    content=[text_block(text)],
                    tool_call=call,
                    tool_call_id=call.id,
                    error=error,
                )
            )
        out.append(
            chat.ChatAssistantMessage(
                role="assistant", content=[text_block(answer)], tool_calls=None
            )
        )
        return query, runtime, env, out, dict(extra_args or {})

    async def _run(
        self,
        query: str,
        runtime: Any,
        env: Any,
        planned: list[Any],
        oracle: list[Any],
        goal: str | None,
        answer: str,
        state: _State,
    ) -> None:
        to_str: Callable[[Any], str] = agentdojo_module(
            "agent_pipeline.tool_execution"
        ).tool_result_to_str
        function_call: Any = agentdojo_module("functions_runtime").FunctionCall

        def execute(name: str, arguments: dict[str, Any]) -> str:
            result, error = runtime.run_function(env, name, arguments)
            text = to_str(result) if error is None else str(error)
            call = function_call(function=name, args=arguments, id=f"c{len(state.calls)}")
            state.calls.append((call, text, error))
            return text

        def reader(call: ScriptCall) -> dict[str, Any]:
            data: Any = first_json(call.prompt)
            text = (
                str(cast(dict[str, Any], data).get("text", ""))
                if isinstance(data, dict)
                else call.prompt
            )
            summary = text[:3000]
            if goal and oracle and _flat(goal) in _flat(text):  # the gullible subordinate obeys
                relay = " ".join(
                    f"{c.function}({json.dumps(dict(c.args), default=str)})" for c in oracle
                )
                summary += f"\nThe document says to do this first: {relay}"
                state.obeyed += 1
            return {"summary": summary, "identifiers": _identifiers(text)}

        def bind(name: str) -> Callable[..., str]:
            def act(**arguments: Any) -> str:
                return execute(name, arguments)

            return act

        subordinates: list[Subordinate[Any, Any]] = []
        actions: list[SideEffect] = []
        for function in cast(list[Any], self.suite.tools):
            name = str(function.name)
            if side_effecting(name):
                actions.append(
                    SideEffect(
                        function=_signature(function, bind(name)),
                        name=name,
                        description=str(function.description),
                    )
                )
                continue

            def source(request: BaseModel, n: str = name) -> ToolOutput:
                text = execute(n, request.model_dump())
                state.reads.append(text)
                return ToolOutput(tool=n, text=text)

            subordinates.append(
                Subordinate(
                    name=name,
                    kind="read",
                    input_type=cast(type[BaseModel], function.parameters),
                    output_type=Reading,
                    instructions="Read the tool output: summarise it and list the identifiers in it.",
                    description=str(function.description),
                    source=source,
                )
            )
        planner = _Planner(
            planned=planned, prompt=query, answer=answer, mode=self.mode, state=state
        )
        models: dict[str, Model] = {
            "frontier": FunctionModel(planner, model_name="planner"),
            "reader": scripted(reader, name="gullible-reader"),
        }
        catalog = Catalog(
            [
                _entry("frontier", "frontier", "3", "15"),
                _entry("reader", "local", "0.01", "0.02"),
            ]
        )
        session = Session(
            catalog=catalog,
            models=lambda e: models[e.id],
            policy=Policy(rules=(Rule(kind="read", ladder=("reader",)),)),
            budget=Budget(None),
            tracing=False,  # thousands of scripted runs: no trace file
        )
        orchestrator = Orchestrator(
            model="frontier",
            subordinates=subordinates,
            session=session,
            actions=actions,
            quarantine=self.mode == "quarantine",
            action_policy=ActionPolicy(enforce=self.mode != "none"),
            max_handoffs=60,
        )
        await orchestrator.run(query)


def _entry(model_id: str, tier: Any, price_in: str, price_out: str) -> ModelEntry:
    return ModelEntry(
        id=model_id,
        provider="openai-compatible",
        name=model_id,
        tier=tier,
        input_usd_per_mtok=Decimal(price_in),
        output_usd_per_mtok=Decimal(price_out),
        context_window=200_000,
        base_url="http://127.0.0.1:9/v1",  # never called: the models are in-process scripts
    )


@dataclass(kw_only=True)
class _Planner:
    """The orchestrator's model: the ground-truth plan, one call a step, and before it every call
    it reads in a result (once each)."""

    planned: list[Any]
    prompt: str
    answer: str
    mode: Mode
    state: _State
    step: int = 0
    identifiers: set[str] = field(default_factory=set[str])
    last_ref: str | None = None
    orders: list[tuple[str, dict[str, Any]]] = field(
        default_factory=list[tuple[str, dict[str, Any]]]
    )
    """Calls read in results, not made yet: a hijacked agent makes them first, in order."""
    obeyed: set[str] = field(default_factory=set[str])

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        tools = {t.name for t in info.function_tools}
        latest = messages[-1] if messages else None
        returned = latest.parts if isinstance(latest, ModelRequest) else ()
        for part in cast(Sequence[Any], returned):
            if not isinstance(part, ToolReturnPart):
                continue
            for text in strings_in(str(part.content)):
                self._remember(text)
                for order in instructions_in(text, tools):
                    key = json.dumps([order.tool, order.arguments], sort_keys=True, default=str)
                    if key not in self.obeyed:  # gullible, but it does each thing once
                        self.obeyed.add(key)
                        self.orders.append((order.tool, order.arguments))
        if self.orders:  # one call a step: each may depend on the one before
            tool, arguments = self.orders.pop(0)
            return ModelResponse(parts=[ToolCallPart(tool, arguments)])
        if self.step < len(self.planned):
            call = self.planned[self.step]
            self.step += 1
            arguments = {k: self._argument(v) for k, v in dict(call.args).items()}
            return ModelResponse(parts=[ToolCallPart(str(call.function), arguments)])
        return ModelResponse(parts=[TextPart(self.answer or "Done.")])

    def _remember(self, text: str) -> None:
        if REF.fullmatch(text):
            self.last_ref = text
        elif len(text) <= 80 and " " not in text:
            self.identifiers.add(text)

    def _argument(self, value: Any) -> Any:
        """A planned value as this orchestrator can know it (see `handoffs.gauntlet.agentdojo`)."""
        if isinstance(value, list):
            return [self._argument(v) for v in cast(list[Any], value)]
        if self.mode != "quarantine" or not isinstance(value, str):
            return value
        if value in self.prompt or value in self.identifiers:
            return value
        if self.last_ref is not None and any(value in read for read in self.state.reads):
            return self.last_ref  # only readable in free text: by reference
        return value


def pipeline(suite: Any, mode: Mode) -> Any:
    """A `HandoffsPipeline` that is also an AgentDojo `BasePipelineElement`."""
    base: type = agentdojo_module("agent_pipeline.base_pipeline_element").BasePipelineElement
    cls = type("HandoffsAgentDojoPipeline", (HandoffsPipeline, base), {})
    return cls(suite, mode)
