"""Recorded routing outcomes: which real models answered each prompt correctly, and what each call cost.

`load_outcomes(folder)` reads every `*.csv` and `*.jsonl` under a folder, whatever its name, and
recognises three layouts by their columns:

- **RouterBench** (`sample_id, prompt, eval_name`, a 0/1 column per model, `<model>|model_response`,
  `<model>|total_cost`): rows with a missing score and repeated `sample_id`s are dropped; the task is
  `eval_name`. The `oracle_model_to_route_to` column is never read.
- **RouteLLM** (`prompt`, a True/False column per model, optional `<model>_response`): the task is the
  file name without `mmlu_` / `_responses`; cost is not recorded, so it is *estimated* as
  ceil(characters / 4) tokens at the list prices in `ESTIMATED_PRICES` (the output is the response
  when recorded, else one token). Rows whose prompt is an `eval_prompt` of a
  `contaminated_prompts.jsonl` next to them are dropped, as RouteLLM does.
- **Export** (long form, CSV or JSONL, one row per prompt and model):
  `prompt_id, task, prompt, model, correct, cost_usd` and an optional `response`.

A prompt id seen again keeps its first outcome per model (so an export may be split across files);
prompts without an outcome for every model are dropped. Money is float USD in this offline
analysis (consistently: no Decimal anywhere in the bench).
"""

from __future__ import annotations

import ast
import csv
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from handoffs.errors import ConfigError

__all__ = [
    "ESTIMATED_PRICES",
    "EXPORT_COLUMNS",
    "Outcomes",
    "load_examples",
    "load_outcomes",
]

EXPORT_COLUMNS = ("prompt_id", "task", "prompt", "model", "correct", "cost_usd")
"""The columns of the layout a team can export from its own traces (`response` is optional)."""

ESTIMATED_PRICES: Mapping[str, tuple[float, float]] = {
    "gpt-4-1106-preview": (10.0, 30.0),
    "mistralai/Mixtral-8x7B-Instruct-v0.1": (0.6, 0.6),
}
"""USD per million (input, output) tokens, early-2024 list prices, for data that records no cost."""

_CONTAMINATED = "contaminated_prompts.jsonl"


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcomes:
    """A table of prompts x models: was the answer correct (0/1), what did the call cost (USD)."""

    dataset: str
    """A label for the data (the folder's name)."""
    models: tuple[str, ...]
    prompt_ids: tuple[str, ...]
    tasks: tuple[str, ...]
    """The kind of task of each prompt (a benchmark or subject): something a router knows beforehand."""
    prompts: tuple[str, ...]
    correct: tuple[tuple[float, ...], ...]
    """`correct[i][j]`: 1.0 when model j answered prompt i correctly, else 0.0."""
    cost_usd: tuple[tuple[float, ...], ...]
    """`cost_usd[i][j]`: what model j's call on prompt i cost."""
    responses: Mapping[str, tuple[str, ...]] = field(default_factory=dict[str, tuple[str, ...]])
    """Each model's answer text per prompt, for the models whose answers were recorded."""
    cost_estimated: bool = False
    """True when costs were estimated from text length and list prices, not recorded."""

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def index(self, model: str) -> int:
        """The column of a model."""
        return self.models.index(model)

    def subset(self, rows: Sequence[int]) -> Outcomes:
        """The same table restricted to some rows, in the order given."""
        return Outcomes(
            dataset=self.dataset,
            models=self.models,
            prompt_ids=tuple(self.prompt_ids[i] for i in rows),
            tasks=tuple(self.tasks[i] for i in rows),
            prompts=tuple(self.prompts[i] for i in rows),
            correct=tuple(self.correct[i] for i in rows),
            cost_usd=tuple(self.cost_usd[i] for i in rows),
            responses={m: tuple(r[i] for i in rows) for m, r in self.responses.items()},
            cost_estimated=self.cost_estimated,
        )

    def model_accuracy(self, model: str) -> float:
        """The share of prompts a model answered correctly."""
        j = self.index(model)
        return sum(row[j] for row in self.correct) / len(self) if len(self) else 0.0

    def model_cost(self, model: str) -> float:
        """What sending every prompt to one model costs in total."""
        j = self.index(model)
        return sum(row[j] for row in self.cost_usd)


