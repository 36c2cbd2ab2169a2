"""Side-effecting tools: an argument is admitted by its provenance, under a declared policy.

A tool that changes the world — sends an email, pays, deletes, posts to a URL — is declared with
`side_effect`, saying per argument which origins it accepts (`handoffs.orchestrator.From`).
Before it runs, every argument's origins are established (`handoffs.orchestrator` provenance:
handles carry theirs exactly; a literal has the origins of the known value it is identical to, or
else those of everything the orchestrator has read) and each must be accepted. A refused call
comes back to the orchestrator as framed data; the run keeps an `ActionRecord` of every call,
executed or refused.

```python
@side_effect(accepts={"body": From.free_text("draft_reply")})
def send_reply(ticket_id: str, body: str) -> str:
    "Send a drafted reply to the customer of a ticket."
    ...

Orchestrator(..., actions=[send_reply])
```
Here the reply's *body* may come from the writer (its content is the point); the ticket it is
sent for takes the default — the goal, the job's input or a verified field — so a subordinate's
words cannot pick it. `ActionPolicy.allow` rules (`Allow(tool=, argument=, source=)`) say the same
from the roster's side. The same check guards a subordinate's `source` (`handoffs.orchestrator`):
fetching a URL or a file for a subordinate to read reaches the world too.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from pydantic import BaseModel, ConfigDict
from pydantic_ai import Tool
from pydantic_ai.framing import register_tag, wrap

from handoffs.orchestrator._origin import DEFAULT_ACCEPTS, Accepts, Origin
from handoffs.orchestrator._provenance import Ledger, Provenance

__all__ = [
    "ACTION_TAG",
    "ActionCall",
    "ActionPolicy",
    "ActionRecord",
    "Admission",
    "Allow",
    "Requirement",
    "SideEffect",
    "admit",
    "guarded_tool",
    "refuse",
    "same_record",
    "side_effect",
]

ACTION_TAG = register_tag("action_result")
"""The data frame a side-effecting tool's result (or refusal) reaches the orchestrator in."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionCall:
    """One call of a side-effecting tool as its requirements see it."""

    tool: str
    arguments: Mapping[str, Any]
    """The arguments as the tool would receive them (handles resolved)."""
    provenance: Mapping[str, Provenance]
    """Argument -> where its value came from."""
    data: Any
    """The job's input data."""


Requirement = Callable[[ActionCall], "bool | tuple[bool, str]"]
"""A predicate over a whole call (its arguments, their provenance, the job's input): the call
runs only if every requirement holds (`(False, reason)` says why not)."""


_SEGMENT = re.compile(r"\[\d+\]|[^.\[]+")


def same_record(*arguments: str, depth: int = 1) -> Requirement:
    """A requirement: the named arguments are values of one record of the job's input — the
    same item of its top-level list (`depth` path segments in common), e.g. "a refund amount
    must be an amount in the customer's own record":

    ```python
    @side_effect(accepts={"customer_id": From.job_input("[*].customer_id"),
                          "amount": From.job_input("[*].orders[*].amount")},
                 requires=(same_record("customer_id", "amount"),))
    ```
    """

    def record(path: str) -> str:
        return "".join(_SEGMENT.findall(path)[:depth])

    def check(call: ActionCall) -> tuple[bool, str]:
        found: list[set[str]] = []
        for name in arguments:
            value = call.provenance.get(name)
            origins = value.origins if value is not None else frozenset[Origin]()
            found.append({record(o.source) for o in origins if o.kind == "job_input" and o.source})
        if found and set[str].intersection(*found):
            return True, ""
        return False, f"{', '.join(arguments)} are not values of one record of the job's input"

    check.__name__ = f"same_record({', '.join(arguments)})"
    return check


