"""The catalog: loading `[models.*]` tables, prices from genai-prices, lookups and cost arithmetic."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handoffs.catalog import Catalog, ModelEntry, estimate_tokens
from handoffs.errors import ConfigError

from .conftest import entry

CATALOG_TOML = """
[models.sonnet]
provider = "anthropic"
name = "claude-sonnet-4-5"
tier = "frontier"
context_window = 200000

[models.mini]
provider = "openai"
name = "gpt-4.1-mini"
tier = "small"
context_window = 128000
structured_output = "native"

[models.local]
provider = "openai-compatible"
tier = "local"
base_url = "http://127.0.0.1:8080/v1"
input_usd_per_mtok = 0
output_usd_per_mtok = 0.1
context_window = 8192
typical_latency_s = 0.5
capabilities = []
prompt_variant = "compact"
"""


def load(text: str) -> Catalog:
    return Catalog.from_dict(tomllib.loads(text)["models"])


def one(**spec: Any) -> ModelEntry:
    """Load a single `[models.m]` table given as keyword arguments."""
    return Catalog.from_dict({"m": spec})["m"]


LOCAL: dict[str, Any] = {
    "provider": "openai-compatible",
    "tier": "local",
    "base_url": "http://127.0.0.1:8080/v1",
    "input_usd_per_mtok": 0,
    "output_usd_per_mtok": 0,
    "context_window": 8192,
}


# --- loading ----------------------------------------------------------------------------------


def test_known_anthropic_and_openai_models_are_priced_by_genai_prices() -> None:
    catalog = load(CATALOG_TOML)
    assert catalog["sonnet"].input_usd_per_mtok == Decimal(3)
    assert catalog["sonnet"].output_usd_per_mtok == Decimal(15)
    assert catalog["mini"].input_usd_per_mtok == Decimal("0.4")
    assert catalog["mini"].output_usd_per_mtok == Decimal("1.6")


def test_the_toml_table_order_is_the_catalog_order() -> None:
    assert list(load(CATALOG_TOML)) == ["sonnet", "mini", "local"]


def test_a_loaded_entry_keeps_every_field_and_defaults_the_rest() -> None:
    catalog = load(CATALOG_TOML)
    assert catalog["local"] == ModelEntry(
        id="local",
        provider="openai-compatible",
        name="local",
        tier="local",
        input_usd_per_mtok=Decimal(0),
        output_usd_per_mtok=Decimal("0.1"),
        context_window=8192,
        prompt_variant="compact",
        base_url="http://127.0.0.1:8080/v1",
        typical_latency_s=0.5,
        capabilities=frozenset(),
    )
    sonnet = catalog["sonnet"]
    assert (sonnet.structured_output, sonnet.typical_latency_s, sonnet.capabilities) == (
        "tool",
        2.0,
        frozenset({"tools"}),
    )
    assert catalog["mini"].structured_output == "native"


def test_a_toml_float_price_becomes_the_decimal_it_reads_as() -> None:
    assert one(**{**LOCAL, "input_usd_per_mtok": 0.1}).input_usd_per_mtok == Decimal("0.1")


def test_explicit_prices_win_over_genai_prices() -> None:
    sonnet = one(
        provider="anthropic",
        name="claude-sonnet-4-5",
        tier="frontier",
        context_window=200_000,
        input_usd_per_mtok="1.5",
        output_usd_per_mtok=2,
    )
    assert (sonnet.input_usd_per_mtok, sonnet.output_usd_per_mtok) == (Decimal("1.5"), Decimal(2))


def test_a_lone_explicit_price_is_not_silently_ignored() -> None:
    try:
        sonnet = one(
            provider="anthropic",
            name="claude-sonnet-4-5",
            tier="frontier",
            context_window=200_000,
            input_usd_per_mtok=5,
        )
    except ConfigError:
        return
    assert sonnet.input_usd_per_mtok == Decimal(5)


@pytest.mark.parametrize(
    "spec",
    [
        {k: v for k, v in LOCAL.items() if not k.endswith("_per_mtok")},
        {**LOCAL, "input_usd_per_mtok": None},
        {"provider": "openai", "name": "gpt-nonexistent-9", "tier": "mid", "context_window": 10},
    ],
    ids=["self-hosted", "self-hosted-output-only", "unknown-openai-name"],
)
def test_a_model_genai_prices_does_not_know_must_be_priced_explicitly(spec: dict[str, Any]) -> None:
    spec = {k: v for k, v in spec.items() if v is not None}
    with pytest.raises(
        ConfigError,
        match=r"^(model 'm': no known price for '(m|gpt-nonexistent-9)'; set input_usd_per_mtok "
        r"and output_usd_per_mtok|models\.m: set both input_usd_per_mtok and output_usd_per_mtok, "
        r"or neither)$",
    ):
        one(**spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({**LOCAL, "price": 1}, "models.m.price: unknown key"),
        ({**LOCAL, "id": "x"}, "models.m.id: unknown key"),
        (
            {**LOCAL, "provider": "azure"},
            "models.m.provider: must be one of anthropic, openai, openai-compatible (got 'azure')",
        ),
        (
            {**LOCAL, "tier": "huge"},
            "models.m.tier: must be one of frontier, mid, small, local (got 'huge')",
        ),
        (
            {**LOCAL, "structured_output": "json"},
            "models.m.structured_output: must be one of native, tool, prompted (got 'json')",
        ),
        (
            {k: v for k, v in LOCAL.items() if k != "base_url"},
            "model 'm': openai-compatible models need base_url or embedded",
        ),
        (
            {**LOCAL, "base_url": ""},
            "model 'm': openai-compatible models need base_url or embedded",
        ),
        (
            {**LOCAL, "input_usd_per_mtok": "cheap"},
            "models.m.input_usd_per_mtok: must be an amount in USD, such as \"0.50\" (got 'cheap')",
        ),
        (
            {**LOCAL, "output_usd_per_mtok": -1},
            "models.m.output_usd_per_mtok: must not be negative (got -1)",
        ),
        (
            {**LOCAL, "output_usd_per_mtok": float("inf")},
            "models.m.output_usd_per_mtok: must be a finite amount (got inf)",
        ),
        (
            {**LOCAL, "output_usd_per_mtok": "1e400"},
            "models.m.output_usd_per_mtok: must be at most 1000000 (got '1e400')",
        ),
        (
            {**LOCAL, "output_usd_per_mtok": "2e-1"},
            "models.m.output_usd_per_mtok: must be written as a plain decimal, such as \"0.50\" (got '2e-1')",
        ),
        (
            {**LOCAL, "output_usd_per_mtok": True},
            "models.m.output_usd_per_mtok: must be an amount in USD",
        ),
        (
            {k: v for k, v in LOCAL.items() if k != "context_window"},
            "models.m.context_window: is required",
        ),
        ({**LOCAL, "context_window": 0}, "models.m.context_window: must be greater than 0 (got 0)"),
        (
            {**LOCAL, "context_window": 8192.0},
            "models.m.context_window: must be an integer (got 8192.0)",
        ),
        (
            {**LOCAL, "context_window": "8192"},
            "models.m.context_window: must be an integer (got '8192')",
        ),
        ({**LOCAL, "typical_latency_s": 0}, "models.m.typical_latency_s: must be greater than 0"),
        (
            {**LOCAL, "typical_latency_s": "fast"},
            "models.m.typical_latency_s: must be a number (got 'fast')",
        ),
        (
            {**LOCAL, "typical_latency_s": float("inf")},
            "models.m.typical_latency_s: must be a finite number",
        ),
        ({**LOCAL, "max_concurrency": 0}, "models.m.max_concurrency: must be at least 1 (got 0)"),
        ({**LOCAL, "failover": "other"}, "models.m.failover: must be an array (got 'other')"),
        (
            {**LOCAL, "failover": ["m\u202e"]},
            "models.m.failover[0]: must not contain control or bidirectional-formatting characters (got 'm\\u202e')",
        ),
        ({**LOCAL, "name": "evil\x1b[2J"}, "models.m.name: must not contain control"),
    ],
)
def test_a_malformed_model_table_is_a_config_error_naming_the_key(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        one(**spec)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_model_that_is_not_a_table_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"^models\.m: must be a table \(got 'gpt-4o'\)$"):
        Catalog.from_dict({"m": "gpt-4o"})


def test_a_model_id_with_a_bidi_override_is_rejected_escaped() -> None:
    with pytest.raises(ConfigError) as caught:
        Catalog.from_dict({"fron\u202etier": {**LOCAL}})
    assert str(caught.value).startswith('models."fron\\u202etier": must not contain control')
    assert "\u202e" not in str(caught.value)  # shown escaped, never as the character itself


def test_an_embedded_model_needs_no_base_url() -> None:
    spec = {k: v for k, v in LOCAL.items() if k != "base_url"}
    assert one(**spec, embedded="smollm2-135m").embedded == "smollm2-135m"


def test_a_nan_price_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="input_usd_per_mtok: must be a finite amount"):
        one(**{**LOCAL, "input_usd_per_mtok": float("nan")})


def test_a_boolean_context_window_is_rejected() -> None:
    with pytest.raises(ConfigError, match="context_window: must be an integer"):
        one(**{**LOCAL, "context_window": True})


def test_capabilities_given_as_a_string_are_rejected() -> None:
    with pytest.raises(ConfigError, match="capabilities: must be an array"):
        one(**{**LOCAL, "capabilities": "vision"})


def test_the_api_key_variable_defaults_by_provider() -> None:
    catalog = load(CATALOG_TOML)
    assert catalog["sonnet"].key_env == "ANTHROPIC_API_KEY"
    assert catalog["mini"].key_env == "OPENAI_API_KEY"
    assert catalog["local"].key_env is None
    assert one(**LOCAL, api_key_env="VLLM_KEY").key_env == "VLLM_KEY"


# --- the mapping ------------------------------------------------------------------------------


def test_a_catalog_cannot_hold_two_models_with_one_id() -> None:
    with pytest.raises(ConfigError, match="model 'a' is defined twice"):
        Catalog([entry("a", "local", "0", "0"), entry("a", "small", "1", "1")])
    with pytest.raises(ConfigError, match="defined twice"):
        Catalog({"x": entry("a", "local", "0", "0"), "y": entry("a", "small", "1", "1")})


def test_a_toml_file_cannot_define_a_model_twice() -> None:
    with pytest.raises(tomllib.TOMLDecodeError):
        load(CATALOG_TOML + '\n[models.mini]\nprovider = "openai"\n')


def test_looking_up_an_unknown_id_lists_the_known_ones(catalog: Catalog) -> None:
    with pytest.raises(
        ConfigError, match=r"unknown model id 'huge' \(catalog has: tiny, cheap, middle, best\)"
    ):
        catalog["huge"]
    with pytest.raises(ConfigError, match=r"catalog has: none"):
        Catalog([])["huge"]


def test_membership_and_get_answer_for_an_unknown_id(catalog: Catalog) -> None:
    assert "huge" not in catalog
    assert catalog.get("huge") is None


def test_a_catalog_is_a_read_only_ordered_mapping(catalog: Catalog) -> None:
    assert len(catalog) == 4
    assert list(catalog) == ["tiny", "cheap", "middle", "best"]
    assert catalog["middle"].tier == "mid"
    assert "tiny" in catalog


def test_by_strength_is_strongest_tier_first_then_catalog_order() -> None:
    catalog = Catalog(
        [
            entry("s1", "small", "0", "0"),
            entry("f1", "frontier", "0", "0"),
            entry("l1", "local", "0", "0"),
            entry("s2", "small", "0", "0"),
            entry("f2", "frontier", "0", "0"),
        ]
    )
    assert [e.id for e in catalog.by_strength()] == ["f1", "f2", "s1", "s2", "l1"]
    assert [e.id for e in catalog.in_tier("small")] == ["s1", "s2"]
    assert catalog.in_tier("mid") == []


# --- cost and tokens --------------------------------------------------------------------------


def test_cost_is_exact_decimal_per_million_tokens() -> None:
    model = entry("m", "small", "0.15", "0.60")
    assert model.cost(1_000_000, 0) == Decimal("0.15")
    assert model.cost(0, 1_000_000) == Decimal("0.60")
    assert model.cost(1, 1) == Decimal("0.00000075")
    assert model.cost(333, 777) == Decimal("0.00051615")
    assert model.cost(0, 0) == 0


@settings(max_examples=200, deadline=None)
@given(
    price_in=st.decimals(min_value=0, max_value=100, places=4),
    price_out=st.decimals(min_value=0, max_value=100, places=4),
    tokens_in=st.integers(min_value=0, max_value=2_000_000),
    tokens_out=st.integers(min_value=0, max_value=2_000_000),
)
def test_cost_is_linear_and_additive_in_tokens(
    price_in: Decimal, price_out: Decimal, tokens_in: int, tokens_out: int
) -> None:
    model = entry("m", "mid", str(price_in), str(price_out))
    total = model.cost(tokens_in, tokens_out)
    assert total == model.cost(tokens_in, 0) + model.cost(0, tokens_out)
    assert total * 1_000_000 == tokens_in * price_in + tokens_out * price_out


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("", 1), ("a", 1), ("abcd", 1), ("abcde", 2), ("x" * 4000, 1000), ("x" * 4001, 1001)],
)
def test_estimate_tokens_is_a_quarter_of_the_characters_rounded_up_and_at_least_one(
    text: str, tokens: int
) -> None:
    assert estimate_tokens(text) == tokens
