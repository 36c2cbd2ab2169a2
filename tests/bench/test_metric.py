"""Routing metrics on tiny curves and outcomes whose values are checked by hand."""

from __future__ import annotations

import math
import random

import pytest

from handoffs_bench import metric


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([(0.0, 0.0), (1.0, 1.0)], 0.5),  # a diagonal: half the unit square
        ([(0.0, 0.5), (1.0, 1.0)], 0.75),
        ([(0.0, 0.5), (0.5, 0.4), (1.0, 1.0)], 0.75),  # a dominated point changes nothing
        ([(0.0, 0.5), (0.5, 0.6), (1.0, 1.0)], 0.75),  # the hull blends past a concave dip
        ([(0.0, 0.2), (0.5, 0.8)], 0.65),  # flat past the last point: 0.25 + 0.4
        ([(0.5, 1.0)], 0.5),  # nothing below the cheapest point
    ],
)
def test_aiq_is_the_mean_of_the_upper_hull_over_the_cost_range(
    points: list[tuple[float, float]], expected: float
) -> None:
    assert metric.aiq(points, 0.0, 1.0) == pytest.approx(expected)


def test_upper_hull_drops_dominated_and_concave_points() -> None:
    points = [(2.0, 0.7), (0.0, 0.2), (1.0, 0.3), (3.0, 0.4), (4.0, 0.9)]
    assert metric.upper_hull(points) == [(0.0, 0.2), (2.0, 0.7), (4.0, 0.9)]
    assert metric.upper_hull([(0.0, 0.2), (2.0, 0.5), (4.0, 0.9)]) == [(0.0, 0.2), (4.0, 0.9)]


def test_cost_to_reach_interpolates_along_the_hull() -> None:
    curve = [(1.0, 0.5), (3.0, 0.9)]
    assert metric.cost_to_reach(curve, 0.7) == pytest.approx(2.0)
    assert metric.cost_to_reach(curve, 0.4) == 1.0
    assert metric.cost_to_reach(curve, 0.95) is None


def test_pgr_and_cpt_on_a_straight_share_curve() -> None:
    curve = [(0.0, 0.6), (1.0, 0.8)]
    assert metric.pgr(0.7, 0.6, 0.8) == pytest.approx(0.5)
    assert metric.cpt(curve, 0.6, 0.8, 0.5) == pytest.approx(0.5)
    assert metric.cpt(curve, 0.6, 0.8, 0.8) == pytest.approx(0.8)
    assert metric.cpt([(0.0, 0.6), (1.0, 0.7)], 0.6, 0.8, 0.8) is None
    assert metric.apgr(curve, 0.6, 0.8) == pytest.approx(0.5)


def _needs_strong_fixture() -> tuple[list[float], list[float]]:
    """40 prompts: weak right on 36; strong right on those and on 2 more (5 % gain items)."""
    weak = [1.0] * 36 + [0.0] * 4
    strong = [1.0] * 38 + [0.0] * 2
    return weak, strong


def test_apgr_of_the_oracle_is_one() -> None:
    weak, strong = _needs_strong_fixture()
    scores = [float(s > w) for w, s in zip(weak, strong, strict=True)]
    curve = metric.share_curve(scores, weak, strong)
    assert curve[0] == (0.0, 0.9) and curve[-1] == (1.0, 0.95)
    assert metric.apgr(curve, metric.accuracy(weak), metric.accuracy(strong)) == pytest.approx(1.0)


def test_apgr_of_a_router_that_ranks_backwards_is_low() -> None:
    weak, strong = _needs_strong_fixture()
    scores = [-float(s > w) for w, s in zip(weak, strong, strict=True)]
    curve = metric.share_curve(scores, weak, strong)
    assert metric.apgr(curve, 0.9, 0.95) < 0.1


def test_apgr_of_random_routing_is_about_one_half_over_many_seeds() -> None:
    rng = random.Random(7)
    weak = [float(rng.random() < 0.6) for _ in range(200)]
    strong = [max(w, float(rng.random() < 0.5)) for w in weak]
    acc_w, acc_s = metric.accuracy(weak), metric.accuracy(strong)
    values = [
        metric.apgr(metric.share_curve([rng.random() for _ in weak], weak, strong), acc_w, acc_s)
        for _ in range(300)
    ]
    assert sum(values) / len(values) == pytest.approx(0.5, abs=0.02)
    assert min(values) < 0.5 < max(values)  # spread over seeds, not a constant


def test_verifier_rates_count_accepts_among_wrong_and_rejects_among_right() -> None:
    assert metric.verifier_rates([True, True, False, False], [1, 0, 1, 0]) == (0.5, 0.5)
    fa, fr = metric.verifier_rates([True, True, True, False], [1, 1, 0, 1])
    assert (fa, fr) == (1.0, pytest.approx(1 / 3))
    fa, _ = metric.verifier_rates([True], [1])
    assert math.isnan(fa)


def test_accuracy_and_escalation_rate() -> None:
    assert metric.accuracy([1, 0, 1, 1]) == 0.75
    assert metric.escalation_rate([True, False, False, False]) == 0.25
    assert metric.accuracy([]) == 0.0
