"""Provider attacks: the fake provider's faults, one attack object each, on the real wire.

`ProviderFault` wraps any `handoffs.testing.Fault` — an HTTP status, a stall past the deadline, a
stream cut short, a body that does not parse, a dropped connection — and serves it to a share of
the requests a model receives (all of its roles but the orchestrator: a model that fails, fails
as a judge too). New fault kinds plug in as they are added to `Fault`.

What must hold (`harm = "availability"`): every handoff ends delivered by another model, or marked
degraded or failed; nothing is lost and every failed call is on the trace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from handoffs.gauntlet._attack import Answer, Attack, Family, Harm, Hostility
from handoffs.gauntlet._call import ORCHESTRATOR, Call
from handoffs.testing import Fault, Script
from handoffs.testing.fault import resolve

__all__ = ["ProviderFault", "provider_faults"]


@dataclass(frozen=True, kw_only=True)
class ProviderFault(Attack):
    """A provider fault served to a share of a model's requests."""

    fault: Fault = field(default_factory=lambda: Fault.http(503))
    family: ClassVar[Family] = "provider"
    harm: ClassVar[Harm] = "availability"
    gullible_orchestrator: ClassVar[bool] = False

    @property
    def description(self) -> str:
        f = self.fault
        what = f"HTTP {f.status}" if f.kind == "http" else f.kind.replace("_", " ")
        if f.kind == "http" and f.retry_after_s is not None:
            what += f" (Retry-After {f.retry_after_s:g} s)"
        if f.kind == "stall":
            what += f" for {f.stall_s:g} s"
        target = "every request" if self.rate >= 1 else f"{self.rate:.0%} of the requests"
        return f"Provider fault: {what} on {target} of the attacked models."

    def targets_role(self, role: str) -> bool:
        if role == ORCHESTRATOR:
            return False
        return "*" in self.subordinates or role in self.subordinates

    async def answer(self, call: Call, honest: Script, hostility: Hostility) -> Answer | None:
        hostility.fire()
        return await resolve(self.fault, honest, call.request)


def provider_faults(stall_s: float) -> tuple[Callable[[], ProviderFault], ...]:
    """The catalogue's provider attacks; `stall_s` must exceed the run's request timeout."""
    return (
        lambda: ProviderFault(name="server_error", fault=Fault.http(500), rate=0.5),
        lambda: ProviderFault(name="unavailable", fault=Fault.http(503), rate=0.5),
        lambda: ProviderFault(name="overloaded", fault=Fault.http(529), rate=0.5),
        lambda: ProviderFault(
            name="rate_limited", fault=Fault.http(429, retry_after_s=0.2), rate=0.3
        ),
        lambda: ProviderFault(name="stall", fault=Fault.stall(stall_s), rate=0.2),
        lambda: ProviderFault(name="truncated_stream", fault=Fault.truncate(), rate=0.3),
        lambda: ProviderFault(name="malformed_body", fault=Fault.malformed(), rate=0.3),
        lambda: ProviderFault(name="connection_dropped", fault=Fault.refuse(), rate=0.3),
        lambda: ProviderFault(name="outage", fault=Fault.http(503, message="outage"), rate=1.0),
    )
