"""Verify, retry with feedback, escalate, and degrade to a declared fallback.

Shows a cheap model that gets it wrong, a `checks.predicate` and a `checks.judge(min_score=0.8)`
on a stronger model. Ticket A: the predicate rejects the cheap answer, the retry with feedback
fixes that but the judge still rejects it, so the handoff escalates a rung and is delivered.
Ticket B is ambiguous: every rung fails and the declared `fallback` comes back marked degraded.
The attempt table shows each attempt's cost, the judge's own call included.

Runs offline on handoffs' fake provider (real SDKs, loopback socket).

    .venv/bin/python examples/02_verify_and_escalate.py
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from typing import Literal

import anyio
from pydantic import BaseModel

from handoffs import Catalog, Delivery, Policy, Portfolio, Rule, Session, Task, checks
from handoffs.testing import FakeProvider, FakeRequest, LoopbackServer, Reply, ScriptedModel
from handoffs.testing.simulation import first_json

MONEY = re.compile(r"(\d+\.\d\d) (EUR|USD|GBP)")


class Ticket(BaseModel):
    id: str
    text: str


class Refund(BaseModel):
    amount: Decimal
    currency: Literal["EUR", "USD", "GBP"]
    needs_review: bool = False


def cheap_model(request: FakeRequest) -> Reply:
    """Takes the first number it sees; guesses USD unless told otherwise in a correction."""
    prompt = request.last_user_text
    text = first_json(prompt)["text"]
    currency = MONEY.findall(text)[0][1] if "rejected" in prompt else "USD"
    return Reply.json({"amount": re.findall(r"\d+(?:\.\d+)?", text)[0], "currency": currency})


def mid_model(request: FakeRequest) -> Reply:
    """Takes the first amount written with a currency."""
    amount, currency = MONEY.findall(first_json(request.last_user_text)["text"])[0]
    return Reply.json({"amount": amount, "currency": currency})


def strong_judge(request: FakeRequest) -> Reply:
    """Grades an answer (a `JudgeScore`) from the INPUT and ANSWER sections of the judge prompt,
    reading through the datamarks that stand for spaces in the judged text (`checks.unmark`)."""
    prompt = checks.unmark(request.last_user_text)
    given, answer = prompt.split("INPUT (data):")[1].split("ANSWER (data):")
    charges = MONEY.findall(first_json(given)["text"])
    answer = first_json(answer)
    if len(charges) != 1:
        return Reply.json({"score": 0.4, "reasons": ["two charges: a human must pick one"]})
    if [Decimal(answer["amount"]), answer["currency"]] == [Decimal(charges[0][0]), charges[0][1]]:
        return Reply.json({"score": 0.95, "reasons": []})
    return Reply.json({"score": 0.2, "reasons": [f"{answer['amount']} is not the charge"]})


# The `[models.*]` tables of a `handoffs.toml`; the cloud prices come from genai-prices.
CATALOG = Catalog.from_dict(
    tomllib.loads("""
    cheap  = { provider = "openai",    name = "gpt-4.1-nano",      tier = "small",    context_window = 128000 }
    mid    = { provider = "openai",    name = "gpt-4o-mini",       tier = "mid",      context_window = 128000 }
    strong = { provider = "anthropic", name = "claude-sonnet-4-6", tier = "frontier", context_window = 200000 }
    """)
)
POLICY = Policy(rules=(Rule(kind="extract", ladder=("cheap", "mid")),))

amount_in_ticket = checks.predicate(
    lambda refund, ticket: str(refund.amount) in ticket.text and refund.currency in ticket.text,
    name="amount_in_ticket",
    feedback="use an amount and a currency written in the ticket",
)


def refund_task(ticket: Ticket) -> Task[Refund]:
    return Task(
        kind="extract",
        input=ticket,
        output_type=Refund,
        instructions="Extract the amount to refund and its currency.",
        checks=[amount_in_ticket, checks.judge(min_score=0.8, model="strong")],
        fallback=Refund(amount=Decimal(0), currency="EUR", needs_review=True),
    )


def show(delivery: Delivery[Refund]) -> None:
    print(f"{'model':<7}{'rung':>5}  {'outcome':<9}{'retry':<7}{'cost $':>10}  verdicts")
    for a in delivery.attempts:
        verdicts = ", ".join(
            f"{v.check} {'ok' if v.passed else 'FAIL'}"
            + (f" {v.score:.2f} (${v.cost_usd:.6f} on {v.model})" if v.score is not None else "")
            + ("" if v.passed else f": {'; '.join(v.reasons)}")
            for v in a.verdicts
        )
        retry = "yes" if a.feedback else ""
        print(f"{a.model:<7}{a.rung:>5}  {a.outcome:<9}{retry:<7}{a.cost_usd:>10.6f}  {verdicts}")
    status = "DEGRADED (fallback)" if delivery.degraded else f"delivered by {delivery.model}"
    print(f"=> {status}: {delivery.output!r}")
    print(f"   escalations {delivery.escalations}, total ${delivery.cost_usd:.6f}\n")


async def main() -> None:
    provider = FakeProvider(
        {
            "gpt-4.1-nano": ScriptedModel(answer=cheap_model),
            "gpt-4o-mini": ScriptedModel(answer=mid_model),
            "claude-sonnet-4-6": ScriptedModel(answer=strong_judge),
        }
    )
    with LoopbackServer(provider) as server:
        portfolio = Portfolio(CATALOG, env={}, simulated_base_url=server.base_url)
        session = Session(catalog=CATALOG, models=portfolio, policy=POLICY)
        tickets = [
            Ticket(id="A", text="Order #4417: I was charged 59.90 EUR twice. Refund one."),
            Ticket(id="B", text="Charged 20.00 EUR and then 35.00 EUR. Refund the wrong one."),
        ]
        for ticket in tickets:
            print(f"ticket {ticket.id}: {ticket.text}")
            show(await session.delegate(refund_task(ticket)))


if __name__ == "__main__":
    anyio.run(main)
