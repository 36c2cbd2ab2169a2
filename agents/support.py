"""The support desk's domain types: what crosses each handoff of the ticket roster.

The field descriptions become the tool and output schemas the models see, and the local tier is
SmolLM2-135M with a 2048-token context and grammar-constrained JSON: keep every schema small.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Category", "ReplyDraft", "ReplyRequest", "Ticket", "TicketFields", "Triage"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")

Category = Literal["billing", "bug", "account", "shipping", "feature_request", "other"]
"""What a ticket is about."""

ORDER_ID_PATTERN = r"^ORD-[0-9]{5}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"


class Ticket(BaseModel):
    """One customer support ticket."""

    model_config = _FROZEN

    id: str = Field(description='Ticket id, e.g. "T-001"')
    customer: str = Field(description="Customer's full name")
    subject: str = Field(description="Subject line the customer wrote")
    body: str = Field(description="Message the customer wrote")

    @property
    def text(self) -> str:
        """Everything the customer wrote: the subject and the body."""
        return f"{self.subject}\n{self.body}"


class Triage(BaseModel):
    """How a ticket is classified."""

    model_config = _FROZEN

    category: Category = Field(description="What the ticket is about")
    urgent: bool = Field(
        description="True for outages, money taken twice, lockouts before a deadline, legal threats"
    )
    reason: str = Field(max_length=160, description="One short sentence: why")


class TicketFields(BaseModel):
    """Facts copied from a ticket; null when the ticket does not state them."""

    model_config = _FROZEN

    order_id: str | None = Field(
        default=None, pattern=ORDER_ID_PATTERN, description='Order id like "ORD-12345", or null'
    )
    product: str | None = Field(
        default=None, min_length=1, description="Product name as written, or null"
    )
    email: str | None = Field(
        default=None, pattern=EMAIL_PATTERN, description="Email address as written, or null"
    )
    amount_usd: float | None = Field(
        default=None, ge=0, description="Dollar amount as written, or null"
    )


class ReplyRequest(BaseModel):
    """What the reply writer works from: the ticket and its classification."""

    model_config = _FROZEN

    ticket: Ticket = Field(description="The ticket to answer")
    triage: Triage = Field(description="The ticket's classification")


class ReplyDraft(BaseModel):
    """A reply to a customer, for a human agent to review before sending."""

    model_config = _FROZEN

    subject: str = Field(description="Reply subject line")
    body: str = Field(description="Reply text, greeting the customer by name")
