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

from handoffs.catalog import Catalog, ModelEntry
from handoffs.errors import ConfigError
from handoffs.handoff import HandoffRecord, Money
from handoffs.orchestrator import OrchestratorSpec, Subordinate
from handoffs.project._files import JobFile, read
from handoffs.project._gold import GoldScore
from handoffs.project._roster import load_agent
from handoffs.task import json_schema_of

__all__ = ["JobReport", "JobSpec", "all_frontier_cost", "job_data", "job_spec", "load_job"]


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
    gold: Path | None = None
    """The gold labels the run is scored against (`project.score_gold`), if the job names them."""
    batch_kinds: frozenset[str] = frozenset()
    """Task kinds whose handoffs may wait for a provider batch (`handoffs.jobs.BatchLane`)."""
    batch_poll_s: float = 30.0
    """The first wait between checks of a pending batch (it grows by half, to 10 minutes)."""


def job_data(file: JobFile, path: Path) -> Any:
    """The job's input data: its `data` file (JSON, or JSONL as a list), relative to the job file
    at `path`; None when it names none."""
    if file.data is None:
        return None
    data = (path.parent / file.data).resolve()
    try:
        text = data.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"job data not found: {data}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read job data {data}: {exc}") from None
    try:
        if data.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"job data {data} is not valid JSON: {exc}") from None


def job_spec(file: JobFile, *, path: Path, catalog: Catalog, data: Any) -> JobSpec:
    """The job a validated job file (read from `path`) describes, with `data` as its input: its
    roster loaded, every model id it names checked against `catalog`."""
    base = path.parent
    roster = (base / file.roster).resolve()
    tools = (base / file.tools).resolve() if file.tools is not None else None
    spec = load_agent(roster, file.orchestrator, tools=tools)
    if not isinstance(spec, OrchestratorSpec):
        raise ConfigError(f"roster file {file.orchestrator}.py: `agent` is not an OrchestratorSpec")
    catalog[spec.model]  # unknown model id -> ConfigError
    subordinates: list[Subordinate[Any, Any]] = []
    for name in file.subordinates:
        sub = load_agent(roster, name, tools=tools)
        if not isinstance(sub, Subordinate):
            raise ConfigError(f"roster file {name}.py: `agent` is not a Subordinate")
        subordinates.append(cast(Subordinate[Any, Any], sub))
    for sub in subordinates:
        json_schema_of(sub.input_type)  # a type without a JSON Schema -> ConfigError now
        json_schema_of(sub.output_type)
        for check in sub.checks:
            model = getattr(check, "model", None)
            if isinstance(model, str):
                catalog[model]
    if file.max_handoffs is not None:
        spec = replace(spec, max_handoffs=file.max_handoffs)  # keeps quarantine and actions
    if file.describe is not None:
        spec = replace(spec, describe=tuple(file.describe))
    gold = (base / file.gold).resolve() if file.gold is not None else None
    if gold is not None and not gold.is_file():
        raise ConfigError(f"job gold labels not found: {gold}")
    return JobSpec(
        path=path,
        name=file.name,
        goal=file.goal,
        orchestrator=spec,
        subordinates=tuple(subordinates),
        data=data,
        budget_usd=file.budget_usd,
        roster=roster,
        simulation=file.simulation,
        gold=gold,
        batch_kinds=frozenset(file.batch),
        batch_poll_s=file.batch_poll_s,
    )


def load_job(path: Path, catalog: Catalog) -> JobSpec:
    """Read and validate a job file, load its roster, and check every model id against `catalog`."""
    file = read(JobFile, path, "job file")
    return job_spec(file, path=path, catalog=catalog, data=job_data(file, path))


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
    repriced_frontier_cost_usd: Money
    """A re-pricing, not a run: this run's orchestrator cost plus each handoff's answering tokens
    priced at the frontier model's rates (`--baseline single-model` runs the job instead)."""
    budget_usd: Decimal | None = None
    escalations: int
    """Escalations that ended in a verified answer (a degraded or failed handoff's do not count)."""
    degraded: int
    error: str | None = None
    items: int | None = None
    """How many items the job's data holds (a list's length; None for other data)."""
    orchestrator_input_tokens: int = 0
    orchestrator_output_tokens: int = 0
    calls: int = 0
    """Model calls: the orchestrator's requests and every handoff's attempts."""
    elapsed_s: float = 0.0
    """Wall-clock time of the orchestrated run, in seconds."""
    gold: GoldScore | None = None
    """How the delivered answers compare with the job's gold labels, if it names them."""
    baseline: JobReport | None = None
    """The same job run with every tier set to the orchestrator's model
    (`handoffs run --baseline single-model`)."""

    cache_hits: int = 0
    """Handoffs served from the verified response cache (exact or semantic)."""
    cache_saved_usd: Money = Decimal(0)
    """What the cached answers cost when they were first made: the spend the cache avoided."""
    prompt_cache_read_tokens: int = 0
    """Input tokens of the handoffs' calls that providers served from their prompt caches."""
    prompt_cache_write_tokens: int = 0
    """Input tokens of the handoffs' calls that providers wrote to their prompt caches."""
    prompt_cache_saved_usd: Money = Decimal(0)
    """What provider prompt caching saved on the handoffs' calls, against the same tokens at the
    input price (writes' surcharge subtracted)."""
    orchestrator_cache_read_tokens: int = 0
    """Input tokens of the orchestrator's requests that its provider served from its cache."""
    orchestrator_prompt_cache_saved_usd: Money = Decimal(0)
    """What provider prompt caching saved on the orchestrator's requests."""
    batched: int = 0
    """Handoffs whose first attempt was a provider batch's answer (the batch lane)."""
    batch_ids: list[str] = []
    """The provider batches the job's handoffs went in."""
    batch_saved_usd: Money = Decimal(0)
    """What the batch price saved on those handoffs' batched calls, against the ordinary price."""

    @property
    def orchestrator_tokens_per_item(self) -> float | None:
        """The orchestrator's tokens (read and written) per item of the job's data."""
        if not self.items:
            return None
        tokens = self.orchestrator_input_tokens + self.orchestrator_output_tokens
        return tokens / self.items


def all_frontier_cost(records: list[HandoffRecord], frontier: ModelEntry) -> Decimal:
    """Price each handoff's answering tokens at the frontier model's rates.

    For a delivered handoff that is the accepted attempt; otherwise the last attempt with tokens.
    A re-pricing of this run, not a run: what an all-frontier policy would have paid for the same
    tokens (`handoffs run --baseline single-model` measures a real single-model run).
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
