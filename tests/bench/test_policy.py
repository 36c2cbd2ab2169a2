"""Policies replayed over recorded outcomes: what they call, what they are charged, what they learn."""

from __future__ import annotations

import pytest

from handoffs.routing import Outcomes
from handoffs_bench import metric
from handoffs_bench.policy import (
    Context,
    agreement,
    answer_key,
    fit_cascade,
    fit_learned,
    fit_task_rules,
    fit_zero_router,
    oracle,
)
from handoffs_bench.replay import evaluate, folds_of, holdout_rows

A, B, F = 0, 1, 2  # two cheap models and the frontier


def _three_models() -> Outcomes:
    """Four multiple-choice prompts; cheap a and b cost 1 and 2, the frontier 10."""
    return Outcomes(
        dataset="three",
        models=("a", "b", "f"),
        prompt_ids=("1", "2", "3", "4"),
        tasks=("mc",) * 4,
        prompts=("q1", "q2", "q3", "q4"),
        correct=((1, 1, 1), (0, 0, 1), (0, 1, 1), (0, 0, 0)),
        cost_usd=((1, 2, 10),) * 4,
        responses={"a": ("A", "B", "C", "D"), "b": ("A\n", "B", "A", "D"), "f": ("A",) * 4},
    )


CTX = Context(frontier="f", cheap="a", cheapest="a")


def test_answer_key_reads_letters_and_final_numbers_but_not_code() -> None:
    assert answer_key("B\n") == "B"
    assert answer_key("(C) because ...") == "C"
    assert answer_key("so 2 + 1 = 3\n#### 3\n") == "3"
    assert answer_key("The answer is (d).") == "D"
    assert answer_key("def f(x):\n    return [y for y in x if y not in other_list]\n") is None


def test_agreement_cascade_pays_for_both_cheap_calls_and_every_escalation() -> None:
    data = _three_models()
    pair_plan = agreement(data, "a", "b", "f")
    # a and b agree on prompts 1, 2 and 4 (A, B, D) and disagree on 3 (C vs A)
    assert pair_plan.calls == ((A, B), (A, B), (A, B, F), (A, B))
    assert pair_plan.escalated == (False, False, True, False)
    assert pair_plan.cost(data) == 4 * (1 + 2) + 10
    assert pair_plan.accuracy(data) == pytest.approx(2 / 4)  # 1 and 3 right; 2 and 4 agreed wrongly
    fa, fr = metric.verifier_rates(
        [not e for e in pair_plan.escalated], [data.correct[i][A] for i in range(4)]
    )
    assert (fa, fr) == (pytest.approx(2 / 3), 0.0)


def test_task_rules_learn_from_train_and_send_unseen_kinds_to_the_frontier() -> None:
    train = Outcomes(
        dataset="train",
        models=("a", "f"),
        prompt_ids=("1", "2", "3", "4"),
        tasks=("easy", "easy", "hard", "hard"),
        prompts=("", "", "", ""),
        correct=((1, 1), (1, 1), (0, 1), (1, 1)),
        cost_usd=((1, 10),) * 4,
    )
    data = Outcomes(
        dataset="data",
        models=("a", "f"),
        prompt_ids=("5", "6", "7"),
        tasks=("easy", "hard", "new"),
        prompts=("", "", ""),
        correct=((0, 1), (0, 1), (0, 1)),  # a is wrong on data: rules must not peek at it
        cost_usd=((1, 10),) * 3,
    )
    ctx = Context(frontier="f", cheap="a", cheapest="a")
    chosen = fit_task_rules(train, ctx)(data).chosen
    assert chosen.delivered == (0, 1, 1)


def test_cascade_uses_the_pair_only_where_it_reaches_the_quality_on_train() -> None:
    data = _three_models()
    # the frontier is right on 3 of 4; reaching 100 % of that needs the frontier itself
    assert fit_cascade(data, CTX, quality=1.0)(data).chosen.delivered == (F,) * 4
    # reaching 60 % of 0.75 = 0.45: the pair (0.5 at cost 22) beats the frontier, loses to b (0.5, 8)
    assert fit_cascade(data, CTX, quality=0.6)(data).chosen.delivered == (B,) * 4


def _two_tier(n: int) -> Outcomes:
    """Cheap a: cost 1, right on even prompts; frontier f: cost 3, always right."""
    return Outcomes(
        dataset="two",
        models=("a", "f"),
        prompt_ids=tuple(str(i) for i in range(n)),
        tasks=("t",) * n,
        prompts=("",) * n,
        correct=tuple((float(i % 2 == 0), 1.0) for i in range(n)),
        cost_usd=((1.0, 3.0),) * n,
    )


def test_zero_router_blends_the_two_hull_models_that_bracket_the_budget() -> None:
    data = _two_tier(400)
    half = Context(frontier="f", cheap="a", cheapest="a", budget=2 / 3)
    # budget 2/3 of 1200 = 800 = 400 + share x (1200 - 400): half of the prompts go to f
    picks = fit_zero_router(data, half)(data).chosen.delivered
    assert 0.4 < sum(picks) / len(picks) < 0.6
    everything = Context(frontier="f", cheap="a", cheapest="a", budget=1.0)
    assert set(fit_zero_router(data, everything)(data).chosen.delivered) == {1}
    nothing = Context(frontier="f", cheap="a", cheapest="a", budget=0.1)
    assert set(fit_zero_router(data, nothing)(data).chosen.delivered) == {0}


def test_the_oracle_is_the_cheapest_correct_model() -> None:
    data = _three_models()
    chosen = oracle(data, CTX)(data).chosen
    assert chosen.delivered == (A, F, B, A)  # nobody right on 4: the cheapest
    assert chosen.accuracy(data) == 0.75 and chosen.cost(data) == 1 + 10 + 2 + 1


