"""Drift checks as a DBOS scheduled workflow: `handoffs worker` runs `[drift]` on its schedule.

```
[drift] schedule (cron, UTC)  -> DBOS scheduler (in every worker; one run per scheduled time)
  -> drift_workflow(scheduled_at, {"config": ".../handoffs.toml"})      workflow handoffs.drift
       -> step handoffs.drift.check: check_drift(config, at=scheduled_at)
            the fixed sample through the live route, budgeted, journaled per scheduled time,
            compared with the baseline; <output>/<time>.json written
       -> each flagged kind logged as a warning (`handoffs worker` prints it on stderr)
```
A schedule is stored in the jobs database under `SCHEDULE`, so every worker on that database
fires it and DBOS runs each scheduled time once (the workflow id is the schedule's name and the
time). A run left pending by a dead worker is handed to the jobs queue by the supervisor, as a
job is; the step runs again and its journal skips the trials already replayed. A worker started without `[drift]` removes the
schedule.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from dbos import DBOS
from pydantic import BaseModel, ConfigDict

from handoffs.jobs._database import DRIFT_WORKFLOW
from handoffs.project import DriftSettings, check_drift

__all__ = [
    "DRIFT_STEP",
    "DRIFT_WORKFLOW",
    "SCHEDULE",
    "DriftRequest",
    "drift_workflow",
    "schedule_drift",
]

log = logging.getLogger("handoffs.jobs")

SCHEDULE = "handoffs-drift"
"""The name of the drift schedule in the jobs database."""
DRIFT_STEP = "handoffs.drift.check"
"""The registered name of its one step: the re-qualification."""


class DriftRequest(BaseModel):
    """What a scheduled drift run is given (the schedule's context): the `handoffs.toml` whose
    `[drift]` table says what to replay. The file is read when the run starts: a drift check
    tests the route as it is configured then."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    config: str
    """The absolute path of `handoffs.toml`."""


@DBOS.step(name=DRIFT_STEP)
async def _check(config: str, at: str) -> dict[str, Any]:
    return await check_drift(Path(config), at=datetime.fromisoformat(at))


@DBOS.workflow(name=DRIFT_WORKFLOW)
async def drift_workflow(scheduled_at: datetime, context: Any) -> None:
    """One scheduled drift check (DBOS calls it with the scheduled time and the schedule's
    context; a test calls it directly with a time)."""
    request = DriftRequest.model_validate(context)
    doc = await _check(request.config, scheduled_at.isoformat())
    for d in doc["drift"]:
        log.warning(
            "drift: %s on %s: pass rate %s below the baseline's interval %s (was %s)",
            d["kind"], d["contender"], d["pass_rate"], d["baseline_ci95"],
            d["baseline_pass_rate"],
        )  # fmt: skip
    if doc["stopped"]:
        log.warning("drift check %s stopped early: %s", scheduled_at.isoformat(), doc["stopped"])


async def schedule_drift(config: Path | None, settings: DriftSettings | None) -> None:
    """Store the drift schedule of `config`'s `[drift]` in the jobs database (replacing any
    earlier one), or remove it when there is none (`config`: an absolute path). DBOS must be
    launched."""
    if config is None or settings is None:
        if await anyio.to_thread.run_sync(DBOS.get_schedule, SCHEDULE) is not None:
            await anyio.to_thread.run_sync(DBOS.delete_schedule, SCHEDULE)
        return
    context = DriftRequest(config=str(config)).model_dump()
    await DBOS.apply_schedules_async(
        [
            {
                "schedule_name": SCHEDULE,
                "workflow_fn": drift_workflow,
                "schedule": settings.schedule,
                "context": context,
            }
        ]
    )
    log.info("drift check scheduled: %s (UTC), %s", settings.schedule, settings.sample)
