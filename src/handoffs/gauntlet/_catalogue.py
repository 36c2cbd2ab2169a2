"""The attack catalogue: every named attack, by family, with its defaults.

```python
from handoffs.gauntlet import catalogue, select
attacks = select(["confident_lie", "provider"])   # a name or a whole family
```
Parametrise any attack with `dataclasses.replace` or its constructor, e.g.
`SilentlyWorse(name="local_worse", models=("local",), rate=0.5)`.
"""

from __future__ import annotations

from collections.abc import Iterable

from handoffs.errors import ConfigError
from handoffs.gauntlet._attack import Attack
from handoffs.gauntlet._bypass import bypasses
from handoffs.gauntlet._drill import LenientJudge, SilentlySlower, SilentlyWorse
from handoffs.gauntlet._economic import BudgetExhaustion, EndlessEscalation, RetryAfterBait
from handoffs.gauntlet._injection import INJECTIONS, PlantedInstruction
from handoffs.gauntlet._judge import JUDGE_PAYLOADS, JudgeInjection, judge_attacks
from handoffs.gauntlet._output import (
    ConfidentLie,
    EmptyOutput,
    ExtraField,
    InflatedConfidence,
    MalformedJson,
    MissingField,
    OversizedOutput,
    SchemaViolation,
)
from handoffs.gauntlet._provider import provider_faults

__all__ = ["FAMILIES", "catalogue", "opt_in", "select"]

FAMILIES = ("output", "injection", "economic", "provider", "degradation")


def catalogue(*, stall_s: float = 5.0) -> dict[str, Attack]:
    """Every attack of the full Gauntlet, by name (`stall_s` must exceed the request timeout)."""
    attacks: list[Attack] = [
        MalformedJson(),
        SchemaViolation(),
        MissingField(),
        ExtraField(),
        ConfidentLie(),
        InflatedConfidence(),
        OversizedOutput(),
        EmptyOutput(),
        *(make() for make in INJECTIONS),
        PlantedInstruction(name="planted_in_document", vector="document"),
        PlantedInstruction(name="planted_in_email", vector="email"),
        PlantedInstruction(name="planted_in_web_page", vector="web_page"),
        *bypasses(),
        *judge_attacks(),
        EndlessEscalation(),
        BudgetExhaustion(),
        RetryAfterBait(),
        *(make() for make in provider_faults(stall_s)),
        SilentlyWorse(),
        SilentlySlower(),
    ]
    return {a.name: a for a in attacks}


def opt_in() -> dict[str, Attack]:
    """Attacks left out of the full run: named explicitly, they run (see their docstrings)."""
    paraphrase = JudgeInjection(name="judge_paraphrase", payload=JUDGE_PAYLOADS["paraphrase"])
    return {a.name: a for a in (LenientJudge(), paraphrase)}


def select(names: Iterable[str] | None = None, *, stall_s: float = 5.0) -> list[Attack]:
    """The attacks named (attack or family names); the full catalogue when `names` is None.

    Raises `ConfigError` for an unknown name.
    """
    full = catalogue(stall_s=stall_s)
    if names is None:
        return list(full.values())
    known = {**full, **opt_in()}
    chosen: dict[str, Attack] = {}
    for name in names:
        name = name.strip()
        if not name:
            continue
        if name in FAMILIES:
            chosen.update({a.name: a for a in full.values() if a.family == name})
        elif name in known:
            chosen[name] = known[name]
        else:
            raise ConfigError(f"unknown attack {name!r}; known: {', '.join([*FAMILIES, *known])}")
    return list(chosen.values())
