"""Your first handoff: one typed task, a cheap model and a strong one, a budget.

Shows: pydantic input and output types, a two-model `Catalog` built in code, a `Session` with a
dollar `Budget`, `await session.delegate(Task(...))`, what the `Delivery` says (output, model, cost,
attempts, verdicts), and why the router chose the cheap model first (`RouteDecision.explain()`).

Runs offline: both models are scripted on handoffs' fake provider, served on a loopback socket
and reached through the real `openai` and `anthropic` SDKs, exactly as the cloud would be.

    .venv/bin/python examples/01_first_handoff.py
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import anyio
from pydantic import BaseModel

from handoffs import Budget, Catalog, ModelEntry, Portfolio, Session, Task
from handoffs.testing import FakeProvider, FakeRequest, LoopbackServer, Reply, ScriptedModel
from handoffs.testing.simulation import first_json


class Ticket(BaseModel):
    """What the subordinate works on."""

    id: str
    text: str


class Triage(BaseModel):
    """What it must hand back: validated against this type's JSON Schema."""

    category: Literal["billing", "bug", "account", "other"]
    urgent: bool


def cheap_model(request: FakeRequest) -> Reply:
    """A small model's behaviour: keyword rules over the ticket it was sent (as JSON)."""
    text = first_json(request.last_user_text)["text"].lower()
    category = "billing" if "invoice" in text or "charged" in text else "other"
    return Reply.json({"category": category, "urgent": "twice" in text})


def strong_model(request: FakeRequest) -> Reply:
    """A frontier model's behaviour: never reached here, the cheap model's answer passes."""
    text = first_json(request.last_user_text)["text"].lower()
    category = "billing" if "invoice" in text else "account" if "password" in text else "other"
    return Reply.json({"category": category, "urgent": "twice" in text or "locked" in text})


# Two models, priced per million tokens (USD). In `handoffs.toml` the cloud prices come from
# genai-prices; here the catalog is built in code, so they are given explicitly.
CATALOG = Catalog(
    [
        ModelEntry(
            id="cheap",
            provider="openai",
            name="gpt-4o-mini",
            tier="mid",
            input_usd_per_mtok=Decimal("0.15"),
            output_usd_per_mtok=Decimal("0.60"),
            context_window=128_000,
        ),
        ModelEntry(
            id="strong",
            provider="anthropic",
            name="claude-sonnet-4-6",
            tier="frontier",
            input_usd_per_mtok=Decimal("3"),
            output_usd_per_mtok=Decimal("15"),
            context_window=200_000,
        ),
    ]
)


async def main() -> None:
    provider = FakeProvider(
        {
            "gpt-4o-mini": ScriptedModel(answer=cheap_model),
            "claude-sonnet-4-6": ScriptedModel(answer=strong_model),
        }
    )
    with LoopbackServer(provider) as server:
        # env={}: no API keys, so both entries are "simulated": served by the fake provider.
        portfolio = Portfolio(CATALOG, env={}, simulated_base_url=server.base_url)
        budget = Budget(Decimal("0.01"))
        session = Session(catalog=CATALOG, models=portfolio, budget=budget)

        task = Task(
            kind="classify",
            input=Ticket(id="T-1001", text="I was charged twice for invoice #8812."),
            output_type=Triage,
            instructions="Classify the support ticket and say whether it is urgent.",
            risk="low",
        )
        print("route:", session.route(task).explain(), sep="\n")

        delivery = await session.delegate(task)

        print(f"\noutput:   {delivery.output!r}")
        print(f"model:    {delivery.model} ({portfolio.label(delivery.model or '')})")
        print(f"cost:     ${delivery.cost_usd:.6f}")
        for a in delivery.attempts:
            print(
                f"attempt:  {a.model} rung {a.rung} -> {a.outcome} ({a.input_tokens} in / {a.output_tokens} out tokens)"
            )
        for v in delivery.verdicts:
            print(f"verdict:  {v.check} {'passed' if v.passed else 'failed'}")
        print(f"budget:   spent ${budget.spent_usd:.6f} of ${budget.limit_usd} limit")


if __name__ == "__main__":
    anyio.run(main)