@dataclass(frozen=True, slots=True, kw_only=True)
class SideEffect:
    """A tool that changes the world; its arguments' provenance is checked before it runs."""

    function: Callable[..., Any]
    """The implementation, sync or async; its signature is the tool's schema."""
    name: str
    """The tool name the orchestrator sees."""
    description: str = ""
    """When to call it (defaults to the function's docstring)."""
    accepts: Mapping[str, Accepts] = field(default_factory=dict[str, Accepts])
    """Argument -> the origins it accepts; an argument not named takes the policy's default."""
    requires: tuple[Requirement, ...] = ()
    """Predicates over the whole call, checked after provenance (see `handoffs.orchestrator`)."""

    def __post_init__(self) -> None:
        params = inspect.signature(self.function).parameters
        unknown = sorted(set(self.accepts) - set(params))
        if unknown:
            raise ValueError(f"side effect {self.name}: no argument named {', '.join(unknown)}")


@overload
def side_effect(function: Callable[..., Any], /) -> SideEffect: ...
@overload
def side_effect(
    *,
    name: str | None = None,
    description: str | None = None,
    accepts: Mapping[str, Accepts] | None = None,
    requires: tuple[Requirement, ...] = (),
) -> Callable[[Callable[..., Any]], SideEffect]: ...
def side_effect(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    accepts: Mapping[str, Accepts] | None = None,
    requires: tuple[Requirement, ...] = (),
) -> SideEffect | Callable[[Callable[..., Any]], SideEffect]:
    """Declare a function as a side-effecting tool (usable as `@side_effect` or
    `@side_effect(accepts={"amount": From.job_input()}, ...)`)."""

    def make(fn: Callable[..., Any]) -> SideEffect:
        return SideEffect(
            function=fn,
            name=name or fn.__name__,
            description=description or inspect.getdoc(fn) or "",
            accepts=dict(accepts or {}),
            requires=tuple(requires),
        )

    return make(function) if function is not None else make


