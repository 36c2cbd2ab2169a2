"""The handoff protocol's records: `Verdict`, `Attempt`, `Delivery[OutputT]`, `HandoffRecord`.

`Verdict`, `Attempt` and `HandoffRecord` are frozen pydantic models: they cross process and storage
boundaries as JSON. `Delivery` carries the caller's typed output beside the same provenance.

Every field whose values form a closed set is a `Literal` (`Risk`, `Provider`, `Tier`, `Outcome`,
`FaultKind`, `Cause`, `BreakerState`), so a record that says something the engine cannot mean does
not validate. The sets only grow: records journaled or traced by an older release still load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Annotated, Any, Final, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "RISKS",
    "Attempt",
    "BreakerState",
    "CacheUse",
    "Cause",
    "Delivery",
    "FaultKind",
    "HandoffRecord",
    "Lane",
    "Money",
    "Outcome",
    "Provider",
    "RecordDraft",
    "Risk",
    "RouteStep",
    "Tier",
    "Usd",
    "Verdict",
    "held_record",
    "record_of",
]

Provider = Literal["anthropic", "openai", "openai-compatible"]
"""Who serves a model: a wire format, and whose keys it takes."""
Tier = Literal["frontier", "mid", "small", "local"]
"""How strong (and dear) a model is, strongest first."""
Risk = Literal["low", "medium", "high"]
"""How costly a wrong answer is: low-risk transforms start cheap, high-risk reasoning at the frontier."""

RISKS: Final[tuple[Risk, ...]] = ("low", "medium", "high")


OutputT = TypeVar("OutputT")

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Usd(Decimal):
    """A dollar amount that prints as a plain decimal: `0.0000009`, never `9E-7` (`str(Decimal)`
    switches to exponent notation below a millionth, where cheap calls cost). Arithmetic on it
    gives plain `Decimal`s, as any Decimal subclass does."""

    __slots__ = ()

    def __str__(self) -> str:
        return format(self, "f")

    def __format__(self, specifier: str, context: Context | None = None, /) -> str:
        if context is None:  # C's decimal refuses an explicit None here
            return super().__format__(specifier or "f")
        return super().__format__(specifier or "f", context)

    def __repr__(self) -> str:
        return f"Decimal('{self}')"


Money = Annotated[Decimal, AfterValidator(Usd)]
"""A pydantic field of dollars: any Decimal given is kept as a `Usd`, so records print and
serialise their money as plain decimals."""


class Verdict(BaseModel):
    """What one check concluded about one output."""

    model_config = _FROZEN

    check: str
    """Name of the check, e.g. `schema`, `judge`, `predicate:has_reply`."""
    passed: bool
    """Whether the output may be delivered as far as this check is concerned."""
    score: float | None = None
    """A score in [0, 1] when the check grades (judge, agreement)."""
    reasons: tuple[str, ...] = ()
    """Why, in a few short sentences; fed back to the model on a retry."""
    model: str | None = None
    """The model that graded, for checks that call one."""
    cost_usd: Money = Decimal(0)
    """What running the check cost (judge and agreement calls)."""


Outcome = Literal[
    "accepted",  # output passed every check and was delivered
    "rejected",  # output arrived but failed a check
    "invalid_output",  # output did not validate against the output schema
    "provider_error",  # the provider failed: 5xx, 429, connection, timeout
    "refused",  # not attempted: the budget or a limit refused the call
]

FaultKind = Literal[
    "unavailable", "rate_limited", "context_length", "content_filter", "rejected", "overrun"
]
"""How the engine sorted a provider error (`handoffs.providers._fault` sorts them, and says what
the engine does about each)."""

Cause = Literal[
    "verification",  # no output passed its checks
    "providers",  # every provider failed
    "content_filter",  # a provider's content filter refused the request
    "rejected",  # a provider rejected the request (bad request, authentication, unknown model)
    "budget",  # the budget refused the call
    "no_route",  # the router kept no model for the task
    "deadline",  # the handoff ran out of time or attempts
]
"""Why a handoff was degraded or failed."""

Lane = Literal["now", "batch"]
"""How a call was made: an ordinary request (`now`), or one request of a provider batch
(`batch`, at the batch price)."""

BreakerState = Literal["closed", "open", "half_open"]
"""A circuit breaker's state (`handoffs.health`)."""

CacheUse = Literal["exact", "semantic", "miss"]
"""How the response cache took part in a handoff (`handoffs.cache`)."""


