"""The model catalog: which models exist, who serves them, what they cost and can do.

Loaded from the `[models.*]` tables of `handoffs.toml` (`ModelTable`, a pydantic model: the file's
schema). Prices come from genai-prices when it knows the model and from the file otherwise; a
self-hosted model must be priced explicitly.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from handoffs.budget import Amount
from handoffs.errors import ConfigError, config_error
from handoffs.handoff import Provider, Tier

__all__ = [
    "Catalog",
    "Label",
    "ModelEntry",
    "ModelTable",
    "Provider",
    "StructuredOutput",
    "Tier",
    "estimate_tokens",
    "reserved_input_tokens",
    "token_bound",
]

StructuredOutput = Literal["native", "tool", "prompted"]
"""How a model is asked for typed output: JSON-schema response format, an output tool, or prompt-only."""

_HIDDEN: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})
"""Unicode categories a label may not contain: controls, formatting (the bidirectional overrides
such as U+202E, zero-width characters) and line or paragraph separators."""
_LABEL_PATTERN: Final = (
    "^[^\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u180e\\u200b-\\u200f"
    "\\u2028-\\u202e\\u2060-\\u206f\\ufeff\\ufff9-\\ufffb]+$"
)
"""`_HIDDEN` for editors (JSON Schema): the characters of those categories in the Basic
Multilingual Plane."""


def _printable(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    if any(unicodedata.category(c) in _HIDDEN for c in text):
        raise ValueError("must not contain control or bidirectional-formatting characters")
    return text


Label = Annotated[
    str,
    AfterValidator(_printable),
    WithJsonSchema({"type": "string", "minLength": 1, "pattern": _LABEL_PATTERN}),
]
"""An id or name in a file that handoffs echoes to a terminal (a model id, a task kind, a job's
name): not empty, and free of control and bidirectional-formatting characters (U+202E and the
like), which could make a terminal show something other than what is there."""

TIER_ORDER: Final[dict[Tier, int]] = {"local": 0, "small": 1, "mid": 2, "frontier": 3}
_MILLION: Final = Decimal(1_000_000)
_READ_RATIO: Final[dict[str, Decimal]] = {"anthropic": Decimal("0.1"), "openai": Decimal("0.5")}
"""Cache-read price over input price, as each provider documents it, for models genai-prices
does not price (Anthropic: 0.1x; OpenAI: 0.5x on the GPT-4o generation)."""
_WRITE_RATIO: Final[dict[str, Decimal]] = {"anthropic": Decimal("1.25")}
"""Cache-write price over input price: Anthropic's 5-minute cache 1.25x; OpenAI charges none."""
_BATCH_FACTOR: Final[dict[str, Decimal]] = {"anthropic": Decimal("0.5"), "openai": Decimal("0.5")}
"""A batched call's share of the ordinary price, by provider (both halve it)."""


PROMPT_OVERHEAD_TOKENS: Final = 512
"""Input a call is billed for that its messages do not show: a provider adapter's framing preamble
(pydantic-ai's Anthropic one is ~300 tokens) and the wire's own structure. Reserving less lets the
last calls before a budget's limit overspend it (the Gauntlet's `budget_exhaustion` attack)."""


def token_bound(text: str) -> int:
    """An upper bound on the tokens `text` takes: its UTF-8 bytes. A byte-level BPE tokenizer (the
    GPT, Claude, Llama and Qwen families) never makes a token of less than one byte, so however
    dense the text (CJK, emoji, base64), it cannot take more tokens than bytes."""
    return len(text.encode("utf-8", errors="surrogatepass"))


def reserved_input_tokens(bound: int) -> int:
    """The input tokens to reserve money for when `bound` bounds the tokens the messages show
    (`token_bound` of their text): that plus `PROMPT_OVERHEAD_TOKENS` for the wire's framing."""
    return bound + PROMPT_OVERHEAD_TOKENS


