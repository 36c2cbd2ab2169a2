"""Building pydantic-ai models from catalog entries. The one place that reads API keys.

Three settings run the same code:

- **cloud**: `anthropic`/`openai` entries whose key is in the environment talk to the real APIs;
- **simulated**: the same entries without a key, when simulation is allowed, talk to the project's
  fake provider (real SDKs, loopback socket) and are labelled "simulated" wherever they appear;
- **self-hosted / local**: `openai-compatible` entries talk to a `base_url`, or to a model handoffs
  serves in-process (`embedded`, the local tier).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from anthropic import AsyncAnthropic
from openai import AsyncOpenAI
from pydantic_ai.models import Model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider

from handoffs.catalog import Catalog, ModelEntry
from handoffs.errors import ConfigError, MissingKey
from handoffs.providers._secret import remember

__all__ = ["Label", "Portfolio"]

Label = Literal["real", "simulated", "local", "self-hosted"]
"""Where a model's answers really come from."""

SIMULATED_KEY = "simulated-no-key"


class Portfolio:
    """Resolves catalog ids to pydantic-ai models in the current setting, and labels each one.

    `simulated_base_url` is the fake provider's address, used for cloud entries without a key when
    `simulate_missing` is true. `embedded_urls` maps embedded model names to the base URL of the
    server handoffs started for them.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        env: Mapping[str, str] | None = None,
        simulate_missing: bool = True,
        simulated_base_url: str | None = None,
        embedded_urls: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.catalog = catalog
        self._env = dict(os.environ if env is None else env)
        self.simulate_missing = simulate_missing
        self.simulated_base_url = simulated_base_url
        self.embedded_urls = dict(embedded_urls or {})
        self.timeout_s = timeout_s
        self._models: dict[str, Model] = {}
        self._batch_models: dict[str, Model | None] = {}
        self._clients: list[AsyncOpenAI | AsyncAnthropic] = []

    async def aclose(self) -> None:
        """Close every SDK client this portfolio opened (models are rebuilt on next use)."""
        clients, self._clients, self._models = self._clients, [], {}
        self._batch_models = {}
        for client in clients:
            await client.close()

    async def __aenter__(self) -> Portfolio:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def has_key(self, entry: ModelEntry) -> bool:
        """Whether the environment holds the key this entry's provider needs."""
        var = entry.key_env
        return var is None or bool(self._env.get(var))

    def label(self, model_id: str) -> Label:
        """`real`, `simulated`, `local` (served in-process) or `self-hosted` (a base URL)."""
        entry = self.catalog[model_id]
        if entry.provider == "openai-compatible":
            return "local" if entry.embedded else "self-hosted"
        return "real" if self.has_key(entry) else "simulated"

    def check_keys(self, model_ids: list[str]) -> None:
        """Raise `MissingKey` for the first model that needs a key the environment lacks."""
        for model_id in model_ids:
            entry = self.catalog[model_id]
            if self.has_key(entry):
                continue
            if entry.provider != "openai-compatible" and self.simulate_missing:
                continue
            raise MissingKey(model=model_id, env_var=entry.key_env or "an API key")

    def embedded_names(self, model_ids: list[str] | None = None) -> list[str]:
        """The embedded models the given (default: all) catalog ids need served."""
        ids = list(self.catalog) if model_ids is None else model_ids
        return sorted({e.embedded for e in (self.catalog[m] for m in ids) if e.embedded})

    def needs_simulation(self, model_ids: list[str] | None = None) -> bool:
        """Whether any of the given (default: all) models would be served by the fake provider."""
        ids = list(self.catalog) if model_ids is None else model_ids
        return any(self.label(m) == "simulated" for m in ids)

    def address(self, entry: ModelEntry) -> str | None:
        """Where calls for `entry` go (a base URL, or None for the provider's own API): the
        circuit breakers' notion of an endpoint. Builds nothing."""
        label = self.label(entry.id)
        if label == "simulated":
            return self.simulated_base_url
        if entry.embedded:
            return self.embedded_urls.get(entry.embedded)
        return entry.base_url

    def model(self, model_id: str) -> Model:
        """The pydantic-ai model for a catalog id (built once, then reused)."""
        if model_id not in self._models:
            self._models[model_id] = self._build(self.catalog[model_id])
        return self._models[model_id]

    def batch_model(self, entry: ModelEntry) -> Model | None:
        """The model `entry`'s batches go to, or None when it has no batch API: an Anthropic
        entry's own model (Message Batches); for an OpenAI entry, a Responses model on the same
        client (OpenAI's batch API takes Responses requests; the entry's ordinary calls stay on
        Chat Completions); none for `openai-compatible` servers."""
        if entry.id not in self._batch_models:
            found: Model | None = None
            if entry.batch_factor is not None:
                model = self.model(entry.id)
                if isinstance(model, OpenAIChatModel):
                    found = OpenAIResponsesModel(
                        entry.name, provider=OpenAIProvider(openai_client=model.client)
                    )
                elif isinstance(model, AnthropicModel):
                    found = model
            if found is not None and found.batch_max_requests is None:
                found = None
            self._batch_models[entry.id] = found
        return self._batch_models[entry.id]

    def __call__(self, entry: ModelEntry) -> Model:
        return self.model(entry.id)

    def _key(self, entry: ModelEntry) -> str:
        """The entry's key from the environment (remembered, so error texts are redacted)."""
        self.check_keys([entry.id])
        key = self._env.get(entry.key_env, "") if entry.key_env else ""
        remember(key)
        return key

    def _build(self, entry: ModelEntry) -> Model:
        label = self.label(entry.id)
        if label == "simulated":
            self.check_keys([entry.id])
            if self.simulated_base_url is None:
                raise ConfigError(
                    f"model {entry.id!r} is simulated but no fake provider is running"
                )
        key = SIMULATED_KEY if label == "simulated" else self._key(entry)
        if entry.provider == "anthropic":
            base = self.simulated_base_url if label == "simulated" else entry.base_url
            client = AsyncAnthropic(
                api_key=key, base_url=base, max_retries=0, timeout=self.timeout_s
            )
            self._clients.append(client)
            return AnthropicModel(entry.name, provider=AnthropicProvider(anthropic_client=client))
        if entry.provider == "openai":
            base = f"{self.simulated_base_url}/v1" if label == "simulated" else entry.base_url
            client = AsyncOpenAI(api_key=key, base_url=base, max_retries=0, timeout=self.timeout_s)
            self._clients.append(client)
            return OpenAIChatModel(entry.name, provider=OpenAIProvider(openai_client=client))
        base_url = entry.base_url
        if entry.embedded:
            base_url = self.embedded_urls.get(entry.embedded)
            if base_url is None:
                raise ConfigError(
                    f"embedded model {entry.embedded!r} for {entry.id!r} is not started"
                )
        client = AsyncOpenAI(
            api_key=key or "none", base_url=base_url, max_retries=0, timeout=self.timeout_s
        )
        self._clients.append(client)
        return OpenAIChatModel(
            # named as records name it, so its spans and metrics say `openai-compatible` too
            entry.name,
            provider=OpenAICompatibleProvider(entry.provider, openai_client=client),
        )
