"""The router: rule matching, the default matrix, policy validation, and the filters as properties."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from inline_snapshot import snapshot

from handoffs.catalog import TIER_ORDER, Catalog, ModelEntry, Tier
from handoffs.errors import ConfigError
from handoffs.routing import Policy, RouteDecision, Rule, route
from handoffs.task import RISKS, Risk, Task

from .conftest import entry

TIERS: tuple[Tier, ...] = ("local", "small", "mid", "frontier")
CAPABILITIES = ("tools", "vision", "json")
KINDS = ("classify", "extract")
PROPERTY_SETTINGS = settings(max_examples=100, deadline=None)


def task(kind: str = "classify", risk: Risk = "low", **kw: Any) -> Task[str]:
    return Task(
        kind=kind, input=kw.pop("input", {"text": "hello"}), output_type=str, risk=risk, **kw
    )


# --- strategies -------------------------------------------------------------------------------


def usd(units: int, *, places: int) -> st.SearchStrategy[Decimal]:
    """Dollar amounts from 0 to `units` steps of `10**-places` (cheaper to draw than decimals())."""
    return st.integers(min_value=0, max_value=units).map(lambda n: Decimal(n).scaleb(-places))


# Built once: strategies made inside a composite on every draw cost hypothesis more than routing.
seconds = st.integers(min_value=1, max_value=300).map(lambda n: n / 10)
tiers = st.sampled_from(TIERS)
input_prices = usd(60_000, places=3)
output_prices = usd(120_000, places=3)
context_windows = st.sampled_from((4096, 8192, 128_000)) | st.integers(
    min_value=1, max_value=32_000
)
capability_sets = st.frozensets(st.sampled_from(CAPABILITIES))
rule_risks = st.sampled_from((*RISKS, "*", "*"))
required = st.frozensets(st.sampled_from(CAPABILITIES), max_size=1)
risks = st.sampled_from(RISKS)
ceilings = st.none() | usd(1_000_000, places=6)
deadlines = st.none() | seconds
text_lengths = st.integers(min_value=0, max_value=16_000)
output_caps = st.integers(min_value=1, max_value=4096)
picks = st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=10)
"""Ladders as indices into the catalog's ids, taken modulo its size."""
downs = st.lists(st.integers(min_value=0, max_value=7), unique=True, max_size=2)
rule_counts = st.integers(min_value=1, max_value=6)


@st.composite
def catalogs(draw: st.DrawFn) -> Catalog:
    count = draw(st.integers(min_value=1, max_value=8))
    return Catalog(
        [
            ModelEntry(
                id=f"m{i}",
                provider="openai-compatible",
                name=f"m{i}",
                base_url="http://127.0.0.1:9/v1",
                tier=draw(tiers),
                input_usd_per_mtok=draw(input_prices),
                output_usd_per_mtok=draw(output_prices),
                context_window=draw(context_windows),
                typical_latency_s=draw(seconds),
                capabilities=draw(capability_sets),
            )
            for i in range(count)
        ]
    )


@dataclass(frozen=True)
class Scenario:
    catalog: Catalog
    policy: Policy
    task: Task[str]
    unavailable: dict[str, str]

    def route(self) -> RouteDecision:
        return route(self.task, self.catalog, self.policy, unavailable=self.unavailable)


@st.composite
def scenarios(
    draw: st.DrawFn,
    *,
    rule_kinds: tuple[str, ...] = (*KINDS, "*"),
    task_kinds: tuple[str, ...] = KINDS,
    override: bool | None = None,
) -> Scenario:
    catalog = draw(catalogs())
    ids = list(catalog)

    def pick(i: int) -> str:
        return ids[i % len(ids)]

    rules = [
        Rule(
            kind=draw(st.sampled_from(rule_kinds)),
            risk=draw(rule_risks),
            ladder=tuple(pick(i) for i in draw(picks)),
        )
        for _ in range(draw(rule_counts))
    ]
    has_override = draw(st.booleans()) if override is None else override
    t = Task(
        kind=draw(st.sampled_from(task_kinds)),
        risk=draw(risks),
        input={"text": "x" * draw(text_lengths)},
        output_type=str,
        max_output_tokens=draw(output_caps),
        max_cost_usd=draw(ceilings),
        deadline_s=draw(deadlines),
        requires=draw(required),
        model=pick(draw(picks)[0]) if has_override else None,
    )
    return Scenario(
        catalog=catalog,
        policy=Policy(rules=tuple(rules)),
        task=t,
        unavailable={pick(i): "circuit breaker open" for i in draw(downs)},
    )


