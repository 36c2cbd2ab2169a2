"""A self-hosted model behind an OpenAI-compatible `base_url`, guarded by a check, with escalation.

Shows: the catalog entry you write for vLLM, a llama.cpp server or Ollama: `provider =
"openai-compatible"`, a `base_url`, an explicit price (your hardware's amortised cost per million
tokens), `structured_output="native"` (grammar-constrained JSON) and the `compact` prompt. A
predicate guards its answers; when it fails (a 135M model is often wrong) the handoff escalates to a
stronger model (a simulated "gpt-4o-mini" on handoffs' fake provider).

The endpoint is a real SmolLM2-135M served by llama.cpp in this process (`LocalServer`) when the
[local] extra is installed; otherwise, or with `--fake`, the fake provider stands in for it.

    .venv/bin/python examples/04_self_hosted_endpoint.py [--fake]
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from decimal import Decimal
from typing import Literal

import anyio
from pydantic import BaseModel

from handoffs import Catalog, ModelEntry, Policy, Portfolio, Rule, Session, Task, checks
from handoffs.providers import INSTALL_HINT, LocalServer, local_available
from handoffs.testing import FakeProvider, LoopbackServer, Reply, ScriptedModel


class Ticket(BaseModel):
    id: str
    text: str


class Triage(BaseModel):
    severity: Literal["low", "medium", "high"]


OUTAGE_WORDS = ("cannot log in", "502", "outage", "down")

outage_is_high = checks.predicate(
    lambda t, ticket: t.severity == "high" or not any(w in ticket.text for w in OUTAGE_WORDS),
    name="outage_is_high",
    feedback="a ticket reporting an outage is high severity",
)


def catalog(endpoint: str) -> Catalog:
    return Catalog(
        [
            ModelEntry(
                id="selfhosted",
                provider="openai-compatible",
                name="smollm2-135m",
                base_url=endpoint,
                tier="local",
                input_usd_per_mtok=Decimal("0.01"),  # priced explicitly: no price list knows it
                output_usd_per_mtok=Decimal("0.02"),
                context_window=2048,
                structured_output="native",
                prompt_variant="compact",
                capabilities=frozenset(),  # no tool calling
            ),
            ModelEntry(
                id="mid",
                provider="openai",
                name="gpt-4o-mini",
                tier="mid",
                input_usd_per_mtok=Decimal("0.15"),
                output_usd_per_mtok=Decimal("0.60"),
                context_window=128_000,
            ),
        ]
    )


async def main() -> None:
    use_local = local_available() and "--fake" not in sys.argv
    provider = FakeProvider(
        {
            "gpt-4o-mini": ScriptedModel(answer=lambda r: Reply.json({"severity": "high"})),
            "smollm2-135m": ScriptedModel(answer=lambda r: Reply.json({"severity": "low"})),
        }
    )
    with ExitStack() as stack:
        fake = stack.enter_context(LoopbackServer(provider))
        if use_local:
            endpoint = stack.enter_context(LocalServer()).base_url  # stopped when the block ends
            print(f"endpoint: SmolLM2-135M via llama.cpp at {endpoint}")
        else:
            endpoint = fake.openai_base_url
            why = "--fake given" if local_available() else f"no local model ({INSTALL_HINT})"
            print(f"endpoint: fake provider at {endpoint} standing in ({why})")

        cat = catalog(endpoint)
        portfolio = Portfolio(cat, env={}, simulated_base_url=fake.base_url)
        policy = Policy(rules=(Rule(kind="classify", ladder=("selfhosted", "mid")),))
        session = Session(catalog=cat, models=portfolio, policy=policy)
        print("models:", ", ".join(f"{m} ({portfolio.label(m)})" for m in cat))

        task = Task(
            kind="classify",
            input=Ticket(
                id="T-7", text="Since the deploy, users cannot log in: the page shows 502."
            ),
            output_type=Triage,
            instructions="Rate the ticket's severity: low, medium or high.",
            checks=[outage_is_high],
            max_output_tokens=32,
        )
        delivery = await session.delegate(task)

        for a in delivery.attempts:
            failed = [r for v in a.verdicts if not v.passed for r in v.reasons]
            note = a.error or ("; ".join(failed) if failed else "passed its checks")
            print(f"  {a.model:<10} {a.outcome:<14} {a.latency_s:5.2f}s ${a.cost_usd:.8f}  {note}")
        print(f"delivered by {delivery.model}: {delivery.output!r}")
        print(f"escalations {delivery.escalations}, total ${delivery.cost_usd:.8f}")


if __name__ == "__main__":
    anyio.run(main)
