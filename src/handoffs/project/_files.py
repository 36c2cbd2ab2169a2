"""`handoffs.toml` and job files as pydantic models: the files' schema, checked as they are read.

Every table is a frozen model that refuses unknown keys and values of the wrong type (strict: a
value must have the TOML type it is documented with; nothing is coerced), so a mistake is one
`ConfigError` line naming the file, the key and the problem:

```
handoffs.toml: models.frontier.tier: must be one of frontier, mid, small, local (got 'huge')
```
`handoffs config schema` prints their JSON Schema, for editors. `config_from_file` (in `_config`)
and `job_spec` (in `_job`) turn them into the values the rest of handoffs uses; a durable job
journals them, dumped as JSON (`_snapshot`), and resumes from that rather than from the files.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handoffs.budget import Amount
from handoffs.catalog import Label, ModelTable
from handoffs.engine import RetryPolicy, SpendCap
from handoffs.errors import ConfigError, config_error
from handoffs.health import BreakerSettings
from handoffs.project._alert_settings import AlertSettings
from handoffs.project._drift_settings import DriftSettings
from handoffs.routing import Rule

__all__ = [
    "CacheTable",
    "CapTable",
    "ConfigFile",
    "HealthTable",
    "JobFile",
    "JobsTable",
    "PolicyTable",
    "PortfolioTable",
    "RetryTable",
    "RuleTable",
    "TracingTable",
    "json_schema",
    "parse",
    "read",
    "read_toml",
]

M = TypeVar("M", bound=BaseModel)

_HEALTH = BreakerSettings()
_RETRY = RetryPolicy()


class _Table(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, allow_inf_nan=False, use_attribute_docstrings=True
    )


class PortfolioTable(_Table):
    """`[portfolio]`: how models without a key are served, the request timeout, prompt caching."""

    simulate_missing_keys: bool = True
    """Serve cloud models whose key is missing from the fake provider (labelled simulated)."""
    request_timeout_s: float = Field(default=60.0, gt=0)
    """Deadline of one whole model request, in seconds."""
    prompt_cache: bool = True
    """Mark each request's stable prefix (instructions, output schema) for the provider's prompt
    cache (docs/budget.md); false: no model does (a model's own `prompt_cache` can only turn it
    off too)."""


class RuleTable(_Table):
    """One `[[policy.rules]]`: tasks of a kind and risk go to a ladder of models, cheapest first."""

    ladder: list[Label] = Field(min_length=1)
    """Catalog ids in the order they are tried."""
    kind: Label = "*"
    """The task kind this rule routes, or `*`."""
    risk: Literal["low", "medium", "high", "*"] = "*"
    """The task risk this rule routes, or `*`."""
    name: Label | None = None
    """Shown in routes and traces (default: `kind/risk`)."""

    def rule(self) -> Rule:
        """The routing rule this table describes."""
        return Rule(ladder=tuple(self.ladder), kind=self.kind, risk=self.risk, name=self.name or "")


class PolicyTable(_Table):
    """`[policy]`: the routing rules, an optional learned scorer, and the outcome log."""

    rules: list[RuleTable] = []
    """The task-risk matrix; none: the default matrix built from the models' tiers."""
    scorer: str | None = Field(default=None, min_length=1)
    """A file written by `handoffs router train`, relative to this file: reorders ladders by
    expected cost per verified answer."""
    min_pass: float = Field(default=0.0, ge=0, le=1)
    """With a scorer: drop models whose chance of passing is below this (never the last one)."""
    outcomes: str | None = Field(default=None, min_length=1)
    """A JSONL file, relative to this file, that every handoff's per-model outcomes are appended
    to (for `router train`)."""
    outcomes_input: bool = False
    """Also keep each task's input in the outcome log, so `handoffs qualify` can replay it."""


class HealthTable(_Table):
    """`[health]`: circuit breakers per endpoint and the active prober."""

    failure_threshold: int = Field(default=_HEALTH.failure_threshold, ge=1)
    """Consecutive failures that open a closed breaker."""
    error_rate: float = Field(default=_HEALTH.error_rate, gt=0, le=1)
    """Failure fraction over the last `window` calls that also opens it (1 turns this off)."""
    window: int = Field(default=_HEALTH.window, ge=1)
    """Calls the error rate is measured over."""
    cooldown_s: float = Field(default=_HEALTH.cooldown_s, ge=0)
    """How long an open breaker waits before letting one call through (half-open)."""
    success_threshold: int = Field(default=_HEALTH.success_threshold, ge=1)
    """Successes in half-open that close the breaker again."""
    probe_interval_s: float = Field(default=_HEALTH.probe_interval_s, ge=0)
    """How often the prober sends its tiny request to each endpoint (0 turns probing off)."""
    probe_timeout_s: float = Field(default=_HEALTH.probe_timeout_s, gt=0)
    """The probe's whole-request deadline."""

    def settings(self) -> BreakerSettings:
        """The breaker settings this table describes."""
        return BreakerSettings(**self.model_dump())


