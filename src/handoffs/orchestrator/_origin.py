"""Where a value came from (`Origin`), and which origins an action's argument accepts (`From`).

Every value the orchestrator can pass to a side-effecting action has one or more origins:

| kind | the value came from | `source` |
|---|---|---|
| `goal` | the user's goal: the run's trusted instructions | — |
| `job_input` | the job's input data | the path in the data, e.g. `[3].customer_id` |
| `verified_field` | a constrained field of a delivered answer (enum, bool, number, short pattern) | `subordinate.path`, with the `checks` the answer passed |
| `free_text` | free text of an answer (a key or a value) | `subordinate.path` |
| `provider_message` | a provider's message: a failed delegation's error, a refusal | the subordinate |
| `tool_result` | what a side-effecting tool or a source returned or raised | the tool |

An action declares, per argument, the origins it accepts, combined with `|`:

```python
@side_effect(accepts={
    "customer_id": From.job_input(),
    "amount": From.job_input() | From.verified(check="predicate:amount_in_record"),
})
def issue_refund(customer_id: str, amount: float) -> str: ...
```
An argument without a declaration accepts `DEFAULT_ACCEPTS`: the goal, the job's input and
verified fields. Free text, provider messages and tool results are never accepted unless declared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DEFAULT_ACCEPTS", "Accept", "Accepts", "From", "Origin", "OriginKind"]

OriginKind = Literal[
    "goal", "job_input", "verified_field", "free_text", "provider_message", "tool_result"
]
"""What kind of place a value came from (see the module docstring)."""
UNTRUSTED: frozenset[OriginKind] = frozenset({"free_text", "provider_message", "tool_result"})
"""Origins whose text a subordinate, a provider or the world wrote: quarantined by default."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Origin:
    """One place a value came from."""

    kind: OriginKind
    source: str = ""
    """Which one: a path in the job's data, `subordinate.path` of an answer, a tool's name."""
    checks: frozenset[str] = field(default_factory=frozenset[str])
    """For a `verified_field`: the checks its answer passed (`schema`, `predicate:NAME`, ...)."""

    @property
    def subordinate(self) -> str:
        """The subordinate (or tool) part of `source`."""
        return self.source.split(".", 1)[0].split("[", 1)[0]

    def __str__(self) -> str:
        if self.kind == "free_text":
            return self.source
        return f"{self.kind}:{self.source}" if self.source else self.kind


def _glob(pattern: str) -> re.Pattern[str]:
    """`*` matches anything; every other character, brackets included, only itself."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


@dataclass(frozen=True, slots=True, kw_only=True)
class Accept:
    """One kind of origin an argument accepts, optionally narrowed to a source and a check."""

    kind: OriginKind
    source: str = "*"
    """A subordinate or tool name, a full `source`, or a pattern over it where `*` matches
    anything (`[*].customer_id`)."""
    check: str | None = None
    """For `verified_field`: a check the answer must have passed (e.g. `predicate:in_record`)."""

    def admits(self, origin: Origin) -> bool:
        """Whether `origin` is one this accepts."""
        if origin.kind != self.kind:
            return False
        if self.check is not None and self.check not in origin.checks:
            return False
        return (
            self.source == "*"
            or self.source in (origin.source, origin.subordinate)
            or ("*" in self.source and _glob(self.source).fullmatch(origin.source) is not None)
        )

    def __str__(self) -> str:
        what = self.kind if self.source == "*" else f"{self.kind}({self.source})"
        return what if self.check is None else f"{what}[{self.check}]"


@dataclass(frozen=True, slots=True)
class Accepts:
    """The origins one argument accepts; combine with `|`."""

    options: tuple[Accept, ...] = ()

    def __or__(self, other: Accepts) -> Accepts:
        return Accepts((*self.options, *(o for o in other.options if o not in self.options)))

    def admits(self, origin: Origin) -> bool:
        """Whether any option accepts `origin`."""
        return any(option.admits(origin) for option in self.options)

    def __str__(self) -> str:
        return " | ".join(str(o) for o in self.options) or "nothing"


class From:
    """The vocabulary of argument declarations: `From.job_input() | From.verified(...)`."""

    @staticmethod
    def goal() -> Accepts:
        """Values the user's goal states."""
        return Accepts((Accept(kind="goal"),))

    @staticmethod
    def job_input(path: str = "*") -> Accepts:
        """Values of the job's input data (at paths matching the glob `path`)."""
        return Accepts((Accept(kind="job_input", source=path),))

    @staticmethod
    def verified(source: str = "*", *, check: str | None = None) -> Accepts:
        """Constrained fields of delivered answers (of `source`, whose answer passed `check`)."""
        return Accepts((Accept(kind="verified_field", source=source, check=check),))

    @staticmethod
    def free_text(source: str = "*") -> Accepts:
        """Free text of an answer of `source` (a subordinate, or `subordinate.field`)."""
        return Accepts((Accept(kind="free_text", source=source),))

    @staticmethod
    def provider_message(source: str = "*") -> Accepts:
        """A provider's message (an error, a refusal) from delegating to `source`."""
        return Accepts((Accept(kind="provider_message", source=source),))

    @staticmethod
    def tool_result(tool: str = "*") -> Accepts:
        """What a side-effecting tool or a source returned."""
        return Accepts((Accept(kind="tool_result", source=tool),))

    @staticmethod
    def nothing() -> Accepts:
        """No origin at all: the argument must be left at its default."""
        return Accepts()


DEFAULT_ACCEPTS = From.goal() | From.job_input() | From.verified()
"""What an argument without a declaration accepts."""
