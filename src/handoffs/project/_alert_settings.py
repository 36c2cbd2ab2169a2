"""The `[alerts]` table of `handoffs.toml`, as a pydantic model (its own piece of the config).

```toml
[alerts]
webhook = "https://hooks.example.com/handoffs"   # receives a JSON POST when an alert fires or resolves
interval_s = 60                  # how often the conditions are evaluated
error_rate = 0.2                 # HandoffsErrorRateSpike: provider-error share of a model's calls, 5 min
latency_factor = 2.0             # HandoffsLatencyP95Degraded: p95 over 10 min vs the hour before ...
latency_floor_s = 1.5            # ... and above this
budget_used = 0.8                # HandoffsBudgetThreshold: share of a job's budget spent or held
primary_down_s = 300             # HandoffsPrimaryProviderDown: a primary breaker not closed this long
verification_failure_rise = 0.2  # HandoffsVerificationFailureRateUp: 15 min vs the hour before
premium_share_rise = 0.1         # HandoffsPremiumShareCreeping: frontier share, 1 h vs the 6 h before
```
The defaults are the thresholds of `ops/prometheus/alerts.yml`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["AlertSettings"]


class AlertSettings(BaseModel):
    """The `[alerts]` table: where to post, how often to evaluate, and the thresholds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    webhook: str
    """An http(s) URL that receives the alerts as a JSON POST."""
    interval_s: float = Field(default=60.0, gt=0)
    error_rate: float = Field(default=0.2, gt=0, le=1)
    latency_factor: float = Field(default=2.0, gt=1)
    latency_floor_s: float = Field(default=1.5, ge=0)
    budget_used: float = Field(default=0.8, gt=0, le=1)
    primary_down_s: float = Field(default=300.0, gt=0)
    verification_failure_rise: float = Field(default=0.2, gt=0, le=1)
    premium_share_rise: float = Field(default=0.1, gt=0, le=1)

    @field_validator("webhook")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value
