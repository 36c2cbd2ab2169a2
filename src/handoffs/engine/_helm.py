"""The orchestrator's own model: budgeted, watched by its circuit breaker, failing over.

```
FallbackModel(                      pydantic-ai: the next model when one fails transiently
  BudgetedModel(Watched(primary)),  reserve the worst case, charge what the call cost
  BudgetedModel(Watched(failover)), ...                  (the catalog's `failover` for the model)
)
```

`Watched` asks the endpoint's breaker before each request (an open circuit is skipped at once,
without a call, except on the chain's last model, which is always tried: a job is not failed on a
breaker's word alone) and tells it how the call went, so the orchestrator and the handoffs share
what they learn about a provider. pydantic-ai's `FallbackModel` moves on when a request fails with a
fault the engine would fail over on (`unavailable`, `rate_limited`: see `handoffs.providers`); a
rejected request (a bad key, a malformed call) is raised as it is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal

from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.fallback import FallbackModel
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from handoffs.budget import Budget
from handoffs.catalog import ModelEntry, estimate_tokens, reserved_input_tokens
from handoffs.engine._session import Session
from handoffs.errors import CircuitOpen
from handoffs.health import Breaker
from handoffs.providers import classify

__all__ = ["BudgetedModel", "Helm", "Watched"]

_FAIL_OVER = ("unavailable", "rate_limited")
"""Fault kinds on which the orchestrator moves to the next model of its chain."""


class BudgetedModel(WrapperModel):
    """Charges every request of the wrapped model to a budget: reserved before, committed after."""

    def __init__(self, wrapped: Model, entry: ModelEntry, budget: Budget, max_tokens: int) -> None:
        super().__init__(wrapped)
        self.entry = entry
        self.budget = budget
        self.max_tokens = max_tokens
        self.spent_usd = Decimal(0)
        self.requests = 0

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        params = model_request_parameters
        tools = [*params.function_tools, *params.output_tools]
        sent = str(messages) + json.dumps([t.parameters_json_schema for t in tools], default=str)
        sent += "".join(f"{t.name}{t.description or ''}" for t in tools)
        prompt_tokens = reserved_input_tokens(estimate_tokens(sent))
        estimate = self.entry.cost(prompt_tokens, self.max_tokens)
        with self.budget.reserve(estimate) as reservation:
            response = await super().request(messages, model_settings, model_request_parameters)
            cost = self.entry.cost(response.usage.input_tokens, response.usage.output_tokens)
            reservation.commit(cost)
        self.spent_usd += cost
        self.requests += 1
        return response


class Watched(WrapperModel):
    """`wrapped` behind its endpoint's circuit breaker: told how every call went and, when
    `gate`, skipped without a call while the circuit is open."""

    def __init__(self, wrapped: Model, entry: ModelEntry, breaker: Breaker, *, gate: bool) -> None:
        super().__init__(wrapped)
        self.entry = entry
        self.breaker = breaker
        self.gate = gate

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        if self.gate and not self.breaker.admit():
            reason = self.breaker.unavailable_reason() or "circuit open"
            raise CircuitOpen(model=self.entry.id, endpoint=self.breaker.endpoint, reason=reason)
        try:
            response = await super().request(messages, model_settings, model_request_parameters)
        except Exception as exc:
            fault = classify(exc)
            if fault is None:
                self.breaker.release()
            else:
                Session.tell_breaker(fault, self.breaker)
            raise
        self.breaker.success()
        return response


def _fails_over(exc: Exception) -> bool:
    if isinstance(exc, CircuitOpen):
        return True
    fault = classify(exc)
    return fault is not None and fault.kind in _FAIL_OVER


class Helm:
    """The orchestrator's model for one run: `model` to give its agent, and what it spent."""

    def __init__(self, session: Session, model_id: str, max_tokens: int) -> None:
        chain = [session.catalog[m] for m in session.catalog.rung(model_id)]
        self.budgeted: Sequence[BudgetedModel] = [
            BudgetedModel(
                Watched(session.models(e), e, session.breaker(e), gate=i < len(chain) - 1),
                e,
                session.budget,
                max_tokens,
            )
            for i, e in enumerate(chain)
        ]
        self.model: Model = (
            self.budgeted[0]
            if len(self.budgeted) == 1
            else FallbackModel(*self.budgeted, fallback_on=_fails_over)
        )

    @property
    def spent_usd(self) -> Decimal:
        """What every model of the chain has cost this run."""
        return sum((m.spent_usd for m in self.budgeted), Decimal(0))

    @property
    def requests(self) -> int:
        """How many requests the chain's models answered this run."""
        return sum(m.requests for m in self.budgeted)
