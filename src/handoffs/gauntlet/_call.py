"""One request to a hostile portfolio, as an attack sees it: which model, which role, which input.

The Gauntlet serves every model of a job from the fake provider. A request is recognised by what
it asks for: an orchestrator step offers function tools, a judge asks for a `JudgeScore`, and a
subordinate asks for its own output type (recognised by the shape of the output schema).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from handoffs.orchestrator import Subordinate
from handoffs.task import json_schema_of
from handoffs.testing import FakeRequest, Reply
from handoffs.testing.simulation import first_json
from handoffs.verify.checks import JudgeScore

__all__ = ["JUDGE", "ORCHESTRATOR", "Call", "Roles", "reply_json"]

ORCHESTRATOR = "orchestrator"
"""The role of a request that offers function tools: an orchestrator step."""
JUDGE = "judge"
"""The role of a request asking for a `JudgeScore`."""


def _shape(schema: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(cast(Mapping[str, Any], schema.get("properties", {})))


def _request_schema(request: FakeRequest) -> dict[str, Any] | None:
    if request.output_schema is not None:
        return request.output_schema
    tool = request.output_tool
    return tool.parameters if tool is not None else None


class Roles:
    """Tells which role a request plays, from the subordinates of one job."""

    def __init__(self, subordinates: Sequence[Subordinate[Any, Any]]) -> None:
        self._shapes = [(_shape(json_schema_of(s.output_type)), s) for s in subordinates]
        self._judge = _shape(json_schema_of(JudgeScore))
        self.subordinates = {s.name: s for s in subordinates}

    def of(self, request: FakeRequest) -> tuple[str, dict[str, Any] | None]:
        """The request's role and the JSON Schema of the output it asks for."""
        schema = _request_schema(request)
        function_tools = [t for t in request.tools if t is not request.output_tool]
        if function_tools and request.output_schema is None:
            return ORCHESTRATOR, None
        if schema is None:
            return "other", None
        shape = _shape(schema)
        if shape == self._judge or {"score", "reasons"} <= shape <= self._judge:
            return JUDGE, schema
        for sub_shape, sub in self._shapes:
            if sub_shape == shape:
                return sub.name, self._defs(schema, sub)
        return "other", schema

    @staticmethod
    def _defs(schema: dict[str, Any], sub: Subordinate[Any, Any]) -> dict[str, Any]:
        """The output type's own schema (constraints and `$defs` intact) where the wire's copy is
        the same shape; providers' copies may drop keywords."""
        own = json_schema_of(sub.output_type)
        return own if _shape(own) == _shape(schema) else schema


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One request to a model of the hostile portfolio."""

    request: FakeRequest
    model: str
    """Catalog id of the model asked."""
    tier: str
    role: str
    """`orchestrator`, `judge`, a subordinate's tool name, or `other`."""
    schema: dict[str, Any] | None
    """The JSON Schema of the output asked for (None for orchestrator steps)."""
    provider: str = ""
    """The provider kind serving the model (`anthropic`, `openai`, `openai-compatible`)."""
    seen: int = 1
    """How many times this model has received this very request in the run (a resend after a
    provider fault is the second): so a fault drawn for one send is drawn afresh for the next."""

    @property
    def prompt(self) -> str:
        """The latest user message: the task's input, framed as data."""
        return self.request.last_user_text

    @property
    def input(self) -> Any:
        """The first JSON value of the prompt: the task's input (None when there is none)."""
        return first_json(self.prompt)

    @property
    def is_retry(self) -> bool:
        """Whether this call retries an answer that was rejected (the prompt carries feedback)."""
        return "was rejected" in self.prompt or "did not validate" in self.prompt

    @property
    def key(self) -> str:
        """What identifies this request's content: model, role and prompt."""
        return hashlib.sha256(json.dumps([self.model, self.role, self.prompt]).encode()).hexdigest()

    def draw(self, *salt: object) -> random.Random:
        """A random source fixed by this call's content, its `seen` count and `salt`: the same
        on every run, whatever order concurrent requests arrive in."""
        return random.Random(f"{self.key}:{self.seen}:{':'.join(map(str, salt))}")


def reply_json(reply: object) -> Any:
    """The JSON a scripted `Reply` carries as its text (None when it carries none)."""
    if isinstance(reply, Reply) and reply.text:
        try:
            return json.loads(reply.text)
        except json.JSONDecodeError:
            return None
    return None