def fits(s: Scenario, model: ModelEntry, input_tokens: int) -> bool:
    """The filters, restated: whether the router must keep a candidate."""
    t = s.task
    cost = model.cost(input_tokens, t.max_output_tokens)
    return (
        model.id not in s.unavailable
        and t.requires <= model.capabilities
        and input_tokens + t.max_output_tokens <= model.context_window
        and (t.max_cost_usd is None or cost <= t.max_cost_usd)
        and (t.deadline_s is None or model.typical_latency_s <= t.deadline_s)
    )


def candidates(s: Scenario) -> list[str]:
    """The models the router must consider, in order, restated from the policy and catalog."""
    rule = s.policy.match(s.task.kind, s.task.risk)
    if rule is not None:
        ordered = list(dict.fromkeys(rule.ladder))
    else:
        ranked = sorted(s.catalog.values(), key=lambda e: -TIER_ORDER[e.tier])
        ordered = [e.id for e in ranked if e.tier == "frontier"] or [ranked[0].id]
    if s.task.model is None:
        return ordered
    floor = TIER_ORDER[s.catalog[s.task.model].tier]
    stronger = [m for m in ordered if TIER_ORDER[s.catalog[m].tier] > floor]
    return list(dict.fromkeys([s.task.model, *stronger]))


# --- properties -------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(scenarios())
def test_no_kept_model_costs_more_than_the_task_ceiling(s: Scenario) -> None:
    decision = s.route()
    assert set(decision.estimates_usd) == set(decision.ladder)
    for model_id in decision.ladder:
        recomputed = s.catalog[model_id].cost(decision.input_tokens, s.task.max_output_tokens)
        assert decision.estimates_usd[model_id] == recomputed
        if s.task.max_cost_usd is not None:
            assert recomputed <= s.task.max_cost_usd


@PROPERTY_SETTINGS
@given(scenarios())
def test_no_kept_model_is_too_small_too_slow_incapable_or_unavailable(s: Scenario) -> None:
    decision = s.route()
    needed = decision.input_tokens + s.task.max_output_tokens
    for model_id in decision.ladder:
        model = s.catalog[model_id]
        assert model.context_window >= needed
        assert s.task.deadline_s is None or model.typical_latency_s <= s.task.deadline_s
        assert s.task.requires <= model.capabilities
        assert model_id not in s.unavailable


@PROPERTY_SETTINGS
@given(scenarios())
def test_every_candidate_gets_exactly_one_step_kept_iff_it_passes_every_filter(s: Scenario) -> None:
    decision = s.route()
    assert [step.model for step in decision.steps] == candidates(s)
    assert tuple(step.model for step in decision.steps if step.kept) == decision.ladder
    for step in decision.steps:
        assert step.kept == fits(s, s.catalog[step.model], decision.input_tokens), step.reason
        assert step.reason


@PROPERTY_SETTINGS
@given(scenarios(override=False))
def test_ladder_is_the_rules_order_without_duplicates(s: Scenario) -> None:
    decision = s.route()
    assert len(set(decision.ladder)) == len(decision.ladder)
    rule = s.policy.match(s.task.kind, s.task.risk)
    if rule is not None:
        assert decision.rule == rule.label
        first_seen = list(dict.fromkeys(rule.ladder))
        assert sorted(decision.ladder, key=first_seen.index) == list(decision.ladder)
        assert set(decision.ladder) <= set(rule.ladder)


@PROPERTY_SETTINGS
@given(scenarios())
def test_route_is_deterministic(s: Scenario) -> None:
    copy = Scenario(
        catalog=Catalog(list(s.catalog.values())),
        policy=Policy(rules=tuple(s.policy.rules)),
        task=s.task,
        unavailable=dict(s.unavailable),
    )
    assert s.route() == copy.route()


