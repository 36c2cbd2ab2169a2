"""Routes memoised: the router's decision kept per (kind, risk, input size, breaker epoch).

The router is pure: for one catalog and policy its decision depends on the task's kind, risk,
per-call model, required capabilities, output cap, cost ceiling and deadline, on the prompt's
token estimate (the input's size, as the router measures it: its filters compare that number, so
it is the bucket), and on what is out of rotation. A fan-out of like tasks asks the same question
thousands of times, so the session keeps the answer per key (`RouteMemo`) while the breakers'
`Health.epoch` has not moved and no breaker of the catalog is out of the closed state: an open
or half-open breaker's reason changes with the clock ("retry in 12s") and its state moves only
when it is read, so while one is, every route is made afresh. What else is out of rotation (the
session's `unavailable`, spending caps) is part of the key. A policy with a scorer (which reads
the task's text) is never memoised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handoffs.catalog import Catalog
from handoffs.health import Health
from handoffs.routing import Policy, RouteDecision, estimate_input_tokens
from handoffs.task import Task

__all__ = ["RouteMemo"]

Key = tuple[Any, ...]

MAX_ROUTES = 512
"""Routes kept at once; the memo starts again when it is full (a run of unlike tasks)."""


class RouteMemo:
    """The routes a session decided, per key, valid for one catalog, policy, `Health` and epoch."""

    def __init__(self) -> None:
        self._routes: dict[Key, RouteDecision] = {}
        self._valid_for: tuple[Catalog, Policy, Health, int] | None = None
        self.hits = 0
        """Routes answered from the memo."""
        self.misses = 0
        """Routes the router was asked for."""

    @staticmethod
    def key(task: Task[Any], unavailable: Mapping[str, str]) -> Key:
        """What the router's decision for `task` depends on, besides the catalog, the policy and
        the breakers: `unavailable` is what else is out of rotation."""
        return (
            task.kind,
            task.risk,
            task.model,
            task.requires,
            task.max_output_tokens,
            task.max_cost_usd,
            task.deadline_s,
            estimate_input_tokens(task),
            frozenset(unavailable.items()),
        )

    def _holds(self, catalog: Catalog, policy: Policy, health: Health, epoch: int) -> bool:
        valid = self._valid_for
        return (
            valid is not None
            and valid[0] is catalog
            and valid[1] is policy
            and valid[2] is health
            and valid[3] == epoch
        )

    def get(
        self, key: Key, *, catalog: Catalog, policy: Policy, health: Health
    ) -> RouteDecision | None:
        """The route memoised for `key` if it still holds: the same catalog, policy and
        `health`, whose epoch has not moved since it was kept."""
        if policy.scorer is not None or not self._holds(catalog, policy, health, health.epoch):
            return None
        found = self._routes.get(key)
        if found is not None:
            self.hits += 1
        return found

    def put(
        self,
        key: Key,
        decision: RouteDecision,
        *,
        catalog: Catalog,
        policy: Policy,
        health: Health,
        epoch: int,
    ) -> None:
        """Keep `decision` for `key`, valid while `health.epoch` is still `epoch` (read before
        every breaker of the catalog was seen closed)."""
        if policy.scorer is not None:
            return
        if not self._holds(catalog, policy, health, epoch) or len(self._routes) >= MAX_ROUTES:
            self._routes.clear()
            self._valid_for = (catalog, policy, health, epoch)
        self._routes[key] = decision
