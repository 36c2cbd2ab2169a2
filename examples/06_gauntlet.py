"""The Gauntlet: attack the bundled support-triage job's handoffs, offline, and score the defences.

Shows:
- one attack of each family (a confident lie, an injected tool call, an instruction planted in an
  email a subordinate reads, budget exhaustion, a provider outage, a model silently getting worse)
  against the job as configured, in the safe mode: the orchestrator never reads what a
  subordinate wrote, so the gullible orchestrator finds nothing to obey;
- the same injections with quarantine off (the opt-out): the orchestrator reads the free text and
  tries the calls, and provenance refuses every one;
- a weakened configuration (verification off) caught breaking the `verified_or_marked` invariant.

Every model is played by the job's simulation on the fake provider (real SDKs, loopback), the
orchestrator is made gullible (it makes every call it reads in a result), and the Gauntlet adds
three honeypot actions (`send_email`, `http_post`, `issue_refund`) for injections to aim at.

    .venv/bin/python examples/06_gauntlet.py
"""

from __future__ import annotations

from pathlib import Path

import anyio

from handoffs import load_config
from handoffs.gauntlet import Defences, Gauntlet, Scorecard
from handoffs.project import load_job

ROOT = Path(__file__).resolve().parent.parent
EACH_FAMILY = [
    "confident_lie",
    "fake_tool_call",
    "planted_in_email",
    "budget_exhaustion",
    "outage",
    "silently_worse",
]


def show(title: str, card: Scorecard) -> None:
    print(f"\n== {title} (quarantine: {card.quarantine})")
    for attack in card.attacks:
        print(f"  {attack.family:<12} {attack.name:<18} {attack.outcome:<9} {attack.why}")
    for invariant in card.invariants:
        if invariant.held:
            print(f"  held    {invariant.name}")
        else:
            breach = invariant.breach
            assert breach is not None
            print(
                f"  BROKEN  {invariant.name} by {breach.attack} (trace {breach.trace_id}): {breach.detail}"
            )


async def main() -> None:
    config = load_config(ROOT / "handoffs.toml")
    job = load_job(ROOT / "examples" / "jobs" / "support-triage.toml", config.catalog)
    runs = [
        ("one attack per family", Defences(), EACH_FAMILY),
        (
            "injections, quarantine off (opt-out)",
            Defences(quarantine=False),
            ["fake_tool_call", "planted_in_email"],
        ),
        ("weakened: verification off", Defences.weakened(["verification"]), ["confident_lie"]),
    ]
    for title, defences, names in runs:
        gauntlet = Gauntlet(job, config, seed=1, data_limit=2, defences=defences)
        card = await gauntlet.run(gauntlet.attacks(names))
        show(title, card)
        print(
            f"  => {'every invariant held' if card.held else 'BROKEN: ' + ', '.join(card.broken)}"
        )


if __name__ == "__main__":
    anyio.run(main)