@PROPERTY_SETTINGS
@given(scenarios(rule_kinds=("classify", "extract"), task_kinds=("translate",), override=False))
def test_an_unmatched_kind_goes_to_the_frontier_when_the_catalog_has_one(s: Scenario) -> None:
    decision = s.route()
    frontier = [m for m, e in s.catalog.items() if e.tier == "frontier"]
    considered = [step.model for step in decision.steps]
    assert decision.rule == "unsure"
    if frontier:
        assert considered == frontier
    else:
        strongest = max(TIER_ORDER[e.tier] for e in s.catalog.values())
        assert len(considered) == 1
        assert TIER_ORDER[s.catalog[considered[0]].tier] == strongest
    for step in decision.steps:
        if step.kept:
            assert "unsure" in step.reason


@PROPERTY_SETTINGS
@given(scenarios(override=True))
def test_an_override_leads_the_ladder_and_only_stronger_tiers_follow(s: Scenario) -> None:
    assert s.task.model is not None
    decision = s.route()
    start = s.catalog[s.task.model]
    assert decision.rule.startswith(f"override({start.id})+")
    assert decision.steps[0].model == start.id
    if decision.steps[0].kept:
        assert decision.ladder[0] == start.id
    for step in decision.steps[1:]:
        assert TIER_ORDER[s.catalog[step.model].tier] > TIER_ORDER[start.tier]


# --- rule matching ----------------------------------------------------------------------------

SPECIFICITY_RULES = (
    Rule(name="any", ladder=("best",)),
    Rule(name="low", risk="low", ladder=("tiny",)),
    Rule(name="classify", kind="classify", ladder=("cheap",)),
    Rule(name="classify-low", kind="classify", risk="low", ladder=("tiny", "cheap")),
)


@pytest.mark.parametrize(
    ("kind", "risk", "expected"),
    [
        ("classify", "low", "classify-low"),
        ("classify", "high", "classify"),
        ("extract", "low", "low"),
        ("extract", "high", "any"),
    ],
)
@pytest.mark.parametrize("rules", [SPECIFICITY_RULES, SPECIFICITY_RULES[::-1]])
def test_the_most_specific_rule_wins_in_any_order(
    rules: tuple[Rule, ...], kind: str, risk: Risk, expected: str, catalog: Catalog
) -> None:
    policy = Policy(rules=rules)
    matched = policy.match(kind, risk)
    assert matched is not None and matched.label == expected
    assert route(task(kind, risk), catalog, policy).rule == expected


def test_the_earliest_rule_wins_a_tie() -> None:
    policy = Policy(
        rules=(
            Rule(name="first", kind="classify", ladder=("tiny",)),
            Rule(name="second", kind="classify", ladder=("best",)),
        )
    )
    matched = policy.match("classify", "medium")
    assert matched is not None and matched.label == "first"


def test_a_rule_without_a_name_is_labelled_kind_slash_risk() -> None:
    assert Rule(kind="classify", ladder=("tiny",)).label == "classify/*"
    assert Rule(risk="high", ladder=("tiny",)).label == "*/high"


def test_no_rule_matches_a_kind_and_risk_it_does_not_cover() -> None:
    policy = Policy(rules=(Rule(kind="classify", risk="low", ladder=("tiny",)),))
    assert policy.match("classify", "medium") is None
    assert policy.match("extract", "low") is None


# --- the default matrix -----------------------------------------------------------------------


def test_the_matrix_climbs_from_local_for_low_small_for_medium_and_frontier_only_for_high(
    catalog: Catalog,
) -> None:
    policy = Policy.matrix(catalog)
    ladders = {rule.label: rule.ladder for rule in policy.rules}
    assert ladders == {
        "low-risk": ("tiny", "cheap", "middle", "best"),
        "medium-risk": ("cheap", "middle", "best"),
        "high-risk": ("best",),
    }
    for risk, expected in [("low", "low-risk"), ("medium", "medium-risk"), ("high", "high-risk")]:
        matched = policy.match("anything", risk)
        assert matched is not None and matched.label == expected


