"""Recorded outcomes of a team's own traffic: what `handoffs router train` learns from.

Each finished handoff appends one JSON line per model it called, in the export layout of
`docs/routing-benchmark.md`:

```
{"prompt_id": <task id>, "task": <kind>, "prompt": <scorer_text(task)>, "model": <catalog id>,
 "correct": <passed verification>, "cost_usd": "<what that model's calls cost>"}
```

A model is `correct` when one of its answers (its feedback retry included) passed every check.
Attempts that say nothing about the answer - a provider error, a call the budget refused - are
not recorded, nor are handoffs a resumed job replays from its journal. The prompt text is the
task's instructions and input, so the log holds what the tasks hold: it is off unless asked for
(`[policy] outcomes = "outcomes.jsonl"` or `Session(outcomes=OutcomeLog(path))`).

With `inputs=True` (`[policy] outcomes_input = true`) each row also keeps the task's input as JSON
(`"input": {...}`), so `handoffs qualify` can replay the recorded tasks on other models.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from handoffs.handoff import HandoffRecord
from handoffs.routing._router import scorer_text
from handoffs.task import Task

__all__ = ["OutcomeLog", "passed"]

_VERIFIED = {"accepted": True, "rejected": False, "invalid_output": False}


def passed(outcome: str) -> bool | None:
    """Whether an attempt's answer passed verification; None for outcomes that say nothing about
    the answer (a provider error, a call the budget refused)."""
    return _VERIFIED.get(outcome)


class OutcomeLog:
    """Appends each handoff's per-model outcomes to a JSONL file (created with its folder)."""

    def __init__(self, path: Path | str, *, inputs: bool = False) -> None:
        self.path = Path(path)
        self.inputs = inputs
        """Also keep each task's input (JSON) in its rows, for `handoffs qualify`."""
        self._ready = False

    def rows(self, task: Task[Any], record: HandoffRecord) -> list[dict[str, Any]]:
        """The rows `write` would append for `record`: one per model whose answer was checked."""
        ok: dict[str, bool] = {}
        cost: dict[str, Decimal] = {}
        for attempt in record.attempts:
            verdict = passed(attempt.outcome)
            if verdict is None:
                continue
            ok[attempt.model] = ok.get(attempt.model, False) or verdict
            cost[attempt.model] = cost.get(attempt.model, Decimal(0)) + attempt.cost_usd
        text = scorer_text(task)
        extra: dict[str, Any] = {"input": task.input_data()} if self.inputs else {}
        return [
            {
                "prompt_id": task.id,
                "task": task.kind,
                "prompt": text,
                "model": model,
                "correct": right,
                "cost_usd": str(cost[model]),
                **extra,
            }
            for model, right in ok.items()
        ]

    def __call__(self, record: HandoffRecord, task: Task[Any] | None, /) -> None:
        """As a session's record sink: write the rows of a handoff made there (`task`); a record
        adopted from elsewhere (None) was logged where it was made."""
        if task is not None:
            self.write(task, record)

    def write(self, task: Task[Any], record: HandoffRecord) -> int:
        """Append the rows of one finished handoff in one write; return how many."""
        rows = self.rows(task, record)
        if rows:
            if not self._ready:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._ready = True
            text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(text)
        return len(rows)
