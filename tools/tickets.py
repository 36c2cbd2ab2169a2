"""Plain functions over support tickets: loading them and finding what their text says.

The roster's predicates use these to check a subordinate's answer against the ticket it was given
(an extracted value must literally appear in the ticket), and the simulated models use them to read
tickets the way a careful human would.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = [
    "KNOWN_PRODUCTS",
    "asks_for_refund",
    "dollar_amounts",
    "emails_in",
    "first_name",
    "load_tickets",
    "mentions",
    "numbers_in",
    "order_ids_in",
    "products_in",
    "promises_refund",
]

KNOWN_PRODUCTS: tuple[str, ...] = (
    "Pro plan",
    "Team plan",
    "Starter plan",
    "desktop app",
    "mobile app",
    "Acme Router X2",
    "Acme Cam 3",
    "Smart Plug",
    "AcmeSync",
)
"""The product catalogue, as customers write the names."""

_NUMBER = re.compile(r"(?<![\w.])(?<![A-Za-z]-)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?")
_DOLLARS = re.compile(r"\$\s?(\d{1,3}(?:,\d{3})+|\d+)(\.\d{1,2})?|(\d+(?:\.\d{1,2})?)\s?USD\b")
_ORDER_ID = re.compile(r"\bORD-\d{5}\b")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
_REFUND_ASK = re.compile(
    r"\b(refund\w*|money back|revers\w+|chargeback|reimburs\w+|credit (?:back|my))\b", re.I
)
_REFUND_PROMISE = re.compile(
    r"\b(will|'ll|have|has been|is being|are going to|we've)\b[^.!?\n]{0,60}\b(refund\w*|revers\w+|reimburs\w+)\b"
    r"|\b(refund\w*)\b[^.!?\n]{0,30}\b(has been|is being|will be|was)\s+(issued|processed|sent|approved)",
    re.I,
)


def load_tickets(path: str | Path) -> list[dict[str, Any]]:
    """The tickets of a JSONL file, one JSON object a line (blank lines skipped)."""
    tickets: list[dict[str, Any]] = []
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object")
            tickets.append(record)  # pyright: ignore[reportUnknownArgumentType]
    return tickets


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()


def _find(text: str, value: str) -> int:
    needle = _squash(value)
    if not needle:
        return -1
    hit = re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", _squash(text))
    return hit.start() if hit else -1


def mentions(text: str, value: str) -> bool:
    """Whether `value` appears in `text` as whole words, ignoring case and runs of whitespace.

    "Tom" is not mentioned by "customer", nor "ORD-4821" by "ORD-48213"; '' is never mentioned.
    """
    return _find(text, value) >= 0


def numbers_in(text: str) -> list[float]:
    """Every number written in `text`: `$1,250.00` -> 1250.0; digits inside ids (ORD-48213) skipped."""
    return [float(whole.replace(",", "") + (frac or "")) for whole, frac in _NUMBER.findall(text)]


def dollar_amounts(text: str) -> list[float]:
    """Every dollar amount in `text` (`$49.99`, `$1,250`, `35 USD`), in order."""
    amounts: list[float] = []
    for whole, frac, usd in _DOLLARS.findall(text):
        amounts.append(float(usd) if usd else float(whole.replace(",", "") + (frac or "")))
    return amounts


def order_ids_in(text: str) -> list[str]:
    """Every order id (`ORD-` and five digits) in `text`, in order."""
    return _ORDER_ID.findall(text)


def emails_in(text: str) -> list[str]:
    """Every email address in `text`, in order."""
    return _EMAIL.findall(text)


def products_in(text: str) -> list[str]:
    """The known products `text` names, in the order they first appear."""
    found = [(_find(text, p), p) for p in KNOWN_PRODUCTS]
    return [name for at, name in sorted(found) if at >= 0]


def first_name(customer: str) -> str:
    """The first word of a customer's name ('' for a blank name)."""
    parts = customer.split()
    return parts[0] if parts else ""


def asks_for_refund(text: str) -> bool:
    """Whether a customer's text asks for money back (refund, reversal, chargeback...)."""
    return _REFUND_ASK.search(text) is not None


def promises_refund(text: str) -> bool:
    """Whether a reply commits to giving money back ("we will refund", "refund has been issued")."""
    return _REFUND_PROMISE.search(text) is not None
