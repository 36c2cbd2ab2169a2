"""Reading a job's JSONL trace back: the span tree, a summary per handoff, and a Rich tree.

```
job support-triage (3f2a9c1d0b7e) · completed · $0.012345 · 2.31s
└── orchestrator (claude-sonnet-4-6) · 4 model calls · 2.30s
    ├── ✓ classify T-001 · small · route small→mid→frontier · 1 attempt · 0.05s · $0.000021
    └── ✓ draft T-004 · frontier ↑1 · route mid→frontier · 2 attempts · 0.31s · $0.004100
```
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from rich.text import Text
from rich.tree import Tree

from handoffs.tracing._export import trace_path
from handoffs.tracing._spans import HANDOFF_SPAN

__all__ = [
    "SpanNode",
    "charges",
    "handoff_summary",
    "is_handoff",
    "load_trace",
    "render_tree",
    "trace_document",
]

_JOB_ID = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(kw_only=True, slots=True)
class SpanNode:
    """One span read back from a trace file, with its children in start order."""

    span: dict[str, Any]
    children: list[SpanNode] = field(default_factory=list["SpanNode"])

    @property
    def name(self) -> str:
        return str(self.span["name"])

    @property
    def attributes(self) -> dict[str, Any]:
        return self.span.get("attributes") or {}

    @property
    def duration_s(self) -> float:
        start, end = self.span.get("start_time_unix_nano"), self.span.get("end_time_unix_nano")
        return round((end - start) / 1e9, 4) if start and end else 0.0

    def walk(self) -> list[SpanNode]:
        """This node and every descendant, depth first."""
        return [self, *(n for c in self.children for n in c.walk())]


def load_trace(directory: Path, job_id: str) -> list[SpanNode] | None:
    """The root spans of a job's trace, or None when there is no finished trace for `job_id`."""
    if not _JOB_ID.fullmatch(job_id) or job_id.startswith(".") or job_id.endswith(".metrics"):
        return None  # `<job>.metrics.jsonl` holds the job's metrics, not spans
    path = trace_path(directory, job_id)
    if not path.is_file():
        return None
    spans = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    nodes = {s["span_id"]: SpanNode(span=s) for s in spans}
    roots: list[SpanNode] = []
    for node in sorted(nodes.values(), key=lambda n: n.span.get("start_time_unix_nano") or 0):
        parent = nodes.get(node.span.get("parent_span_id") or "")
        (parent.children if parent else roots).append(node)
    return roots


def is_handoff(node: SpanNode) -> bool:
    """Whether a span is a finished handoff span."""
    return node.name.startswith(HANDOFF_SPAN + " ") and "handoffs.status" in node.attributes


def handoff_summary(node: SpanNode) -> dict[str, Any]:
    """What `trace show` says about one handoff span."""
    a = node.attributes
    return {
        "task_id": a.get("handoffs.task.id"),
        "task_kind": a.get("handoffs.task.kind"),
        "label": a.get("handoffs.task.label"),
        "status": a.get("handoffs.status"),
        "risk": a.get("handoffs.task.risk"),
        "route": a.get("handoffs.route", []),
        "route_reasons": a.get("handoffs.route.reasons", []),
        "attempts": a.get("handoffs.attempts", 0),
        "outcomes": a.get("handoffs.attempt.outcomes", []),
        "attempt_models": a.get("handoffs.attempt.models", []),
        "attempt_costs_usd": a.get("handoffs.attempt.costs_usd"),
        "faults": a.get("handoffs.attempt.faults", []),
        "escalations": a.get("handoffs.escalations", 0),
        "model": a.get("handoffs.model"),
        "provider": a.get("handoffs.provider"),
        "tier": a.get("handoffs.tier"),
        "verdicts": a.get("handoffs.verdicts", []),
        "evaluations": [e["attributes"] for e in node.span.get("events", [])],
        "cost_usd": a.get("handoffs.cost_usd"),
        "budget_left_usd": a.get("handoffs.budget.left_usd"),
        "degraded": a.get("handoffs.degraded", False),
        "cause": a.get("handoffs.cause"),
        "breakers": a.get("handoffs.breakers", []),
        "latency_s": node.duration_s,
    }


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def charges(h: dict[str, Any]) -> dict[str, Decimal]:
    """Who one handoff's cost (a `handoff_summary`) is charged to, by model.

    Each attempt's cost goes to the model it called (`handoffs.attempt.costs_usd`), so a failed
    attempt that escalated is charged to the model that failed. Traces written before that
    attribute existed charge the whole cost to the model that delivered, or to `(degraded)` /
    `(failed)`; so does any remainder the attempts do not account for.
    """
    total = _decimal(h["cost_usd"])
    delivered = h["status"] == "delivered" and h["model"]
    where = str(h["model"]) if delivered else f"({h['status']})"
    models: list[Any] = list(h.get("attempt_models") or [])
    costs: list[Any] | None = h.get("attempt_costs_usd")
    charged: dict[str, Decimal] = {}
    if costs is None or not models or len(costs) != len(models):
        return {where: total}
    for model, cost in zip(map(str, models), costs, strict=True):
        charged[model] = charged.get(model, Decimal(0)) + _decimal(cost)
    rest = total - sum(charged.values(), Decimal(0))
    if rest:
        charged[where] = charged.get(where, Decimal(0)) + rest
    return charged


