"""What is asked of a subordinate: `Task[OutputT]`, its risk class, limits and JSON Schemas."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final, Generic, Literal, Protocol, TypeVar, cast, runtime_checkable

from jsonschema.validators import validator_for
from pydantic import BaseModel, TypeAdapter

from handoffs.budget import usd
from handoffs.catalog import Catalog
from handoffs.errors import ConfigError
from handoffs.handoff import RISKS, Risk, Verdict

__all__ = [
    "NO_FALLBACK",
    "Answer",
    "Ask",
    "Check",
    "CheckContext",
    "NoFallback",
    "Risk",
    "Task",
    "Urgency",
    "json_schema_of",
    "schema_errors",
]

OutputT = TypeVar("OutputT")


class NoFallback:
    """Sentinel: the task declares no fallback, so an exhausted route raises instead of degrading."""

    _instance: NoFallback | None = None

    def __new__(cls) -> NoFallback:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_FALLBACK"


NO_FALLBACK: Final = NoFallback()

_UNSET: Final = object()


@lru_cache(maxsize=256)
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


@lru_cache(maxsize=256)
def _compiled(tp: Any) -> tuple[str, Any]:
    """A type's JSON Schema as text and its jsonschema validator, derived once per type."""
    try:
        schema = _adapter(tp).json_schema()
    except Exception as exc:  # pydantic raises several types for types it cannot describe
        raise ConfigError(f"cannot derive a JSON Schema from {tp!r}: {exc}") from exc
    return json.dumps(schema), validator_for(schema)(schema)


def json_schema_of(tp: Any) -> dict[str, Any]:
    """The JSON Schema pydantic derives for a type (a model, `str`, `list[Model]`, ...)."""
    schema: dict[str, Any] = json.loads(_compiled(tp)[0])  # a fresh copy: callers may change it
    return schema


def schema_errors(schema: dict[str, Any], data: Any) -> list[str]:
    """Every way `data` violates `schema`, as short readable strings (empty when it conforms)."""
    return _errors(validator_for(schema)(schema), data)


def _errors(validator: Any, data: Any) -> list[str]:
    found: list[Any] = list(validator.iter_errors(data))
    errors: list[str] = []
    for err in sorted(found, key=lambda e: [str(p) for p in e.absolute_path]):
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        errors.append(f"{where}: {err.message}")
    return errors