@dataclass(slots=True, kw_only=True)
class _Row:
    prompt_id: str
    task: str
    prompt: str
    cells: dict[str, tuple[float, float, str | None]]
    """model -> (correct, cost, response)."""


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.exists():
        raise ConfigError(f"{path}: no such file or directory")
    if not path.is_dir():
        raise ConfigError(f"{path}: not a file or directory")
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix in (".csv", ".jsonl") and p.name != _CONTAMINATED
    )
    if not files:
        raise ConfigError(f"{path}: no .csv or .jsonl files")
    return files


def _parsed(path: Path, *, strict: bool = True) -> tuple[list[_Row], bool]:
    """The rows of one file, and whether their costs are estimated.

    Not strict: an export needs only `task, prompt, model, correct`.
    """
    records = list(_records(path))
    if not records:
        return [], False
    columns = set(records[0])
    needed = set(EXPORT_COLUMNS) if strict else set(EXPORT_COLUMNS) - {"prompt_id", "cost_usd"}
    if columns >= needed:
        return _export_rows(path, records), False
    if {"sample_id", "prompt", "eval_name"} <= columns:
        return _routerbench_rows(path, records), False
    if "prompt" in columns:
        return _routellm_rows(path, records, _contaminated(path.parent / _CONTAMINATED)), True
    raise ConfigError(f"{path}: unrecognised layout (columns {', '.join(sorted(columns))})")


def load_examples(path: Path) -> list[tuple[str, str, str, float]]:
    """Every recorded (task, prompt, model, correct) in a file or folder, complete prompts or not.

    The export layout needs only `task, prompt, model, correct` here (`prompt_id` defaults to the
    prompt, `cost_usd` to 0): what `handoffs router train` learns from.
    """
    out: list[tuple[str, str, str, float]] = []
    for file in _files(path):
        rows, _ = _parsed(file, strict=False)
        out += [(r.task, r.prompt, m, cell[0]) for r in rows for m, cell in r.cells.items()]
    return out


def load_outcomes(folder: Path) -> Outcomes:
    """Read every recorded-outcome file under `folder` (see the module docstring for the layouts)."""
    if not folder.exists():
        raise ConfigError(f"{folder}: no such directory")
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a directory")
    rows: dict[str, _Row] = {}
    estimated = False
    for path in _files(folder):
        parsed, guessed = _parsed(path)
        estimated |= guessed
        for row in parsed:  # a repeated prompt id keeps its first outcome for each model
            kept = rows.setdefault(row.prompt_id, row)
            for model, cell in row.cells.items():
                kept.cells.setdefault(model, cell)
    return _table(folder.name, list(rows.values()), estimated)


def _records(path: Path) -> Iterator[dict[str, Any]]:
    csv.field_size_limit(2**31 - 1)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            if path.suffix == ".csv":
                yield from csv.DictReader(handle)
                return
            for n, line in enumerate(handle, 1):
                if line.strip():
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ConfigError(f"{path}:{n}: expected a JSON object per line")
                    yield cast(dict[str, Any], record)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None


def _contaminated(path: Path) -> frozenset[str]:
    if not path.is_file():
        return frozenset()
    return frozenset(str(r.get("eval_prompt", "")) for r in _records(path))


def _score(value: Any) -> float | None:
    text = str(value).strip().lower()
    if text in ("true", "1", "1.0"):
        return 1.0
    if text in ("false", "0", "0.0"):
        return 0.0
    return None


