"""How a job's report reads in a terminal: the handoff table and the summary lines."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from rich.table import Table

from handoffs.handoff import HandoffRecord
from handoffs.project import JobReport

__all__ = ["baseline_table", "handoff_line", "job_summary", "job_table", "money"]


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
    cached = any(r.cache_read_tokens for r in report.handoffs)
    columns = ("subtask", "route", "model", "attempts", "verdicts", "cost")
    for col in (*columns, "cached in") if cached else columns:
        table.add_column(
            col, justify="right" if col in ("attempts", "cost", "cached in") else "left"
        )
    for r in report.handoffs:
        style = "yellow" if r.degraded else ("cyan" if r.escalations else None)
        model = r.model or ("degraded" if r.degraded else "failed")
        if r.model is None and r.cause:
            model += f" ({r.cause})"
        if (
            r.escalations and r.status == "delivered"
        ):  # a degraded one was not escalated to anything
            model += f" (↑{r.escalations})"
        route = "→".join(r.route)
        if r.batch_id is not None:
            route = f"batch {r.batch_id} · {route}"
        if r.cache in ("exact", "semantic"):
            route = f"cache:{r.cache} {r.cache_similarity:.2f} ← {r.cache_source}"
        table.add_row(
            f"{r.task_kind} {r.label or r.task_id}",
            route,
            model,
            str(len(r.attempts)),
            _verdict_marks(r),
            money(r.cost_usd),
            *([f"{r.cache_read_tokens:,}"] if cached else []),
            style=style,
        )
    return table


def job_summary(report: JobReport) -> str:
    handoff_cost = report.total_cost_usd - report.orchestrator_cost_usd
    lines = [
        f"status: {report.status}" + (f" — {report.error}" if report.error else ""),
        f"handoffs: {len(report.handoffs)}   escalations: {report.escalations}   "
        f"degraded: {report.degraded}",
        f"spent: {money(report.total_cost_usd)} (orchestrator {money(report.orchestrator_cost_usd)}"
        f", handoffs {money(handoff_cost)})"
        + (f" of a {money(report.budget_usd)} budget" if report.budget_usd is not None else ""),
    ]
    if (per_item := report.orchestrator_tokens_per_item) is not None:
        lines.append(f"orchestrator tokens: {per_item:,.0f} per item ({report.items} items)")
    if report.gold is not None:
        lines.append(
            f"gold accuracy: {report.gold.accuracy:.1%} ({report.gold.correct} of "
            f"{report.gold.fields} fields)"
        )
    lines.append(
        f"re-priced (this run's tokens at frontier rates, not a run): "
        f"{money(report.repriced_frontier_cost_usd)}"
    )
    read = report.prompt_cache_read_tokens + report.orchestrator_cache_read_tokens
    if read or report.prompt_cache_write_tokens:
        saved = report.prompt_cache_saved_usd + report.orchestrator_prompt_cache_saved_usd
        lines.append(
            f"prompt cache saved {money(saved)} (orchestrator "
            f"{money(report.orchestrator_prompt_cache_saved_usd)}, handoffs "
            f"{money(report.prompt_cache_saved_usd)}): {read:,} input tokens read from "
            "providers' caches"
        )
    stand_ins = [r for r in report.handoffs if r.simulated]
    if stand_ins:
        models = sorted({r.model for r in stand_ins if r.model})
        lines.append(
            f"SIMULATED: {len(stand_ins)} of {len(report.handoffs)} answers are stand-ins from "
            f"simulated models ({', '.join(models)}: no key set), not model answers"
        )
    if report.batched:
        escalated = sum(
            1
            for r in report.handoffs
            if r.batch_id and r.attempts and r.attempts[-1].lane != "batch"
        )
        lines.append(
            f"batch lane: {report.batched} handoffs in {len(report.batch_ids)} provider "
            f"batch{'es' if len(report.batch_ids) != 1 else ''} ({', '.join(report.batch_ids)}), "
            f"{escalated} escalated by the ordinary route   "
            f"saved: {money(report.batch_saved_usd)} against the ordinary price"
        )
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


def baseline_table(report: JobReport) -> Table:
    """This run beside its single-model baseline: cost, calls, latency, gold accuracy."""
    base = report.baseline
    table = Table(title="against a single-model run of the same job", title_justify="left")
    for col in ("run", "cost", "orchestrator", "handoffs", "calls", "latency", "gold accuracy"):
        table.add_column(col, justify="left" if col == "run" else "right")
    rows = [("this run", report)] + ([("single-model", base)] if base is not None else [])
    for name, r in rows:
        table.add_row(
            name,
            money(r.total_cost_usd),
            money(r.orchestrator_cost_usd),
            money(r.total_cost_usd - r.orchestrator_cost_usd),
            str(r.calls),
            f"{r.elapsed_s:.1f} s",
            f"{r.gold.accuracy:.1%}" if r.gold is not None else "—",
        )
    if base is not None and base.total_cost_usd:
        share = report.total_cost_usd / base.total_cost_usd
        table.caption = f"this run cost {share:.0%} of the single-model run"
    return table