def _outline(node: SpanNode) -> dict[str, Any]:
    return {
        "name": node.name,
        "duration_s": node.duration_s,
        "status": node.span.get("status", {}).get("code"),
        "children": [_outline(c) for c in node.children],
    }


def trace_document(job_id: str, roots: list[SpanNode]) -> dict[str, Any]:
    """The `trace show --json` document: the job, every handoff, and the span outline."""
    workflow = next((r for r in roots if r.name.startswith("invoke_workflow")), None)
    attrs = workflow.attributes if workflow else {}
    handoffs = [n for r in roots for n in r.walk() if is_handoff(n)]
    return {
        "job_id": job_id,
        "job": attrs.get("gen_ai.workflow.name"),
        "status": attrs.get("handoffs.job.status"),
        "cost_usd": attrs.get("handoffs.cost_usd"),
        "orchestrator_cost_usd": attrs.get("handoffs.orchestrator.cost_usd"),
        "duration_s": workflow.duration_s if workflow else None,
        "spans": sum(len(r.walk()) for r in roots),
        "handoffs": [handoff_summary(n) for n in handoffs],
        "tree": [_outline(r) for r in roots],
    }


def _handoff_line(h: dict[str, Any]) -> Text:
    ok = h["status"] == "delivered"
    style = (
        "yellow" if h["degraded"] else ("red" if not ok else ("cyan" if h["escalations"] else ""))
    )
    model = h["model"] or ("degraded" if h["degraded"] else "failed")
    if h.get("cause") and not ok:
        model += f" ({h['cause']})"
    if h["escalations"]:
        model += f" ↑{h['escalations']}"
    plural = "" if h["attempts"] == 1 else "s"
    parts = [
        f"{'✓' if ok else '✗'} {h['task_kind']} {h['label'] or h['task_id']}",
        model,
        f"route {'→'.join(h['route'])}",
        f"{h['attempts']} attempt{plural}",
        f"{h['latency_s']:.2f}s",
        f"${h['cost_usd']}",
    ]
    return Text(" · ".join(parts), style=style)


def render_tree(document: dict[str, Any], roots: list[SpanNode]) -> Tree:
    """The Rich tree: job → orchestrator → each handoff (escalated cyan, degraded yellow)."""
    tree = Tree(
        Text(
            f"job {document['job'] or '?'} ({document['job_id']}) · {document['status']} · "
            f"${document['cost_usd']} · {document['duration_s'] or 0:.2f}s",
            style="bold",
        )
    )
    for root in roots:
        agents = [c for c in root.children if c.name.startswith("invoke_agent")] or [root]
        for agent in agents:
            chats = [c for c in agent.children if c.name.startswith("chat ")]
            model = chats[0].attributes.get("gen_ai.request.model", "?") if chats else "?"
            name = agent.attributes.get("gen_ai.agent.name", agent.name)
            branch = tree.add(
                f"{name} ({model}) · {len(chats)} model calls · {agent.duration_s:.2f}s"
            )
            for node in agent.walk():
                if is_handoff(node):
                    branch.add(_handoff_line(handoff_summary(node)))
    return tree
