"""Routing metrics: pure functions of recorded outcomes and cost-quality curves.

A *curve* is a sequence of operating points `(cost, quality)`. For two-model data a *share curve*
has the share of calls sent to the strong model (0..1) in place of cost.

- `aiq` (RouterBench's Average Improvement in Quality): the area under the router's non-decreasing
  upper convex hull R~(c) over a fixed cost range, divided by its width:
  AIQ = 1/(c_max - c_min) * integral from c_min to c_max of R~(c) dc. Any two operating points can be
  blended by sending a share of prompts to each, so every point on the hull is reachable; spending
  more than the curve's last point buys nothing more (R~ stays flat), and below its cheapest point
  R~ is 0.
- `apgr` (RouteLLM): PGR(c) = (acc(c) - acc_weak) / (acc_strong - acc_weak) at strong-call share c;
  APGR = integral of PGR over c in [0, 1], computed as RouteLLM does on 10 equal intervals (here at
  each interval's midpoint, with acc(c) interpolated linearly). Random routing scores 0.5; a router
  that fixes every prompt the strong model can fix within the first interval scores 1.
- `cpt`: the smallest strong-call share whose PGR reaches a fraction (50 %, 80 %).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "accuracy",
    "aiq",
    "apgr",
    "apgr_resampled",
    "cost_to_reach",
    "cpt",
    "escalation_rate",
    "pgr",
    "quality_at",
    "share_curve",
    "upper_hull",
    "verifier_rates",
]

Point = tuple[float, float]


def accuracy(correct: Sequence[float]) -> float:
    """The share of 1s in a 0/1 sequence (0 when empty)."""
    return sum(correct) / len(correct) if correct else 0.0


def escalation_rate(escalated: Sequence[bool]) -> float:
    """The share of prompts a cascade sent on to a stronger model."""
    return sum(escalated) / len(escalated) if escalated else 0.0


def verifier_rates(accepted: Sequence[bool], correct: Sequence[float]) -> tuple[float, float]:
    """(false-accept rate, false-reject rate) of a verifier gating a cheap model's answers.

    False accept: accepted among the wrong answers; false reject: rejected among the right ones.
    A rate whose denominator is empty is NaN.
    """
    wrong = [a for a, c in zip(accepted, correct, strict=True) if c < 0.5]
    right = [a for a, c in zip(accepted, correct, strict=True) if c >= 0.5]
    false_accept = sum(wrong) / len(wrong) if wrong else math.nan
    false_reject = (len(right) - sum(right)) / len(right) if right else math.nan
    return false_accept, false_reject


def upper_hull(points: Sequence[Point]) -> list[Point]:
    """The non-decreasing upper convex hull of operating points, cheapest first."""
    ordered = sorted(set(points), key=lambda p: (p[0], -p[1]))
    hull: list[Point] = []
    for p in ordered:
        if hull and p[1] <= hull[-1][1]:
            continue  # costs at least as much for no more quality
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], p) >= 0:
            hull.pop()
        hull.append(p)
    return hull


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def quality_at(hull: Sequence[Point], cost: float) -> float:
    """The hull's quality at a cost: 0 below its cheapest point, flat past its last."""
    if not hull or cost < hull[0][0]:
        return 0.0
    for (c0, q0), (c1, q1) in itertools.pairwise(hull):
        if c0 <= cost <= c1:
            return q0 + (q1 - q0) * (cost - c0) / (c1 - c0)
    return hull[-1][1]


def aiq(points: Sequence[Point], c_min: float, c_max: float) -> float:
    """RouterBench's AIQ: mean of the upper hull's quality over [c_min, c_max] (exact integral)."""
    if c_max <= c_min:
        raise ValueError("aiq needs c_max > c_min")
    hull = upper_hull(points)
    knots = sorted({c_min, c_max, *(c for c, _ in hull if c_min < c < c_max)})
    if not hull:
        return 0.0
    area = 0.0
    for a, b in itertools.pairwise(knots):
        if a >= hull[0][0]:  # knots include the hull's first cost, so no segment straddles it
            area += (quality_at(hull, a) + quality_at(hull, b)) / 2 * (b - a)
    return area / (c_max - c_min)


