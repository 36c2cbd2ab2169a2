"""One drift check: the fixed sample of `[drift]` replayed through the live route, compared with
the baseline, recorded as a document (`handoffs worker` runs it on `[drift] schedule`, as a DBOS
scheduled workflow: `handoffs.jobs`).

```python
doc = await check_drift(Path("handoffs.toml"), at=datetime(2026, 12, 7, 6, 30, tzinfo=UTC))
doc["drift"]      # [] or the kinds whose pass rate fell below the baseline's 95 % interval
```
The run is budgeted and journaled (`<output>/<time>.journal.jsonl`): run again for the same
scheduled time (a resumed workflow), it replays only the trials that had not finished. The
result is written to `<output>/<time>.json` (the same document `handoffs qualify --route-only
--baseline ... --json` prints, plus `scheduled_at`).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from handoffs.budget import Budget, usd_text
from handoffs.errors import ConfigError
from handoffs.project._candidate import nominal_prices
from handoffs.project._config import beside, load_config
from handoffs.project._job import load_job
from handoffs.project._qualify import read_recorded, run_qualification
from handoffs.project._run import job_simulation, open_portfolio
from handoffs.routing import drift, qualification

__all__ = ["check_drift", "drift_stamp"]


def drift_stamp(at: datetime) -> str:
    """The name a run scheduled at `at` files its documents under (UTC, to the second)."""
    return at.strftime("%Y%m%dT%H%M%SZ")


def _baseline(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"[drift] baseline {path}: not a readable qualify document ({exc})"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("kinds"), dict):  # pyright: ignore[reportUnknownMemberType]
        raise ConfigError(f"[drift] baseline {path}: not a `handoffs qualify --json` document")
    return cast(dict[str, Any], doc)


async def check_drift(config_path: Path, *, at: datetime) -> dict[str, Any]:
    """Replay `[drift]`'s sample (of the `handoffs.toml` at `config_path`) through the live route
    for the run scheduled at `at`; write and return its document. A `ConfigError` when the file
    has no `[drift]` table or names something that cannot be read."""
    config = load_config(config_path)
    settings = config.drift
    if settings is None:
        raise ConfigError(f"{config_path}: no [drift] table")
    spec = load_job(beside(config_path, settings.job), config.catalog)
    source = beside(config_path, settings.sample)
    tasks = read_recorded(source)
    baseline = None if settings.baseline is None else beside(config_path, settings.baseline)
    before = None if baseline is None else _baseline(baseline)
    kinds = settings.kinds or sorted({t.kind for t in tasks} & {s.kind for s in spec.subordinates})
    folder = beside(config_path, settings.output)
    stamp = drift_stamp(at)
    budget = Budget(settings.budget_usd, name="drift")
    with open_portfolio(config, simulation=job_simulation(spec)) as portfolio:
        labels = {m: portfolio.label(m) for m in config.catalog}
        ran = await run_qualification(
            spec, config, portfolio, tasks, kinds=kinds, candidates=[], budget=budget,
            sample=settings.per_kind, journal=folder / f"{stamp}.journal.jsonl",
        )  # fmt: skip
    found = qualification(ran.trials, prices=nominal_prices(config.catalog), labels=labels)
    doc: dict[str, Any] = {
        "scheduled_at": at.isoformat(),
        "job": spec.name,
        "source": str(source),
        "baseline": None if baseline is None else str(baseline),
        "models": labels,
        "budget_usd": str(settings.budget_usd),
        "spent_usd": usd_text(budget.spent_usd),
        "stopped": ran.stopped,
        "skipped": ran.skipped,
        **found,
        "drift": drift(found, before) if before is not None else [],
    }
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{stamp}.json.part"
    part.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(part, folder / f"{stamp}.json")
    return doc