def _to_decimal(value: Decimal | float | str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        return usd(value)
    except ValueError:
        raise ConfigError(f"max_cost_usd must be a finite number, not {value!r}") from None


def _label_of(value: Any, depth: int = 0) -> str | None:
    fields: dict[str, Any] = (
        dict(cast(dict[str, Any], value))
        if isinstance(value, dict)
        else dict(vars(value))
        if isinstance(value, BaseModel)
        else {}
    )
    for key in ("id", "name", "title"):
        if isinstance(fields.get(key), str | int):
            return str(fields[key])
    if depth == 0:
        for nested in fields.values():
            if isinstance(nested, dict | BaseModel) and (found := _label_of(nested, 1)):
                return found
    return None


Urgency = Literal["now", "batch"]
"""Whether a task is answered now or may wait for a provider batch (`Task.urgency`)."""


@dataclass(frozen=True, kw_only=True)
class Task(Generic[OutputT]):
    """One typed subtask handed to a subordinate model.

    The input is a pydantic model or plain JSON; the output type is any type pydantic can validate.
    Both sides of the handoff are checked against JSON Schemas derived from these types.
    """

    kind: str
    """The task class the router keys on, e.g. `"classify"`, `"extract"`, `"draft"`."""
    input: BaseModel | Any
    """What the subordinate works on: a pydantic model or JSON-compatible data."""
    output_type: type[OutputT]
    """The type the delivered output is validated as."""
    instructions: str = ""
    """What to do with the input, in plain words for the subordinate."""
    risk: Risk = "medium"
    """How costly a wrong answer is; with `kind`, selects the route."""
    checks: Sequence[Check] = ()
    """Checks run on every output before it is delivered (the schema check always runs first)."""
    max_cost_usd: Decimal | None = None
    """Ceiling on this handoff's spend, all attempts included; models whose estimate exceeds it are skipped."""
    deadline_s: float | None = None
    """Latency budget: models whose typical latency exceeds it are skipped; also a per-call timeout."""
    min_score: float | None = None
    """Default passing score for judge checks that do not set their own."""
    fallback: OutputT | NoFallback = NO_FALLBACK
    """Returned, marked degraded, when every rung is spent. Without it the handoff raises."""
    model: str | None = None
    """Per-call override: start the ladder at this catalog model."""
    requires: frozenset[str] = frozenset()
    """Capabilities a model must have to be routed this task, e.g. `{"tools"}`."""
    max_output_tokens: int = 512
    """Cap on generated tokens per call; bounds the cost reserved before each call."""
    feedback_retries: int = 1
    """How many times a model whose output failed a check is asked again, with the feedback."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    """Unique id of this handoff."""
    cache: bool | None = None
    """Whether the session's response cache may serve and keep this task's answer: None follows
    the cache's policy (`[cache] kinds`), True or False overrides it for this task."""
    prompt_cache: bool = True
    """Whether calls for this task may mark their stable prefix (instructions, output schema) for
    the provider's prompt cache; False sends no cache points (e.g. a one-off task whose prefix
    would be written to the cache, at 1.25x on Anthropic, and never read)."""
    label: str | None = None
    """A short human label for tables and traces, e.g. the ticket id (derived from the input's
    `id`, `name` or `title` field, or its nested model's, when not given)."""
    urgency: Urgency = "now"
    """`now`: an ordinary call. `batch`: the answer may wait for a provider batch API (about half
    price, up to its batch window): inside a durable job the task goes in a batch when its first
    rung has a model with a batch API and its deadline allows (`handoffs.jobs.BatchLane`), and
    takes the ordinary route otherwise, or when its batch answer fails."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "checks", tuple(self.checks))
        object.__setattr__(self, "requires", frozenset(self.requires))
        object.__setattr__(self, "max_cost_usd", _to_decimal(self.max_cost_usd))
        if self.label is None:
            object.__setattr__(self, "label", _label_of(self.input))
        if self.risk not in RISKS:
            raise ConfigError(f"task risk must be one of {', '.join(RISKS)}, not {self.risk!r}")
        if not self.kind:
            raise ConfigError("task kind must not be empty")
        if self.max_cost_usd is not None and self.max_cost_usd < 0:
            raise ConfigError("max_cost_usd must not be negative")
        if self.max_output_tokens <= 0:
            raise ConfigError("max_output_tokens must be positive")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise ConfigError("deadline_s must be positive")
        if self.feedback_retries < 0:
            raise ConfigError("feedback_retries must not be negative")

    @property
    def has_fallback(self) -> bool:
        """Whether an exhausted route degrades to `fallback` instead of raising."""
        return not isinstance(self.fallback, NoFallback)

    def input_data(self) -> Any:
        """The input as JSON-compatible data (dumped once per task: a task's input is not
        changed once it is handed over)."""
        cached = self.__dict__.get("_input_data", _UNSET)
        if cached is not _UNSET:
            return cached
        if isinstance(self.input, BaseModel):
            data: Any = self.input.model_dump(mode="json", warnings=False)
        else:
            value: Any = self.input
            data = _adapter(cast(Any, type(value))).dump_python(value, mode="json")
        object.__setattr__(self, "_input_data", data)
        return data

    def input_json(self) -> str:
        """The input serialised as JSON text, exactly as the subordinate receives it (once per
        task)."""
        cached: str | None = self.__dict__.get("_input_json")
        if cached is None:
            cached = json.dumps(self.input_data(), ensure_ascii=False, sort_keys=False)
            object.__setattr__(self, "_input_json", cached)
        return cached

    def input_schema(self) -> dict[str, Any]:
        """The JSON Schema of the input."""
        return json_schema_of(cast(Any, type(self.input)))

    def output_schema(self) -> dict[str, Any]:
        """The JSON Schema of the output type."""
        return json_schema_of(self.output_type)

    def output_schema_text(self) -> str:
        """The output's JSON Schema as compact text (what the router counts tokens of)."""
        return _compiled(self.output_type)[0]

    def output_errors(self, data: Any) -> list[str]:
        """Every way output `data` (JSON) violates the output schema (empty when it conforms)."""
        return _errors(_compiled(self.output_type)[1], data)

    def validate_input(self) -> None:
        """Check the input against its schema before anything is sent; raise `ConfigError` if not."""
        if self.__dict__.get("_input_valid"):
            return  # checked once per task
        errors = _errors(_compiled(cast(Any, type(self.input)))[1], self.input_data())
        if not errors:
            object.__setattr__(self, "_input_valid", True)
        if errors:
            raise ConfigError(f"task {self.kind!r} input fails its schema: {'; '.join(errors)}")

    def parse_output(self, data: Any) -> OutputT:
        """Validate JSON data as the output type (after the schema check)."""
        return cast(OutputT, _adapter(self.output_type).validate_python(data))

    def dump_output(self, output: OutputT) -> Any:
        """An output as JSON-compatible data."""
        return _adapter(self.output_type).dump_python(output, mode="json")


# -- checks: what inspects an output (the built-in ones are in `handoffs.verify`) ----------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What a model said when a check asked it something, and what that cost."""

    output: Any
    model: str
    cost_usd: Decimal
    input_tokens: int = 0
    output_tokens: int = 0


Ask = Callable[[str, str, str, type[Any]], Awaitable[Answer]]
"""`ask(model_id, instructions, prompt, output_type)`: one typed call, charged to the handoff's budget."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckContext:
    """What a check may know about the output it is judging, and how it may call a model."""

    task: Task[Any]
    producer: str
    """Catalog id of the model that produced the output."""
    catalog: Catalog
    ask: Ask


@runtime_checkable
class Check(Protocol):
    """Something that inspects an output and returns a `Verdict`."""

    @property
    def name(self) -> str:
        """Short name used in verdicts and traces."""
        ...

    async def __call__(self, output: Any, ctx: CheckContext) -> Verdict:
        """Judge `output`; return a verdict (never raise to reject)."""
        ...
