"""A router that learns from your own traffic: record outcomes, train a scorer, route with it.

Shows the loop the learned router is for. Week 1: refund tickets go cheap -> strong; the cheap
model reads "59,90 €" as 5990, the `amount_in_ticket` predicate rejects it (and its retry with
feedback), and the handoff escalates - every such ticket pays for two wasted cheap calls. The
session appends each model's outcome per task to `outcomes.jsonl` (`OutcomeLog`, or
`[policy] outcomes = "outcomes.jsonl"` in `handoffs.toml`). Then a scorer is trained on that file
(`fit_linear_scorer`; the CLI is `handoffs router train --data outcomes.jsonl -o router.npz`)
and week 2's tickets, all new, are routed with it: the router predicts per model the chance the
answer passes verification and orders the ladder by expected cost per verified answer, so
comma-decimal tickets go straight to the strong model and the rest still start cheap.

Runs offline on handoffs' fake provider (real SDKs, loopback socket); numpy does the fitting.

    .venv/bin/python examples/08_learned_router.py
"""

from __future__ import annotations

import re
import tempfile
import tomllib
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import anyio
from pydantic import BaseModel

from handoffs import Catalog, Policy, Portfolio, Rule, Session, Task, checks
from handoffs.routing import OutcomeLog, fit_linear_scorer, load_scorer, read_examples
from handoffs.testing import FakeProvider, FakeRequest, LoopbackServer, Reply, ScriptedModel
from handoffs.testing.simulation import first_json

AMOUNT = re.compile(r"(\d+)[.,](\d\d)")


class Ticket(BaseModel):
    id: str
    text: str


class Refund(BaseModel):
    amount: Decimal


def cheap_model(request: FakeRequest) -> Reply:
    """Drops the decimal separator unless it is a dot: '59,90' becomes 5990."""
    text = first_json(request.last_user_text)["text"]
    number = re.search(r"\d+(?:\.\d+)?(?:,\d+)?", text)
    assert number is not None
    return Reply.json({"amount": number.group().replace(",", "")})


def strong_model(request: FakeRequest) -> Reply:
    """Reads either separator."""
    match = AMOUNT.search(first_json(request.last_user_text)["text"])
    assert match is not None
    return Reply.json({"amount": f"{match[1]}.{match[2]}"})


CATALOG = Catalog.from_dict(
    tomllib.loads("""
    cheap  = { provider = "openai",    name = "gpt-4.1-nano",      tier = "small",    context_window = 128000 }
    strong = { provider = "anthropic", name = "claude-sonnet-4-6", tier = "frontier", context_window = 200000 }
    """)
)
POLICY = Policy(rules=(Rule(kind="refund", ladder=("cheap", "strong")),))


def _in_ticket(refund: Refund, ticket: Ticket) -> bool:
    match = AMOUNT.search(ticket.text)
    return match is not None and refund.amount == Decimal(f"{match[1]}.{match[2]}")


amount_in_ticket = checks.predicate(
    _in_ticket, name="amount_in_ticket", feedback="use the amount written in the ticket"
)

PRODUCTS = ("headphones", "blender", "desk lamp", "backpack", "kettle", "monitor arm", "router")
DOT = "I was charged {a}.{c} USD for the {p} and it never arrived. Please refund it."
COMMA = "Bonjour, on m'a facturé {a},{c} € pour le {p} mais je l'ai renvoyé. Remboursez svp."


def tickets(week: int, n: int) -> list[Ticket]:
    """`n` tickets; every third is written with a decimal comma. New amounts each week."""
    out: list[Ticket] = []
    for i in range(n):
        euros, cents = 13 + 7 * i + 100 * week, (17 * i + week) % 100
        form = COMMA if i % 3 == 0 else DOT
        text = form.format(a=euros, c=f"{cents:02d}", p=PRODUCTS[i % len(PRODUCTS)])
        out.append(Ticket(id=f"W{week}-{i:02d}", text=text))
    return out


def refund_task(ticket: Ticket) -> Task[Refund]:
    return Task(
        kind="refund",
        input=ticket,
        output_type=Refund,
        instructions="Extract the amount to refund.",
        checks=[amount_in_ticket],
    )


async def week(session: Session, batch: list[Ticket]) -> str:
    """Run a batch; summarise what it cost and how many cheap answers were thrown away."""
    wasted = straight_up = 0
    cost = Decimal(0)
    for ticket in batch:
        delivery = await session.delegate(refund_task(ticket))
        cost += delivery.cost_usd
        wasted += sum(a.model == "cheap" and a.outcome != "accepted" for a in delivery.attempts)
        straight_up += delivery.attempts[0].model == "strong"
    return (
        f"{len(batch)} tickets, ${cost:.6f} (${cost / len(batch):.6f} each), "
        f"{wasted} cheap answers rejected, {straight_up} sent straight to strong"
    )


async def main() -> None:
    provider = FakeProvider(
        {
            "gpt-4.1-nano": ScriptedModel(answer=cheap_model),
            "claude-sonnet-4-6": ScriptedModel(answer=strong_model),
        }
    )
    with LoopbackServer(provider) as server, tempfile.TemporaryDirectory() as tmp:
        portfolio = Portfolio(CATALOG, env={}, simulated_base_url=server.base_url)
        log = OutcomeLog(Path(tmp) / "outcomes.jsonl")
        before = Session(catalog=CATALOG, models=portfolio, policy=POLICY, outcomes=log)
        print("week 1, rules only:  ", await week(before, tickets(1, 30)))
        print(f"recorded: {len(log.path.read_text().splitlines())} outcomes in {log.path.name}")

        scorer = fit_linear_scorer(read_examples(log.path))
        scorer.save(Path(tmp) / "router.npz")  # what `[policy] scorer = "router.npz"` loads
        learned = replace(POLICY, scorer=load_scorer(Path(tmp) / "router.npz"))
        after = Session(catalog=CATALOG, models=portfolio, policy=learned)

        fresh = tickets(2, 30)
        for ticket in fresh[:2]:
            print(f"\n{ticket.text}\n{after.route(refund_task(ticket)).explain()}")
        print("\nweek 2, with scorer: ", await week(after, fresh))
        rules_only = Session(catalog=CATALOG, models=portfolio, policy=POLICY)
        print("week 2, rules only:  ", await week(rules_only, fresh))


if __name__ == "__main__":
    anyio.run(main)