def _number(path: Path, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: cost {value!r} is not a number") from None
    if math.isnan(number) or number < 0:
        raise ConfigError(f"{path}: cost {value!r} is not a non-negative number")
    return number


def _text(value: str) -> str:
    """RouterBench stores prompts and responses as a Python list literal of strings."""
    if value.startswith("[") and value.endswith("]"):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return value
        if isinstance(parsed, list):
            return "\n".join(str(p) for p in cast(list[Any], parsed))
    return value


def _export_rows(path: Path, records: list[dict[str, Any]]) -> list[_Row]:
    rows: dict[str, _Row] = {}
    for record in records:
        correct = _score(record["correct"])
        if correct is None:
            raise ConfigError(
                f"{path}: correct must be 0/1 or true/false, got {record['correct']!r}"
            )
        pid = str(record.get("prompt_id") or record["prompt"])
        row = rows.setdefault(
            pid,
            _Row(prompt_id=pid, task=str(record["task"]), prompt=str(record["prompt"]), cells={}),
        )
        response = record.get("response")
        row.cells[str(record["model"])] = (
            correct,
            _number(path, record.get("cost_usd", 0)),
            None if response is None else str(response),
        )
    return list(rows.values())


def _routerbench_rows(path: Path, records: list[dict[str, Any]]) -> list[_Row]:
    models = [c.removesuffix("|total_cost") for c in records[0] if c.endswith("|total_cost")]
    if not models:
        raise ConfigError(f"{path}: RouterBench layout without <model>|total_cost columns")
    rows: list[_Row] = []
    for record in records:
        scores = [_score(record.get(m, "")) for m in models]
        if any(s is None for s in scores):
            continue
        cells: dict[str, tuple[float, float, str | None]] = {
            m: (
                cast(float, s),
                _number(path, record[f"{m}|total_cost"]),
                _text(str(record.get(f"{m}|model_response") or "")),
            )
            for m, s in zip(models, scores, strict=True)
        }
        rows.append(
            _Row(
                prompt_id=str(record["sample_id"]),
                task=str(record["eval_name"]),
                prompt=_text(str(record["prompt"])),
                cells=cells,
            )
        )
    return rows


def _routellm_rows(
    path: Path, records: list[dict[str, Any]], contaminated: frozenset[str]
) -> list[_Row]:
    models = [c for c in records[0] if c != "prompt" and not c.endswith("_response") and c]
    unknown = [m for m in models if m not in ESTIMATED_PRICES]
    if not models or unknown:
        raise ConfigError(f"{path}: no recorded cost and no list price for {', '.join(unknown)}")
    task = path.stem.removeprefix("mmlu_").removesuffix("_responses")
    rows: list[_Row] = []
    for n, record in enumerate(records):
        prompt = str(record["prompt"])
        scores = [_score(record.get(m, "")) for m in models]
        if prompt in contaminated or any(s is None for s in scores):
            continue
        cells: dict[str, tuple[float, float, str | None]] = {}
        for m, s in zip(models, scores, strict=True):
            response = record.get(f"{m}_response")
            out_tokens = math.ceil(len(str(response)) / 4) if response else 1
            price_in, price_out = ESTIMATED_PRICES[m]
            cost = (math.ceil(len(prompt) / 4) * price_in + out_tokens * price_out) / 1e6
            cells[m] = (cast(float, s), cost, None if response is None else str(response))
        rows.append(_Row(prompt_id=f"{path.stem}:{n}", task=task, prompt=prompt, cells=cells))
    return rows


def _table(dataset: str, rows: list[_Row], estimated: bool) -> Outcomes:
    if not rows:
        raise ConfigError(f"{dataset}: no usable rows")
    models = tuple(sorted({m for r in rows for m in r.cells}))
    complete = [r for r in rows if len(r.cells) == len(models)]
    if not complete:
        raise ConfigError(f"{dataset}: no prompt has an outcome for every model")
    with_answers = [m for m in models if all(r.cells[m][2] is not None for r in complete)]
    return Outcomes(
        dataset=dataset,
        models=models,
        prompt_ids=tuple(r.prompt_id for r in complete),
        tasks=tuple(r.task for r in complete),
        prompts=tuple(r.prompt for r in complete),
        correct=tuple(tuple(r.cells[m][0] for m in models) for r in complete),
        cost_usd=tuple(tuple(r.cells[m][1] for m in models) for r in complete),
        responses={m: tuple(str(r.cells[m][2]) for r in complete) for m in with_answers},
        cost_estimated=estimated,
    )
