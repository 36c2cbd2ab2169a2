"""Verification: the `Check` protocol and running checks over a subordinate's output.

A check returns a `Verdict`; it never raises to reject. The engine decides what a failed verdict
means (retry with feedback, escalate, degrade). Checks that need a model (judge, agreement) call
it through `CheckContext.ask`, which the engine charges to the same budget as the handoff.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, TypeVar, runtime_checkable

from handoffs.catalog import Catalog
from handoffs.handoff import Verdict
from handoffs.task import Task

__all__ = ["Answer", "Ask", "Check", "CheckContext", "run_checks", "schema_verdict"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What a model said when a check asked it something, and what that cost."""

    output: Any
    model: str
    cost_usd: Decimal
    input_tokens: int = 0
    output_tokens: int = 0


Ask = Callable[[str, str, str, type[Any]], Awaitable[Answer]]
"""`ask(model_id, instructions, prompt, output_type)`: one typed call, charged to the handoff's budget."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckContext:
    """What a check may know about the output it is judging, and how it may call a model."""

    task: Task[Any]
    producer: str
    """Catalog id of the model that produced the output."""
    catalog: Catalog
    ask: Ask


@runtime_checkable
class Check(Protocol):
    """Something that inspects an output and returns a `Verdict`."""

    @property
    def name(self) -> str:
        """Short name used in verdicts and traces."""
        ...

    async def __call__(self, output: Any, ctx: CheckContext) -> Verdict:
        """Judge `output`; return a verdict (never raise to reject)."""
        ...


def schema_verdict(task: Task[Any], output: Any) -> Verdict:
    """Check an output against the JSON Schema of the task's output type."""
    errors = task.output_errors(task.dump_output(output))
    return Verdict(check="schema", passed=not errors, reasons=tuple(errors[:5]))


async def run_checks(output: Any, ctx: CheckContext, checks: Sequence[Check]) -> list[Verdict]:
    """Run the schema check then each check in order, stopping at the first that fails.

    Stopping early keeps expensive checks (a judge) from running on output a cheap one rejected.
    """
    verdicts = [schema_verdict(ctx.task, output)]
    if not verdicts[0].passed:
        return verdicts
    for check in checks:
        try:
            verdict = await check(output, ctx)
        except Exception as exc:  # a broken check must not pass output silently
            verdict = Verdict(
                check=check.name,
                passed=False,
                reasons=(f"check raised {type(exc).__name__}: {exc}",),
            )
        verdicts.append(verdict)
        if not verdict.passed:
            break
    return verdicts