def estimate_tokens(text: str) -> int:
    """A token estimate for routing: about four characters a token, rounded up. Cheaper than
    `token_bound` and usually closer, but not a bound: reservations use `token_bound`."""
    return max(1, -(-len(text) // 4))


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelEntry:
    """One model in the portfolio."""

    id: str
    """Catalog id used in policies and records, e.g. `sonnet`."""
    provider: Provider
    """Who serves it; `openai-compatible` needs `base_url` or `embedded`."""
    name: str
    """The provider's own model name, e.g. `claude-sonnet-4-6`."""
    tier: Tier
    input_usd_per_mtok: Decimal
    """Price of a million input tokens, in USD."""
    output_usd_per_mtok: Decimal
    """Price of a million output tokens, in USD."""
    context_window: int
    """Maximum tokens of prompt plus output."""
    structured_output: StructuredOutput = "tool"
    prompt_variant: str = "default"
    """Which prompt template the model gets (`default`, `xml`, `compact`)."""
    base_url: str | None = None
    """Endpoint of an OpenAI-compatible server (vLLM, llama.cpp, Ollama)."""
    embedded: str | None = None
    """Name of a model handoffs serves in-process (e.g. `smollm2-135m`) instead of a `base_url`."""
    api_key_env: str | None = None
    """Environment variable holding the key; defaults by provider."""
    typical_latency_s: float = 2.0
    """Typical latency of one call, compared against a task's deadline by the router."""
    capabilities: frozenset[str] = frozenset({"tools"})
    """What the model can do beyond typed output, e.g. `tools`, `vision`."""
    max_concurrency: int | None = None
    """Most calls in flight at once from this process (e.g. 1 for a single-slot local server), so
    queued calls wait here instead of timing out at the server."""
    failover: tuple[str, ...] = ()
    """Equivalent models on other providers, tried in order when this one fails (5xx, overload,
    connection, timeout): the same rung of a route, each with its own prompt variant."""
    stream: bool = False
    """Ask for the answer as a stream: a stalled provider is caught by the first-token deadline."""
    cache_read_usd_per_mtok: Decimal | None = None
    """Price of a million input tokens read from the provider's prompt cache (None: the
    provider's documented ratio, `cache_read_price`)."""
    cache_write_usd_per_mtok: Decimal | None = None
    """Price of a million input tokens written to the provider's prompt cache (None: the
    provider's documented ratio, `cache_write_price`)."""
    prompt_cache: bool = True
    """Mark each request's stable prefix (instructions, output schema) cacheable on providers that
    cache prompts (Anthropic `cache_control`; OpenAI caches long prefixes by itself)."""
    batch_discount: Decimal | None = None
    """The share of the price a provider batch API takes off (0.5: half price), for the batch
    lane (`Task(urgency="batch")`); None: the provider's default, 0.5 for `anthropic` and
    `openai`, and no batch API for `openai-compatible` (its batch tasks take the ordinary route)."""
    batch_window_s: float = 86400.0
    """How long the provider may take to finish a batch: a batch task whose deadline is shorter
    takes the ordinary route."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "failover", tuple(self.failover))
        if self.provider == "openai-compatible" and not (self.base_url or self.embedded):
            raise ConfigError(
                f"model {self.id!r}: openai-compatible models need base_url or embedded"
            )
        for name in (
            "input_usd_per_mtok",
            "output_usd_per_mtok",
            "cache_read_usd_per_mtok",
            "cache_write_usd_per_mtok",
        ):
            price: Decimal | None = getattr(self, name)
            if price is not None and (not price.is_finite() or price < 0):
                raise ConfigError(f"model {self.id!r}: {name} must be a finite number >= 0")
        if self.context_window <= 0:
            raise ConfigError(f"model {self.id!r}: context_window must be a positive integer")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ConfigError(f"model {self.id!r}: max_concurrency must be at least 1")
        if self.typical_latency_s <= 0:
            raise ConfigError(f"model {self.id!r}: typical_latency_s must be a positive number")
        if self.batch_discount is not None and not (0 <= self.batch_discount < 1):
            raise ConfigError(f"model {self.id!r}: batch_discount must be at least 0, below 1")
        if self.batch_window_s <= 0:
            raise ConfigError(f"model {self.id!r}: batch_window_s must be a positive number")

    @property
    def batch_factor(self) -> Decimal | None:
        """What a batched call costs as a share of an ordinary one (0.5), or None when the model
        has no batch API."""
        if self.batch_discount is not None:
            return 1 - self.batch_discount
        return _BATCH_FACTOR.get(self.provider)

    def batch_cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        """What a batched call with these token counts costs (the ordinary price without a
        batch API)."""
        return self.cost(input_tokens, output_tokens) * (self.batch_factor or 1)

    @property
    def key_env(self) -> str | None:
        """The environment variable the key is read from, if the provider needs one."""
        if self.api_key_env:
            return self.api_key_env
        return {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}.get(self.provider)

    @property
    def cache_read_price(self) -> Decimal:
        """$/M input tokens read from the prompt cache: the file's or genai-prices' price, else
        the provider's documented ratio (Anthropic 0.1x input, OpenAI 0.5x; none for others)."""
        if self.cache_read_usd_per_mtok is not None:
            return self.cache_read_usd_per_mtok
        return self.input_usd_per_mtok * _READ_RATIO.get(self.provider, Decimal(1))

    @property
    def cache_write_price(self) -> Decimal:
        """$/M input tokens written to the prompt cache: the file's or genai-prices' price, else
        the provider's documented ratio (Anthropic's 5-minute cache 1.25x input; OpenAI none)."""
        if self.cache_write_usd_per_mtok is not None:
            return self.cache_write_usd_per_mtok
        return self.input_usd_per_mtok * _WRITE_RATIO.get(self.provider, Decimal(1))

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> Decimal:
        """What a call with these token counts costs on this model, in USD. `input_tokens` is all
        the prompt's tokens, as pydantic-ai counts them: the cache's reads and writes are part of
        it, priced at `cache_read_price` and `cache_write_price`, the rest at the input price."""
        cached = min(cache_read_tokens + cache_write_tokens, input_tokens)
        read = min(cache_read_tokens, cached)
        return (
            Decimal(input_tokens - cached) * self.input_usd_per_mtok
            + Decimal(read) * self.cache_read_price
            + Decimal(cached - read) * self.cache_write_price
            + Decimal(output_tokens) * self.output_usd_per_mtok
        ) / _MILLION

    def cost_bound(self, input_tokens: int, output_tokens: int, *, cached: bool = False) -> Decimal:
        """The most a call of these token counts can cost: with the prompt cache on (`cached`),
        every input token at the dearer of the input and cache-write prices (a first call writes
        its prefix, at 1.25x on Anthropic), else `cost`."""
        if not cached or self.cache_write_price <= self.input_usd_per_mtok:
            return self.cost(input_tokens, output_tokens)
        return self.cost(input_tokens, output_tokens, cache_write_tokens=input_tokens)

    def cache_saving(self, cache_read_tokens: int, cache_write_tokens: int) -> Decimal:
        """What the prompt cache saved on a call that read and wrote these tokens, in USD: their
        price as plain input minus what they cost (negative when writes outweigh reads)."""
        if not (cache_read_tokens or cache_write_tokens):
            return Decimal(0)
        return (
            Decimal(cache_read_tokens) * (self.input_usd_per_mtok - self.cache_read_price)
            + Decimal(cache_write_tokens) * (self.input_usd_per_mtok - self.cache_write_price)
        ) / _MILLION


class Catalog(Mapping[str, ModelEntry]):
    """An ordered, read-only mapping of catalog id to `ModelEntry`."""

    def __init__(self, entries: Mapping[str, ModelEntry] | list[ModelEntry]) -> None:
        items = list(entries.values()) if isinstance(entries, Mapping) else list(entries)
        self._entries: dict[str, ModelEntry] = {}
        for entry in items:
            if entry.id in self._entries:
                raise ConfigError(f"model {entry.id!r} is defined twice in the catalog")
            self._entries[entry.id] = entry
        for entry in items:
            for other in entry.failover:
                if other not in self._entries:
                    raise ConfigError(
                        f"model {entry.id!r}: failover names unknown model id {other!r}"
                    )

    def __getitem__(self, key: str) -> ModelEntry:
        try:
            return self._entries[key]
        except KeyError:
            known = ", ".join(self._entries) or "none"
            raise ConfigError(f"unknown model id {key!r} (catalog has: {known})") from None

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: str, default: Any = None) -> Any:  # pyright: ignore[reportIncompatibleMethodOverride]
        """The entry for `key`, or `default` when the catalog has none."""
        return self._entries.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def in_tier(self, tier: Tier) -> list[ModelEntry]:
        """The models of one tier, in catalog order."""
        return [e for e in self._entries.values() if e.tier == tier]

    def rung(self, model_id: str) -> tuple[str, ...]:
        """A model and its failover chain, in the order they are tried."""
        return tuple(dict.fromkeys((model_id, *self[model_id].failover)))

    def by_strength(self) -> list[ModelEntry]:
        """Every model, strongest tier first, then in catalog order."""
        return sorted(self._entries.values(), key=lambda e: -TIER_ORDER[e.tier])

    @classmethod
    def from_dict(cls, models: Mapping[str, Any]) -> Catalog:
        """Build a catalog from the `[models]` table of `handoffs.toml` (each a `ModelTable`);
        anything malformed is a one-line `ConfigError` naming the key."""
        try:
            tables = _TABLES.validate_python(models)
        except ValidationError as exc:
            raise config_error(exc, within=("models",)) from None
        return cls([table.entry(model_id) for model_id, table in tables.items()])


class ModelTable(BaseModel):
    """One `[models.<id>]` table of `handoffs.toml`, as written; `entry` makes it a `ModelEntry`."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
        title="model",
    )

    provider: Provider
    """Who serves it; `openai-compatible` needs `base_url` or `embedded`."""
    name: Label | None = None
    """The provider's own model name, e.g. `claude-sonnet-4-6` (default: the table's id)."""
    tier: Tier
    """How strong (and dear) the model is: the default policy climbs local, small, mid, frontier."""
    input_usd_per_mtok: Amount | None = None
    """Price of a million input tokens in USD. Set both prices, or neither to use genai-prices'."""
    output_usd_per_mtok: Amount | None = None
    """Price of a million output tokens in USD."""
    context_window: int = Field(gt=0)
    """Maximum tokens of prompt plus output."""
    structured_output: StructuredOutput = "tool"
    """How typed output is asked for: JSON-schema response format, an output tool, or prompt-only."""
    prompt_variant: Label = "default"
    """Which prompt template the model gets (`default`, `xml`, `compact`)."""
    base_url: str | None = None
    """Endpoint of an OpenAI-compatible server (vLLM, llama.cpp, Ollama)."""
    embedded: Label | None = None
    """A model handoffs serves in-process (e.g. `smollm2-135m`) instead of a `base_url`."""
    api_key_env: Label | None = None
    """Environment variable holding the key (default: by provider)."""
    typical_latency_s: float = Field(default=2.0, gt=0)
    """Typical latency of one call, compared against a task's deadline by the router."""
    capabilities: list[Label] = ["tools"]
    """What the model can do beyond typed output, e.g. `tools`, `vision`."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """Most calls in flight at once from one process (e.g. 1 for a single-slot local server)."""
    failover: list[Label] = []
    """Equivalent models on other providers (catalog ids), tried in order when this one fails."""
    stream: bool = False
    """Ask for the answer as a stream: a stalled provider is caught by the first-token deadline."""
    cache_read_usd_per_mtok: Amount | None = None
    """Price of a million input tokens read from the prompt cache (default: genai-prices', else
    the provider's ratio: Anthropic 0.1x input, OpenAI 0.5x)."""
    cache_write_usd_per_mtok: Amount | None = None
    """Price of a million input tokens written to the prompt cache (default: genai-prices', else
    the provider's ratio: Anthropic 1.25x input, OpenAI 1x)."""
    prompt_cache: bool = True
    """Mark each request's stable prefix (instructions, output schema) for the provider's prompt
    cache (Anthropic; OpenAI caches long prefixes by itself)."""
    batch_discount: Amount | None = None
    """The share of the price the provider's batch API takes off (default: 0.5 for `anthropic`
    and `openai`; `openai-compatible` has no batch API)."""
    batch_window_s: float = Field(default=86400.0, gt=0)
    """How long the provider may take to finish a batch (a batch task with a shorter deadline
    takes the ordinary route)."""

    @model_validator(mode="after")
    def _both_prices_or_neither(self) -> Self:
        if (self.input_usd_per_mtok is None) != (self.output_usd_per_mtok is None):
            raise ValueError("set both input_usd_per_mtok and output_usd_per_mtok, or neither")
        return self

    def priced(self, model_id: str) -> ModelTable:
        """This table with both prices stated: genai-prices' (and its cache prices) when the file
        gives none; a `ConfigError` when genai-prices does not know the model either."""
        if self.input_usd_per_mtok is not None:
            return self  # priced by the file: cache prices its own, or the provider's ratios
        name = self.name or model_id
        known = known_prices(name, self.provider)
        if known is None:
            raise ConfigError(
                f"model {model_id!r}: no known price for {name!r}; "
                "set input_usd_per_mtok and output_usd_per_mtok"
            )
        update = {"input_usd_per_mtok": known[0], "output_usd_per_mtok": known[1]}
        if self.cache_read_usd_per_mtok is None:
            update["cache_read_usd_per_mtok"] = known[2]
        if self.cache_write_usd_per_mtok is None:
            update["cache_write_usd_per_mtok"] = known[3]
        return self.model_copy(update=update)

    def entry(self, model_id: str) -> ModelEntry:
        """The catalog entry this table describes, as model `model_id`."""
        priced = self.priced(model_id)
        assert priced.input_usd_per_mtok is not None and priced.output_usd_per_mtok is not None
        return ModelEntry(
            id=model_id,
            provider=self.provider,
            name=self.name or model_id,
            tier=self.tier,
            input_usd_per_mtok=priced.input_usd_per_mtok,
            output_usd_per_mtok=priced.output_usd_per_mtok,
            context_window=self.context_window,
            structured_output=self.structured_output,
            prompt_variant=self.prompt_variant,
            base_url=self.base_url,
            embedded=self.embedded,
            api_key_env=self.api_key_env,
            typical_latency_s=self.typical_latency_s,
            capabilities=frozenset(self.capabilities),
            max_concurrency=self.max_concurrency,
            failover=tuple(self.failover),
            stream=self.stream,
            cache_read_usd_per_mtok=priced.cache_read_usd_per_mtok,
            cache_write_usd_per_mtok=priced.cache_write_usd_per_mtok,
            prompt_cache=self.prompt_cache,
            batch_discount=self.batch_discount,
            batch_window_s=self.batch_window_s,
        )


_TABLES: TypeAdapter[dict[str, ModelTable]] = TypeAdapter(dict[Label, ModelTable])


def known_prices(name: str, provider: str) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
    """$/M input, output, cache-read and cache-write tokens for a model genai-prices knows (base
    tier, 5-minute cache writes), else None."""
    if provider not in ("anthropic", "openai"):
        return None
    from genai_prices import Usage, calc_price

    probe = 1000  # small enough to stay under long-context price tiers
    usages = (
        Usage(input_tokens=probe, output_tokens=0),
        Usage(input_tokens=0, output_tokens=probe),
        Usage(input_tokens=probe, cache_read_tokens=probe),
        Usage(input_tokens=probe, cache_write_tokens=probe),
    )
    try:
        prices = [calc_price(usage, name, provider_id=provider) for usage in usages]
    except LookupError:
        return None
    scale = _MILLION / probe
    inp, out, read, write = (_plain(Decimal(str(p.total_price)) * scale) for p in prices)
    return inp, out, read, write


def _plain(value: Decimal) -> Decimal:
    """`3.000` -> `3`, `1E+1` -> `10`: the same number, written as people write prices."""
    value = value.normalize()
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value
