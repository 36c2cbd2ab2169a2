"""Reading untyped request JSON with types, and framing what goes back."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, cast

JsonObject = dict[str, Any]
"""A decoded JSON object."""


class WireError(ValueError):
    """A request body the fake provider cannot read: answered with a 400."""


def as_object(value: object, what: str) -> JsonObject:
    """`value` as a JSON object, or a `WireError` naming `what`."""
    if not isinstance(value, dict):
        raise WireError(f"{what} must be an object")
    return cast(JsonObject, value)


def object_or_none(value: object) -> JsonObject | None:
    """`value` if it is a JSON object, else None."""
    return cast(JsonObject, value) if isinstance(value, dict) else None


def as_list(value: object, what: str) -> list[Any]:
    """`value` as a JSON array (None reads as empty), or a `WireError` naming `what`."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise WireError(f"{what} must be an array")
    return cast(list[Any], value)


def as_str(value: object, what: str) -> str:
    """`value` as a string (None reads as ''), or a `WireError` naming `what`."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise WireError(f"{what} must be a string")
    return value


def as_int(value: object, what: str) -> int | None:
    """`value` as an integer or None, or a `WireError` naming `what`."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise WireError(f"{what} must be an integer")


def parse_arguments(raw: str) -> dict[str, Any]:
    """Tool call arguments from their JSON text; text that is no JSON object is kept under `_raw`."""
    try:
        decoded: object = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        return {"_raw": raw}
    return cast(JsonObject, decoded) if isinstance(decoded, dict) else {"_raw": raw}


def dumps(value: object) -> str:
    """Compact JSON, as providers send it."""
    return json.dumps(value, separators=(",", ":"))


_WORD = re.compile(r"\s*\S+\s*|\s+")


def pieces(text: str, size: int = 12) -> Iterator[str]:
    """Split `text` into stream deltas: words, with long words cut at `size` characters."""
    for match in _WORD.finditer(text):
        word = match.group()
        for start in range(0, len(word), size):
            yield word[start : start + size]


def sse(data: object, event: str | None = None) -> bytes:
    """One server-sent event."""
    head = f"event: {event}\n" if event else ""
    body = data if isinstance(data, str) else dumps(data)
    return f"{head}data: {body}\n\n".encode()