def test_the_matrix_orders_by_tier_not_catalog_order_and_keeps_catalog_order_within_a_tier() -> (
    None
):
    shuffled = Catalog(
        [
            entry("f1", "frontier", "3", "15"),
            entry("s1", "small", "0.1", "0.4"),
            entry("l1", "local", "0", "0"),
            entry("s2", "small", "0.2", "0.8"),
        ]
    )
    ladders = {rule.label: rule.ladder for rule in Policy.matrix(shuffled).rules}
    assert ladders["low-risk"] == ("l1", "s1", "s2", "f1")
    assert ladders["medium-risk"] == ("s1", "s2", "f1")


def test_the_matrix_omits_a_risk_whose_tiers_are_absent_so_it_falls_to_the_strongest() -> None:
    small_only = Catalog([entry("l1", "local", "0", "0"), entry("s1", "small", "0.1", "0.4")])
    policy = Policy.matrix(small_only)
    assert [rule.label for rule in policy.rules] == ["low-risk", "medium-risk"]
    decision = route(task(risk="high"), small_only, policy)
    assert decision.rule == "unsure"
    assert decision.ladder == ("s1",)


# --- routing examples -------------------------------------------------------------------------


def test_an_override_below_the_rule_starts_there_and_skips_weaker_rungs(catalog: Catalog) -> None:
    decision = route(task(risk="low", model="cheap"), catalog, Policy.matrix(catalog))
    assert decision.ladder == ("cheap", "middle", "best")
    assert decision.rule == "override(cheap)+low-risk"


def test_an_override_outside_the_rule_still_leads(catalog: Catalog) -> None:
    decision = route(task(risk="high", model="tiny"), catalog, Policy.matrix(catalog))
    assert decision.ladder == ("tiny", "best")


def test_an_override_naming_an_unknown_model_is_a_config_error(catalog: Catalog) -> None:
    with pytest.raises(ConfigError, match="'nope'"):
        route(task(model="nope"), catalog, Policy.matrix(catalog))


def test_an_empty_policy_sends_everything_to_the_frontier(catalog: Catalog) -> None:
    decision = route(task(kind="summarize"), catalog, Policy())
    assert decision.rule == "unsure"
    assert decision.ladder == ("best",)
    assert "no rule for summarize/low" in decision.steps[0].reason


def test_a_ladder_naming_a_model_twice_considers_it_once(catalog: Catalog) -> None:
    policy = Policy(rules=(Rule(ladder=("tiny", "best", "tiny", "best")),))
    decision = route(task(), catalog, policy)
    assert [step.model for step in decision.steps] == ["tiny", "best"]
    assert decision.ladder == ("tiny", "best")


def test_the_estimate_is_the_worst_case_of_one_call(catalog: Catalog) -> None:
    decision = route(task(max_output_tokens=1000), catalog, Policy(rules=(Rule(ladder=("best",)),)))
    tokens = decision.input_tokens
    assert decision.estimates_usd["best"] == (Decimal(tokens) * 3 + 1000 * 15) / Decimal(10**6)


def test_a_longer_input_needs_more_estimated_tokens(catalog: Catalog) -> None:
    policy = Policy.matrix(catalog)
    short = route(task(input={"text": "a"}), catalog, policy).input_tokens
    long = route(task(input={"text": "a" * 4000}), catalog, policy).input_tokens
    assert long >= short + 1000


def test_a_ceiling_exactly_equal_to_the_estimate_keeps_the_model(catalog: Catalog) -> None:
    policy = Policy(rules=(Rule(ladder=("best",)),))
    estimate = route(task(), catalog, policy).estimates_usd["best"]
    assert route(task(max_cost_usd=estimate), catalog, policy).ladder == ("best",)
    assert route(task(max_cost_usd=estimate - Decimal("1e-9")), catalog, policy).ladder == ()


# --- reasons and explain ----------------------------------------------------------------------


