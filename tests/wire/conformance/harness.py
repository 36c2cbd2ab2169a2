"""One conformance scenario end to end, and the invariants checked on every example.

A scenario is a catalog of two models on two instances of the independent server: `primary`
(OpenAI or Anthropic wire, plain or streamed) on the hostile one, which serves the scenario's
recipes in order, and `healthy` (OpenAI-compatible) on the other, which always answers
correctly. Either `healthy` is `primary`'s failover on the same rung, or the next rung of the
ladder. A `Session` with a `Budget` delegates one or more tasks; every outcome is checked against
what the servers really sent, judged independently of the engine (`wire.judge`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel

from handoffs import Catalog, Policy, Portfolio, RetryPolicy, Rule, Session, Task
from handoffs.budget import Budget
from handoffs.errors import HandoffError, HandoffsError, ProviderRejected
from handoffs.handoff import Attempt, Delivery, HandoffRecord
from handoffs.health import Health

from .server import Exchange, Reply, Request, WireServer
from .wire import Recipe, Truth, describe, healthy, judge, realize

__all__ = ["Outcome", "Scenario", "Ticket", "Triage", "Violation", "check", "run"]

PRICE_IN = Decimal(100)
PRICE_OUT = Decimal(400)
REQUEST_TIMEOUT_S = 0.8
FIRST_EVENT_TIMEOUT_S = 0.6
LONG_STALL_S = 1.2
"""Longer than any per-call deadline here."""
FALLBACK_TEXT = "FALLBACK"


class Ticket(BaseModel):
    text: str


class Triage(BaseModel):
    category: Literal["billing", "bug"]
    priority: int


FALLBACK_TRIAGE = Triage(category="bug", priority=0)


@dataclass(frozen=True, kw_only=True)
class Scenario:
    wire: Literal["openai", "anthropic"] = "openai"
    stream: bool = False
    healthy_stream: bool = False
    output: Literal["str", "model"] = "str"
    fallback: bool = False
    topology: Literal["failover", "ladder"] = "failover"
    budget_usd: Decimal | None = None
    max_output_tokens: int = 64
    feedback_retries: int = 1
    recipes: tuple[Recipe, ...] = (Recipe(),)
    then: Literal["repeat", "healthy"] = "repeat"
    """After the recipes run out: repeat the last one, or answer healthily."""
    delegations: int = 1
    sweeps: int = 1

    @property
    def output_type(self) -> type[Any]:
        return str if self.output == "str" else Triage

    @property
    def fallback_value(self) -> Any:
        return FALLBACK_TEXT if self.output == "str" else FALLBACK_TRIAGE

    def short(self) -> str:
        recipes = ", ".join(describe(r) for r in self.recipes)
        return (
            f"Scenario(wire={self.wire}, stream={self.stream}, output={self.output}, "
            f"fallback={self.fallback}, topology={self.topology}, budget={self.budget_usd}, "
            f"max_tokens={self.max_output_tokens}, then={self.then}, recipes=[{recipes}])"
        )


@dataclass
class Delegation:
    """One `delegate` call: what came back and what each server saw meanwhile."""

    result: Delivery[Any] | BaseException
    record: HandoffRecord | None
    records_after: int
    hostile: list[Exchange]
    healthy: list[Exchange]
    order: list[tuple[str, Exchange]]
    spent: Decimal
    reserved: Decimal


@dataclass
class Outcome:
    scenario: Scenario
    delegations: list[Delegation] = field(default_factory=list[Delegation])
    catalog: Catalog | None = None


class Violation(AssertionError):
    pass


class _Hostile:
    """Serves the scenario's recipes in order (then repeats the last, or turns healthy)."""

    def __init__(self, scenario: Scenario) -> None:
        self.recipes = list(scenario.recipes) or [Recipe()]
        self.then = scenario.then
        self.served = 0

    def __call__(self, request: Request) -> Reply:
        i = self.served
        self.served += 1
        if i < len(self.recipes):
            return realize(self.recipes[i], request)
        if self.then == "healthy":
            return healthy(request)
        return realize(self.recipes[-1], request)


def catalog_for(scenario: Scenario, hostile: WireServer, good: WireServer) -> Catalog:
    primary: dict[str, Any] = {
        "provider": "anthropic" if scenario.wire == "anthropic" else "openai-compatible",
        "name": "claude-conformance" if scenario.wire == "anthropic" else "hostile-model",
        "tier": "small",
        "stream": scenario.stream,
        "context_window": 32000,
        "typical_latency_s": 0.05,
        "input_usd_per_mtok": str(PRICE_IN),
        "output_usd_per_mtok": str(PRICE_OUT),
    }
    if scenario.wire == "openai":
        primary["base_url"] = f"{hostile.url}/v1"
    if scenario.topology == "failover":
        primary["failover"] = ["healthy"]
    good_entry: dict[str, Any] = {
        "provider": "openai-compatible",
        "name": "healthy-model",
        "tier": "small" if scenario.topology == "failover" else "mid",
        "stream": scenario.healthy_stream,
        "base_url": f"{good.url}/v1",
        "context_window": 64000,
        "typical_latency_s": 0.05,
        "input_usd_per_mtok": str(PRICE_IN),
        "output_usd_per_mtok": str(PRICE_OUT),
    }
    return Catalog.from_dict({"primary": primary, "healthy": good_entry})


