"""A job's progress, read from its journal: the steps DBOS recorded as they finished.

Finished handoffs are `handoffs.handoff` steps (their records); orchestrator requests are
`handoffs.orchestrator.request` steps (their cost and how many tool calls they made). A handoff
is *running* when the orchestrator's latest request that called tools asked for it and no step
has finished it yet. A request step without tool calls asks for nothing: it is the orchestrator's
final answer, or a call the prober made through the job's journaled models while handoffs were in
flight, which must not reset the count (it did: `jobs status` said `running: 0` mid-batch).
A provider batch (the batch lane) is *pending* from its `handoffs.batch.submit` step until its
`handoffs.batch.results` step.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from dbos import StepInfo
from pydantic import BaseModel, ConfigDict

from handoffs.handoff import HandoffRecord
from handoffs.jobs._batch import BATCH_RESULTS_STEP, BATCH_SUBMIT_STEP
from handoffs.jobs._durable import HANDOFF_STEP, ORCHESTRATOR_STEP, possibly_billed

__all__ = ["JobProgress", "progress_of"]


class JobProgress(BaseModel):
    """Where a job stands: handoffs done, running and failed; money spent against its budget."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    done: int = 0
    """Handoffs that finished with an output (delivered or degraded)."""
    degraded: int = 0
    """Of those, how many fell back to the task's declared fallback."""
    failed: int = 0
    """Handoffs that finished without an output."""
    running: int = 0
    """Handoffs asked for and not finished yet."""
    orchestrator_requests: int = 0
    spent_usd: Decimal = Decimal(0)
    """Every finished handoff and orchestrator request, in USD, and what the runs of handoffs a
    crash cut off may have been billed."""
    possibly_billed_usd: Decimal = Decimal(0)
    """Of `spent_usd`: what runs of handoffs that a crash cut off may have been billed (their
    calls' spend and in-flight reservations, journaled before each request), beyond the records
    of the runs that finished them."""
    budget_usd: Decimal | None = None
    pending_batches: dict[str, int] = {}
    """Provider batches the job waits for (the batch lane): batch id -> its handoffs."""
    handoffs: list[HandoffRecord] = []
    """The finished handoffs, in the order they were started."""


def progress_of(steps: list[StepInfo], *, budget_usd: Decimal | None, active: bool) -> JobProgress:
    """Summarise a job's journaled steps; `active` when the job may still start handoffs."""
    records: list[HandoffRecord] = []
    failed = orchestrator = 0
    spent = possibly = Decimal(0)
    asked, asked_at = 0, -1
    finished_since = 0
    batches: dict[str, int] = {}
    for step in sorted(steps, key=lambda s: s["function_id"]):
        output = step["output"]
        if step["function_name"] == BATCH_SUBMIT_STEP and isinstance(output, dict):
            batch = cast(dict[str, Any], output)["batch"]
            batches[str(batch["id"])] = int(batch["request_count"])
        elif step["function_name"] == BATCH_RESULTS_STEP and isinstance(output, dict):
            batches.pop(str(cast(dict[str, Any], output).get("batch_id")), None)
        elif step["function_name"] == ORCHESTRATOR_STEP and isinstance(output, dict):
            journal = cast(dict[str, Any], output)
            orchestrator += 1
            spent += Decimal(str(journal["cost_usd"]))
            if int(journal["tool_calls"]):  # a request without tool calls starts no handoff
                asked, asked_at = int(journal["tool_calls"]), step["function_id"]
                finished_since = 0
        elif step["function_name"] == HANDOFF_STEP and isinstance(output, dict):
            journal = cast(dict[str, Any], output)
            if step["function_id"] > asked_at:
                finished_since += 1
            interrupted = possibly_billed(journal)  # an interrupted earlier run's calls
            spent += interrupted
            possibly += interrupted
            raw = journal.get("record")
            if raw is None:
                failed += 1
                continue
            record = HandoffRecord.model_validate(raw)
            spent += record.cost_usd
            records.append(record)
            if record.status == "failed":
                failed += 1
    return JobProgress(
        done=sum(1 for r in records if r.status != "failed"),
        degraded=sum(1 for r in records if r.degraded),
        failed=failed,
        running=max(0, asked - finished_since) if active else 0,
        orchestrator_requests=orchestrator,
        spent_usd=spent,
        possibly_billed_usd=possibly,
        budget_usd=budget_usd,
        pending_batches=batches if active else {},
        handoffs=records,
    )