@pytest.fixture
def one_per_reason() -> Catalog:
    """One model per drop reason, and one that survives."""
    return Catalog(
        [
            entry("down", "local", "0", "0"),
            entry("blind", "small", "0.1", "0.4", capabilities=frozenset({"tools"})),
            entry(
                "narrow",
                "small",
                "0.1",
                "0.4",
                context_window=100,
                capabilities=frozenset({"vision"}),
            ),
            entry(
                "slow", "mid", "1", "5", typical_latency_s=60.0, capabilities=frozenset({"vision"})
            ),
            entry("pricey", "frontier", "300", "1500", capabilities=frozenset({"vision"})),
            entry("good", "frontier", "3", "15", capabilities=frozenset({"vision"})),
        ]
    )


def drop_everything_but_good(catalog: Catalog) -> RouteDecision:
    policy = Policy(rules=(Rule(name="all", ladder=tuple(catalog)),))
    return route(
        task(requires={"vision"}, max_cost_usd=Decimal("0.05"), deadline_s=10.0),
        catalog,
        policy,
        unavailable={"down": "circuit breaker open after 3 failures"},
    )


def test_each_drop_reason_names_its_filter_in_plain_words(one_per_reason: Catalog) -> None:
    decision = drop_everything_but_good(one_per_reason)
    reasons = {step.model: step.reason for step in decision.steps if not step.kept}
    assert decision.ladder == ("good",)
    assert reasons["down"] == "unavailable: circuit breaker open after 3 failures"
    assert reasons["blind"] == "lacks capability vision"
    assert "context window 100 <" in reasons["narrow"]
    assert "exceeds the 10.0s deadline" in reasons["slow"]
    assert "exceeds the task's ceiling $0.05" in reasons["pricey"]


def test_explain_lists_every_model_with_plus_or_minus(one_per_reason: Catalog) -> None:
    decision = drop_everything_but_good(one_per_reason)
    text = decision.explain()
    lines = text.splitlines()
    assert lines[0] == "rule all: ladder good"
    assert len(lines) == 1 + len(one_per_reason)
    for step, line in zip(decision.steps, lines[1:], strict=True):
        assert line.startswith(f"  {'+' if step.kept else '-'} {step.model}: ")
    assert text == snapshot("""\
rule all: ladder good
  - down: unavailable: circuit breaker open after 3 failures
  - blind: lacks capability vision
  - narrow: context window 100 < ~73 input + 512 output tokens
  - slow: typical latency 60.0s exceeds the 10.0s deadline
  - pricey: est. $0.789900 exceeds the task's ceiling $0.05
  + good: frontier tier, est. $0.007899 for ~73 input tokens\
""")


def test_explain_says_empty_when_nothing_survives(catalog: Catalog) -> None:
    decision = route(
        task(), catalog, Policy.matrix(catalog), unavailable=dict.fromkeys(catalog, "x")
    )
    assert decision.ladder == ()
    assert decision.explain().splitlines()[0] == "rule low-risk: ladder (empty)"


# --- validating policies (reading `[policy]` from a file: tests/test_config_files.py) ----------


def test_validate_rejects_a_rule_naming_a_model_the_catalog_lacks(catalog: Catalog) -> None:
    policy = Policy(rules=(Rule(name="typo", ladder=("tiny", "bset")),))
    with pytest.raises(ConfigError, match="'bset'"):
        policy.validate(catalog)


def test_validate_names_the_rule_with_the_unknown_model(catalog: Catalog) -> None:
    policy = Policy(rules=(Rule(name="typo", ladder=("tiny", "bset")),))
    with pytest.raises(ConfigError, match="rule 'typo' names unknown model id 'bset'"):
        policy.validate(catalog)


def test_validate_accepts_the_matrix_it_built(catalog: Catalog) -> None:
    policy = Policy.matrix(catalog)
    policy.validate(catalog)
    assert {m for rule in policy.rules for m in rule.ladder} == set(catalog)


def test_a_rule_rejects_an_empty_ladder_and_an_unknown_risk() -> None:
    with pytest.raises(ConfigError, match="empty ladder"):
        Rule(ladder=())
    with pytest.raises(ConfigError, match="risk must be one of"):
        Rule(risk="critical", ladder=("tiny",))  # type: ignore[arg-type]
