"""Simulated cloud models for the offline portfolio, scripted on the fake provider.

A job's simulation module (a roster file) supplies the domain behaviour:

```python
def solve(output_title: str, input: dict) -> dict | None        # a subordinate's answer
def grade(output_title: str, input: dict, answer: dict) -> tuple[float, list[str]]   # the judge
def plan(data: list[dict], results: list[tuple[str, dict, dict | str]]) -> list[tuple[str, dict]] | str
```
`simulate(...)` turns it into one `ScriptedModel` that answers like a subordinate, a judge or an
orchestrator depending on what the request asks for. Without a module, subordinates answer with a
schema-valid placeholder, judges pass, and the orchestrator finishes at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from handoffs.providers import SimulatedDomain
from handoffs.task import json_schema_of
from handoffs.testing._script import FakeRequest, Reply, ScriptedModel, ToolCall
from handoffs.testing.fake_provider import FakeProvider
from handoffs.testing.server import LoopbackServer
from handoffs.verify.checks import JudgeScore, read_judge_prompt

__all__ = ["Simulation", "first_json", "placeholder", "serve", "simulate"]

_FRAME = re.compile(r"^\s*<(?P<tag>[a-z_]+)[^>]*>(?P<body>.*)</(?P=tag)>\s*$", re.S)
_DATA = re.compile(r"<job_data>(?P<body>.*?)</job_data>", re.S)

Solve = Callable[[str, dict[str, Any]], dict[str, Any] | None]
Grade = Callable[[str, dict[str, Any], dict[str, Any]], tuple[float, list[str]]]
Plan = Callable[
    [list[Any], list[tuple[str, dict[str, Any], Any]]], list[tuple[str, dict[str, Any]]] | str
]


def _shape(schema: dict[str, Any]) -> frozenset[str]:
    return frozenset(cast(dict[str, Any], schema.get("properties", {})))


@dataclass(frozen=True, slots=True, kw_only=True)
class Simulation:
    """The domain behaviour of simulated models; each part is optional.

    `output_types` lets a request's output be recognised by its schema's properties (pydantic-ai
    sends schemas without titles), so `solve` and `grade` receive the type's name.
    """

    solve: Solve | None = None
    grade: Grade | None = None
    plan: Plan | None = None
    output_types: tuple[type[Any], ...] = ()

    @classmethod
    def from_module(cls, module: Any, output_types: Sequence[type[Any]] = ()) -> Simulation:
        """Pick `solve`, `grade` and `plan` off a module (any may be missing)."""
        return cls(
            solve=getattr(module, "solve", None),
            grade=getattr(module, "grade", None),
            plan=getattr(module, "plan", None),
            output_types=tuple(output_types),
        )

    @classmethod
    def of(cls, domain: Simulation | SimulatedDomain | None) -> Simulation:
        """The simulation a job's domain describes (an empty one for None)."""
        if isinstance(domain, Simulation):
            return domain
        if domain is None:
            return cls()
        return cls.from_module(domain.module, domain.output_types)

    def title_of(self, schema: dict[str, Any]) -> str:
        """The name of the output type a request asks for: its schema title, else by shape."""
        if schema.get("title"):
            return str(schema["title"])
        shape = _shape(schema)
        for tp in (*self.output_types, JudgeScore):
            if _shape(json_schema_of(tp)) == shape:
                return tp.__name__
        return ""


def first_json(text: str) -> Any:
    """The first JSON object or array in `text` (None when there is none)."""
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                return decoder.raw_decode(text, i)[0]
            except json.JSONDecodeError:
                continue
    return None


def placeholder(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """A small value that satisfies a JSON Schema (objects, arrays, enums, scalars, `$ref`)."""
    defs = defs if defs is not None else cast(dict[str, Any], schema.get("$defs", {}))
    if "$ref" in schema:
        return placeholder(defs[str(schema["$ref"]).rsplit("/", 1)[-1]], defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return placeholder(schema[key][0], defs)
    kind = schema.get("type", "object")
    if kind == "object":
        props = cast(dict[str, Any], schema.get("properties", {}))
        return {
            k: placeholder(v, defs) for k, v in props.items() if k in schema.get("required", props)
        }
    if kind == "array":
        return []
    return {"string": "simulated", "integer": 0, "number": 0.0, "boolean": False, "null": None}.get(
        str(kind), None
    )


def _unframe(text: str) -> Any:
    match = _FRAME.match(text)
    body = match.group("body") if match else text
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return body


def _plan_reply(sim: Simulation, request: FakeRequest) -> Reply:
    if sim.plan is None:
        return Reply(text="Done (simulated orchestrator has no plan).")
    first_user = next((m.text for m in request.messages if m.role == "user"), "")
    match = _DATA.search(first_user)
    data = first_json(match.group("body")) if match else None
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    results: list[tuple[str, dict[str, Any], Any]] = []
    for message in request.messages:
        for call in message.tool_calls:
            calls[call.id] = (call.name, call.arguments)
        if message.role == "tool" and message.tool_call_id in calls:
            name, args = calls[message.tool_call_id]
            results.append((name, args, _unframe(message.text)))
    step = sim.plan(cast(list[Any], data) if isinstance(data, list) else [], results)
    if isinstance(step, str):
        return Reply(text=step)
    return Reply(tool_calls=[ToolCall(name=name, arguments=args) for name, args in step])


def _schema(request: FakeRequest) -> dict[str, Any] | None:
    if request.output_schema is not None:
        return request.output_schema
    tool = request.output_tool
    return tool.parameters if tool is not None else None


def _answer(sim: Simulation, request: FakeRequest) -> Reply:
    schema = _schema(request)
    function_tools = [t for t in request.tools if request.output_tool is not t]
    if function_tools and not request.output_schema:
        return _plan_reply(sim, request)
    if schema is None:
        return Reply(text="OK")
    title = sim.title_of(schema)
    prompt = request.last_user_text
    if title == "JudgeScore":  # read through the datamarks, as a model would
        asked = read_judge_prompt(prompt)
        if sim.grade is None or asked is None:
            return Reply.json({"score": 1.0, "reasons": []})
        name, given, answer, criteria = asked
        score, reasons = sim.grade(name, first_json(given), first_json(answer))
        graded = [{"criterion": n, "score": score} for n in range(1, criteria + 1)]
        return Reply.json({"score": score, "reasons": reasons, "criteria": graded})
    task_input = first_json(prompt)
    answer = (
        sim.solve(title, cast(dict[str, Any], task_input))
        if sim.solve and isinstance(task_input, dict)
        else None
    )
    return Reply.json(answer if answer is not None else placeholder(schema))


def simulate(
    simulation: Simulation | SimulatedDomain | None = None, *, latency_s: float = 0.0
) -> ScriptedModel:
    """One scripted model that answers as a subordinate, a judge or an orchestrator."""
    sim = Simulation.of(simulation)
    return ScriptedModel(answer=lambda request: _answer(sim, request), latency_s=latency_s)


@contextmanager
def serve(latency_s: Mapping[str, float], domain: SimulatedDomain | None) -> Generator[str]:
    """The `fake` simulator (a `handoffs.providers` `Simulator`): every named model scripted by
    `simulate(domain)` on one fake provider, on a loopback socket, until the block ends."""
    sim = Simulation.of(domain)
    scripted = {name: simulate(sim, latency_s=latency) for name, latency in latency_s.items()}
    with LoopbackServer(FakeProvider(scripted)) as server:
        yield server.base_url
