"""Provenance: what one orchestrator run has shown its orchestrator, and where each value came from.

The orchestrator is a model: what it writes cannot be traced through its weights. So provenance
is established by construction, never by looking for untrusted text inside an argument:

- a **handle** (`⟦q:…⟧`) carries exactly the origin of the text behind it;
- a **literal** the orchestrator wrote is either *identical* to a value it was shown from a known
  place — a value of the job's input, a constrained field of a delivered answer, a word of the
  goal — and then has that value's origins; or it is the orchestrator's own composition, and then
  it may derive from *anything the orchestrator has read*: its origins are the run's whole
  context. In the safe mode the context is the goal, the job's input and verified constrained
  fields; with quarantine off it also holds every free text, provider message and tool result
  shown in the clear — and then *every* literal carries those too, identical to a known value or
  not: text that can carry an instruction may have chosen which value to write, so whatever the
  orchestrator writes after reading it is tainted by it, however it was copied, decoded,
  normalised or split. (A constrained field can steer only within its own domain — which value
  of an enum, which number in bounds: that is what requirements and predicates guard.)

Identity is exact (the same string, the same number): it can only name values the user or a
verified answer already gave, never an attacker's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from handoffs.orchestrator._origin import Origin, OriginKind
from handoffs.orchestrator._quarantine import REF, Quarantine, constrained_fields

__all__ = ["Ledger", "Provenance"]

_Key = tuple[str, Any]


def _key(value: Any) -> _Key | None:
    """What a value is compared by: the same string, or the same number (1 == 1.0)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        try:
            return ("n", Decimal(str(value)).normalize())
        except InvalidOperation:
            return None
    if isinstance(value, str):
        return ("s", value)
    return None


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in cast(dict[str, Any], value).items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(cast(list[Any], value)):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, value


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where one value came from: each part of it with the origins it may have come from.

    A part is a handle (one origin), a value identical to known values (any of theirs: the value
    *is* each of them), or the orchestrator's own composition (one part per origin of its context:
    it may derive from all of them). A value is admitted when every part has an accepted origin.
    """

    parts: tuple[frozenset[Origin], ...] = ()

    @property
    def origins(self) -> frozenset[Origin]:
        """Every origin of every part."""
        return frozenset(o for part in self.parts for o in part)

    def unaccepted(self, accepted: Callable[[Origin], bool]) -> list[Origin]:
        """The origins of the parts no accepted origin accounts for."""
        return sorted(
            {o for part in self.parts if not any(accepted(o) for o in part) for o in part}, key=str
        )

    def __str__(self) -> str:
        return ", ".join(" or ".join(sorted(str(o) for o in part)) for part in self.parts)


class Ledger:
    """The provenance of one run: its goal, its input, every answer and message it showed."""

    def __init__(self, *, goal: str, data: Any, redact: bool) -> None:
        self.quarantine = Quarantine(redact=redact)
        self._goal = goal.casefold()
        self._has_data = data is not None
        self._inputs: dict[_Key, set[Origin]] = {}
        for path, value in _leaves(data) if data is not None else ():
            if (key := _key(value)) is not None:
                self._inputs.setdefault(key, set()).add(Origin(kind="job_input", source=path))
        self._verified: dict[_Key, set[Origin]] = {}
        self._context: set[Origin] = {Origin(kind="goal")}
        if self._has_data:
            self._context.add(Origin(kind="job_input"))

    @property
    def redact(self) -> bool:
        """Whether untrusted text is held behind handles (the safe mode)."""
        return self.quarantine.redact

    def show_answer(
        self, subordinate: str, schema: Mapping[str, Any], output: Any, checks: frozenset[str]
    ) -> tuple[Any, list[str]]:
        """What the orchestrator may see of a delivered answer, and the paths held back.

        Its constrained fields become `verified_field` values (with the `checks` it passed); its
        free text (keys too) becomes `free_text` handles."""
        shown, hidden = self.quarantine.admit(
            schema,
            output,
            lambda path: Origin(kind="free_text", source=f"{subordinate}.{path}"),
        )
        for path, value in constrained_fields(schema, output):
            origin = Origin(kind="verified_field", source=f"{subordinate}.{path}", checks=checks)
            self._context.add(origin)
            if (key := _key(value)) is not None:
                self._verified.setdefault(key, set()).add(origin)
        return shown, hidden

    def show_message(self, kind: OriginKind, source: str, text: str) -> str:
        """A message from outside the plan (an error, a refusal), as the orchestrator may see it."""
        return self.quarantine.hold(text, Origin(kind=kind, source=source))

    def show_value(self, kind: OriginKind, source: str, value: Any) -> Any:
        """Any JSON value from outside the plan (a tool's result): every string in it, keys
        included, held; numbers, booleans and null shown."""
        shown, _ = self.quarantine.admit(
            {},
            value,
            lambda path: Origin(kind=kind, source=f"{source}.{path}" if path else source),
        )
        return shown

    def context(self) -> frozenset[Origin]:
        """Everything the orchestrator has read so far: what a value it composed may derive from."""
        return frozenset(self._context | set(self.quarantine.shown))

    def resolve(self, value: Any) -> Any:
        """`value` with every handle replaced by its text."""
        return self.quarantine.resolve(value)[0]

    def provenance(self, value: Any) -> Provenance:
        """Where an argument the orchestrator wrote came from (see the module docstring)."""
        _, by_handle = self.quarantine.resolve(value)
        parts: list[frozenset[Origin]] = [frozenset({o}) for o in by_handle]
        self._literal(value, parts)
        return Provenance(tuple(dict.fromkeys(parts)))

    def origins(self, value: Any) -> frozenset[Origin]:
        """Every origin `value` may have come from."""
        return self.provenance(value).origins

    def _literal(self, value: Any, parts: list[frozenset[Origin]]) -> None:
        if isinstance(value, dict):
            for k, v in cast(dict[str, Any], value).items():
                self._literal(k, parts)
                self._literal(v, parts)
        elif isinstance(value, list):
            for v in cast(list[Any], value):
                self._literal(v, parts)
        elif isinstance(value, str):
            rest = REF.sub(self._unknown_ref, value)
            if rest == value:  # no handle in it: the whole string was written by the orchestrator
                parts.extend(self._identity(value))
            elif rest.strip():  # handles and words around them: the words are the orchestrator's
                parts.extend(frozenset({o}) for o in self.context())
        elif value is not None:
            parts.extend(self._identity(value))

    def _unknown_ref(self, match: re.Match[str]) -> str:
        return "" if self.quarantine.lookup(match.group(1)) is not None else match.group(0)

    def _identity(self, value: Any) -> list[frozenset[Origin]]:
        """The parts of a value the orchestrator wrote: one, the known values it is identical
        to; else one per origin of everything it has read."""
        if isinstance(value, str) and not value.strip():
            return []  # nothing to carry
        key = _key(value)
        found: set[Origin] = set()
        if key is not None:
            found |= self._inputs.get(key, set())
            found |= self._verified.get(key, set())
            words = str(value).casefold()
            if re.search(rf"(?<!\w){re.escape(words)}(?!\w)", self._goal):
                found.add(Origin(kind="goal"))
        if not found:
            return [frozenset({o}) for o in self.context()]
        # read in the clear, untrusted text may have chosen which known value to write here
        return [frozenset(found), *(frozenset({o}) for o in set(self.quarantine.shown))]
