"""The reply writer: a draft answer to an urgent ticket, for a human agent to review and send."""

from __future__ import annotations

from handoffs_tools.tickets import asks_for_refund, first_name, mentions, promises_refund

from handoffs import Subordinate, checks

from .judge import RUBRICS
from .support import ReplyDraft, ReplyRequest

__all__ = [
    "MAX_BODY_CHARS",
    "addresses_customer",
    "agent",
    "body_not_empty",
    "body_short_enough",
    "no_unasked_refund",
]

MAX_BODY_CHARS = 1200


def body_not_empty(output: ReplyDraft) -> bool:
    """The reply says something."""
    return bool(output.body.strip())


def addresses_customer(output: ReplyDraft, request: ReplyRequest) -> tuple[bool, str]:
    """The reply greets the customer by first name."""
    name = first_name(request.ticket.customer)
    if not name or mentions(output.body, name):
        return True, ""
    return False, f"Greet the customer by name: start the body with 'Hi {name},'."


def body_short_enough(output: ReplyDraft) -> tuple[bool, str]:
    """The reply fits a support message (under MAX_BODY_CHARS characters)."""
    size = len(output.body)
    if size <= MAX_BODY_CHARS:
        return True, ""
    return False, f"The body is {size} characters; keep it under {MAX_BODY_CHARS}."


def no_unasked_refund(output: ReplyDraft, request: ReplyRequest) -> tuple[bool, str]:
    """The reply promises a refund only when the customer asked for one."""
    if not promises_refund(output.body) or asks_for_refund(request.ticket.text):
        return True, ""
    return False, "The customer did not ask for a refund: do not promise one."


agent = Subordinate(
    name="draft_reply",
    kind="draft",
    input_type=ReplyRequest,
    output_type=ReplyDraft,
    instructions=(
        "Write a short, polite reply to the customer's ticket. Start with 'Hi <first name>,'. "
        "Say you understand the problem in one sentence, then say what happens next. Do not "
        "promise a refund unless the customer asked for one. No more than 120 words."
    ),
    description="Draft a reply to one ticket, given the ticket and its triage. Call it only for urgent tickets.",
    risk="medium",
    checks=[
        checks.predicate(body_not_empty, name="body_not_empty", feedback="Write a reply body."),
        checks.predicate(addresses_customer, name="addresses_customer"),
        checks.predicate(body_short_enough, name="body_short_enough"),
        checks.predicate(no_unasked_refund, name="no_unasked_refund"),
        checks.judge(min_score=0.8, rubric=RUBRICS["draft"]),
    ],
    max_output_tokens=400,
)
"""Drafts a reply; no fallback, since a canned reply to an urgent ticket is worse than none."""
