"""The field extractor: order id, product, email and amount copied from one ticket.

A tiny model's usual failure here is inventing a plausible value. Every predicate below checks that
a value it returned is literally in the ticket, so an invention is caught before it is delivered.
"""

from __future__ import annotations

from handoffs_tools.tickets import mentions, numbers_in

from handoffs import Subordinate, checks

from .support import Ticket, TicketFields

__all__ = [
    "agent",
    "amount_usd_in_ticket",
    "email_in_ticket",
    "order_id_in_ticket",
    "product_in_ticket",
]

_NULL_HINT = "Copy it exactly as written, or use null if the ticket does not state it."


def order_id_in_ticket(output: TicketFields, ticket: Ticket) -> tuple[bool, str]:
    """The order id, if any, appears in the ticket."""
    if output.order_id is None or mentions(ticket.text, output.order_id):
        return True, ""
    return False, f"order_id {output.order_id!r} is not in the ticket. {_NULL_HINT}"


def email_in_ticket(output: TicketFields, ticket: Ticket) -> tuple[bool, str]:
    """The email address, if any, appears in the ticket."""
    if output.email is None or mentions(ticket.text, output.email):
        return True, ""
    return False, f"email {output.email!r} is not in the ticket. {_NULL_HINT}"


def product_in_ticket(output: TicketFields, ticket: Ticket) -> tuple[bool, str]:
    """The product, if any, appears in the ticket (ignoring case)."""
    if output.product is None or mentions(ticket.text, output.product):
        return True, ""
    return False, f"product {output.product!r} is not in the ticket. {_NULL_HINT}"


def amount_usd_in_ticket(output: TicketFields, ticket: Ticket) -> tuple[bool, str]:
    """The amount, if any, is a number written in the ticket."""
    amount = output.amount_usd
    if amount is None or any(abs(n - amount) < 0.005 for n in numbers_in(ticket.text)):
        return True, ""
    return False, f"amount_usd {amount} is not a number in the ticket. {_NULL_HINT}"


agent = Subordinate(
    name="extract_fields",
    kind="extract",
    input_type=Ticket,
    output_type=TicketFields,
    instructions=(
        "Copy facts from the ticket. order_id: like ORD-12345. product: the product name. email: "
        "an email address. amount_usd: a dollar amount as a number. Copy each value exactly as "
        "written. Use null for anything the ticket does not say. Never invent a value."
    ),
    description="Extract order id, product, email and dollar amount from one ticket. Call it for every ticket.",
    risk="low",
    checks=[
        checks.predicate(order_id_in_ticket, name="order_id_in_ticket"),
        checks.predicate(email_in_ticket, name="email_in_ticket"),
        checks.predicate(product_in_ticket, name="product_in_ticket"),
        checks.predicate(amount_usd_in_ticket, name="amount_usd_in_ticket"),
    ],
    max_output_tokens=100,
    fallback=TicketFields(),
)
"""Extracts one ticket's fields; degrades to all-null (nothing asserted) rather than guessing."""
