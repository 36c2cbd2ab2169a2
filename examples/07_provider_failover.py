"""A provider's bad hour: failover along a rung, the circuit breaker, the prober, a 429, a refusal.

The frontier rung is Claude Sonnet (Anthropic wire) with GPT-4o (OpenAI wire) as its failover, each
with its own prompt template. Anthropic goes down (every request a 529): the first handoffs fail
over and pay for the outage until the breaker opens; after that the route skips Claude and says
why. The outage ends, the prober's trial succeeds and Claude is back. Then a 429 sends the handoff
to the equivalent first; with GPT-4o down too, Claude's Retry-After, which fits the deadline, is
waited out. Last, a content-filter refusal returns the declared fallback, marked degraded.

Runs offline on handoffs' fake provider (real SDKs, loopback socket).

    .venv/bin/python examples/07_provider_failover.py
"""

from __future__ import annotations

from typing import Literal

import anyio
from pydantic import BaseModel

from handoffs import (
    BreakerSettings,
    Catalog,
    Health,
    Policy,
    Portfolio,
    Prober,
    Rule,
    Session,
    Task,
)
from handoffs.testing import FakeProvider, Fault, LoopbackServer, Reply, ScriptedModel

CATALOG = Catalog.from_dict(
    {
        "sonnet": {"provider": "anthropic", "name": "claude-sonnet-4-6", "tier": "frontier",
                   "context_window": 200000, "prompt_variant": "xml", "failover": ["gpt4o"]},
        "gpt4o": {"provider": "openai", "name": "gpt-4o", "tier": "frontier",
                  "context_window": 128000, "structured_output": "native"},
    }
)  # fmt: skip


class Ticket(BaseModel):
    text: str


class Triage(BaseModel):
    category: Literal["billing", "bug", "other"]
    urgent: bool


def answer(request: object) -> Reply:
    return Reply.json({"category": "billing", "urgent": False})


def triage(text: str, **kw: object) -> Task[Triage]:
    return Task(kind="classify", input=Ticket(text=text), output_type=Triage, **kw)  # type: ignore[arg-type]


async def main() -> None:
    provider = FakeProvider(
        {name: ScriptedModel(answer=answer) for name in ("claude-sonnet-4-6", "gpt-4o")}
    )
    clock = [0.0]  # the breakers' clock, moved by hand so the example needs no waiting
    health = Health(
        BreakerSettings(failure_threshold=3, cooldown_s=30, success_threshold=2),
        clock=lambda: clock[0],
    )
    with LoopbackServer(provider) as server:
        async with Portfolio(CATALOG, env={}, simulated_base_url=server.base_url) as portfolio:
            policy = Policy(rules=(Rule(ladder=("sonnet",)),))
            session = Session(catalog=CATALOG, models=portfolio, policy=policy, health=health)
            breaker = session.breaker(CATALOG["sonnet"])

            print("== Anthropic is down (529 overloaded on every request)")
            outage = provider.outage("claude-sonnet-4-6", Fault.http(529)).start()
            for i in range(5):
                delivery = await session.delegate(triage(f"invoice {i} is wrong"))
                tried = " -> ".join(f"{a.model}:{a.fault or a.outcome}" for a in delivery.attempts)
                print(
                    f"handoff {i}: delivered by {delivery.model:6} attempts {tried:45} breaker {breaker.state}"
                )
            paid = sum(1 for r in provider.requests if r.model == "claude-sonnet-4-6")
            print(f"requests that paid for the outage: {paid} (the breaker's threshold is 3)")
            print(session.route(triage("x")).explain())

            print("\n== The outage ends; after the cooldown the prober's trial brings Claude back")
            outage.end()
            clock[0] += 30
            prober = Prober(session, model_ids=["sonnet"])
            for result in await prober.probe_once():
                print(
                    f"probe {result.model}: {'ok' if result.ok else result.error}; breaker {breaker.state}"
                )
            delivery = await session.delegate(triage("invoice 9"))
            print(f"next handoff: delivered by {delivery.model}; breaker {breaker.state}")

            print("\n== A 429 (Retry-After 0.2 s): the equivalent first; GPT-4o is down, so wait")
            replies = iter([Fault.http(429, retry_after_s=0.2), answer(None)])
            provider.add("claude-sonnet-4-6", ScriptedModel(answer=lambda r: next(replies)))
            provider.add("gpt-4o", ScriptedModel(answer=lambda r: Fault.http(503)))
            delivery = await session.delegate(triage("invoice 10", deadline_s=5))
            print(
                "attempts:",
                ", ".join(f"{a.model}:{a.fault or a.outcome}" for a in delivery.attempts),
            )
            provider.add("gpt-4o", ScriptedModel(answer=answer))

            print("\n== A content-filter refusal returns the declared fallback, marked degraded")
            provider.add(
                "claude-sonnet-4-6", ScriptedModel(answer=lambda r: Fault.content_filter())
            )
            fallback = Triage(category="other", urgent=True)
            delivery = await session.delegate(
                triage("something the filter dislikes", fallback=fallback)
            )
            print(
                f"output {delivery.output!r}; degraded={delivery.degraded}; cause={delivery.record.cause}"
            )


if __name__ == "__main__":
    anyio.run(main)
