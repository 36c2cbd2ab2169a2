"""Verification: the `Check` protocol and running checks over a subordinate's output.

A check returns a `Verdict`; it never raises to reject. The engine decides what a failed verdict
means (retry with feedback, escalate, degrade). Checks that need a model (judge, agreement) call
it through `CheckContext.ask`, which the engine charges to the same budget as the handoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from handoffs.handoff import Verdict
from handoffs.task import Answer, Ask, Check, CheckContext, Task

__all__ = ["Answer", "Ask", "Check", "CheckContext", "run_checks", "schema_verdict"]


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
