"""Gold labels: how a job's answers compare with what the job's author knows to be right.

A job file may name a gold file (`gold = "../data/tickets_gold.jsonl"`): one record per item, with
the item's `id` and the fields a correct answer has. A run is scored field by field: for each gold
record, the answers of every handoff labelled with that id (`HandoffRecord.label`, the item's id)
are merged, and each gold field is right when an answer has it equal (strings ignoring case and
surrounding space, numbers within half a cent, the rest exactly). A field no answer gave is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, ConfigDict

from handoffs.errors import ConfigError
from handoffs.handoff import HandoffRecord

__all__ = ["GoldScore", "load_gold", "score_gold"]


class GoldScore(BaseModel):
    """A run's answers against the job's gold labels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    items: int
    """Gold records scored."""
    fields: int
    """Gold fields scored (every field of every record but `id`)."""
    correct: int
    accuracy: float
    """`correct / fields` (0 when there is nothing to score)."""
    by_field: dict[str, float]
    """Accuracy per field name."""


def load_gold(path: Path) -> list[dict[str, Any]]:
    """The gold records of a JSON (a list) or JSONL file; `ConfigError` when unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
        rows: Any = (
            [json.loads(line) for line in text.splitlines() if line.strip()]
            if path.suffix == ".jsonl"
            else json.loads(text)
        )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read gold labels {path}: {exc}") from None
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) and "id" in r for r in cast(list[Any], rows)
    ):
        raise ConfigError(f"gold labels {path}: expected a list of records with an `id`")
    return cast(list[dict[str, Any]], rows)


def _same(gold: Any, answer: Any) -> bool:
    if isinstance(gold, bool) or isinstance(answer, bool):
        return gold is answer
    if isinstance(gold, int | float) and isinstance(answer, int | float):
        return abs(float(gold) - float(answer)) < 0.005
    if isinstance(gold, str) and isinstance(answer, str):
        return gold.strip().casefold() == answer.strip().casefold()
    return gold == answer


def score_gold(records: Sequence[HandoffRecord], gold: Sequence[dict[str, Any]]) -> GoldScore:
    """Score the answers of `records` against `gold`, field by field (see the module docstring)."""
    answers: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        output: Any = record.output
        if record.label is not None and isinstance(output, dict):
            answers.setdefault(record.label, []).append(cast(dict[str, Any], output))
    right: dict[str, int] = {}
    seen: dict[str, int] = {}
    for row in gold:
        given = answers.get(str(row["id"]), [])
        for name, expected in row.items():
            if name == "id":
                continue
            seen[name] = seen.get(name, 0) + 1
            if any(name in a and _same(expected, a[name]) for a in given):
                right[name] = right.get(name, 0) + 1
    fields, correct = sum(seen.values()), sum(right.values())
    return GoldScore(
        items=len(gold),
        fields=fields,
        correct=correct,
        accuracy=correct / fields if fields else 0.0,
        by_field={name: right.get(name, 0) / n for name, n in seen.items()},
    )
