"""The hostile portfolio: every model of a job served by the fake provider, some of them attacked.

The job's own simulation plays the honest models (its `solve`, `grade` and `plan`); an attack takes
over the requests it targets; the orchestrator is made gullible when the attack calls for it. Every
model is reached through the real SDKs over a loopback socket, exactly as in the offline portfolio
— local and self-hosted entries included, so the Gauntlet never calls a real endpoint or API.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import httpx2
import openai
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI
from pydantic_ai import Agent
from pydantic_ai.models import Model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider

from handoffs.catalog import Catalog, ModelEntry
from handoffs.gauntlet._attack import Answer, Attack, Hostility, ask
from handoffs.gauntlet._call import Call, Roles
from handoffs.gauntlet._gullible import GullibleOrchestrator
from handoffs.orchestrator import Subordinate
from handoffs.routing import Policy, route
from handoffs.task import json_schema_of
from handoffs.testing import FakeProvider, FakeRequest, Script, ScriptedModel
from handoffs.testing.simulation import Simulation, placeholder, simulate
from handoffs.verify import Answer as CheckAnswer
from handoffs.verify import Ask

__all__ = [
    "REFERENCE",
    "HostileModels",
    "first_rungs",
    "gauntlet_catalog",
    "install",
    "reference_asker",
    "reference_client",
]

REFERENCE = "gauntlet-reference"
"""The honest model the invariants re-verify delivered outputs with."""


def gauntlet_catalog(catalog: Catalog, base_url: str, run: str) -> Catalog:
    """`catalog` for one run: every self-hosted or embedded model pointed at the fake provider
    (with no concurrency limit: the one-slot limit belongs to the embedded llama.cpp server), and
    every model renamed `name@run`, so that runs sharing the fake provider never meet."""
    entries: list[ModelEntry] = []
    for entry in catalog.values():
        if entry.provider == "openai-compatible":
            entry = replace(entry, embedded=None, base_url=f"{base_url}/v1", max_concurrency=None)
        entries.append(replace(entry, name=f"{entry.name}@{run}"))
    return Catalog(entries)


class HostileModels:
    """The pydantic-ai models of one run's catalog, on two SDK clients the whole Gauntlet shares
    (building a client per model per run would cost more than the runs)."""

    def __init__(
        self, catalog: Catalog, *, base_url: str, openai: AsyncOpenAI, anthropic: AsyncAnthropic
    ) -> None:
        self.catalog = catalog
        self.base_url = base_url
        self._openai = openai
        self._anthropic = anthropic
        self._models: dict[str, Model] = {}

    def address(self, entry: ModelEntry) -> str:
        """Where every model of the run is served: the fake provider."""
        return self.base_url

    def __call__(self, entry: ModelEntry) -> Model:
        model = self._models.get(entry.id)
        if model is None:
            if entry.provider == "anthropic":
                model = AnthropicModel(
                    entry.name, provider=AnthropicProvider(anthropic_client=self._anthropic)
                )
            else:
                model = OpenAIChatModel(
                    entry.name, provider=OpenAIProvider(openai_client=self._openai)
                )
            self._models[entry.id] = model
        return model


def first_rungs(
    subordinates: Sequence[Subordinate[Any, Any]], catalog: Catalog, policy: Policy
) -> dict[str, str]:
    """Subordinate name -> the first model of its route (the cheap model it tries first)."""
    rungs: dict[str, str] = {}
    for sub in subordinates:
        sample = sub.input_type.model_validate(placeholder(json_schema_of(sub.input_type)))
        ladder = route(sub.task(sample), catalog, policy).ladder
        if ladder:
            rungs[sub.name] = ladder[0]
    return rungs


def _targeted(attack: Attack, entry: ModelEntry, role: str, first: Mapping[str, str]) -> bool:
    if not attack.targets_role(role):
        return False
    if attack.models == "all":
        return True
    if attack.models == "first":
        if role in first:
            return first[role] == entry.id
        wanted = (
            first.values()
            if "*" in attack.subordinates
            else [first[s] for s in attack.subordinates if s in first]
        )
        return entry.id in wanted
    return entry.id in attack.models


def _hostile(
    entry: ModelEntry,
    honest: Script,
    attack: Attack,
    *,
    roles: Roles,
    first: Mapping[str, str],
    hostility: Hostility,
) -> Script:
    seen: Counter[str] = Counter()

    async def answer(request: FakeRequest) -> Answer:
        role, schema = roles.of(request)
        if _targeted(attack, entry, role, first):
            call = Call(
                request=request,
                model=entry.id,
                tier=entry.tier,
                provider=entry.provider,
                role=role,
                schema=schema,
            )
            seen[call.key] += 1
            call = replace(call, seen=seen[call.key])
            if attack.hits(call, hostility.seed):
                hostile = await attack.answer(call, honest, hostility)
                if hostile is not None:
                    return hostile
        return await ask(honest, request)

    return answer


def install(
    provider: FakeProvider,
    catalog: Catalog,
    *,
    simulation: Simulation,
    orchestrator: str,
    attack: Attack | None,
    roles: Roles,
    first: Mapping[str, str],
    hostility: Hostility,
) -> None:
    """Script every model of one run's `catalog` on the shared `provider` (names are per run)."""
    for entry in catalog.values():
        script: Script = simulate(simulation).answer
        if attack is not None:
            script = _hostile(entry, script, attack, roles=roles, first=first, hostility=hostility)
        if entry.id == orchestrator and (attack is None or attack.gullible_orchestrator):
            script = GullibleOrchestrator(script, hostility)
        provider.add(entry.name, ScriptedModel(answer=script))
    provider.add(REFERENCE, ScriptedModel(answer=simulate(simulation).answer))


def reference_client(provider: FakeProvider) -> AsyncOpenAI:
    """A client reaching `provider` in-process (ASGI, no socket): the invariants' re-checks do
    not share the runs' request timeout, so a loaded machine cannot turn them into breaches."""
    transport = httpx2.ASGITransport(app=provider)
    return AsyncOpenAI(
        base_url="http://gauntlet-reference/v1",
        api_key="gauntlet",
        max_retries=2,
        timeout=300.0,
        http_client=openai.DefaultAsyncHttpx2Client(transport=transport, timeout=300.0),
    )


def reference_asker(client: AsyncOpenAI) -> Ask:
    """An `ask` that puts every check's question to the honest reference model."""
    model = OpenAIChatModel(REFERENCE, provider=OpenAIProvider(openai_client=client))

    async def ask_reference(
        model_id: str, instructions: str, prompt: str, output_type: type[Any]
    ) -> CheckAnswer:
        agent: Agent[None, Any] = Agent(model, output_type=output_type, instructions=instructions)
        result = await agent.run(prompt)
        return CheckAnswer(output=result.output, model=REFERENCE, cost_usd=Decimal(0))

    return ask_reference
