"""Shadow routing: replay logged handoffs through a candidate policy, calling no model, and report
which decisions change and the estimated change in cost (`handoffs report shadow`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

from handoffs.budget import usd_text
from handoffs.catalog import Catalog
from handoffs.routing._router import Policy, estimate_input_tokens, route
from handoffs.task import RISKS, Risk, Task

__all__ = ["APPROXIMATIONS", "LoggedHandoff", "shadow_document"]


class LoggedHandoff(Protocol):
    """What shadow routing reads of one logged handoff (`handoffs report` rows have it)."""

    @property
    def job_id(self) -> str: ...
    @property
    def summary(self) -> Mapping[str, Any]: ...
    @property
    def route_estimate_tokens(self) -> int | None: ...
    @property
    def cost(self) -> Decimal: ...
    @property
    def delivered_tokens(self) -> tuple[int, int] | None: ...


APPROXIMATIONS = (
    "the routing question is rebuilt from the span: task kind, risk and the router's recorded "
    "prompt-size estimate, and the models whose breakers were open (`handoffs.breakers`); "
    "capabilities, cost ceilings, deadlines and per-call model overrides are not recorded, so the "
    "candidate routes without them",
    "'before' is the first rung of the recorded route",
    "cost: a changed decision is priced as the delivered attempt's recorded tokens on the "
    "candidate's first-rung model, against what the handoff actually paid (all attempts and checks); "
    "escalations and check costs under the candidate are not simulated",
)


def _question(row: LoggedHandoff) -> Task[Any]:
    """A task that routes like the logged one: same kind and risk, a prompt of the same size."""
    s = row.summary
    risk: Risk = s["risk"] if s["risk"] in RISKS else "medium"
    bare: Task[Any] = Task(kind=s["task_kind"], input="", output_type=dict, risk=risk)
    if row.route_estimate_tokens is None:
        return bare
    missing = row.route_estimate_tokens - estimate_input_tokens(bare)
    padded = "x" * max(0, 4 * missing)
    return Task(kind=s["task_kind"], input=padded, output_type=dict, risk=risk)


def _open_breakers(row: LoggedHandoff) -> dict[str, str]:
    """The models whose circuit breaker was open when the logged handoff was routed."""
    states = (str(b).rpartition(":") for b in row.summary["breakers"])
    return {model: "circuit open (as logged)" for model, _, state in states if state == "open"}


def shadow_document(
    rows: Sequence[LoggedHandoff], catalog: Catalog, policy: Policy, *, examples: int = 5
) -> dict[str, Any]:
    """Which decisions the candidate `policy` (over its `catalog`) changes, and the estimated
    change in cost."""
    changed: Counter[tuple[str, str]] = Counter()
    shown: list[dict[str, Any]] = []
    actual = estimated = Decimal(0)
    unpriced = 0
    for row in rows:
        s = row.summary
        decision = route(_question(row), catalog, policy, unavailable=_open_breakers(row))
        before = s["route"][0] if s["route"] else None
        after = decision.ladder[0] if decision.ladder else None
        actual += row.cost
        if before == after:
            estimated += row.cost
            continue
        changed[(str(before), str(after))] += 1
        tokens = row.delivered_tokens
        if tokens is None or after is None:
            unpriced += 1
            estimated += row.cost
            price = None
        else:
            price = catalog[after].cost(*tokens)
            estimated += price
        if len(shown) < examples:
            shown.append(
                {
                    "job_id": row.job_id,
                    "task_id": s["task_id"],
                    "task_kind": s["task_kind"],
                    "label": s["label"],
                    "risk": s["risk"],
                    "before": s["route"],
                    "after": list(decision.ladder),
                    "rule": decision.rule,
                    "paid_usd": usd_text(row.cost),
                    "estimated_usd": None if price is None else usd_text(price),
                }
            )
    return {
        "estimate": True,
        "handoffs": len(rows),
        "decisions_changed": sum(changed.values()),
        "changes": [
            {"before": b, "after": a, "handoffs": n} for (b, a), n in changed.most_common()
        ],
        "examples": shown,
        "cost_usd": {
            "actual": usd_text(actual),
            "estimated": usd_text(estimated),
            "change": usd_text(estimated - actual),
        },
        "unpriced_changes": unpriced,
        "approximations": list(APPROXIMATIONS),
    }
