"""`handoffs.toml`: the catalog (`[models.*]`), the routing policy (`[policy]`) and runtime settings.

```toml
[portfolio]
simulate_missing_keys = true   # cloud models without a key are served by the fake provider
request_timeout_s = 60

[models.frontier]
provider = "anthropic"
name = "claude-sonnet-4-6"
tier = "frontier"
context_window = 200000

[[policy.rules]]
kind = "classify"
ladder = ["local", "mid", "frontier"]
```
The file is read as a `ConfigFile` (`_files`: every table a pydantic model, every mistake one line
naming the key) and turned into a `Config` here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from handoffs.cache import CachePolicy
from handoffs.catalog import Catalog
from handoffs.engine import Caps, RetryPolicy
from handoffs.errors import ConfigError
from handoffs.health import BreakerSettings
from handoffs.project._alert_settings import AlertSettings
from handoffs.project._drift_settings import DriftSettings
from handoffs.project._files import CacheTable, ConfigFile, parse, read
from handoffs.routing import Policy

__all__ = ["CacheSettings", "Config", "config_from_dict", "config_from_file", "load_config"]


@dataclass(frozen=True, kw_only=True)
class Config:
    """A loaded `handoffs.toml`."""

    catalog: Catalog
    policy: Policy
    simulate_missing_keys: bool = True
    """Serve cloud models whose key is missing from the fake provider (labelled simulated)."""
    request_timeout_s: float = 60.0
    health: BreakerSettings = field(default_factory=BreakerSettings)
    """Circuit breaker thresholds and the prober's interval (`[health]`)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Caps on attempts and time per handoff, waits and timeouts (`[retry]`)."""
    caps: Caps = field(default_factory=Caps)
    """Spending caps per model and task kind (`[[caps]]`)."""
    outcomes: Path | None = None
    """Where each handoff's per-model outcomes are appended for `router train`
    (`[policy] outcomes`, relative to the config file); None: not recorded."""
    outcomes_input: bool = False
    """`[policy] outcomes_input = true`: the outcome log also keeps each task's input, so that
    `handoffs qualify` can replay the recorded tasks (docs/operations.md)."""
    spread: bool = False
    """`[jobs] spread`: a durable job run by `handoffs worker` hands each handoff to the
    handoffs queue, where any worker may run it (docs/jobs.md). Off: a job's handoffs run in
    the worker that runs the job."""
    alerts: AlertSettings | None = None
    """`[alerts]`: post the alert conditions to a webhook from the worker (docs/operations.md)."""
    cache: CacheSettings | None = None
    """`[cache]`: the verified response cache a job's handoffs are looked up in; None: none."""
    trace_content: bool = False
    """`[tracing] content = true`: a job's spans carry prompts, responses and task inputs."""
    drift: DriftSettings | None = None
    """`[drift]`: the re-qualification `handoffs worker` runs on a schedule (docs/operations.md)."""
    path: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheSettings:
    """`[cache]`, resolved: where the cache lives, what it serves, whose answers a job reuses."""

    path: Path
    policy: CachePolicy
    scope: Literal["tenant", "job"] = "tenant"
    tenant: str = "default"

    def scope_of(self, job_id: str) -> str:
        """The cache scope of job `job_id`: its tenant's, or its own."""
        return f"tenant:{self.tenant}" if self.scope == "tenant" else f"job:{job_id}"


def config_from_dict(data: dict[str, Any], *, path: Path | None = None) -> Config:
    """Build a `Config` from parsed TOML (`path`: the file it came from, named in messages and
    the base of its relative paths)."""
    return config_from_file(parse(ConfigFile, data, source=_source(path)), path=path)


def config_from_file(file: ConfigFile, *, path: Path | None = None) -> Config:
    """The `Config` a validated `handoffs.toml` describes: the catalog priced, the policy checked
    against it, the scorer loaded. A problem is a `ConfigError` naming the file."""
    try:
        return _config(file, path)
    except ConfigError as exc:
        raise ConfigError(f"{_source(path)}: {exc}") from None


def _config(file: ConfigFile, path: Path | None) -> Config:
    entries = [table.entry(model_id) for model_id, table in file.models.items()]
    if not file.portfolio.prompt_cache:
        entries = [replace(entry, prompt_cache=False) for entry in entries]
    catalog = Catalog(entries)
    rules = file.policy.rules
    policy = Policy(rules=tuple(r.rule() for r in rules)) if rules else Policy.matrix(catalog)
    if file.policy.scorer is not None:
        from handoffs.routing import load_scorer

        scorer = load_scorer(beside(path, file.policy.scorer))
        policy = replace(policy, scorer=scorer, min_pass=file.policy.min_pass)
    policy.validate(catalog)
    for i, cap in enumerate(file.caps):
        if cap.model != "*" and cap.model not in catalog:
            raise ConfigError(f"caps[{i}].model: unknown model id {cap.model!r}")
    timeout = file.portfolio.request_timeout_s
    outcomes = file.policy.outcomes
    return Config(
        catalog=catalog,
        policy=policy,
        simulate_missing_keys=file.portfolio.simulate_missing_keys,
        request_timeout_s=timeout,
        health=file.health.settings(),
        retry=file.retry.policy(request_timeout_s=timeout),
        caps=Caps([cap.cap() for cap in file.caps]),
        outcomes=None if outcomes is None else beside(path, outcomes),
        outcomes_input=file.policy.outcomes_input,
        spread=file.jobs.spread,
        alerts=file.alerts,
        cache=_cache(file.cache, path),
        trace_content=file.tracing.content,
        drift=file.drift,
        path=path,
    )


def _cache(table: CacheTable | None, path: Path | None) -> CacheSettings | None:
    if table is None or not table.enabled:
        return None
    policy = CachePolicy(
        kinds=None if "*" in table.kinds else frozenset(table.kinds),
        ttl_s=table.ttl_s or None,
        semantic=table.semantic,
        threshold=table.threshold,
        judges=table.judges,
    )
    return CacheSettings(
        path=beside(path, table.path), policy=policy, scope=table.scope, tenant=table.tenant
    )


def beside(path: Path | None, name: str) -> Path:
    """A file named in `handoffs.toml` (`[policy] scorer`, `outcomes`): relative to that file."""
    return Path(name) if path is None else path.parent / name


def _source(path: Path | None) -> str:
    return "config" if path is None else str(path)


def load_config(path: Path | str = "handoffs.toml") -> Config:
    """Load and validate `handoffs.toml`; every problem is a one-line `ConfigError`."""
    path = Path(path)
    return config_from_file(read(ConfigFile, path, "config file"), path=path)
