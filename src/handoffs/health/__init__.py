"""The health wing: a circuit breaker per endpoint, and the active prober that keeps them current."""

from handoffs.health._breaker import Breaker, BreakerSettings, Health, shared_health
from handoffs.health._prober import Prober

__all__ = [
    "Breaker",
    "BreakerSettings",
    "Health",
    "Prober",
    "shared_health",
]
