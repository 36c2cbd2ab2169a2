"""The router: from a task's kind and risk to an ordered ladder of models, with a reason for each.

Pure: no I/O, no clocks, no model calls. Rules map (kind, risk) to a ladder, cheapest first; filters
then drop models that lack a capability, cannot fit the input, would cost more than the task's
ceiling, are too slow for its deadline, or are marked unavailable (an open circuit breaker).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from handoffs.catalog import TIER_ORDER, Catalog, ModelEntry, estimate_tokens
from handoffs.errors import ConfigError
from handoffs.handoff import RouteStep
from handoffs.task import RISKS, Risk, Task

if TYPE_CHECKING:
    from handoffs.routing._scorer import Scorer

__all__ = [
    "Policy",
    "RouteDecision",
    "Rule",
    "estimate_input_tokens",
    "longer_context",
    "route",
    "scorer_text",
]

ANY: Literal["*"] = "*"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """Route tasks of one kind and risk (either may be `"*"`) to a ladder of catalog models."""

    ladder: tuple[str, ...]
    """Catalog ids in the order they are tried: the cheapest that can do the job first."""
    kind: str = ANY
    risk: Risk | Literal["*"] = ANY
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ladder", tuple(self.ladder))
        if not self.ladder:
            raise ConfigError(f"rule {self.label!r} has an empty ladder")
        if self.risk != ANY and self.risk not in RISKS:
            raise ConfigError(f"rule {self.label!r}: risk must be one of low, medium, high or *")

    @property
    def label(self) -> str:
        """The rule's name, or `kind/risk` when it has none."""
        return self.name or f"{self.kind}/{self.risk}"

    def specificity(self, kind: str, risk: Risk) -> int | None:
        """How specifically this rule matches (higher wins), or None when it does not."""
        if self.kind not in (ANY, kind) or self.risk not in (ANY, risk):
            return None
        return (2 if self.kind != ANY else 0) + (1 if self.risk != ANY else 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """An ordered set of rules; unmatched tasks go to the frontier ("when unsure, ask the best").

    With a `scorer` (`handoffs.routing`), the ladder the rules and filters leave is reordered by
    expected cost per verified answer (estimate / P(pass), the order that minimises the expected
    spend when rungs are tried until one passes), and models whose P(pass) is below `min_pass` are
    dropped - never the last one standing. Rungs move whole (a failover chain stays behind its
    model, ordered by that model); rungs led by a model the scorer does not know keep their place.
    """

    rules: tuple[Rule, ...] = ()
    scorer: Scorer | None = None
    min_pass: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        if not 0.0 <= self.min_pass <= 1.0:
            raise ConfigError(f"policy min_pass must be between 0 and 1, not {self.min_pass}")

    def validate(self, catalog: Catalog) -> None:
        """Raise `ConfigError` if a rule names a model the catalog lacks."""
        for rule in self.rules:
            for model_id in rule.ladder:
                if model_id not in catalog:
                    raise ConfigError(f"rule {rule.label!r} names unknown model id {model_id!r}")

    def match(self, kind: str, risk: Risk) -> Rule | None:
        """The most specific rule for a kind and risk; the earliest wins a tie."""
        best: tuple[int, Rule] | None = None
        for rule in self.rules:
            spec = rule.specificity(kind, risk)
            if spec is not None and (best is None or spec > best[0]):
                best = (spec, rule)
        return best[1] if best else None

    @classmethod
    def matrix(cls, catalog: Catalog) -> Policy:
        """The default task-risk matrix built from tiers.

        Low risk starts at the cheapest tier and climbs to the frontier; medium skips the local tier;
        high-consequence work goes to the frontier only.
        """

        def tiers(*names: str) -> tuple[str, ...]:
            order = sorted(catalog.values(), key=lambda e: TIER_ORDER[e.tier])
            return tuple(e.id for e in order if e.tier in names)

        ladders: list[tuple[str, Risk, tuple[str, ...]]] = [
            ("low-risk", "low", tiers("local", "small", "mid", "frontier")),
            ("medium-risk", "medium", tiers("small", "mid", "frontier")),
            ("high-risk", "high", tiers("frontier")),
        ]
        return cls(rules=tuple(Rule(name=n, risk=r, ladder=lad) for n, r, lad in ladders if lad))


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteDecision:
    """The ladder to try, in order, and the router's reason for every model it considered."""

    ladder: tuple[str, ...]
    """Every kept model in the order tried: each rung's model, then its failover chain."""
    steps: tuple[RouteStep, ...]
    rule: str
    """The rule that chose the candidates (`unsure` when none matched, `override` for a per-call pick)."""
    input_tokens: int
    """The router's token estimate for the prompt."""
    estimates_usd: Mapping[str, Decimal] = field(default_factory=dict[str, Decimal])
    """Estimated worst-case cost of one call on each kept model."""
    rungs: tuple[tuple[str, ...], ...] = ()
    """The ladder grouped by rung: a model and the kept models of its failover chain. A provider
    failure moves along a rung; a failed check escalates to the next rung. Empty means one rung
    per model of `ladder`."""

    def __post_init__(self) -> None:
        if not self.rungs:
            object.__setattr__(self, "rungs", tuple((m,) for m in self.ladder))

    def explain(self) -> str:
        """A human-readable account of the decision, one line per model."""
        lines = [f"rule {self.rule}: ladder {' -> '.join(self.ladder) or '(empty)'}"]
        lines += [f"  {'+' if s.kept else '-'} {s.model}: {s.reason}" for s in self.steps]
        return "\n".join(lines)


def estimate_input_tokens(task: Task[Any]) -> int:
    """Prompt tokens a task will need: instructions, input and output schema."""
    text = task.instructions + task.input_json() + task.output_schema_text()
    return estimate_tokens(text) + 64  # framing around the parts


def route(
    task: Task[Any],
    catalog: Catalog,
    policy: Policy,
    *,
    unavailable: Mapping[str, str] | None = None,
) -> RouteDecision:
    """Decide which models to try for `task`, in order, and why.

    `unavailable` maps model ids to why they are out of rotation (e.g. an open circuit breaker).
    """
    unavailable = unavailable or {}
    rule = policy.match(task.kind, task.risk)
    if rule is not None:
        candidates, rule_label = list(rule.ladder), rule.label
    else:
        candidates = [e.id for e in catalog.by_strength() if e.tier == "frontier"]
        candidates = candidates or [e.id for e in catalog.by_strength()][:1]
        rule_label = "unsure"
    if task.model is not None:
        start = catalog[task.model]
        stronger = [m for m in candidates if TIER_ORDER[catalog[m].tier] > TIER_ORDER[start.tier]]
        candidates, rule_label = [start.id, *stronger], f"override({start.id})+{rule_label}"
    tokens = estimate_input_tokens(task)
    steps: list[RouteStep] = []
    ladder: list[str] = []
    rungs: list[tuple[str, ...]] = []
    estimates: dict[str, Decimal] = {}
    seen: set[str] = set()
    for head in dict.fromkeys(candidates):
        kept: list[str] = []
        for model_id in catalog.rung(head):
            if model_id in seen:
                continue
            seen.add(model_id)
            entry = catalog[model_id]
            estimate = entry.cost(tokens, task.max_output_tokens)
            reason = _drop_reason(task, entry, tokens, estimate, unavailable)
            if reason is None:
                kept.append(model_id)
                estimates[model_id] = estimate
                why = f"{entry.tier} tier, est. ${estimate:.6f} for ~{tokens} input tokens"
                if model_id != head:
                    why = f"failover for {head}; {why}"
                if rule_label == "unsure":
                    why = f"no rule for {task.kind}/{task.risk}: unsure, so the frontier; {why}"
                steps.append(RouteStep(model=model_id, kept=True, reason=why))
            else:
                steps.append(RouteStep(model=model_id, kept=False, reason=reason))
        if kept:
            ladder.extend(kept)
            rungs.append(tuple(kept))
    if policy.scorer is not None and ladder:
        rungs, steps = _scored(task, policy, rungs, steps, estimates)
        ladder = [m for rung in rungs for m in rung]
        estimates = {m: estimates[m] for m in ladder}
    return RouteDecision(
        ladder=tuple(ladder),
        steps=tuple(steps),
        rule=rule_label,
        input_tokens=tokens,
        estimates_usd=estimates,
        rungs=tuple(rungs),
    )


def longer_context(
    task: Task[Any],
    catalog: Catalog,
    need: int,
    *,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> str | None:
    """The cheapest model with at least `need` tokens of context that the task could use, or None.

    For a provider's "context length exceeded": the router's estimate was too low for that model.
    Models in `exclude` (already tried or on the route) are skipped; the usual filters apply.
    """
    tokens = estimate_input_tokens(task)
    fits: list[ModelEntry] = []
    for entry in catalog.values():
        if entry.id in exclude or entry.context_window < need:
            continue
        estimate = entry.cost(tokens, task.max_output_tokens)
        if _drop_reason(task, entry, tokens, estimate, {}) is None:
            fits.append(entry)
    fits.sort(key=lambda e: (e.cost(tokens, task.max_output_tokens), -e.context_window))
    return fits[0].id if fits else None


def _drop_reason(
    task: Task[Any],
    entry: ModelEntry,
    tokens: int,
    estimate: Decimal,
    unavailable: Mapping[str, str],
) -> str | None:
    if entry.id in unavailable:
        return f"unavailable: {unavailable[entry.id]}"
    missing: Sequence[str] = sorted(task.requires - entry.capabilities)
    if missing:
        return f"lacks capability {', '.join(missing)}"
    if tokens + task.max_output_tokens > entry.context_window:
        return (
            f"context window {entry.context_window} < ~{tokens} input + "
            f"{task.max_output_tokens} output tokens"
        )
    if task.max_cost_usd is not None and estimate > task.max_cost_usd:
        return f"est. ${estimate:.6f} exceeds the task's ceiling ${task.max_cost_usd}"
    if task.deadline_s is not None and entry.typical_latency_s > task.deadline_s:
        return f"typical latency {entry.typical_latency_s}s exceeds the {task.deadline_s}s deadline"
    return None


def scorer_text(task: Task[Any]) -> str:
    """What a scorer reads of a task before any call: its instructions and its input as JSON.

    The same text is recorded by `handoffs.routing.OutcomeLog`, so a scorer trained on those
    records sees at routing time what it learned from.
    """
    return f"{task.instructions}\n{task.input_json()}"


def _scored(
    task: Task[Any],
    policy: Policy,
    rungs: list[tuple[str, ...]],
    steps: list[RouteStep],
    estimates: Mapping[str, Decimal],
) -> tuple[list[tuple[str, ...]], list[RouteStep]]:
    """Drop the models below `min_pass` and reorder the rungs by their first model's estimate /
    P(pass). A rung moves whole: its failover chain stays behind its model."""
    assert policy.scorer is not None
    chances = policy.scorer.pass_chances(task.kind, scorer_text(task))
    ladder = [m for rung in rungs for m in rung]
    known = [m for m in ladder if m in chances]
    kept = [m for m in known if chances[m] >= policy.min_pass]
    if not kept and known:
        kept = [max(known, key=lambda m: (chances[m], known.index(m)))]
    dropped = {m for m in known if m not in kept}
    left = [r for r in (tuple(m for m in rung if m not in dropped) for rung in rungs) if r]

    def per_pass(m: str) -> Decimal:
        return estimates[m] / Decimal(str(max(chances[m], 1e-9)))

    scored = [i for i, rung in enumerate(left) if rung[0] in chances]
    order = iter(sorted(scored, key=lambda i: (per_pass(left[i][0]), i)))
    reordered = [left[next(order)] if i in scored else rung for i, rung in enumerate(left)]
    notes: dict[str, RouteStep] = {}
    for step in steps:
        p = chances.get(step.model)
        if not step.kept or p is None:
            notes[step.model] = step
        elif step.model in dropped:
            why = f"scorer: P(pass) {p:.2f} < min_pass {policy.min_pass:g}"
            notes[step.model] = RouteStep(model=step.model, kept=False, reason=why)
        else:
            why = f"{step.reason}; scorer P(pass) {p:.2f}, ~${per_pass(step.model):.6f} per pass"
            notes[step.model] = RouteStep(model=step.model, kept=True, reason=why)
    order_of = [m for rung in reordered for m in rung]
    ordered = [notes[m] for m in order_of] + [n for m, n in notes.items() if m not in order_of]
    return reordered, ordered