class Attempt(BaseModel):
    """One call of one model for one handoff."""

    model_config = _FROZEN

    model: str
    """Catalog id of the model called."""
    provider: Provider
    """Provider kind: `anthropic`, `openai`, `openai-compatible`."""
    tier: Tier
    """Tier of the model: frontier, mid, small, local."""
    rung: int
    """Position of the model in the route's ladder (0 = first)."""
    outcome: Outcome
    """How the attempt ended."""
    feedback: bool = False
    """True when this attempt retried the same model with a failed verdict's feedback."""
    input_tokens: int = 0
    """Prompt tokens, the prompt cache's reads and writes included."""
    output_tokens: int = 0
    cost_usd: Money = Decimal(0)
    """What this call cost, checks included."""
    cache_read_tokens: int = 0
    """Of `input_tokens`, those the provider read from its prompt cache (billed at its cache-read
    price: 0.1x input on Anthropic, 0.25x-0.5x on OpenAI)."""
    cache_write_tokens: int = 0
    """Of `input_tokens`, those the provider wrote to its prompt cache (Anthropic: 1.25x input)."""
    prompt_cache_saved_usd: Money = Decimal(0)
    """What the prompt cache saved on this call against the same tokens at the input price
    (negative when a first call's cache write cost more than it saved)."""
    latency_s: float = 0.0
    verdicts: tuple[Verdict, ...] = ()
    error: str | None = None
    """One line describing a provider error or invalid output."""
    fault: FaultKind | None = None
    """For a provider error, how the engine sorted it: `unavailable`, `rate_limited`,
    `context_length`, `content_filter` or `rejected` (see `handoffs.providers`)."""
    lane: Lane = "now"
    """`batch`: the call was one request of a provider batch, charged at the batch price."""
    batch_id: str | None = None
    """The provider's id of the batch the call went in (`lane == "batch"`)."""
    saved_usd: Money = Decimal(0)
    """What the batch price saved on this call against the model's ordinary price."""


class RouteStep(BaseModel):
    """The router's decision about one catalog model: kept in the ladder or dropped, and why."""

    model_config = _FROZEN

    model: str
    kept: bool
    reason: str


