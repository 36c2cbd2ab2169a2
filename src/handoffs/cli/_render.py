"""How a job's report reads in a terminal: the handoff table and the summary lines."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from rich.table import Table

from handoffs.handoff import HandoffRecord
from handoffs.project import JobReport

__all__ = ["handoff_line", "job_summary", "job_table", "money"]


def money(value: Decimal) -> str:
    return f"${value:.6f}"


def _verdict_marks(record: HandoffRecord) -> str:
    """`✓✓✓` for the delivered output's checks, after `✗judgex2` for what earlier attempts failed."""
    failed = Counter(
        next((v.check.removeprefix("predicate:") for v in a.verdicts if not v.passed), a.outcome)
        for a in record.attempts
        if a.outcome != "accepted"
    )
    rejected = [f"✗{name}" + (f"x{n}" if n > 1 else "") for name, n in failed.items()]
    final = (
        "".join("✓" if v.passed else "✗" for v in record.verdicts) if not record.degraded else ""
    )
    return " ".join([*rejected, final]).strip() or "—"


def handoff_line(record: HandoffRecord) -> str:
    """One finished handoff in a line: `classify T-002: degraded (verification) $0.000480`."""
    how = (
        f"by {record.model}"
        if record.status == "delivered"
        else f"({record.cause or 'no cause recorded'})"
    )
    item = record.label or record.task_id
    return f"{record.task_kind} {item}: {record.status} {how} {money(record.cost_usd)}"


def job_table(report: JobReport) -> Table:
    table = Table(title=f"job {report.job} ({report.job_id})", title_justify="left")
    for col in ("subtask", "route", "model", "attempts", "verdicts", "cost"):
        table.add_column(col, justify="right" if col in ("attempts", "cost") else "left")
    for r in report.handoffs:
        style = "yellow" if r.degraded else ("cyan" if r.escalations else None)
        model = r.model or ("degraded" if r.degraded else "failed")
        if r.model is None and r.cause:
            model += f" ({r.cause})"
        if r.escalations:
            model += f" (↑{r.escalations})"
        route = "→".join(r.route)
        if r.cache in ("exact", "semantic"):
            route = f"cache:{r.cache} {r.cache_similarity:.2f} ← {r.cache_source}"
        table.add_row(
            f"{r.task_kind} {r.label or r.task_id}",
            route,
            model,
            str(len(r.attempts)),
            _verdict_marks(r),
            money(r.cost_usd),
            style=style,
        )
    return table


def job_summary(report: JobReport) -> str:
    saved = report.all_frontier_cost_usd - report.total_cost_usd
    share = (
        f" ({report.total_cost_usd / report.all_frontier_cost_usd:.0%} of all-frontier)"
        if report.all_frontier_cost_usd
        else ""
    )
    lines = [
        f"status: {report.status}" + (f" — {report.error}" if report.error else ""),
        f"handoffs: {len(report.handoffs)}   escalations: {report.escalations}   "
        f"degraded: {report.degraded}",
        f"spent: {money(report.total_cost_usd)}{share}"
        + (f" of a {money(report.budget_usd)} budget" if report.budget_usd is not None else ""),
        f"all-frontier would cost: {money(report.all_frontier_cost_usd)}   saved: {money(saved)}",
    ]
    looked_up = [r for r in report.handoffs if r.cache is not None]
    if looked_up:
        kinds = [r.cache for r in looked_up]
        refused = sum(1 for r in looked_up if r.cache == "miss" and r.cache_source)
        lines.append(
            f"cache: {kinds.count('exact')} exact, {kinds.count('semantic')} verified near-duplicate, "
            f"{kinds.count('miss')} missed ({refused} near-duplicate refused by its checks)   "
            f"saved: {money(report.cache_saved_usd)}"
        )
    return "\n".join(lines)
