"""`base_url` on `anthropic` and `openai` entries reaches the configured gateway, with the key; and
a provider that echoes the key in an error body leaves it in no attempt, record or error text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import pytest
from pydantic import BaseModel

from handoffs import Catalog, Policy, Portfolio, ProviderRejected, Rule, Session, Task
from handoffs.providers._secret import redact
from handoffs.testing import FakeProvider, Fault, LoopbackServer, Reply, ScriptedModel

KEY = "sk-ant-gateway-0123456789abcdefXYZ"


class Ticket(BaseModel):
    text: str


class Triage(BaseModel):
    category: Literal["billing", "bug"]


def catalog(base: str, openai_base: str) -> Catalog:
    return Catalog.from_dict(
        {
            "claude": {"provider": "anthropic", "name": "claude-haiku-4-5", "tier": "small",
                       "context_window": 200000, "base_url": base, "api_key_env": "GATEWAY_KEY"},
            "gpt": {"provider": "openai", "name": "gpt-4.1-mini", "tier": "mid",
                    "context_window": 128000, "structured_output": "native",
                    "base_url": openai_base, "api_key_env": "GATEWAY_KEY"},
        }
    )  # fmt: skip


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider(
        {
            name: ScriptedModel(answer=lambda r: Reply.json({"category": "billing"}))
            for name in ("claude-haiku-4-5", "gpt-4.1-mini")
        }
    )


@pytest.fixture
def server(provider: FakeProvider) -> Iterator[LoopbackServer]:
    with LoopbackServer(provider) as srv:
        yield srv


def session(server: LoopbackServer, ladder: tuple[str, ...]) -> tuple[Session, Portfolio]:
    cat = catalog(server.base_url, server.openai_base_url)
    portfolio = Portfolio(cat, env={"GATEWAY_KEY": KEY}, timeout_s=5)
    policy = Policy(rules=(Rule(ladder=ladder),))
    return Session(catalog=cat, models=portfolio, policy=policy, tracing=None), portfolio


TASK = dict(kind="classify", input=Ticket(text="my invoice"), output_type=Triage)


@pytest.mark.parametrize("model", ["claude", "gpt"])
async def test_a_cloud_entry_with_base_url_talks_to_it_with_its_key(
    provider: FakeProvider, server: LoopbackServer, model: str
) -> None:
    name = {"claude": "claude-haiku-4-5", "gpt": "gpt-4.1-mini"}[model]
    s, portfolio = session(server, (model,))
    assert portfolio.label(model) == "real"
    assert portfolio.address(s.catalog[model]) == s.catalog[model].base_url
    async with portfolio:
        delivery = await s.delegate(Task(**TASK))  # type: ignore[arg-type]
    assert delivery.model == model
    assert [r.model for r in provider.requests] == [name]


@pytest.mark.parametrize("model", ["claude", "gpt"])
async def test_a_key_echoed_in_an_error_body_is_redacted_everywhere(
    provider: FakeProvider, server: LoopbackServer, model: str
) -> None:
    name = {"claude": "claude-haiku-4-5", "gpt": "gpt-4.1-mini"}[model]
    echo = Fault.http(401, message=f"invalid x-api-key: {KEY} (Bearer {KEY})")
    provider.add(name, ScriptedModel(answer=lambda r: echo))
    s, portfolio = session(server, (model,))
    async with portfolio:
        with pytest.raises(ProviderRejected) as caught:
            await s.delegate(Task(**TASK))  # type: ignore[arg-type]
    exc = caught.value
    texts = [str(exc), *(a.error or "" for a in exc.attempts)]
    texts += [r.model_dump_json() for r in s.records]
    assert provider.requests, "the request reached the provider"
    assert all(KEY not in t for t in texts), texts
    assert any("[redacted]" in t for t in texts)


def test_redact_replaces_remembered_keys_and_key_shaped_tokens() -> None:
    assert redact("key sk-proj-abcdefghijklmnopqrstuv was refused") == "key [redacted] was refused"
    assert redact("Authorization: Bearer abcdefghijklmnopqrstuvwxyz") == (
        "Authorization: Bearer [redacted]"
    )
    assert redact("nothing secret here: sk-short") == "nothing secret here: sk-short"