@dataclass(frozen=True, slots=True, kw_only=True)
class Allow:
    """Lets one argument of one side-effecting tool take free text from a subordinate."""

    tool: str
    """The side-effecting tool's name, or `*`."""
    argument: str = "*"
    """The argument's name, or `*` for every argument."""
    source: str = "*"
    """The subordinate (tool name) whose text may flow in, or `*` for any."""

    def covers(self, tool: str, argument: str, source: str) -> bool:
        """Whether this rule lets `source`'s text into `tool(argument=...)`."""
        subordinate = source.split(".", 1)[0]
        return (
            self.tool in ("*", tool)
            and self.argument in ("*", argument)
            and self.source in ("*", subordinate)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionPolicy:
    """The roster's side of the action policy: what undeclared arguments accept, and exceptions."""

    allow: tuple[Allow, ...] = ()
    """Arguments that also accept a subordinate's free text."""
    enforce: bool = True
    """False records what would be refused but runs it anyway: an explicit, logged opt-out,
    for measuring what the policy prevents (the Gauntlet uses it), never for production."""
    default: Accepts = DEFAULT_ACCEPTS
    """What an argument no `SideEffect.accepts` names accepts."""

    def permits(self, tool: str, argument: str, source: str) -> bool:
        """Whether an `Allow` rule lets `source`'s free text reach `tool(argument=...)`."""
        return any(rule.covers(tool, argument, source) for rule in self.allow)

    def admits(self, tool: str, argument: str, origin: Origin, accepts: Accepts | None) -> bool:
        """Whether `origin` may reach `tool(argument=...)`, declared `accepts` (None: default)."""
        if (accepts if accepts is not None else self.default).admits(origin):
            return True
        return origin.kind == "free_text" and self.permits(tool, argument, origin.source)


class ActionRecord(BaseModel):
    """One call of a side-effecting tool during a run: what was asked and what happened."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tool: str
    status: Literal["executed", "refused", "failed"]
    """`refused`: the policy stopped it; `failed`: the tool raised."""
    arguments: dict[str, Any]
    """The arguments as the tool received them (handles resolved)."""
    tainted: dict[str, list[str]] = {}
    """Argument -> the origins no declaration accepted (a refused call; or, unenforced, what
    would have been refused)."""
    unmet: list[str] = []
    """Requirements (`SideEffect.requires`) that did not hold, with their reasons."""
    provenance: dict[str, list[str]] = {}
    """Argument -> every origin of its value."""
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """What the provenance check found for one call."""

    arguments: dict[str, Any]
    provenance: dict[str, Provenance]
    tainted: dict[str, list[str]]
    unmet: list[str]

    @property
    def refused(self) -> bool:
        return bool(self.tainted or self.unmet)

    def record(
        self, tool: str, status: Literal["executed", "refused", "failed"], **kw: Any
    ) -> ActionRecord:
        """The `ActionRecord` of this call."""
        return ActionRecord(
            tool=tool,
            status=status,
            arguments=self.arguments,
            tainted=self.tainted,
            unmet=self.unmet,
            provenance={a: sorted(str(o) for o in p.origins) for a, p in self.provenance.items()},
            **kw,
        )


def _frame(payload: dict[str, Any]) -> str:
    return wrap(ACTION_TAG, json.dumps(payload, ensure_ascii=False, default=str))


def admit(
    tool: str,
    kwargs: Mapping[str, Any],
    *,
    ledger: Ledger,
    policy: ActionPolicy,
    accepts: Mapping[str, Accepts] | None = None,
    requires: tuple[Requirement, ...] = (),
    data: Any = None,
) -> Admission:
    """Establish every argument's origins, check them against the declarations, then the
    requirements over the whole call."""
    arguments: dict[str, Any] = {}
    provenance: dict[str, Provenance] = {}
    tainted: dict[str, list[str]] = {}
    declared = accepts or {}
    for argument, value in kwargs.items():
        found = ledger.provenance(value)
        arguments[argument] = ledger.resolve(value)
        provenance[argument] = found
        refused = found.unaccepted(lambda o, a=argument: policy.admits(tool, a, o, declared.get(a)))
        if refused:
            tainted[argument] = [str(o) for o in refused]
    unmet: list[str] = []
    call = ActionCall(tool=tool, arguments=arguments, provenance=provenance, data=data)
    for requirement in requires:
        outcome = requirement(call)
        held, why = outcome if isinstance(outcome, tuple) else (outcome, "")
        if not held:
            name = getattr(requirement, "__name__", "requirement")
            unmet.append(f"{name}: {why}" if why else name)
    return Admission(arguments=arguments, provenance=provenance, tainted=tainted, unmet=unmet)


def refuse(tool: str, admission: Admission, log: list[ActionRecord]) -> str:
    """Record a refused call and return the framed refusal the orchestrator gets."""
    log.append(admission.record(tool, "refused"))
    where = "; ".join(f"{a} <- {', '.join(s)}" for a, s in admission.tainted.items())
    why = "arguments come from origins their declarations do not accept"
    if where:
        why += f" ({where})"
    if admission.unmet:
        why += ("; " if where else ": ") + "; ".join(admission.unmet)
    return _frame(
        {
            "status": "refused",
            "tool": tool,
            "error": f"{why}; what reaches the world follows the plan, not a subordinate's words",
        }
    )


def guarded_tool(
    effect: SideEffect,
    *,
    ledger: Ledger,
    policy: ActionPolicy,
    log: list[ActionRecord],
    data: Any = None,
) -> Tool[Any]:
    """The pydantic-ai tool that checks provenance, then runs `effect` (or refuses)."""
    fn = effect.function

    @functools.wraps(fn)
    async def call(**kwargs: Any) -> str:
        admission = admit(
            effect.name,
            kwargs,
            ledger=ledger,
            policy=policy,
            accepts=effect.accepts,
            requires=effect.requires,
            data=data,
        )
        if admission.refused and policy.enforce:
            return refuse(effect.name, admission, log)
        try:
            result = fn(**admission.arguments)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.append(admission.record(effect.name, "failed", error=error))
            shown = ledger.show_message("tool_result", effect.name, error)
            return _frame({"status": "failed", "tool": effect.name, "error": shown})
        log.append(admission.record(effect.name, "executed"))
        shown = ledger.show_value("tool_result", effect.name, _jsonable(result))
        return _frame({"status": "executed", "tool": effect.name, "result": shown})

    return Tool(call, takes_ctx=False, name=effect.name, description=effect.description)


def _jsonable(value: Any) -> Any:
    """A tool's result as plain JSON (models dumped, anything else as its text)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))