def cost_to_reach(points: Sequence[Point], target: float) -> float | None:
    """The least cost at which the curve's upper hull reaches a quality, or None if it never does."""
    hull = upper_hull(points)
    if not hull or hull[-1][1] < target:
        return None
    if hull[0][1] >= target:
        return hull[0][0]
    for (c0, q0), (c1, q1) in itertools.pairwise(hull):
        if q0 < target <= q1:
            return c0 + (c1 - c0) * (target - q0) / (q1 - q0)
    return None  # pragma: no cover - unreachable: the hull is non-decreasing


def pgr(acc: float, acc_weak: float, acc_strong: float) -> float:
    """Performance gap recovered: 0 at the weak model's accuracy, 1 at the strong one's."""
    gap = acc_strong - acc_weak
    return (acc - acc_weak) / gap if gap else math.nan


def share_curve(
    scores: Sequence[float], weak: Sequence[float], strong: Sequence[float]
) -> list[Point]:
    """(strong-call share, accuracy) when the k highest-scored prompts go to the strong model.

    One point per k = 0..n. Prompts with equal scores are taken in no particular order, so within
    a run of ties the curve is the expectation over their orders: a straight line across the run
    (otherwise a constant scorer would be graded on the data's file order).
    """
    n = len(scores)
    order = sorted(range(n), key=lambda i: -scores[i])
    total = sum(weak)
    points = [(0.0, total / n if n else 0.0)]
    k = 0
    for _, run in itertools.groupby(order, key=lambda i: scores[i]):
        members = list(run)
        gain = sum(strong[i] - weak[i] for i in members)
        for step in range(1, len(members) + 1):
            points.append(((k + step) / n, (total + gain * step / len(members)) / n))
        k += len(members)
        total += gain
    return points


def _interpolate(curve: Sequence[Point], x: float) -> float:
    ordered = sorted(curve)
    if x <= ordered[0][0]:
        return ordered[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(ordered):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ordered[-1][1]


def apgr(
    curve: Sequence[Point], acc_weak: float, acc_strong: float, *, intervals: int = 10
) -> float:
    """RouteLLM's APGR over a share curve: mean PGR at the midpoints of `intervals` equal shares."""
    mids = [(k + 0.5) / intervals for k in range(intervals)]
    return sum(pgr(_interpolate(curve, c), acc_weak, acc_strong) for c in mids) / intervals


def cpt(
    curve: Sequence[Point], acc_weak: float, acc_strong: float, fraction: float
) -> float | None:
    """RouteLLM's CPT(x): the least strong-call share whose PGR reaches `fraction`, else None."""
    ordered = sorted(curve)
    target = acc_weak + fraction * (acc_strong - acc_weak)
    if ordered and ordered[0][1] >= target:
        return ordered[0][0]
    for (x0, y0), (x1, y1) in itertools.pairwise(ordered):
        if y0 < target <= y1:
            return x0 + (x1 - x0) * (target - y0) / (y1 - y0)
    return None


def apgr_resampled(
    scores: Sequence[float],
    weak: Sequence[float],
    strong: Sequence[float],
    rows: NDArray[np.int64],
    *,
    intervals: int = 10,
) -> NDArray[np.float64]:
    """`apgr` of each resample of prompts (a row of `rows` holds prompt indices), vectorised.

    Same definition as `share_curve` + `apgr`: ties in score are taken in expectation, i.e. the
    curve is interpolated between the ends of each run of equal scores.
    """
    s, w, g = (np.asarray(v, dtype=np.float64) for v in (scores, weak, strong))
    order = np.argsort(-s[rows], axis=1, kind="stable")
    picked = np.take_along_axis(rows, order, axis=1)
    ranked = s[picked]
    n = rows.shape[1]
    gains = np.cumsum(g[picked] - w[picked], axis=1)
    base = w[rows].sum(axis=1)
    mids = (np.arange(intervals) + 0.5) / intervals
    out = np.empty(rows.shape[0])
    for r in range(rows.shape[0]):
        ends: NDArray[np.int64] = np.nonzero(np.r_[ranked[r, 1:] != ranked[r, :-1], True])[0]
        xs: NDArray[np.float64] = np.r_[0.0, (ends + 1) / n]
        ys: NDArray[np.float64] = (base[r] + np.r_[0.0, gains[r, ends]]) / n
        acc_w, acc_s = float(base[r]) / n, float(g[rows[r]].mean())
        gap = acc_s - acc_w
        pgrs: NDArray[np.float64] = (
            (np.interp(mids, xs, ys) - acc_w) / gap if gap else mids * np.nan
        )
        out[r] = float(pgrs.mean())
    return out
