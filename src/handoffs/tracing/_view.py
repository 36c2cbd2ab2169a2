"""Reading a job's JSONL trace back: the span tree, a summary per handoff, and a Rich tree.

```
job support-triage (3f2a9c1d0b7e) · completed · $0.012345 · 2.31s
└── orchestrator (claude-sonnet-4-6) · 4 model calls · 2.30s
    ├── ✓ classify T-001 · small · route small→mid→frontier · 1 attempt · 0.05s · $0.000021
    └── ✓ draft T-004 · frontier ↑1 · route mid→frontier · 2 attempts · 1 judge call · 0.31s · $0.0041
```

A script's trace (a `Session` traced by default, no job around it) has no workflow span: its
handoffs are the roots, and the header says `trace <run id>` with what they cost together.
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
from handoffs.tracing._spans import CHECK_SPAN, HANDOFF_SPAN, QUEUE_SPAN

__all__ = [
    "GAUNTLET_ATTACK",
    "SpanNode",
    "charges",
    "handoff_summary",
    "is_handoff",
    "load_trace",
    "money",
    "newest_trace",
    "render_tree",
    "trace_document",
    "workflow_of",
]

GAUNTLET_ATTACK = "handoffs.gauntlet.attack"
"""On the workflow span of a Gauntlet run: the attack it played (`baseline` for none)."""

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


def newest_trace(directory: Path) -> str | None:
    """The job (or run) id of the most recently finished trace under `directory`, if any."""
    paths = [
        p
        for p in directory.glob("*.jsonl")
        if not p.name.endswith(".metrics.jsonl") and _JOB_ID.fullmatch(p.stem)
    ]
    if not paths:
        return None
    return max(paths, key=lambda p: (p.stat().st_mtime_ns, p.name)).stem


def is_handoff(node: SpanNode) -> bool:
    """Whether a span is a finished handoff span."""
    return node.name.startswith(HANDOFF_SPAN + " ") and "handoffs.status" in node.attributes


def money(attributes: dict[str, Any], key: str) -> str | None:
    """A dollar attribute as plain decimal text: its exact `{key}_decimal` copy when the span has
    one, else `key` itself (a double, or a decimal string in traces written before 0.2)."""
    value = attributes.get(f"{key}_decimal", attributes.get(key))
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return format(amount, "f")


def _inside(node: SpanNode) -> list[SpanNode]:
    """The spans under a handoff's span, not descending into a nested handoff."""
    found: list[SpanNode] = []
    for child in node.children:
        if not is_handoff(child):
            found += [child, *_inside(child)]
    return found


def _check(node: SpanNode) -> dict[str, Any]:
    a = node.attributes
    calls = [n for n in _inside(node) if n.name.startswith("invoke_agent ")]
    return {
        "name": a.get("handoffs.check", node.name.removeprefix(CHECK_SPAN + " ")),
        "label": a.get("gen_ai.evaluation.score.label"),
        "score": a.get("gen_ai.evaluation.score.value"),
        "attempt": a.get("handoffs.attempt"),
        "model": a.get("handoffs.check.model"),
        "calls": len(calls),
        "cost_usd": money(a, "handoffs.check.cost_usd"),
        "duration_s": node.duration_s,
    }


def handoff_summary(node: SpanNode) -> dict[str, Any]:
    """What `trace show` says about one handoff span."""
    a = node.attributes
    inside = _inside(node)
    checks = [_check(n) for n in inside if n.name.startswith(CHECK_SPAN + " ")]
    queued = [n.duration_s for n in inside if n.name.startswith(QUEUE_SPAN + " ")]
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
        "cost_usd": money(a, "handoffs.cost_usd"),
        "budget_left_usd": a.get("handoffs.budget.left_usd"),
        "degraded": a.get("handoffs.degraded", False),
        "simulated": a.get("handoffs.simulated", False),
        "cause": a.get("handoffs.cause"),
        "breakers": a.get("handoffs.breakers", []),
        "input_tokens": a.get("handoffs.input_tokens", 0),
        "output_tokens": a.get("handoffs.output_tokens", 0),
        "cache_read_tokens": a.get("gen_ai.usage.cache_read.input_tokens", 0),
        "cache_write_tokens": a.get("gen_ai.usage.cache_creation.input_tokens", 0),
        "attempt_cache_read_tokens": a.get("handoffs.attempt.cache_read_tokens", []),
        "prompt_cache_saved_usd": money(a, "handoffs.prompt_cache.saved_usd") or "0",
        "checks": checks,
        "judge_calls": sum(c["calls"] for c in checks),
        "queue_s": round(sum(queued), 4),
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


