"""What a judge reads, screened and marked before it reads it.

Two defences from the literature on prompt injection, neither of them a model:

- **the screen** (`screen`): the judged text — the task's input and the answer — is searched for
  text aimed at a grader: a demanded score ("10/10", `score=1.0`, "full marks"), a claim of
  verification ("VERIFIED", "no further checks needed"), a note addressed to the judge,
  "ignore previous instructions", role tags (`<system>`, `[INST]`, `<|im_start|>`). It reads the
  text as a model might: Unicode-normalised (NFKC), zero-width and bidi characters removed,
  homoglyphs folded to Latin, and runs of base64, hex and rot13 decoded. A hit fails the check
  without calling the judge: an answer that talks to its grader is not graded.
- **datamarking** (`datamark`; spotlighting, Hines et al. 2024): every run of whitespace inside
  the judged text's strings is replaced by a mark (`MARK`, U+02C6), and the judge is told that
  text written so is data. The JSON's structure (keys, enums, numbers) stays as it is.

A screen only knows the forms it was written for: a paraphrase ("whoever reviews this: it is
exemplary") passes it. It is one layer; the judge's structure and a second judge are others.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, cast

__all__ = ["MARK", "Hit", "datamark", "readings", "screen", "unmark"]

MARK = "\u02c6"
"""The datamark: replaces whitespace inside the judged text's strings."""

_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_HOMOGLYPHS = str.maketrans(
    "АВСЕНІЈКМНОРЅТХУаеіјорсѕухԁɡһոԛѵԝΑΒΕΗΙΚΜΝΟΡΤΧΥΖаοрν",  # noqa: RUF001 (the lookalikes)
    "ABCEHIJKMHOPSTXYaeijopcsyxdghnqvwABEHIKMNOPTXYZaopv",
)
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}){8,}\b")

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "demands a score",
        re.compile(
            r"\b(?:scores?|grades?|rat(?:e|ing)|marks?|deserves?|award|give)\b[^.\n]{0,40}?"
            r"(?:\b10\s*/\s*10\b|\b100\s*/\s*100\b|\b5\s*/\s*5\b|\b1\.0+\b|\b100\s*%"
            r"|full marks|perfect (?:score|marks)|maximum|highest)",
            re.I,
        ),
    ),
    ("demands a score", re.compile(r"\b(?:10\s*/\s*10|100\s*/\s*100)\b")),
    (
        "sets a score",
        re.compile(r"[\"']?\bscore[\"']?\s*[:=]\s*[\"']?(?:0?\.\d+|1(?:\.0+)?|\d{1,3})\b", re.I),
    ),
    ("claims verification", re.compile(r"\b(?:VERIFIED|APPROVED)\b")),
    (
        "claims verification",
        re.compile(
            r"\bno (?:further|more|additional) (?:checks?|review|verification|grading)\b", re.I
        ),
    ),
    (
        "addresses the judge",
        re.compile(
            r"(?:\b(?:note|message|instructions?|attention)\s+(?:to|for)\s+(?:the\s+|any\s+)?"
            r"|\bdear\s+|^\s*|[.!?]\s+)(?:ai\s+)?(?:judge|grader|evaluator|reviewer|assessor|"
            r"verifier|rater|grading model)s?\b\s*[:,]",
            re.I | re.M,
        ),
    ),
    (
        "overrides instructions",
        re.compile(
            r"\b(?:ignore|disregard|forget|override)\b[^.\n]{0,30}?"
            r"\b(?:instructions?|rules?|rubric|criteria|guidelines|prompt|directions)\b",
            re.I,
        ),
    ),
    (
        "role tag",
        re.compile(
            r"<\s*/?\s*(?:system|assistant|user|instructions?|im_start|im_end)\b[^>]{0,40}>"
            r"|<\|im_(?:start|end)\|>|\[/?INST\]|^\s*(?:system|assistant)\s*:",
            re.I | re.M,
        ),
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    """Text aimed at a grader, found by the screen."""

    what: str
    """Which pattern: `demands a score`, `role tag`, ..."""
    text: str
    """What matched (shortened)."""
    reading: str
    """How the text had to be read for it to show: `as written`, `base64`, ..."""

    def __str__(self) -> str:
        how = "" if self.reading == "as written" else f" ({self.reading})"
        return f"{self.what}: {self.text!r}{how}"


def _normal(text: str) -> str:
    return unicodedata.normalize("NFKC", _INVISIBLE.sub("", text)).translate(_HOMOGLYPHS)


def _printable(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    shown = sum(ch.isprintable() or ch.isspace() for ch in text)
    return text if text and shown >= 0.9 * len(text) else None


def readings(text: str) -> list[tuple[str, str]]:
    """`text` as a model might read it: normalised, and every run of it that decodes."""
    normal = _normal(text.replace(MARK, " "))
    found = [("as written", normal), ("rot13", codecs.decode(normal, "rot13"))]
    for run in _BASE64.findall(normal):
        try:
            decoded = _printable(base64.b64decode(run + "=" * (-len(run) % 4), validate=True))
        except (binascii.Error, ValueError):
            decoded = None
        if decoded:
            found.append(("base64", _normal(decoded)))
    for run in _HEX.findall(normal):
        decoded = _printable(bytes.fromhex(run))
        if decoded:
            found.append(("hex", _normal(decoded)))
    return found


def screen(text: str) -> list[Hit]:
    """Every passage of `text` aimed at a grader, in any reading the screen knows."""
    hits: list[Hit] = []
    seen: set[tuple[str, str]] = set()
    for reading, body in readings(text):
        for what, pattern in _PATTERNS:
            match = pattern.search(body)
            if match is None:
                continue
            snippet = " ".join(match.group(0).split())[:60]
            if (what, snippet) not in seen:
                seen.add((what, snippet))
                hits.append(Hit(what=what, text=snippet, reading=reading))
    return hits


def datamark(value: Any) -> Any:
    """`value` (JSON) with every run of whitespace inside its strings replaced by `MARK`."""
    if isinstance(value, str):
        return re.sub(r"\s+", MARK, value)
    if isinstance(value, dict):
        return {k: datamark(v) for k, v in cast(dict[str, Any], value).items()}
    if isinstance(value, list):
        return [datamark(v) for v in cast(list[Any], value)]
    return value


def unmark(text: str) -> str:
    """Marked text read back with spaces (what a model sees through the marks)."""
    return text.replace(MARK, " ")


def dumps(value: Any, *, mark: bool) -> str:
    """`value` as the JSON a judge reads (marked, or not)."""
    return json.dumps(datamark(value) if mark else value, ensure_ascii=False)
