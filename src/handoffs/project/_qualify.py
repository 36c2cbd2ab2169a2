"""Qualify models before they take traffic: replay recorded tasks on candidate models and on the
incumbent route, with each task's own checks and judge (`handoffs qualify`).

```python
tasks = read_recorded(Path(".handoffs/traces"))    # traces with inputs, an outcome log, a dataset
with open_portfolio(config, simulation=job_simulation(spec)) as portfolio:
    trials = await run_qualification(spec, config, portfolio, tasks, kinds=["classify"],
                                     candidates=["small", "mid"], budget=Budget(Decimal("1")))
doc = qualification(trials.trials, prices=nominal_prices(config.catalog), labels=...)
```

A candidate answers alone (a one-model ladder, with its failover chain, as it would be deployed);
the incumbent is the configured policy, escalations included. A trial passes when the handoff was
delivered with every check passed, not degraded. Nothing is written to the outcome log or the
trace folder (replays are not traffic). The run is a job: every call is charged to one budget,
and the run stops when the budget refuses a call.
With a journal, each trial is appended as it finishes and a rerun skips what is already there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

from handoffs.budget import Budget
from handoffs.errors import BudgetExceeded, ConfigError, HandoffsError
from handoffs.handoff import HandoffRecord
from handoffs.orchestrator import Subordinate
from handoffs.project._config import Config
from handoffs.project._job import JobSpec
from handoffs.project._run import configured_session
from handoffs.providers import Portfolio
from handoffs.routing import INCUMBENT, Policy, Rule, Trial
from handoffs.tracing import JOB_FILE, METRICS_SUFFIX, TASK_INPUT

__all__ = ["Qualified", "RecordedTask", "read_recorded", "recorded_job", "run_qualification"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedTask:
    """A task as it was asked: its kind, an id, and its input as JSON data."""

    kind: str
    task_id: str
    input: Any


def _file_rows(file: Path) -> list[dict[str, Any]]:
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"no recorded tasks at {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {file}: {exc}") from None
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ConfigError(f"{file}:{number}: not a JSON line") from None
        if isinstance(row, dict):
            rows.append(cast(dict[str, Any], row))
    return rows


def _rows(path: Path) -> list[dict[str, Any]]:
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    return [row for file in files for row in _file_rows(file)]


def _is_span(row: dict[str, Any]) -> bool:
    return "span_id" in row and "trace_id" in row


def _traced(rows: list[dict[str, Any]]) -> list[RecordedTask]:
    """The tasks of the handoff spans that kept their input (content capture), in trace order."""
    found: list[RecordedTask] = []
    for row in rows:
        attrs = row.get("attributes")
        if not _is_span(row) or not isinstance(attrs, dict):
            continue
        attrs = cast(dict[str, Any], attrs)
        kind, text = attrs.get("handoffs.task.kind"), attrs.get(TASK_INPUT)
        if not isinstance(kind, str) or not isinstance(text, str):
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            continue
        task_id = str(attrs.get("handoffs.task.id", f"span-{row['span_id']}"))
        found.append(RecordedTask(kind=kind, task_id=task_id, input=value))
    return found


def _recorded_rows(path: Path) -> list[dict[str, Any]]:
    if path.is_dir():
        files = [f for f in sorted(path.glob("*.jsonl")) if not f.name.endswith(METRICS_SUFFIX)]
    else:
        files = [path]
    return [row for file in files for row in _file_rows(file)]


def recorded_job(path: Path) -> Path:
    """The job file the traces at `path` were made by (their workflow spans name it), when they
    name exactly one; a `ConfigError` saying to name the job otherwise."""
    files: set[str] = set()
    for row in _recorded_rows(path):
        attrs = row.get("attributes")
        if _is_span(row) and isinstance(attrs, dict):
            found = cast(dict[str, Any], attrs).get(JOB_FILE)
            if isinstance(found, str):
                files.add(found)
    if len(files) != 1:
        which = f"they come from {len(files)} job files" if files else "they name no job file"
        raise ConfigError(f"name the job file to qualify with: {path}: {which}")
    return Path(files.pop())


def read_recorded(path: Path) -> list[RecordedTask]:
    """Recorded tasks from job traces (a trace JSONL file, or a folder of them such as
    `.handoffs/traces`, whose handoff spans kept their input: `[tracing] content = true` or
    `handoffs run --trace-content`), an outcome log (rows that kept their `input`: `[policy]
    outcomes_input = true`) or a dataset (`{"kind": ..., "input": {...}, "id": ...}` per line).
    One task per input: a task asked again (the same kind and input, in another run) once."""
    rows = _recorded_rows(path)
    tasks: list[RecordedTask] = []
    if rows and _is_span(rows[0]):
        tasks = _traced([r for r in rows if _is_span(r)])
        if not tasks:
            raise ConfigError(
                f"{path}: these traces kept no task inputs; capture them with [tracing] content "
                "= true in handoffs.toml (or handoffs run --trace-content) and run the job again"
            )
    else:
        for i, row in enumerate(rows):
            kind = row.get("task", row.get("kind"))
            if "input" not in row or not isinstance(kind, str):
                continue
            task_id = str(row.get("prompt_id", row.get("id", f"row-{i + 1}")))
            tasks.append(RecordedTask(kind=kind, task_id=task_id, input=row["input"]))
    found: dict[tuple[str, str], RecordedTask] = {}
    for task in tasks:
        key = (task.kind, json.dumps(task.input, sort_keys=True, ensure_ascii=False))
        found.setdefault(key, task)
    if not found:
        raise ConfigError(
            f"{path}: no recorded task inputs (an outcome log keeps them with [policy] "
            'outcomes_input = true; a dataset line is {"kind": ..., "input": {...}})'
        )
    return list(found.values())


@dataclass(slots=True, kw_only=True)
class Qualified:
    """What a qualification run produced."""

    trials: list[Trial] = field(default_factory=list[Trial])
    stopped: str | None = None
    """Why it stopped early (`budget`), or None when every trial ran."""
    skipped: list[str] = field(default_factory=list[str])
    """Recorded tasks whose input no longer validates, with the reason."""


def _trial_doc(t: Trial) -> dict[str, Any]:
    return {
        "kind": t.kind,
        "task_id": t.task_id,
        "contender": t.contender,
        "passed": t.passed,
        "delivered_by": t.delivered_by,
        "cost_usd": str(t.cost_usd),
        "latency_s": t.latency_s,
        "output": t.output,
        "reasons": list(t.reasons),
    }


def _trial_of(doc: dict[str, Any]) -> Trial:
    return Trial(
        kind=str(doc["kind"]),
        task_id=str(doc["task_id"]),
        contender=str(doc["contender"]),
        passed=bool(doc["passed"]),
        delivered_by=doc["delivered_by"],
        cost_usd=Decimal(doc["cost_usd"]),
        latency_s=float(doc["latency_s"]),
        output=doc["output"],
        reasons=tuple(str(r) for r in doc["reasons"]),
    )


def _journal(path: Path | None) -> dict[tuple[str, str, str], Trial]:
    if path is None or not path.exists():
        return {}
    done: dict[tuple[str, str, str], Trial] = {}
    for row in _rows(path):
        try:
            t = _trial_of(row)
        except (KeyError, TypeError, ArithmeticError):
            raise ConfigError(f"{path} is not a qualify journal") from None
        done[(t.kind, t.task_id, t.contender)] = t
    return done


def _subordinate(spec: JobSpec, kind: str) -> Subordinate[Any, Any]:
    for sub in spec.subordinates:
        if sub.kind == kind:
            return sub
    kinds = ", ".join(sorted({s.kind for s in spec.subordinates}))
    raise ConfigError(f"job {spec.name} has no subordinate for kind {kind!r} (it has: {kinds})")


def _trial(kind: str, task_id: str, contender: str, record: HandoffRecord | None) -> Trial:
    if record is None:
        return Trial(kind=kind, task_id=task_id, contender=contender, passed=False,
                     delivered_by=None, cost_usd=Decimal(0), latency_s=0.0)  # fmt: skip
    failed = [r for a in record.attempts for v in a.verdicts if not v.passed for r in v.reasons]
    return Trial(
        kind=kind,
        task_id=task_id,
        contender=contender,
        passed=record.status == "delivered" and not record.degraded,
        delivered_by=record.model,
        cost_usd=record.cost_usd,
        latency_s=round(record.latency_s, 4),
        reasons=tuple(dict.fromkeys(failed))[:5],
    )


async def run_qualification(
    spec: JobSpec,
    config: Config,
    portfolio: Portfolio,
    tasks: Sequence[RecordedTask],
    *,
    kinds: Sequence[str],
    candidates: Sequence[str],
    budget: Budget,
    sample: int | None = None,
    journal: Path | None = None,
    on_trial: Callable[[Trial], None] | None = None,
) -> Qualified:
    """Replay up to `sample` recorded tasks per kind on each candidate and on the incumbent route
    (the portfolio's clients are closed at the end, as after a job)."""
    try:
        return await _replay(
            spec, config, portfolio, tasks, kinds=kinds, candidates=candidates, budget=budget,
            sample=sample, journal=journal, on_trial=on_trial,
        )  # fmt: skip
    finally:
        await portfolio.aclose()


async def _replay(
    spec: JobSpec,
    config: Config,
    portfolio: Portfolio,
    tasks: Sequence[RecordedTask],
    *,
    kinds: Sequence[str],
    candidates: Sequence[str],
    budget: Budget,
    sample: int | None,
    journal: Path | None,
    on_trial: Callable[[Trial], None] | None,
) -> Qualified:
    for model in candidates:
        config.catalog[model]  # unknown id -> ConfigError
    done = _journal(journal)
    result = Qualified()
    quiet = replace(config, outcomes=None)  # replays are not new outcomes
    contenders = [*candidates, INCUMBENT]
    for kind in kinds:
        sub = _subordinate(spec, kind)
        mine = [t for t in tasks if t.kind == kind][:sample]
        for contender in contenders:
            policy = (
                config.policy
                if contender == INCUMBENT
                else Policy(rules=(Rule(kind=kind, ladder=(contender,), name="qualify"),))
            )
            # untraced: a replay in the trace folder would count as traffic in `handoffs report`
            session = configured_session(
                replace(quiet, policy=policy), portfolio, budget, tracing=False
            )
            for recorded in mine:
                key = (kind, recorded.task_id, contender)
                if key in done:
                    result.trials.append(done[key])
                    continue
                try:
                    task = sub.task(sub.input_type.model_validate(recorded.input))
                except ValidationError as exc:
                    if contender == contenders[0]:  # say it once
                        result.skipped.append(
                            f"{kind} {recorded.task_id}: {exc.errors()[0]['msg']}"
                        )
                    continue
                output: Any = None
                reasons: tuple[str, ...] = ()
                try:
                    delivery = await session.delegate(task)
                    if not delivery.degraded:
                        output = task.dump_output(delivery.output)
                except BudgetExceeded:
                    result.stopped = "budget"
                    return result
                except HandoffsError as exc:
                    reasons = (f"{type(exc).__name__}: {str(exc)[:200]}",)
                record = next((r for r in reversed(session.records) if r.task_id == task.id), None)
                if record is not None and record.cause == "budget":
                    result.stopped = "budget"
                    return result
                trial = _trial(kind, recorded.task_id, contender, record)
                trial = replace(trial, output=output, reasons=trial.reasons or reasons)
                result.trials.append(trial)
                if journal is not None:
                    journal.parent.mkdir(parents=True, exist_ok=True)
                    with journal.open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps(_trial_doc(trial), ensure_ascii=False) + "\n")
                if on_trial is not None:
                    on_trial(trial)
    return result
