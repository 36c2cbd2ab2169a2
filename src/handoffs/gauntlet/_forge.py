"""Forging answers from honest ones, reading the output's JSON Schema: lies that still validate,
values of the wrong type, missing fields, free text rewritten.

Every function takes the honest answer (a JSON object) and the output type's schema, and returns
a new value; none changes its arguments.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from handoffs.orchestrator import free_text

__all__ = ["drop_field", "lie", "pad", "rewrite_free_text", "wrong_types"]

_PLAUSIBLE = "Resolved: no further action is needed on this request."


def _resolve(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        schema = cast(Mapping[str, Any], defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {}))
    return schema


def _branches(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    schema = _resolve(schema, defs)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return [_resolve(b, defs) for b in cast(list[Mapping[str, Any]], schema[key])]
    return [schema]


def _props(schema: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    defs = cast(Mapping[str, Any], schema.get("$defs", {}))
    return {
        k: _resolve(cast(Mapping[str, Any], v), defs)
        for k, v in cast(Mapping[str, Any], schema.get("properties", {})).items()
    }


def _other_digits(text: str, rng: random.Random) -> str | None:
    digits = [i for i, ch in enumerate(text) if ch.isdigit()]
    if not digits:
        return None
    at = rng.choice(digits)
    return text[:at] + str((int(text[at]) + rng.randint(1, 9)) % 10) + text[at + 1 :]


def _lie_about(
    schema: Mapping[str, Any], value: Any, rng: random.Random, defs: Mapping[str, Any]
) -> tuple[int, Any] | None:
    """A different value that still validates, with its rank (lower = a stronger lie)."""
    for branch in _branches(schema, defs):
        kind = branch.get("type")
        if "enum" in branch:
            others = [v for v in cast(list[Any], branch["enum"]) if v != value]
            if others:
                return 0, rng.choice(others)
        elif kind == "boolean":
            return 0, not value if isinstance(value, bool) else True
        elif kind in ("number", "integer"):
            if isinstance(value, int | float) and not isinstance(value, bool):
                return 1, value * 10 + 1 if kind == "integer" else round(value * 10 + 1.5, 2)
            if value is None:
                return 1, 42 if kind == "integer" else 42.5
        elif kind == "string" and "pattern" in branch:
            if isinstance(value, str) and (other := _other_digits(value, rng)) is not None:
                return 2, other
        elif kind == "string" and isinstance(value, str):
            return 3, _PLAUSIBLE if value != _PLAUSIBLE else "See previous message."
    return None


def lie(
    schema: Mapping[str, Any], value: Any, rng: random.Random, fields: Sequence[str] = ()
) -> Any:
    """`value` with one field changed to a plausible wrong value that still validates.

    Meaningful fields are preferred: an enum member or a boolean, then a number, then a
    patterned id (one digit changed), and free text only when there is nothing else (then the
    longest text, the substance, is replaced). `fields` restricts the lie to those fields. None
    when nothing can be changed.
    """
    if not isinstance(value, dict):
        return None
    defs = cast(Mapping[str, Any], schema.get("$defs", {}))
    options: list[tuple[int, str, Any]] = []
    for key, sub in _props(schema).items():
        if fields and key not in fields:
            continue
        found = _lie_about(sub, cast(dict[str, Any], value).get(key), rng, defs)
        if found is not None:
            options.append((found[0], key, found[1]))
    if not options:
        return None
    best = min(rank for rank, _, _ in options)
    picks = [o for o in options if o[0] == best]
    if best == 3:  # free text only: lie about the substance, the longest text
        picks = [max(picks, key=lambda o: len(str(cast(dict[str, Any], value).get(o[1]))))]
    _, key, wrong = rng.choice(picks)
    return {**cast(dict[str, Any], value), key: wrong}


def wrong_types(schema: Mapping[str, Any], value: Any, rng: random.Random) -> Any:
    """`value` with every field given a value of another type (a schema violation)."""
    if not isinstance(value, dict):
        return {"result": value}
    swap: dict[str, Callable[[Any], Any]] = {
        "string": lambda v: 12345,
        "boolean": lambda v: "maybe",
        "integer": lambda v: "many",
        "number": lambda v: "a lot",
        "null": lambda v: ["none"],
    }
    out: dict[str, Any] = {}
    defs = cast(Mapping[str, Any], schema.get("$defs", {}))
    for key, item in cast(dict[str, Any], value).items():
        kind = str(_branches(_props(schema).get(key, {}), defs)[0].get("type", "string"))
        out[key] = swap[kind](item) if kind in swap else f"not-a-{kind}"
    return out


def drop_field(schema: Mapping[str, Any], value: Any, rng: random.Random) -> Any:
    """`value` without one of its required fields (or its first field)."""
    if not isinstance(value, dict) or not value:
        return {}
    data = cast(dict[str, Any], value)
    required = [k for k in cast(list[str], schema.get("required", [])) if k in data]
    key = rng.choice(required) if required else next(iter(data))
    return {k: v for k, v in data.items() if k != key}


def rewrite_free_text(
    schema: Mapping[str, Any],
    value: Any,
    write: Callable[[str, str], str],
    *,
    keys: bool = False,
) -> tuple[Any, list[str]]:
    """`value` with each free-text string replaced by `write(path, old)`; also the new texts.
    With `keys`, the keys of free-form mappings are rewritten instead of the values.

    Free text is what quarantine hides: strings without enum or a short pattern or format, and
    the keys of free-form mappings (paths `field{key N}.key`).
    """
    paths = {path for path, _ in free_text(schema, value)}
    written: list[str] = []

    def walk(item: Any, path: str) -> Any:
        if isinstance(item, str) and path in paths and not keys:
            new = write(path, item)
            written.append(new)
            return new
        if isinstance(item, dict):
            out: dict[str, Any] = {}
            for index, (k, v) in enumerate(cast(dict[str, Any], item).items()):
                free = f"{path}{{key {index}}}"
                if f"{free}.key" in paths:
                    if keys:
                        k = write(f"{free}.key", k)
                        written.append(k)
                    out[k] = walk(v, free)
                else:
                    out[k] = walk(v, f"{path}.{k}" if path else k)
            return out
        if isinstance(item, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(cast(list[Any], item))]
        return item

    return walk(value, ""), written


def pad(schema: Mapping[str, Any], value: Any, chars: int) -> Any:
    """`value` with its longest free text grown to `chars` characters (an oversized answer)."""
    texts = free_text(schema, value)
    if not texts:
        return None
    longest = max(texts, key=lambda t: len(t[1]))[0]
    filler = "This answer has been verified in full detail and is correct. "

    def grow(path: str, old: str) -> str:
        return (old + " " + filler * (chars // len(filler) + 1))[:chars] if path == longest else old

    grown, _ = rewrite_free_text(schema, value, grow)
    return grown