def policy_for(scenario: Scenario) -> Policy:
    ladder = ("primary",) if scenario.topology == "failover" else ("primary", "healthy")
    return Policy(rules=(Rule(ladder=ladder),))


def retry_for(scenario: Scenario) -> RetryPolicy:
    return RetryPolicy(
        request_timeout_s=REQUEST_TIMEOUT_S,
        first_event_timeout_s=FIRST_EVENT_TIMEOUT_S,
        max_retry_after_s=0.3,
        max_handoff_s=6.0,
        sweeps=scenario.sweeps,
        backoff_initial_s=0.01,
        backoff_max_s=0.02,
    )


def task_for(scenario: Scenario, n: int) -> Task[Any]:
    extra: dict[str, Any] = {}
    if scenario.fallback:
        extra["fallback"] = scenario.fallback_value
    return Task(
        kind="triage",
        input=Ticket(text=f"my invoice is wrong ({n})"),
        output_type=scenario.output_type,
        instructions="Triage the ticket.",
        max_output_tokens=scenario.max_output_tokens,
        feedback_retries=scenario.feedback_retries,
        **extra,
    )


async def _run(scenario: Scenario, hostile: WireServer, good: WireServer) -> Outcome:
    cat = catalog_for(scenario, hostile, good)
    outcome = Outcome(scenario=scenario, catalog=cat)
    budget = Budget(scenario.budget_usd)
    hostile_responder = _Hostile(scenario)

    hostile.reset(hostile_responder)
    good.reset(healthy)
    async with Portfolio(cat, env={}, simulated_base_url=hostile.url, timeout_s=5) as portfolio:
        session = Session(
            catalog=cat,
            models=portfolio,
            policy=policy_for(scenario),
            budget=budget,
            retry=retry_for(scenario),
            health=Health(),
        )
        for n in range(scenario.delegations):
            hostile.reset()
            good.reset()
            task = task_for(scenario, n)
            result: Delivery[Any] | BaseException
            try:
                result = await session.delegate(task)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # the invariants sort out what may escape
                result = exc
            await asyncio.to_thread(hostile.settle)
            await asyncio.to_thread(good.settle)
            made = [a for r in session.records[-1:] for a in r.attempts if a.outcome != "refused"]
            await asyncio.to_thread(_wait_for_log, hostile, good, len(made))
            order = sorted(
                [("primary", e) for e in hostile.log] + [("healthy", e) for e in good.log],
                key=lambda pair: pair[1].started,
            )
            outcome.delegations.append(
                Delegation(
                    result=result,
                    record=session.records[-1] if session.records else None,
                    records_after=len(session.records),
                    hostile=list(hostile.log),
                    healthy=list(good.log),
                    order=order,
                    spent=budget.spent_usd,
                    reserved=budget.reserved_usd,
                )
            )
    return outcome


def _wait_for_log(hostile: WireServer, good: WireServer, calls: int) -> None:
    """A request the client wrote just before giving up may still be in the server's parser."""
    end = time.monotonic() + 1.0
    while len(hostile.log) + len(good.log) < calls and time.monotonic() < end:
        time.sleep(0.01)
    hostile.settle()
    good.settle()


def run(scenario: Scenario, hostile: WireServer, good: WireServer) -> Outcome:
    """Run `scenario` on a fresh event loop (each example its own SDK clients)."""
    return asyncio.run(_run(scenario, hostile, good))


# -- invariants ----------------------------------------------------------------------------------

ALLOWED_GIVE_UP = {"budget", "rejected", "content_filter"}
"""Why a handoff may end without the healthy model's answer: the budget could not cover it, or the
hostile provider refused the request itself (a 4xx no retry can fix, or its content filter)."""


def _truth(exchange: Exchange) -> Truth:
    return judge(exchange.request, exchange.reply, bytes(exchange.sent))


KINDS = (
    "escape",
    "lost",
    "record",
    "attempts",
    "cost",
    "delivery",
    "degraded",
    "budget",
    "reserved",
    "liveness",
)