class HandoffRecord(BaseModel):
    """Everything about one handoff, JSON-serialisable: one per handoff, for traces and stores."""

    model_config = _FROZEN

    task_id: str
    task_kind: str
    risk: Risk
    label: str | None = None
    """A short human label, e.g. the ticket id."""
    status: Literal["delivered", "degraded", "failed"]
    route: tuple[str, ...]
    """The ladder the router chose, cheapest-first within the rule."""
    route_reasons: tuple[RouteStep, ...] = ()
    model: str | None = None
    """The model whose output was delivered (None when degraded or failed)."""
    provider: Provider | None = None
    tier: Tier | None = None
    attempts: tuple[Attempt, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    """The verdicts on the delivered output."""
    escalations: int = 0
    """How many times the handoff moved up to a later rung after a failed check."""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Money = Decimal(0)
    latency_s: float = 0.0
    cache_read_tokens: int = 0
    """Input tokens of every attempt read from a provider's prompt cache."""
    cache_write_tokens: int = 0
    """Input tokens of every attempt written to a provider's prompt cache."""
    prompt_cache_saved_usd: Money = Decimal(0)
    """What provider prompt caching saved over every attempt (`Attempt.prompt_cache_saved_usd`)."""
    degraded: bool = False
    simulated: bool = False
    """The delivered output came from a simulated model — a cloud model whose key is missing,
    served offline by the simulator: a stand-in (without a domain simulation, a placeholder such
    as an enum's first value or `0`), not a model's answer."""
    output: Any = None
    """The delivered output as JSON (the fallback when degraded)."""
    error: str | None = None
    cause: Cause | None = None
    """Why a handoff was degraded or failed: `verification`, `providers`, `content_filter`,
    `rejected`, `budget`, `no_route` or `deadline`."""
    breakers: dict[str, BreakerState] = Field(default_factory=dict[str, BreakerState])
    """The circuit breaker state of every model the router considered, when it routed."""
    parent_id: str | None = Field(default=None)
    """The job or handoff this one was made for, when known."""
    cache: CacheUse | None = None
    """How the response cache took part: `exact` or `semantic` (the output was served from it,
    nothing was routed), `miss` (looked up, then made as usual); None: no cache was consulted."""
    cache_similarity: float | None = None
    """For a cache hit, the similarity of this input to the cached one (1 for `exact`); for a
    miss, that of the nearest candidate the checks refused, if one was close enough to try."""
    cache_source: str | None = None
    """The handoff whose answer was served (a hit) or refused (a miss)."""
    cache_saved_usd: Money | None = None
    """For a cache hit, what the source handoff cost: the spend this one avoided."""

    @property
    def batch_id(self) -> str | None:
        """The provider batch this handoff's first answer came from, if it was batched."""
        return next((a.batch_id for a in self.attempts if a.lane == "batch"), None)

    @property
    def batch_saved_usd(self) -> Decimal:
        """What the batch price saved on this handoff's batched calls."""
        return sum((a.saved_usd for a in self.attempts), Decimal(0))


@dataclass(slots=True)
class RecordDraft:
    """A `HandoffRecord` not built yet: the keyword arguments it will be validated from, the
    first time something asks for it (`build`; the same record every time after). The engine
    accounts a handoff from its draft (`status`, `cost_usd`, `escalations`) and builds the
    record only for whoever reads it: a sink, a trace, a caller reading `Delivery.record`."""

    fields: dict[str, Any]
    """`HandoffRecord`'s keyword arguments, every value final."""
    built: HandoffRecord | None = None

    def build(self) -> HandoffRecord:
        """The record, validated from `fields` once."""
        if self.built is None:
            self.built = HandoffRecord(**self.fields)
        return self.built

    @property
    def status(self) -> Literal["delivered", "degraded", "failed"]:
        return self.fields["status"]

    @property
    def cost_usd(self) -> Decimal:
        return self.fields.get("cost_usd", Decimal(0))

    @property
    def escalations(self) -> int:
        return self.fields.get("escalations", 0)


def record_of(record: HandoffRecord | RecordDraft) -> HandoffRecord:
    """`record`, built if it is a draft."""
    return record.build() if isinstance(record, RecordDraft) else record


def held_record(delivery: Delivery[Any]) -> HandoffRecord | RecordDraft:
    """A delivery's record as it is held: still a draft until something has read `record`."""
    held: HandoffRecord | RecordDraft = delivery.__dict__["_record"]
    return held


class _LazyRecord:
    """`Delivery.record`: given a `RecordDraft`, built the first time it is read."""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._slot = f"_{name}"

    def __get__(self, obj: object, owner: Any = None) -> HandoffRecord:
        if obj is None:
            raise AttributeError(self._slot)  # no default: the field is required
        value: HandoffRecord | RecordDraft = obj.__dict__[self._slot]
        if isinstance(value, RecordDraft):
            value = value.build()
            obj.__dict__[self._slot] = value
        return value

    def __set__(self, obj: object, value: HandoffRecord | RecordDraft) -> None:
        obj.__dict__[self._slot] = value


@dataclass(frozen=True, kw_only=True)
class Delivery(Generic[OutputT]):
    """A validated output and where it came from."""

    output: OutputT
    """The output, validated as the task's output type (the fallback when `degraded`)."""
    record: _LazyRecord = _LazyRecord()
    """The full provenance, JSON-serialisable (given as a `RecordDraft`, built when first read)."""

    @property
    def model(self) -> str | None:
        """The catalog id of the model whose answer was delivered."""
        return self.record.model

    @property
    def provider(self) -> Provider | None:
        return self.record.provider

    @property
    def tier(self) -> Tier | None:
        return self.record.tier

    @property
    def cost_usd(self) -> Decimal:
        """Total spend of the handoff: every attempt and every check."""
        return self.record.cost_usd

    @property
    def attempts(self) -> Sequence[Attempt]:
        return self.record.attempts

    @property
    def verdicts(self) -> Sequence[Verdict]:
        return self.record.verdicts

    @property
    def escalations(self) -> int:
        return self.record.escalations

    @property
    def degraded(self) -> bool:
        """True when the output is the task's declared fallback, not a model's answer."""
        return self.record.degraded

    @property
    def simulated(self) -> bool:
        """True when the output is a simulated model's stand-in (no key for the model that
        answered: offline), not a real model's answer. Check it before trusting an answer."""
        return self.record.simulated

    @property
    def latency_s(self) -> float:
        return self.record.latency_s

    @property
    def input_tokens(self) -> int:
        return self.record.input_tokens

    @property
    def output_tokens(self) -> int:
        return self.record.output_tokens