def _signal(n: int) -> Outcomes:
    """Prompts with the word "hard" defeat the cheap model and not the frontier; others are easy."""
    hard = [i % 5 == 0 for i in range(n)]
    topics = ["rivers", "planets", "poems", "taxes", "birds"]
    return Outcomes(
        dataset="signal",
        models=("cheap", "frontier"),
        prompt_ids=tuple(str(i) for i in range(n)),
        tasks=("qa",) * n,
        prompts=tuple(
            f"{'hard' if h else 'simple'} question {i} about {topics[i % 3]}"
            for i, h in enumerate(hard)
        ),
        correct=tuple((0.0, 1.0) if h else (1.0, 1.0) for h in hard),
        cost_usd=((1.0, 20.0),) * n,
    )


def test_learned_router_finds_the_prompts_the_cheap_model_fails() -> None:
    train, data = _signal(120), _signal(40)
    ctx = Context(frontier="frontier", cheap="cheap", cheapest="cheap")
    planned = fit_learned(train, ctx, quality=1.0)(data)
    assert planned.chosen.accuracy(data) == 1.0
    assert planned.chosen.cost(data) == 32 * 1.0 + 8 * 20.0  # only the hard fifth goes up
    assert planned.scores is not None
    weak = [row[0] for row in data.correct]
    strong = [row[1] for row in data.correct]
    curve = metric.share_curve(planned.scores, weak, strong)
    assert metric.apgr(curve, metric.accuracy(weak), metric.accuracy(strong)) > 0.85


def test_evaluate_cross_fits_and_names_the_recommended_policy_handoffs() -> None:
    data = _signal(100)
    report = evaluate(data, data, same=True, folds=4, seeds=5)
    names = [p.name for p in report.policies]
    assert names[0] == "handoffs" and "oracle" in names and "random-50%" in names
    by_name = {p.name: p for p in report.policies}
    assert by_name["always-frontier"].cost_fraction == 1.0
    assert by_name["handoffs"].accuracy == by_name["learned"].accuracy  # no answers: learned
    assert by_name["learned"].apgr is not None and by_name["learned"].apgr > 0.85
    random_apgr = by_name["random-50%"].apgr
    assert random_apgr is not None and 0.3 < random_apgr < 0.7
    assert by_name["random-50%"].accuracy_std is not None
    assert report.protocol == "cross-fitted, 4 folds by prompt"


def test_bootstrap_intervals_bracket_the_estimate() -> None:
    data = _signal(100)
    report = evaluate(data, data, same=True, folds=4, seeds=2)
    by_name = {p.name: p for p in report.policies}
    frontier, cheapest = by_name["always-frontier"], by_name["always-cheapest"]
    assert frontier.cost_fraction_ci == (1.0, 1.0) and frontier.accuracy_ci == (1.0, 1.0)
    assert cheapest.accuracy_ci is not None
    low, high = cheapest.accuracy_ci
    assert low < cheapest.accuracy == 0.8 < high  # 80 of 100 right: the interval has width


def test_folds_by_task_keep_each_kind_in_one_fold() -> None:
    data = Outcomes(
        dataset="kinds",
        models=("m",),
        prompt_ids=tuple(str(i) for i in range(6)),
        tasks=("x", "y", "z", "x", "y", "z"),
        prompts=("",) * 6,
        correct=((1.0,),) * 6,
        cost_usd=((1.0,),) * 6,
    )
    assert folds_of(data, 2, "task") == [[0, 2, 3, 5], [1, 4]]
    assert folds_of(data, 5, "task") == [[0, 3], [1, 4], [2, 5]]  # no more folds than kinds
    assert folds_of(data, 3, "prompt") == [[0, 3], [1, 4], [2, 5]]


def _kinds(n: int, kinds: int) -> Outcomes:
    return Outcomes(
        dataset="kinds",
        models=("m",),
        prompt_ids=tuple(str(i) for i in range(n)),
        tasks=tuple(f"k{i % kinds}" for i in range(n)),
        prompts=("",) * n,
        correct=((1.0,),) * n,
        cost_usd=((1.0,),) * n,
    )


def test_the_hold_out_is_fixed_disjoint_and_keeps_whole_task_kinds_apart() -> None:
    data = _kinds(300, 20)
    fit, held = holdout_rows(data, 0.3, "task")
    assert holdout_rows(data, 0.3, "task") == (fit, held)  # a hash, not a draw: the same every run
    assert sorted(fit + held) == list(range(300))
    fit_kinds, held_kinds = {data.tasks[i] for i in fit}, {data.tasks[i] for i in held}
    assert not fit_kinds & held_kinds and 2 <= len(held_kinds) <= 12
    fit, held = holdout_rows(data, 0.3, "prompt")
    assert not set(fit) & set(held) and 50 < len(held) < 130
    # a tiny share still holds out one kind, and leaves one to fit on
    small = _kinds(4, 2)
    fit, held = holdout_rows(small, 0.01, "task")
    assert len({small.tasks[i] for i in held}) == 1 and fit


def test_evaluate_with_a_hold_out_scores_only_the_held_out_rows() -> None:
    data = _signal(200)
    report = evaluate(data, data, same=True, seeds=2, holdout=0.3)
    _, held = holdout_rows(data, 0.3, "prompt")
    assert report.protocol.startswith("fixed hold-out by prompt")
    assert f"scored on {len(held)} held-out prompts that no fit" in report.protocol
    by_name = {p.name: p for p in report.policies}
    frontier = by_name["always-frontier"]
    assert frontier.cost_usd == pytest.approx(data.subset(held).model_cost("frontier"))