def violations(outcome: Outcome, *, liveness: bool = True) -> list[str]:
    """Every invariant the outcome breaks, one line each tagged with its kind (`KINDS`)."""
    scenario = outcome.scenario
    cat = outcome.catalog
    assert cat is not None
    found: list[str] = []
    before = 0
    for n, d in enumerate(outcome.delegations):
        where = f"delegation {n}"
        result = d.result
        added, before = d.records_after - before, d.records_after
        # 1. nothing escapes outside the documented tree
        if isinstance(result, BaseException) and not isinstance(result, HandoffsError):
            found.append(
                f"[escape] {where}: {type(result).__name__} escaped delegate: {result!r:.200}"
            )
        # 2. nothing lost: every delegate leaves exactly one record, matching how it ended
        if added != 1 or d.record is None:
            found.append(f"[lost] {where}: the handoff left {added} records (lost)")
            continue
        if isinstance(result, BaseException) and not isinstance(result, HandoffsError):
            continue
        record = d.record
        if isinstance(result, Delivery):
            want = "degraded" if result.degraded else "delivered"
            if record.status != want:
                found.append(f"[record] {where}: record status {record.status}, delivery is {want}")
        elif record.status != "failed":
            found.append(f"[record] {where}: raised but the record says {record.status}")
        if isinstance(result, HandoffError) and tuple(result.attempts) != record.attempts:
            if not (isinstance(result, ProviderRejected) and not result.attempts):
                found.append(f"[record] {where}: the exception's attempts differ from the record's")
        attempts = record.attempts
        # 3. every call is an attempt, charged at least what the provider billed
        found += _check_attempts(where, attempts, d, cat)
        # 4. a delivery is a complete, valid answer from one response
        if isinstance(result, Delivery):
            if result.degraded:
                if not scenario.fallback or result.output != scenario.fallback_value:
                    found.append(
                        f"[degraded] {where}: degraded delivery is not the task's fallback"
                    )
            else:
                found += _check_delivery(where, result, d, scenario)
        # 5. the budget
        limit = scenario.budget_usd
        if limit is not None and d.spent > limit:
            found.append(f"[budget] {where}: spent ${d.spent} of a ${limit} budget")
        if d.reserved != 0:
            found.append(f"[reserved] {where}: ${d.reserved} still reserved after the handoff")
        # 6. liveness: with a healthy model on the route, only a budget or a refusal stops short
        if liveness:
            delivered = isinstance(result, Delivery) and not result.degraded
            if not delivered and record.cause not in ALLOWED_GIVE_UP:
                called = len(d.healthy)
                found.append(
                    f"[liveness] {where}: gave up (cause={record.cause}, "
                    f"{type(result).__name__}) with the healthy model called {called} times; "
                    f"attempts: {[(a.model, a.outcome, a.fault) for a in attempts]}"
                )
    return found


def _check_attempts(
    where: str, attempts: tuple[Attempt, ...], d: Delegation, cat: Catalog
) -> list[str]:
    found: list[str] = []
    for model, exchanges in (("primary", d.hostile), ("healthy", d.healthy)):
        made = [a for a in attempts if a.model == model and a.outcome != "refused"]
        if len(exchanges) > len(made):
            found.append(
                f"[attempts] {where}: {len(exchanges)} requests reached {model}'s server, "
                f"{len(made)} attempts recorded"
            )
            continue
        if len(exchanges) < len(made):
            # a call that timed out before its request was written (a loaded machine) never
            # reaches the server: allowed, but then calls and requests cannot be paired for cost
            continue
        entry = cat[model]
        for i, (attempt, exchange) in enumerate(zip(made, exchanges, strict=True)):
            if exchange.reply.ending == "abrupt":
                continue  # an RST may discard bytes the client had not read yet: no floor
            truth = _truth(exchange)
            floor = entry.cost(truth.reported_in, truth.billed_out)
            if attempt.cost_usd < floor:
                found.append(
                    f"[cost] {where}: {model} call {i} ({attempt.outcome}/{attempt.fault}) recorded "
                    f"${attempt.cost_usd} (in {attempt.input_tokens}, out "
                    f"{attempt.output_tokens}); the provider billed at least ${floor} "
                    f"(reported in {truth.reported_in}, out {truth.reported_out}, "
                    f"{truth.streamed_tokens} tokens streamed)"
                )
    return found


def _check_delivery(where: str, delivery: Delivery[Any], d: Delegation, s: Scenario) -> list[str]:
    if not d.order:
        return [f"[delivery] {where}: delivered with no request made"]
    name, last = d.order[-1]
    if delivery.model != name:
        return [
            f"[delivery] {where}: delivered {delivery.model}'s answer but the last response was {name}'s"
        ]
    truth = _truth(last)
    ok, value = truth.value(s.output_type)
    if not ok:
        return [
            f"[delivery] {where}: delivered {delivery.output!r:.80} from {name} as complete, but the "
            f"response was not a complete valid answer (finish={truth.finish!r}, "
            f"kind={truth.kind}, {len(last.sent)}/{len(last.reply.body)} body bytes sent, "
            f"notes={truth.notes})"
        ]
    if value != delivery.output:
        return [
            f"[delivery] {where}: delivered {delivery.output!r:.80}, the response said {value!r:.80}"
        ]
    return []


def of_kind(outcome: Outcome, *kinds: str) -> list[str]:
    """The violations of the given kinds only."""
    assert all(k in KINDS for k in kinds), kinds
    return [v for v in violations(outcome) if v[1 : v.index("]")] in kinds]


def check(outcome: Outcome, *, liveness: bool = True) -> None:
    found = violations(outcome, liveness=liveness)
    if found:
        raise Violation(outcome.scenario.short() + "\n  " + "\n  ".join(found))
