"""The ticket classifier: category and urgency of one ticket, on the cheapest model that gets it right."""

from __future__ import annotations

import re

from handoffs_tools.tickets import order_ids_in

from handoffs import Subordinate, checks

from .judge import RUBRICS
from .support import Ticket, Triage

__all__ = ["agent", "consistent_category"]

_MONEY_TAKEN = re.compile(
    r"\b(refund\w*|charged|charges?|overcharged|billed|double[- ]charged)\b", re.I
)


def consistent_category(output: Triage, ticket: Ticket) -> tuple[bool, str]:
    """A ticket about money taken, or about an order, is never a feature request."""
    if output.category != "feature_request":
        return True, ""
    money = _MONEY_TAKEN.search(ticket.text)
    if money:
        return False, (
            f"the ticket says {money.group(0)!r}: money was taken or is owed, so it is billing, "
            "not feature_request"
        )
    orders = order_ids_in(ticket.text)
    if orders:
        return False, f"the ticket is about order {orders[0]}, so it is not a feature_request"
    return True, ""


agent = Subordinate(
    name="classify_ticket",
    kind="classify",
    input_type=Ticket,
    output_type=Triage,
    instructions=(
        "Classify the support ticket. category: billing (charges, refunds, invoices, prices), "
        "bug (errors, crashes, outages), account (login, password, access), shipping (orders, "
        "delivery), feature_request (asks for something new), other. urgent: true only for an "
        "outage, money taken twice, a lockout before a deadline, a hacked account or a legal "
        "threat. reason: one short sentence."
    ),
    description="Classify one ticket: category and urgency. Call it for every ticket.",
    risk="low",
    checks=[
        checks.predicate(
            consistent_category,
            name="consistent_category",
            feedback="Tickets about charges, refunds or orders are not feature requests.",
        ),
        # A mid-tier judge checks the cheap tiers; mid and frontier answers are trusted here.
        checks.judge(min_score=0.8, rubric=RUBRICS["classify"], model="mid", below_tier="mid"),
    ],
    max_output_tokens=120,
    fallback=Triage(
        category="other", urgent=False, reason="Automatic triage failed; a human must triage."
    ),
)
"""Classifies one ticket; degrades to "other, not urgent" for a human to triage."""