class RetryTable(_Table):
    """`[retry]`: how hard one handoff tries."""

    max_attempts: int = Field(default=_RETRY.max_attempts, ge=1)
    """Model calls one handoff may make, across retries, failovers and escalations."""
    max_handoff_s: float = Field(default=_RETRY.max_handoff_s, gt=0)
    """Wall-clock limit on one handoff, across every attempt."""
    request_timeout_s: float | None = Field(default=None, gt=0)
    """Deadline of one whole model request (default: `[portfolio] request_timeout_s`)."""
    first_event_timeout_s: float = Field(default=_RETRY.first_event_timeout_s or 0, ge=0)
    """Deadline of a streamed request's first token; 0 turns it off."""
    max_retry_after_s: float = Field(default=_RETRY.max_retry_after_s, gt=0)
    """The longest 429 `Retry-After` waited out when the task has no deadline."""
    sweeps: int = Field(default=_RETRY.sweeps, ge=1)
    """Times the whole route is tried when every provider on it failed transiently."""
    backoff_initial_s: float = Field(default=_RETRY.backoff_initial_s, ge=0)
    """First backoff before sweeping the route again; doubles each time, full jitter."""
    backoff_max_s: float = Field(default=_RETRY.backoff_max_s, ge=0)
    """The longest backoff."""

    def policy(self, *, request_timeout_s: float) -> RetryPolicy:
        """The retry policy this table describes; `request_timeout_s` when it sets none."""
        values = self.model_dump()
        values["request_timeout_s"] = self.request_timeout_s or request_timeout_s
        values["first_event_timeout_s"] = self.first_event_timeout_s or None
        return RetryPolicy(**values)


class CapTable(_Table):
    """One `[[caps]]`: at most `usd` on `model` for tasks of `kind`, per `per`."""

    model: Label = "*"
    """A catalog id, or `*`."""
    kind: Label = "*"
    """A task kind, or `*`."""
    usd: Amount
    """The most spent per period, in USD."""
    per: Literal["hour", "day", "process"] = "day"
    """`hour` and `day` are UTC calendar periods; `process` is the life of the process."""

    def cap(self) -> SpendCap:
        """The spending cap this table describes."""
        return SpendCap(model=self.model, kind=self.kind, usd=self.usd, per=self.per)


class JobsTable(_Table):
    """`[jobs]`: where durable jobs live, and how they run."""

    database_url: str | None = None
    """`sqlite:///PATH` or `postgresql://...` (default: `sqlite:///.handoffs/jobs.sqlite`)."""
    spread: bool = False
    """Hand each handoff of a job run by `handoffs worker` to the handoffs queue, where any
    worker may run it."""


class TracingTable(_Table):
    """`[tracing]`: what a job's spans may carry."""

    content: bool = False
    """Record prompt and response text and each handoff's task input in spans (as `handoffs run
    --trace-content` does), so that `handoffs qualify --from .handoffs/traces` can replay the
    recorded tasks. Off by default: inputs and prompts may be private data."""


class CacheTable(_Table):
    """`[cache]`: the verified response cache (docs/cache.md). A job's handoffs are looked up in it
    before they are routed; a near-duplicate is served only if the task's own checks pass on the
    cached answer against the new input."""

    enabled: bool = True
    """Use the cache (a `[cache]` table turns it on; `enabled = false` keeps the table, off)."""
    path: str = Field(default=".handoffs/cache.sqlite", min_length=1)
    """The SQLite file of cached answers, relative to this file."""
    kinds: list[Label] = ["*"]
    """The task kinds that use the cache, or `*`; a task's own `cache` setting overrides."""
    ttl_s: float = Field(default=86400.0, ge=0)
    """How long an answer may be served, in seconds (0: until its model, prompt or rules change)."""
    semantic: bool = True
    """Serve verified near-duplicates, not only exact repeats."""
    threshold: float = Field(default=0.95, gt=0, le=1)
    """The least cosine similarity of two inputs for a near-duplicate to be tried."""
    judges: bool = False
    """Re-run judge and agreement checks (model calls) on a near-duplicate; off, a task that only
    a judge verifies is served only for an exact repeat."""
    scope: Literal["tenant", "job"] = "tenant"
    """Whose answers a job may reuse: its tenant's (`tenant` below) or only its own."""
    tenant: Label = "default"
    """The tenant this project's jobs run for: answers never cross tenants."""


