"""Side-effecting tools: actions follow the orchestrator's plan, never a subordinate's words.

A tool that changes the world — sends an email, pays, deletes, posts to a URL — is declared with
`side_effect`. Before it runs, every argument's provenance is checked: an argument that carries
subordinate free text (an opaque reference from quarantine, or text matching what a subordinate
wrote) is refused unless an `Allow` rule of the `ActionPolicy` lets that tool's argument take that
subordinate's text. The orchestrator gets the refusal back as framed data; the run keeps an
`ActionRecord` of every call, executed or refused.

```python
@side_effect
def send_reply(ticket_id: str, body: str) -> str:
    "Send a drafted reply to the customer of a ticket."
    ...

policy = ActionPolicy(allow=(Allow(tool="send_reply", argument="body", source="draft_reply"),))
Orchestrator(..., actions=[send_reply], action_policy=policy)
```
Here the reply's *body* may come from the writer (its content is the point), but the ticket it is
sent for must come from the orchestrator's own plan. The same check guards a subordinate's
`source` (`handoffs.orchestrator`): fetching a URL or a file for a subordinate to read reaches
the world too, so its arguments follow the plan as well.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, overload

from pydantic import BaseModel, ConfigDict
from pydantic_ai import Tool
from pydantic_ai.framing import register_tag, wrap

from handoffs.orchestrator._quarantine import Quarantine

__all__ = [
    "ACTION_TAG",
    "ActionPolicy",
    "ActionRecord",
    "Allow",
    "SideEffect",
    "guarded_tool",
    "provenance",
    "refuse",
    "side_effect",
]

ACTION_TAG = register_tag("action_result")
"""The data frame a side-effecting tool's result (or refusal) reaches the orchestrator in."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SideEffect:
    """A tool that changes the world; its arguments' provenance is checked before it runs."""

    function: Callable[..., Any]
    """The implementation, sync or async; its signature is the tool's schema."""
    name: str
    """The tool name the orchestrator sees."""
    description: str = ""
    """When to call it (defaults to the function's docstring)."""


@overload
def side_effect(function: Callable[..., Any], /) -> SideEffect: ...
@overload
def side_effect(
    *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], SideEffect]: ...
def side_effect(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
) -> SideEffect | Callable[[Callable[..., Any]], SideEffect]:
    """Declare a function as a side-effecting tool (usable as `@side_effect` or `@side_effect(...)`)."""

    def make(fn: Callable[..., Any]) -> SideEffect:
        return SideEffect(
            function=fn,
            name=name or fn.__name__,
            description=description or inspect.getdoc(fn) or "",
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
    """Which subordinate text may reach which side-effecting argument (by default: none)."""

    allow: tuple[Allow, ...] = ()
    """The exceptions; everything else that carries subordinate free text is refused."""
    enforce: bool = True
    """False records what would be refused but runs it anyway: a weakened configuration, for
    measuring what the policy prevents (the Gauntlet uses it), never for production."""

    def permits(self, tool: str, argument: str, source: str) -> bool:
        """Whether `source`'s text may reach `tool(argument=...)`."""
        return any(rule.covers(tool, argument, source) for rule in self.allow)


class ActionRecord(BaseModel):
    """One call of a side-effecting tool during a run: what was asked and what happened."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tool: str
    status: Literal["executed", "refused", "failed"]
    """`refused`: the policy stopped it; `failed`: the tool raised."""
    arguments: dict[str, Any]
    """The arguments as the tool received them (references resolved)."""
    tainted: dict[str, list[str]] = {}
    """Argument -> the subordinate fields its text came from, for arguments no rule allowed."""
    error: str | None = None


def _frame(payload: dict[str, Any]) -> str:
    return wrap(ACTION_TAG, json.dumps(payload, ensure_ascii=False, default=str))


def provenance(
    tool: str, kwargs: dict[str, Any], *, quarantine: Quarantine, policy: ActionPolicy
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """`kwargs` with references resolved, and the arguments carrying subordinate free text no
    rule of `policy` allows into `tool` (argument -> the subordinate fields it came from)."""
    arguments: dict[str, Any] = {}
    tainted: dict[str, list[str]] = {}
    for argument, value in kwargs.items():
        resolved, by_ref = quarantine.resolve(value)
        sources = list(dict.fromkeys([*by_ref, *quarantine.sources_of(resolved)]))
        refused = [s for s in sources if not policy.permits(tool, argument, s)]
        if refused:
            tainted[argument] = refused
        arguments[argument] = resolved
    return arguments, tainted


def refuse(
    tool: str, arguments: dict[str, Any], tainted: dict[str, list[str]], log: list[ActionRecord]
) -> str:
    """Record a refused call and return the framed refusal the orchestrator gets."""
    log.append(ActionRecord(tool=tool, status="refused", arguments=arguments, tainted=tainted))
    where = "; ".join(f"{a} <- {', '.join(s)}" for a, s in tainted.items())
    return _frame(
        {
            "status": "refused",
            "tool": tool,
            "error": "arguments carry subordinate free text no policy allows here "
            f"({where}); what reaches the world follows the plan, not a subordinate's words",
        }
    )


def guarded_tool(
    effect: SideEffect,
    *,
    quarantine: Quarantine,
    policy: ActionPolicy,
    log: list[ActionRecord],
) -> Tool[Any]:
    """The pydantic-ai tool that checks provenance, then runs `effect` (or refuses)."""
    fn = effect.function

    @functools.wraps(fn)
    async def call(**kwargs: Any) -> str:
        arguments, tainted = provenance(effect.name, kwargs, quarantine=quarantine, policy=policy)
        if tainted and policy.enforce:
            return refuse(effect.name, arguments, tainted, log)
        try:
            result = fn(**arguments)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.append(
                ActionRecord(
                    tool=effect.name,
                    status="failed",
                    arguments=arguments,
                    tainted=tainted,
                    error=error,
                )
            )
            return _frame({"status": "failed", "tool": effect.name, "error": error})
        log.append(
            ActionRecord(tool=effect.name, status="executed", arguments=arguments, tainted=tainted)
        )
        return _frame({"status": "executed", "tool": effect.name, "result": result})

    return Tool(call, takes_ctx=False, name=effect.name, description=effect.description)
