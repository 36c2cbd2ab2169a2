"""How the Gauntlet's worst-case models read text: through every disguise they know.

A gullible model is only the worst case if it undoes what a defence does not: this reader is the
Gauntlet's own (deliberately separate from the judge's screen in `handoffs.verify`, so that what
it measures does not depend on what the defence knows). It reads a text

- as written, and Unicode-normalised (NFKC) with zero-width, soft-hyphen and bidi characters
  removed and homoglyphs (Cyrillic, Greek, Armenian, fullwidth, mathematical letters) folded;
- with the judge's datamarks (U+02C6) read as spaces;
- decoded: base64 (standard and URL-safe), hex, rot13, percent-encoding, reversed;
- joined: instructions split across several texts are read together as well as apart.

`transforms` turns a planted value into every form the reader knows, for the canary invariant.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable, Sequence

__all__ = ["TRANSFORMS", "fold", "readings", "transforms"]

_INVISIBLE = re.compile(r"[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180e\u200b-\u200f"
                        r"\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff]")  # fmt: skip
_LOOKALIKES = dict(
    zip(
        "АВЕЅІЈКМНОРСТХУЬԁеһіјорѕсухԛԝɡոѵаⅰⅼΑΒΕΖΗΙΚΜΝΟΡΤΥΧανορτυχ",
        "ABESIJKMHOPCTXYbdehijopscyxqwgnvailABEZHIKMNOPTYXavoptux",
        strict=True,
    )
)
_B64 = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){6,}")
_MARK = "\u02c6"


def fold(text: str) -> str:
    """`text` as a careless reader sees it: NFKC, invisible characters dropped, lookalikes
    folded to Latin, datamarks read as spaces."""
    text = _INVISIBLE.sub("", text.replace(_MARK, " "))
    text = unicodedata.normalize("NFKC", text)
    return "".join(_LOOKALIKES.get(ch, ch) for ch in text)


def _text(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    readable = sum(ch.isprintable() or ch.isspace() for ch in text)
    return text if len(text) >= 4 and readable >= 0.95 * len(text) else None


def _decoded(text: str) -> Iterable[str]:
    for run in _B64.findall(text):
        padded = run + "=" * (-len(run) % 4)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                found = _text(decode(padded))
            except (binascii.Error, ValueError):
                found = None
            if found:
                yield found
                break
    for run in _HEX.findall(text):
        found = _text(bytes.fromhex(run))
        if found:
            yield found
    yield codecs.decode(text, "rot13")
    if "%" in text:
        yield urllib.parse.unquote(text)
    yield text[::-1]


def readings(texts: Sequence[str] | str, *, depth: int = 2) -> list[str]:
    """Every way the worst-case reader reads `texts` (one text, or several read apart and
    joined), each disguise undone, to `depth` layers."""
    given = [texts] if isinstance(texts, str) else list(texts)
    if len(given) > 1:
        given.append("".join(given))
        given.append(" ".join(given[:-1]))
    seen: dict[str, None] = {}
    layer = [fold(t) for t in given] + given
    for _ in range(depth + 1):
        nxt: list[str] = []
        for text in layer:
            if text in seen:
                continue
            seen[text] = None
            nxt.extend(fold(d) for d in _decoded(text))
        layer = nxt
    return list(seen)


TRANSFORMS: dict[str, Callable[[str], str]] = {
    "as written": lambda s: s,
    "casefolded": str.casefold,
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64url": lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
    "hex": lambda s: s.encode().hex(),
    "rot13": lambda s: codecs.encode(s, "rot13"),
    "percent": lambda s: urllib.parse.quote(s, safe=""),
    "reversed": lambda s: s[::-1],
}
"""The forms the worst-case reader can turn a value into (and so may write it in)."""


def transforms(value: str) -> dict[str, str]:
    """`value` in every form of `TRANSFORMS` (the canary invariant looks for each)."""
    return {name: make(value) for name, make in TRANSFORMS.items()}
