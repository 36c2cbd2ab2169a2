"""The period-over-period diff of `handoffs report --since 7d --compare` as OpenTelemetry gauges,
so the weekly route and spend change reaches Prometheus beside the other metrics.

| instrument                        | unit    | attributes                                           |
|-----------------------------------|---------|------------------------------------------------------|
| `handoffs.route.share`            | `1`     | `handoffs.task.kind`, `handoffs.model`, `handoffs.period` |
| `handoffs.route.tier_share`       | `1`     | `handoffs.tier`, `handoffs.period`                   |
| `handoffs.route.tier_share.change`| `1`     | `handoffs.tier`                                      |
| `handoffs.spend`                  | `{USD}` | `handoffs.period`                                    |
| `handoffs.spend.change`           | `{USD}` | —                                                    |

`handoffs.period` is `current` (the last `--since`) or `previous` (the one before). A route share
is the share of a kind's handoffs (or, by tier, of all handoffs) delivered by that model or tier;
a handoff that was not delivered counts under `(failed)` or `(degraded)`. Spend is the total: the
handoffs and the jobs' orchestrators. A model or tier seen in one period only is 0 in the other.

```python
doc = report_document(collect_jobs(directory), since=timedelta(days=7), compare=True)
meters = job_meter_provider("report-20261207", directory=directory, env=os.environ)
record_period_change(doc, meters)
meters.shutdown()     # written to report-20261207.metrics.jsonl, pushed over OTLP if configured
```
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from opentelemetry.metrics import MeterProvider

__all__ = ["PERIOD", "record_period_change"]

PERIOD = "handoffs.period"
"""The attribute that says which period a gauge reading is of: `current` or `previous`."""


def _shares(doc: Mapping[str, Any]) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for kind, k in doc["task_kinds"].items():
        total = k["handoffs"]
        for model, n in k["models"].items():
            found[(kind, model)] = round(n / total, 4) if total else 0.0
    return found


def _tiers(doc: Mapping[str, Any]) -> dict[str, float]:
    return {tier: float(r["share"]) for tier, r in doc["routes"]["by_tier"].items()}


def record_period_change(doc: Mapping[str, Any], meter_provider: MeterProvider) -> None:
    """Set the gauges of a `report_document(..., compare=True)` document on `meter_provider`
    (a `ValueError` for a document without a previous period)."""
    previous = doc.get("previous")
    if previous is None:
        raise ValueError("a report document with a previous period (compare=True) is needed")
    meter = meter_provider.get_meter("handoffs")
    share = meter.create_gauge(
        "handoffs.route.share",
        unit="1",
        description="Share of a task kind's handoffs delivered by a model, per report period",
    )
    tier_share = meter.create_gauge(
        "handoffs.route.tier_share",
        unit="1",
        description="Share of all handoffs delivered by a tier, per report period",
    )
    tier_change = meter.create_gauge(
        "handoffs.route.tier_share.change",
        unit="1",
        description="A tier's share of handoffs: this report period minus the previous one",
    )
    spend = meter.create_gauge(
        "handoffs.spend", unit="{USD}", description="Total spend per report period"
    )
    spend_change = meter.create_gauge(
        "handoffs.spend.change",
        unit="{USD}",
        description="Total spend: this report period minus the previous one",
    )
    now, before = _shares(doc), _shares(previous)
    for kind, model in sorted(set(now) | set(before)):
        for period, values in (("current", now), ("previous", before)):
            attrs = {"handoffs.task.kind": kind, "handoffs.model": model, PERIOD: period}
            share.set(values.get((kind, model), 0.0), attrs)
    tiers_now, tiers_before = _tiers(doc), _tiers(previous)
    for tier in sorted(set(tiers_now) | set(tiers_before)):
        a, b = tiers_now.get(tier, 0.0), tiers_before.get(tier, 0.0)
        tier_share.set(a, {"handoffs.tier": tier, PERIOD: "current"})
        tier_share.set(b, {"handoffs.tier": tier, PERIOD: "previous"})
        tier_change.set(round(a - b, 4), {"handoffs.tier": tier})
    total, earlier = Decimal(doc["total_cost_usd"]), Decimal(previous["total_cost_usd"])
    spend.set(float(total), {PERIOD: "current"})
    spend.set(float(earlier), {PERIOD: "previous"})
    spend_change.set(float(total - earlier))
