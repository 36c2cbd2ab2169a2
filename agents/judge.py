"""The roster's judge settings: the rubric each kind of answer is graded against.

Subordinates use `RUBRICS[kind]` with their own thresholds; `agent` is the default judge for a
subordinate that names none.
"""

from __future__ import annotations

from handoffs import checks

__all__ = ["RUBRICS", "agent"]

RUBRICS: dict[str, str] = {
    "classify": (
        "The category is what the ticket is mainly about: money taken or billed -> billing; an error, "
        "crash or outage -> bug; login, password or account access -> account; an order's delivery "
        "-> shipping; a request for something new -> feature_request; anything else -> other. "
        "`urgent` is true only for outages, money taken twice, a lockout before a deadline, a late "
        "order needed by a date, a hacked account or a legal threat. The reason is one true sentence."
    ),
    "extract": (
        "Every value is copied from the ticket exactly as written, and every field the ticket does "
        "not state is null. Nothing is guessed or invented."
    ),
    "draft": (
        "The reply greets the customer by first name, is about the problem the ticket describes, is "
        "polite and concise, says what happens next, and promises no refund, date or compensation "
        "the ticket gives no basis for."
    ),
    "default": "The answer is correct, complete and follows the task's instructions.",
}
"""Grading rubric per task kind; `default` for kinds without one."""

agent = checks.judge(min_score=0.8, rubric=RUBRICS["default"], model="mid")
"""The roster's default judge: a mid-tier model, passing at 0.8."""
