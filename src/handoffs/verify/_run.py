"""Verification: the `Check` protocol and running checks over a subordinate's output.

A check returns a `Verdict`; it never raises to reject. The engine decides what a failed verdict
means (retry with feedback, escalate, degrade). Checks that need a model (judge, agreement) call
it through `CheckContext.ask`, which the engine charges to the same budget as the handoff.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from handoffs.handoff import Verdict
from handoffs.task import Answer, Ask, Check, CheckContext, Task

__all__ = ["Answer", "Ask", "Check", "CheckContext", "run_checks", "schema_verdict"]


def schema_verdict(task: Task[Any], output: Any) -> Verdict:
    """Check an output against the JSON Schema of the task's output type."""
    errors = task.output_errors(task.dump_output(output))
    return Verdict(check="schema", passed=not errors, reasons=tuple(errors[:5]))


class _Schema:
    """The schema check as a `Check`: it always runs first. An output pydantic has just validated
    as the task's output type (`validated`) passes without a second validation by jsonschema."""

    name = "schema"

    def __init__(self, *, validated: bool = False) -> None:
        self.validated = validated

    async def __call__(self, output: Any, ctx: CheckContext) -> Verdict:
        if self.validated and type(output) is ctx.task.output_type:
            return Verdict(check="schema", passed=True)
        return schema_verdict(ctx.task, output)


async def run_checks(
    output: Any,
    ctx: CheckContext,
    checks: Sequence[Check],
    *,
    wrap: Callable[[Check], Check] | None = None,
    validated: bool = False,
) -> list[Verdict]:
    """Run the schema check then each check in order, stopping at the first that fails.

    Stopping early keeps expensive checks (a judge) from running on output a cheap one rejected.
    `wrap`, when given, wraps each check, the schema check included (the engine's tracing runs
    each in its own span this way). `validated`: the output was just validated as the task's
    output type by pydantic (the engine's calls), so the schema check does not validate it again.
    """
    schema = _Schema(validated=validated)
    verdicts: list[Verdict] = []
    for check in (schema, *checks):
        run = wrap(check) if wrap is not None else check
        if check is schema:  # the schema check itself is never "broken": let it raise
            verdict = await run(output, ctx)
        else:
            try:
                verdict = await run(output, ctx)
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
