"""Job files: what to run (goal, roster, data, budget) and the report a run leaves.

```toml
name = "support-triage"
goal = "Triage these tickets and draft replies to the urgent ones."
roster = "../../agents"           # folder of roster files, relative to this file
orchestrator = "orchestrator"     # roster file whose `agent` is an OrchestratorSpec
subordinates = ["classifier", "extractor", "writer"]
data = "../data/tickets.jsonl"    # JSON or JSONL, handed to the orchestrator as data
budget_usd = "0.50"
simulation = "simulation"         # roster file that scripts simulated models (offline portfolio)
```
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict

from handoffs.budget import usd
from handoffs.catalog import Catalog, ModelEntry
from handoffs.errors import ConfigError
from handoffs.handoff import HandoffRecord, Money
from handoffs.orchestrator import OrchestratorSpec, Subordinate
from handoffs.project._config import read_toml
from handoffs.project._roster import load_agent
from handoffs.task import json_schema_of

__all__ = ["JobReport", "JobSpec", "all_frontier_cost", "load_job"]

_KEYS = {
    "name",
    "goal",
    "roster",
    "tools",
    "orchestrator",
    "subordinates",
    "data",
    "budget_usd",
    "max_handoffs",
    "simulation",
}


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """A validated job file with its roster loaded."""

    path: Path
    name: str
    goal: str
    orchestrator: OrchestratorSpec
    subordinates: tuple[Subordinate[Any, Any], ...]
    data: Any
    budget_usd: Decimal | None
    roster: Path
    simulation: str | None


def _load_data(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"job data not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read job data {path}: {exc}") from None
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"job data {path} is not valid JSON: {exc}") from None


def load_job(path: Path, catalog: Catalog) -> JobSpec:
    """Read and validate a job file, load its roster, and check every model id against `catalog`."""
    raw = read_toml(path, "job file")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"job file {path}: unknown key(s) {', '.join(unknown)}")
    for key in ("name", "goal", "orchestrator", "subordinates"):
        if key not in raw:
            raise ConfigError(f"job file {path}: missing required key {key!r}")
    base = path.parent
    roster = (base / str(raw.get("roster", "agents"))).resolve()
    tools = (base / str(raw["tools"])).resolve() if "tools" in raw else None
    spec = load_agent(roster, str(raw["orchestrator"]), tools=tools)
    if not isinstance(spec, OrchestratorSpec):
        raise ConfigError(
            f"roster file {raw['orchestrator']}.py: `agent` is not an OrchestratorSpec"
        )
    catalog[spec.model]  # unknown model id -> ConfigError
    names = raw["subordinates"]
    if not isinstance(names, list) or not names:
        raise ConfigError(f"job file {path}: subordinates must be a non-empty list of roster names")
    subordinates: list[Subordinate[Any, Any]] = []
    for name in cast(list[Any], names):
        sub = load_agent(roster, str(name), tools=tools)
        if not isinstance(sub, Subordinate):
            raise ConfigError(f"roster file {name}.py: `agent` is not a Subordinate")
        subordinates.append(cast(Subordinate[Any, Any], sub))
    for sub in subordinates:
        json_schema_of(
            sub.input_type
        )  # a type without a JSON Schema -> ConfigError now, not mid-job
        json_schema_of(sub.output_type)
        for check in sub.checks:
            model = getattr(check, "model", None)
            if isinstance(model, str):
                catalog[model]
    budget: Decimal | None = None
    if "budget_usd" in raw:
        try:
            budget = usd(raw["budget_usd"])
        except ValueError:
            raise ConfigError(f"job file {path}: budget_usd must be a finite number") from None
        if budget < 0:
            raise ConfigError(f"job file {path}: budget_usd must not be negative")
    max_handoffs = raw.get("max_handoffs")
    if max_handoffs is not None:
        if not isinstance(max_handoffs, int) or max_handoffs < 1:
            raise ConfigError(f"job file {path}: max_handoffs must be a positive integer")
        spec = replace(spec, max_handoffs=max_handoffs)  # keeps quarantine and actions
    data = _load_data((base / str(raw["data"])).resolve()) if "data" in raw else None
    return JobSpec(
        path=path,
        name=str(raw["name"]),
        goal=str(raw["goal"]),
        orchestrator=spec,
        subordinates=tuple(subordinates),
        data=data,
        budget_usd=budget,
        roster=roster,
        simulation=str(raw["simulation"]) if "simulation" in raw else None,
    )


class JobReport(BaseModel):
    """The outcome of one job run: what `handoffs run --json` prints."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    job: str
    status: Literal["completed", "budget_exceeded", "failed"]
    models: dict[str, str]
    """Catalog id -> `real`, `simulated`, `local` or `self-hosted`."""
    handoffs: list[HandoffRecord]
    output: Any = None
    orchestrator_cost_usd: Money
    total_cost_usd: Money
    all_frontier_cost_usd: Money
    """What the same handoffs would have cost had every one run on the frontier model."""
    budget_usd: Decimal | None = None
    escalations: int
    degraded: int
    error: str | None = None


def all_frontier_cost(records: list[HandoffRecord], frontier: ModelEntry) -> Decimal:
    """Price each handoff's answering tokens at the frontier model's rates.

    For a delivered handoff that is the accepted attempt; otherwise the last attempt with tokens.
    It is the baseline an all-frontier policy, trusting the frontier without checks, would have
    paid for the same work.
    """
    total = Decimal(0)
    for record in records:
        answered = [a for a in record.attempts if a.outcome == "accepted"] or [
            a for a in record.attempts if a.input_tokens
        ]
        if answered:
            a = answered[-1]
            total += frontier.cost(a.input_tokens, a.output_tokens)
    return total