def workflow_of(roots: list[SpanNode]) -> SpanNode | None:
    """The job's `invoke_workflow` span, or None (a script's trace has none)."""
    return next((r for r in roots if r.name.startswith("invoke_workflow")), None)


def trace_document(job_id: str, roots: list[SpanNode]) -> dict[str, Any]:
    """The `trace show --json` document: the job, every handoff, and the span outline.

    Without a workflow span (a script's trace) or without the job's totals on it (a Gauntlet run
    traced before 0.2), `cost_usd` is what the handoffs cost together and `status` is None.
    """
    workflow = workflow_of(roots)
    attrs = workflow.attributes if workflow else {}
    handoffs = [handoff_summary(n) for r in roots for n in r.walk() if is_handoff(n)]
    cost = money(attrs, "handoffs.cost_usd")
    if cost is None:
        total = sum((Decimal(h["cost_usd"] or 0) for h in handoffs), Decimal(0))
        total += Decimal(money(attrs, "handoffs.orchestrator.cost_usd") or 0)
        cost = format(total.normalize(), "f") if total else "0"
    starts = [r.span.get("start_time_unix_nano") or 0 for r in roots]
    ends = [r.span.get("end_time_unix_nano") or 0 for r in roots]
    span_s = round((max(ends) - min(starts)) / 1e9, 4) if roots and min(starts) else None
    return {
        "job_id": job_id,
        "job": attrs.get("gen_ai.workflow.name"),
        "status": attrs.get("handoffs.job.status"),
        "gauntlet_attack": attrs.get(GAUNTLET_ATTACK),
        "cost_usd": cost,
        "orchestrator_cost_usd": money(attrs, "handoffs.orchestrator.cost_usd"),
        "duration_s": workflow.duration_s if workflow else span_s,
        "spans": sum(len(r.walk()) for r in roots),
        "handoffs": handoffs,
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
    if h["escalations"] and ok:
        model += f" ↑{h['escalations']}"
    if h.get("simulated"):
        model += " (simulated: a stand-in)"
    plural = "" if h["attempts"] == 1 else "s"
    parts = [
        f"{'✓' if ok else '✗'} {h['task_kind']} {h['label'] or h['task_id']}",
        model,
        f"route {'→'.join(h['route'])}",
        f"{h['attempts']} attempt{plural}",
    ]
    if h.get("judge_calls"):
        parts.append(f"{h['judge_calls']} judge call{'' if h['judge_calls'] == 1 else 's'}")
    if h.get("queue_s"):
        parts.append(f"queued {h['queue_s']:.2f}s")
    parts += [f"{h['latency_s']:.2f}s", f"${h['cost_usd'] or 0}"]
    if h.get("cache_read_tokens") or h.get("cache_write_tokens"):
        parts.append(
            f"prompt cache {h.get('cache_read_tokens', 0):,} read"
            f"/{h.get('cache_write_tokens', 0):,} written, saved ${h['prompt_cache_saved_usd']}"
        )
    return Text(" · ".join(parts), style=style)


def _header(document: dict[str, Any]) -> str:
    duration = f"{document['duration_s'] or 0:.2f}s"
    if document["job"] is None:  # a script's trace: handoffs without a job
        n = len(document["handoffs"])
        return (
            f"trace {document['job_id']} · {n} handoff{'' if n == 1 else 's'} · "
            f"${document['cost_usd']} · {duration}"
        )
    parts = [f"job {document['job']} ({document['job_id']})"]
    if document.get("gauntlet_attack"):
        parts.append(f"Gauntlet: {document['gauntlet_attack']}")
    if document["status"]:
        parts.append(str(document["status"]))
    return " · ".join([*parts, f"${document['cost_usd']}", duration])


def render_tree(document: dict[str, Any], roots: list[SpanNode]) -> Tree:
    """The Rich tree: job → orchestrator → each handoff (escalated cyan, degraded yellow)."""
    tree = Tree(Text(_header(document), style="bold"))
    for root in roots:
        if is_handoff(root):  # a script's handoff, made outside any job
            tree.add(_handoff_line(handoff_summary(root)))
            continue
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
