"""Provider prompt caching without a wire: cache prices, what a call costs with cache tokens,
what is reserved for it, the switches, and the fake provider's cache as each wire keeps it."""

from __future__ import annotations

import itertools
from dataclasses import replace
from decimal import Decimal

from handoffs import Catalog
from handoffs.engine import prompt_cached
from handoffs.project import config_from_dict
from handoffs.testing import FakeRequest
from handoffs.testing.fake_provider import PromptCache

_SONNET = {
    "provider": "anthropic",
    "name": "claude-sonnet-4-6",
    "tier": "frontier",
    "context_window": 200000,
}
_MINI = {"provider": "openai", "name": "gpt-4.1-mini", "tier": "mid", "context_window": 128000}


def test_cache_prices_come_from_genai_prices_for_the_models_it_knows() -> None:
    catalog = Catalog.from_dict({"sonnet": _SONNET, "mini": _MINI})
    sonnet, mini = catalog["sonnet"], catalog["mini"]
    assert (sonnet.cache_read_price, sonnet.cache_write_price) == (Decimal("0.3"), Decimal("3.75"))
    assert (mini.cache_read_price, mini.cache_write_price) == (Decimal("0.1"), Decimal("0.4"))


def test_a_file_priced_model_gets_its_providers_cache_ratios_unless_it_names_its_own() -> None:
    priced = {"input_usd_per_mtok": "2", "output_usd_per_mtok": "8"}
    catalog = Catalog.from_dict(
        {
            "a": {**_SONNET, **priced},
            "o": {**_MINI, **priced},
            "self": {**_MINI, **priced, "provider": "openai-compatible", "base_url": "http://x"},
            "own": {**_SONNET, **priced, "cache_read_usd_per_mtok": "0.5"},
        }
    )
    prices = {k: (e.cache_read_price, e.cache_write_price) for k, e in catalog.items()}
    assert prices == {
        "a": (Decimal("0.2"), Decimal("2.50")),  # Anthropic: 0.1x read, 1.25x write
        "o": (Decimal("1.0"), Decimal(2)),  # OpenAI: 0.5x read, no write surcharge
        "self": (Decimal(2), Decimal(2)),  # unknown: no discount assumed
        "own": (Decimal("0.5"), Decimal("2.50")),
    }


def test_a_call_costs_uncached_input_plus_reads_plus_writes_plus_output() -> None:
    sonnet = Catalog.from_dict({"sonnet": _SONNET})["sonnet"]
    cost = sonnet.cost(10_000, 500, cache_read_tokens=6_000, cache_write_tokens=3_000)
    expected = (1_000 * 3 + 6_000 * Decimal("0.3") + 3_000 * Decimal("3.75") + 500 * 15) / 10**6
    assert cost == expected
    assert sonnet.cache_saving(6_000, 3_000) == sonnet.cost(10_000, 500) - cost


def test_a_reservation_for_a_cached_call_covers_every_split_of_its_input() -> None:
    """The budget never under-reserves: whatever the provider reads and writes of the prompt,
    the call costs at most its reservation (at the cache-write price when the cache is asked for)."""
    catalog = Catalog.from_dict({"sonnet": _SONNET, "mini": _MINI})
    for entry in catalog.values():
        bound = entry.cost_bound(4_000, 300, cached=True)
        assert bound >= entry.cost_bound(4_000, 300) == entry.cost(4_000, 300)
        for read, written in itertools.product(range(0, 4_001, 500), repeat=2):
            if read + written <= 4_000:
                cost = entry.cost(4_000, 300, cache_read_tokens=read, cache_write_tokens=written)
                assert cost <= bound, (entry.id, read, written)
    sonnet = catalog["sonnet"]
    assert sonnet.cost_bound(4_000, 0, cached=True) == sonnet.cost(4_000, 0) * Decimal("1.25")


def test_prompt_caching_is_on_by_default_and_off_per_file_per_model_or_per_task() -> None:
    on = config_from_dict({"models": {"sonnet": _SONNET, "mini": _MINI}}).catalog
    assert all(prompt_cached(e) for e in on.values())
    assert not prompt_cached(on["sonnet"], wanted=False)  # Task(prompt_cache=False)
    off = config_from_dict(
        {"portfolio": {"prompt_cache": False}, "models": {"sonnet": _SONNET, "mini": _MINI}}
    ).catalog
    assert not any(prompt_cached(e) for e in off.values())
    one = config_from_dict({"models": {"sonnet": {**_SONNET, "prompt_cache": False}}}).catalog
    assert not prompt_cached(one["sonnet"])
    local = {**_MINI, "provider": "openai-compatible", "base_url": "http://x"}
    local.update(input_usd_per_mtok="0.1", output_usd_per_mtok="0.1")
    assert not prompt_cached(Catalog.from_dict({"local": local})["local"])


def _openai(text: str) -> FakeRequest:
    return FakeRequest(
        wire="openai",
        model="m",
        system=text,
        messages=[],
        tools=[],
        output_schema=None,
        stream=False,
        max_tokens=None,
    )


def test_the_fake_openai_cache_reads_shared_prefixes_in_128_token_blocks_from_1024() -> None:
    cache = PromptCache()
    long = "x" * 5_000  # 1,250 tokens at four characters a token
    assert cache.use(_openai(long), {}, 1_250).read == 0  # first sight
    assert cache.use(_openai(long + " more"), {}, 1_252).read == 1_152  # 9 whole blocks
    assert cache.use(_openai("y" * 5_000), {}, 1_250).read == 0  # another prefix
    short = PromptCache()
    short.use(_openai("z" * 4_000), {}, 1_000)
    assert short.use(_openai("z" * 4_000), {}, 1_000).read == 0  # under 1,024 tokens


def _anthropic_body(system: str, turns: list[str], *, auto: bool) -> dict[str, object]:
    body: dict[str, object] = {
        "model": "m",
        "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user" if i % 2 == 0 else "assistant",
                "content": [{"type": "text", "text": t}],
            }
            for i, t in enumerate(turns)
        ],
    }
    if auto:
        body["cache_control"] = {"type": "ephemeral"}
    return body


def test_the_fake_anthropic_cache_writes_at_breakpoints_and_reads_a_conversations_last_turn() -> (
    None
):
    cache = PromptCache()
    system = "s" * 8_000  # 2,000 tokens
    first = _anthropic_body(system, ["a" * 400], auto=True)
    anthropic = replace(_openai(""), wire="anthropic")  # Anthropic's cache reads the body
    use = cache.use(anthropic, first, 10_000)
    assert use.read == 0 and use.written == (8_000 + 1 + 400) // 4
    second = _anthropic_body(system, ["a" * 400, "b" * 400, "c" * 400], auto=True)
    use = cache.use(anthropic, second, 10_000)  # the first turn's prefix, found looking back
    assert use.read == (8_000 + 1 + 400) // 4 and use.written == 200
    plain = _anthropic_body("t" * 8_000, ["a"], auto=False)  # only the system is a breakpoint
    assert cache.use(anthropic, plain, 10_000).written == 2_000
    assert cache.use(anthropic, plain, 10_000).read == 2_000
    assert cache.use(anthropic, _anthropic_body("u" * 100, [], auto=False), 10_000).written == 0
