"""The model catalog: which models exist, who serves them, what they cost and can do.

Loaded from the `[models.*]` tables of `handoffs.toml`. Prices come from genai-prices when it knows
the model and from the file otherwise; a self-hosted model must be priced explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal, cast, get_args

from handoffs.budget import usd
from handoffs.errors import ConfigError
from handoffs.handoff import Provider, Tier

__all__ = ["Catalog", "ModelEntry", "Provider", "StructuredOutput", "Tier", "estimate_tokens"]

StructuredOutput = Literal["native", "tool", "prompted"]
"""How a model is asked for typed output: JSON-schema response format, an output tool, or prompt-only."""

TIER_ORDER: Final[dict[Tier, int]] = {"local": 0, "small": 1, "mid": 2, "frontier": 3}
_MILLION: Final = Decimal(1_000_000)


PROMPT_OVERHEAD_TOKENS: Final = 512
"""Input a call is billed for that its messages do not show: a provider adapter's framing preamble
(pydantic-ai's Anthropic one is ~300 tokens) and the wire's own structure. Reserving less lets the
last calls before a budget's limit overspend it (the Gauntlet's `budget_exhaustion` attack)."""


def reserved_input_tokens(estimated: int) -> int:
    """The input tokens to reserve money for when `estimated` is what the messages show: a quarter
    more (a tokenizer denser than four characters a token) plus `PROMPT_OVERHEAD_TOKENS`."""
    return estimated * 5 // 4 + PROMPT_OVERHEAD_TOKENS


def estimate_tokens(text: str) -> int:
    """A conservative token estimate for routing: about four characters a token, rounded up."""
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "failover", tuple(self.failover))
        if self.provider == "openai-compatible" and not (self.base_url or self.embedded):
            raise ConfigError(
                f"model {self.id!r}: openai-compatible models need base_url or embedded"
            )
        for name in ("input_usd_per_mtok", "output_usd_per_mtok"):
            price: Decimal = getattr(self, name)
            if not price.is_finite() or price < 0:
                raise ConfigError(f"model {self.id!r}: {name} must be a finite number >= 0")
        if self.context_window <= 0:
            raise ConfigError(f"model {self.id!r}: context_window must be a positive integer")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ConfigError(f"model {self.id!r}: max_concurrency must be at least 1")
        if self.typical_latency_s <= 0:
            raise ConfigError(f"model {self.id!r}: typical_latency_s must be a positive number")

    @property
    def key_env(self) -> str | None:
        """The environment variable the key is read from, if the provider needs one."""
        if self.api_key_env:
            return self.api_key_env
        return {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}.get(self.provider)

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        """What a call with these token counts costs on this model, in USD."""
        return (
            Decimal(input_tokens) * self.input_usd_per_mtok
            + Decimal(output_tokens) * self.output_usd_per_mtok
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
        """Build a catalog from the `[models]` table of `handoffs.toml`."""
        return cls([_entry(model_id, spec) for model_id, spec in models.items()])


def _literal(model_id: str, key: str, value: Any, allowed: tuple[str, ...]) -> Any:
    if value not in allowed:
        raise ConfigError(
            f"model {model_id!r}: {key} must be one of {', '.join(allowed)}, not {value!r}"
        )
    return value


def _price(model_id: str, key: str, value: Any) -> Decimal:
    try:
        price = usd(value)
    except ValueError:
        if isinstance(value, int | float):  # inf, nan
            raise ConfigError(f"model {model_id!r}: {key} must be a finite number >= 0") from None
        raise ConfigError(f"model {model_id!r}: {key} must be a number, not {value!r}") from None
    if price < 0:
        raise ConfigError(f"model {model_id!r}: {key} must be a finite number >= 0")
    return price


def known_prices(name: str, provider: str) -> tuple[Decimal, Decimal] | None:
    """$/M input and output tokens for a model genai-prices knows (base tier), else None."""
    if provider not in ("anthropic", "openai"):
        return None
    from genai_prices import Usage, calc_price

    probe = 1000  # small enough to stay under long-context price tiers
    try:
        inp = calc_price(Usage(input_tokens=probe, output_tokens=0), name, provider_id=provider)
        out = calc_price(Usage(input_tokens=0, output_tokens=probe), name, provider_id=provider)
    except LookupError:
        return None
    scale = _MILLION / probe
    return _plain(Decimal(str(inp.total_price)) * scale), _plain(
        Decimal(str(out.total_price)) * scale
    )


def _plain(value: Decimal) -> Decimal:
    """`3.000` -> `3`, `1E+1` -> `10`: the same number, written as people write prices."""
    value = value.normalize()
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value


def _concurrency(model_id: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"model {model_id!r}: max_concurrency must be a positive integer")
    return value


def _entry(model_id: str, spec: Any) -> ModelEntry:
    if not isinstance(spec, dict):
        raise ConfigError(f"model {model_id!r} must be a table")
    raw = cast(dict[str, Any], spec)
    allowed_keys = set(ModelEntry.__dataclass_fields__) - {"id"}
    unknown = sorted(set(raw) - allowed_keys)
    if unknown:
        raise ConfigError(f"model {model_id!r}: unknown key(s) {', '.join(unknown)}")
    provider = _literal(model_id, "provider", raw.get("provider"), get_args(Provider))
    tier = _literal(model_id, "tier", raw.get("tier"), get_args(Tier))
    name = str(raw.get("name", model_id))
    if provider == "openai-compatible" and not (raw.get("base_url") or raw.get("embedded")):
        raise ConfigError(f"model {model_id!r}: openai-compatible models need base_url or embedded")
    given = [k for k in ("input_usd_per_mtok", "output_usd_per_mtok") if k in raw]
    if len(given) == 1:
        raise ConfigError(
            f"model {model_id!r}: set both input_usd_per_mtok and output_usd_per_mtok, or neither"
        )
    if given:
        price_in = _price(model_id, "input_usd_per_mtok", raw["input_usd_per_mtok"])
        price_out = _price(model_id, "output_usd_per_mtok", raw["output_usd_per_mtok"])
    else:
        known = known_prices(name, provider)
        if known is None:
            raise ConfigError(
                f"model {model_id!r}: no known price for {name!r}; "
                "set input_usd_per_mtok and output_usd_per_mtok"
            )
        price_in, price_out = known
    context = raw.get("context_window")
    if isinstance(context, bool) or not isinstance(context, int) or context <= 0:
        raise ConfigError(f"model {model_id!r}: context_window must be a positive integer")
    latency = raw.get("typical_latency_s", 2.0)
    if isinstance(latency, bool) or not isinstance(latency, int | float) or latency <= 0:
        raise ConfigError(f"model {model_id!r}: typical_latency_s must be a positive number")
    failover: Any = raw.get("failover", [])
    if not isinstance(failover, list) or not all(isinstance(m, str) for m in failover):  # pyright: ignore[reportUnknownVariableType]
        raise ConfigError(f"model {model_id!r}: failover must be a list of model ids")
    stream = raw.get("stream", False)
    if not isinstance(stream, bool):
        raise ConfigError(f"model {model_id!r}: stream must be true or false")
    capabilities: Any = raw.get("capabilities", ["tools"])
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):  # pyright: ignore[reportUnknownVariableType]
        raise ConfigError(f"model {model_id!r}: capabilities must be a list of strings")
    return ModelEntry(
        id=model_id,
        provider=provider,
        name=name,
        tier=tier,
        input_usd_per_mtok=price_in,
        output_usd_per_mtok=price_out,
        context_window=context,
        structured_output=_literal(
            model_id,
            "structured_output",
            raw.get("structured_output", "tool"),
            get_args(StructuredOutput),
        ),
        prompt_variant=str(raw.get("prompt_variant", "default")),
        base_url=raw.get("base_url"),
        embedded=raw.get("embedded"),
        api_key_env=raw.get("api_key_env"),
        typical_latency_s=float(latency),
        capabilities=frozenset(cast(list[str], capabilities)),
        max_concurrency=_concurrency(model_id, raw.get("max_concurrency")),
        failover=tuple(cast(list[str], failover)),
        stream=stream,
    )
