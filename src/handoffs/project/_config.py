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
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from handoffs.catalog import Catalog
from handoffs.engine import Caps, RetryPolicy
from handoffs.errors import ConfigError
from handoffs.health import BreakerSettings
from handoffs.project._alert_settings import AlertSettings, alert_settings
from handoffs.routing import Policy

__all__ = ["Config", "load_config"]


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
    path: Path | None = None


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


def config_from_dict(data: dict[str, Any], *, path: Path | None = None) -> Config:
    """Build a `Config` from parsed TOML."""
    unknown = sorted(
        set(data) - {"portfolio", "models", "policy", "health", "retry", "caps", "jobs", "alerts"}
    )
    if unknown:
        raise ConfigError(f"unknown table(s) in config: {', '.join(unknown)}")
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise ConfigError("config defines no models: add [models.<id>] tables")
    catalog = Catalog.from_dict(cast(dict[str, Any], models))
    raw_policy = data.get("policy", {})
    if not isinstance(raw_policy, dict):
        raise ConfigError("[policy] must be a table")
    policy_data = dict(cast(dict[str, Any], raw_policy))
    scorer_path, min_pass = policy_data.pop("scorer", None), policy_data.pop("min_pass", 0.0)
    outcomes = _outcomes_path(policy_data.pop("outcomes", None), path)
    outcomes_input = policy_data.pop("outcomes_input", False)
    if not isinstance(outcomes_input, bool):
        raise ConfigError("[policy] outcomes_input must be true or false")
    policy = Policy.from_dict(policy_data) if policy_data.get("rules") else Policy.matrix(catalog)
    if scorer_path is not None:
        policy = _with_scorer(policy, scorer_path, min_pass, path)
    policy.validate(catalog)
    portfolio = data.get("portfolio", {})
    if not isinstance(portfolio, dict):
        raise ConfigError("[portfolio] must be a table")
    settings = cast(dict[str, Any], portfolio)
    unknown = sorted(set(settings) - {"simulate_missing_keys", "request_timeout_s"})
    if unknown:
        raise ConfigError(f"[portfolio]: unknown key(s) {', '.join(unknown)}")
    simulate = settings.get("simulate_missing_keys", True)
    timeout = settings.get("request_timeout_s", 60.0)
    if not isinstance(simulate, bool):
        raise ConfigError("[portfolio] simulate_missing_keys must be true or false")
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError("[portfolio] request_timeout_s must be a positive number")
    spread = _table(data, "jobs").get("spread", False)
    if not isinstance(spread, bool):
        raise ConfigError("[jobs] spread must be true or false")
    caps = Caps.from_list(data.get("caps", []))
    for cap in caps.caps:
        if cap.model != "*" and cap.model not in catalog:
            raise ConfigError(f"caps: unknown model id {cap.model!r}")
    return Config(
        catalog=catalog,
        policy=policy,
        simulate_missing_keys=simulate,
        request_timeout_s=float(timeout),
        health=BreakerSettings.from_dict(_table(data, "health")),
        retry=RetryPolicy.from_dict(_table(data, "retry"), request_timeout_s=float(timeout)),
        caps=caps,
        outcomes=outcomes,
        outcomes_input=outcomes_input,
        spread=spread,
        alerts=alert_settings(_table(data, "alerts")) if "alerts" in data else None,
        path=path,
    )


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return cast(dict[str, Any], value)


def _outcomes_path(value: Any, path: Path | None) -> Path | None:
    """`[policy] outcomes = "outcomes.jsonl"`: a file relative to the config file."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError("[policy] outcomes must be the path of a JSONL file to append to")
    return Path(value) if path is None else path.parent / value


def _with_scorer(policy: Policy, scorer: Any, min_pass: Any, path: Path | None) -> Policy:
    """`[policy] scorer = "file.npz"` (relative to the config file) and `min_pass = 0.2`."""
    from handoffs.routing import load_scorer

    if not isinstance(scorer, str) or not scorer:
        raise ConfigError("[policy] scorer must be the path of a file written by `router train`")
    if not isinstance(min_pass, int | float) or isinstance(min_pass, bool):
        raise ConfigError("[policy] min_pass must be a number between 0 and 1")
    file = Path(scorer) if path is None else path.parent / scorer
    return replace(policy, scorer=load_scorer(file), min_pass=float(min_pass))


def load_config(path: Path | str = "handoffs.toml") -> Config:
    """Load and validate `handoffs.toml`; every problem is a one-line `ConfigError`."""
    path = Path(path)
    return config_from_dict(read_toml(path, "config file"), path=path)