class ConfigFile(_Table):
    """`handoffs.toml`: the catalog, the routing policy and the runtime settings."""

    model_config = ConfigDict(title="handoffs.toml")

    portfolio: PortfolioTable = PortfolioTable()
    models: dict[Label, ModelTable] = Field(min_length=1)
    """The catalog: one `[models.<id>]` table per model."""
    policy: PolicyTable = PolicyTable()
    health: HealthTable = HealthTable()
    retry: RetryTable = RetryTable()
    caps: list[CapTable] = []
    """Spending caps per model and task kind."""
    jobs: JobsTable = JobsTable()
    cache: CacheTable | None = None
    """The verified response cache; absent: none."""
    alerts: AlertSettings | None = None
    """Post the alert conditions to a webhook from the worker (docs/operations.md)."""
    tracing: TracingTable = TracingTable()
    drift: DriftSettings | None = None
    """A scheduled re-qualification that `handoffs worker` runs (docs/operations.md)."""

    def priced(self) -> ConfigFile:
        """This file with every model's prices stated (genai-prices' where it gave none)."""
        models = {model_id: table.priced(model_id) for model_id, table in self.models.items()}
        return self.model_copy(update={"models": models})


class JobFile(_Table):
    """A job file: what to run (goal, roster, data) and what it may spend."""

    model_config = ConfigDict(title="handoffs job file")

    name: Label
    """The job's name, shown in reports and traces."""
    goal: str
    """What the orchestrator is asked to do."""
    roster: str = "agents"
    """The folder of roster files, relative to this file."""
    tools: str | None = None
    """The folder of tool functions, relative to this file (default: `tools` beside the roster)."""
    orchestrator: Label
    """The roster file whose `agent` is an `OrchestratorSpec`."""
    subordinates: list[Label] = Field(min_length=1)
    """The roster files whose `agent`s are the subordinates the orchestrator may delegate to."""
    data: str | None = None
    """A JSON or JSONL file, relative to this file, handed to the orchestrator as data."""
    budget_usd: Amount | None = None
    """The most the job may spend, in USD (none: unlimited)."""
    max_handoffs: int | None = Field(default=None, ge=1)
    """The most handoffs the orchestrator may make (default: the roster's)."""
    simulation: Label | None = None
    """The roster file that scripts simulated models (the offline portfolio)."""
    describe: list[Label] | None = None
    """Pass the data's items by reference: the orchestrator sees each item's handle and these
    fields of it (e.g. `["id"]`), never the whole item; none: items are shown whole."""
    gold: str | None = None
    """A JSON or JSONL file of gold labels, relative to this file: one record per item, with the
    item's `id` and the fields a correct answer has; the report scores the run against it."""
    batch: list[Label] = []
    """Task kinds (e.g. `["draft"]`) whose tool-less handoffs go through the providers' batch
    APIs at batch prices, waiting durably for the batch (besides tasks with
    `urgency="batch"`); a task the batch cannot serve takes the ordinary route."""
    batch_poll_s: float = Field(default=30.0, gt=0)
    """The first wait between checks of a pending batch, in seconds (it grows by half each
    check, up to 10 minutes)."""


def json_schema(model: type[ConfigFile | JobFile]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of `handoffs.toml` (`ConfigFile`) or of a job file
    (`JobFile`): what editors check and complete the TOML with."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """Parse a TOML file, turning every failure into a one-line `ConfigError`."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} is a directory, not a file: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text") from None


def parse(model: type[M], data: object, *, source: str, within: tuple[str, ...] = ()) -> M:
    """`data` validated as `model`; if not, a one-line `ConfigError` naming `source` and the key
    (below `within`, where `data` sits in its file)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, source=source, within=within) from None


def read(model: type[M], path: Path, what: str) -> M:
    """The TOML file at `path` validated as `model` (`what` names the file in messages)."""
    return parse(model, read_toml(path, what), source=str(path))
