"""The delegation engine: route, reserve, run, verify, retry with feedback, escalate, degrade.

```
for each rung of the route:
    reserve the worst-case cost -> run the subordinate (typed output) -> commit the actual cost
        provider error       -> next rung (failover)
        invalid output       -> retry the same model with the validation error, then escalate
        a check fails        -> retry the same model with the verdict's feedback, then escalate
        every check passes   -> Delivery
all rungs spent -> the task's fallback (a degraded Delivery) or HandoffFailed / VerificationFailed
```
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from decimal import Decimal
from typing import Any, TypeVar

import anyio
from pydantic import BaseModel
from pydantic_ai import Agent, NativeOutput, PromptedOutput, ToolOutput
from pydantic_ai.exceptions import (
    AgentRunError,
    ModelAPIError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)
from pydantic_ai.models import Model
from pydantic_ai.usage import RunUsage, UsageLimits

from handoffs.budget import Budget
from handoffs.catalog import Catalog, ModelEntry, estimate_tokens
from handoffs.errors import BudgetExceeded, HandoffFailed, NoRouteAvailable, VerificationFailed
from handoffs.handoff import Attempt, Delivery, HandoffRecord, Verdict
from handoffs.prompt import render
from handoffs.router import Policy, RouteDecision, route
from handoffs.task import Task
from handoffs.tracing import Tracing
from handoffs.verify import Answer, Ask, CheckContext, run_checks

__all__ = ["ModelSource", "Session"]

T = TypeVar("T")

ModelSource = Callable[[ModelEntry], Model]
"""Turns a catalog entry into a pydantic-ai model (a `Portfolio`, or a dict of scripted models)."""

_PROVIDER_ERRORS = (ModelAPIError, AgentRunError, TimeoutError, OSError)
"""Failures of the provider, not of the answer: fail over to the next rung."""


def _output_spec(entry: ModelEntry, output_type: type[Any]) -> Any:
    if not issubclass(output_type, BaseModel):
        return output_type  # str, int, lists...: pydantic-ai picks the mode
    if entry.structured_output == "native":
        return NativeOutput(output_type)
    if entry.structured_output == "prompted":
        return PromptedOutput(output_type)
    return ToolOutput(output_type)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


class Session:
    """Delegates typed tasks to the models of one catalog, within one budget.

    One session per job: every handoff it makes is charged to `budget` and appended to `records`.
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        models: ModelSource,
        policy: Policy | None = None,
        budget: Budget | None = None,
        unavailable: Callable[[], Mapping[str, str]] | None = None,
        on_record: Callable[[HandoffRecord], None] | None = None,
        request_timeout_s: float = 60.0,
        tracing: Tracing | None = None,
    ) -> None:
        self.catalog = catalog
        self.policy = policy if policy is not None else Policy.matrix(catalog)
        self.policy.validate(catalog)
        self.budget = budget if budget is not None else Budget(None)
        self.records: list[HandoffRecord] = []
        self._models = models
        self._unavailable = unavailable
        self._on_record = on_record
        self._timeout_s = request_timeout_s
        self.tracing = tracing
        """Where handoff spans (and the subordinates' pydantic-ai spans) go; None: untraced."""
        self._agents: dict[tuple[str, Any], Agent[None, Any]] = {}
        self._limiters: dict[str, anyio.CapacityLimiter] = {}

    @property
    def models(self) -> ModelSource:
        """Where this session gets pydantic-ai models for catalog entries."""
        return self._models

    def route(self, task: Task[Any]) -> RouteDecision:
        """The route the router would choose for `task` now (no call is made)."""
        unavailable = self._unavailable() if self._unavailable else None
        return route(task, self.catalog, self.policy, unavailable=unavailable)

    async def delegate(self, task: Task[T]) -> Delivery[T]:
        """Hand `task` to the cheapest model that can do it and return a verified delivery.

        Raises `BudgetExceeded`, `NoRouteAvailable`, `VerificationFailed` or `HandoffFailed` when
        the task declares no fallback; with a fallback, returns it as a degraded delivery instead.
        """
        if self.tracing is None:
            return await self._delegate(task)
        with self.tracing.handoff(kind=task.kind, task_id=task.id) as span:
            error: BaseException | None = None
            try:
                return await self._delegate(task)
            except Exception as exc:
                error = exc
                raise
            finally:
                record = next((r for r in reversed(self.records) if r.task_id == task.id), None)
                if record is not None:
                    left = self.budget.remaining_usd
                    self.tracing.finish_handoff(span, record, budget_left=left, error=error)

    async def _delegate(self, task: Task[T]) -> Delivery[T]:
        task.validate_input()
        started = time.monotonic()
        decision = self.route(task)
        handoff_budget = self.budget.child(task.max_cost_usd, name=f"handoff {task.id}")
        attempts: list[Attempt] = []
        escalations = 0
        failure: Exception | None = None
        if not decision.ladder:
            failure = NoRouteAvailable(
                f"no model can take task {task.kind!r}: "
                + "; ".join(f"{s.model}: {s.reason}" for s in decision.steps),
                task_id=task.id,
                reasons=[s.reason for s in decision.steps],
            )
        for rung, model_id in enumerate(decision.ladder):
            if failure is not None:
                break
            entry = self.catalog[model_id]
            previous: Any = None
            feedback: list[str] | None = None
            for retry in range(1 + task.feedback_retries):
                estimate = self._estimate(entry, task, decision, previous, feedback)
                try:
                    reservation = handoff_budget.reserve(estimate)
                except BudgetExceeded as exc:
                    attempts.append(
                        self._attempt(entry, rung, "refused", bool(retry), error=str(exc))
                    )
                    failure = exc
                    break
                usage = RunUsage()
                t0 = time.monotonic()
                try:
                    output = await self._run(entry, task, usage, previous, feedback)
                except (UnexpectedModelBehavior, UsageLimitExceeded) as exc:
                    reservation.commit(entry.cost(usage.input_tokens, usage.output_tokens))
                    attempts.append(
                        self._attempt(
                            entry,
                            rung,
                            "invalid_output",
                            bool(retry),
                            usage=usage,
                            latency=time.monotonic() - t0,
                            error=_one_line(exc),
                        )
                    )
                    previous, feedback = None, [f"the answer did not validate: {_one_line(exc)}"]
                    continue
                except _PROVIDER_ERRORS as exc:
                    reservation.commit(entry.cost(usage.input_tokens, usage.output_tokens))
                    attempts.append(
                        self._attempt(
                            entry,
                            rung,
                            "provider_error",
                            bool(retry),
                            usage=usage,
                            latency=time.monotonic() - t0,
                            error=_one_line(exc),
                        )
                    )
                    break  # failover: a provider fault is not the model's answer to retry
                except BaseException:
                    reservation.release()
                    raise
                reservation.commit(entry.cost(usage.input_tokens, usage.output_tokens))
                ctx = CheckContext(
                    task=task,
                    producer=model_id,
                    catalog=self.catalog,
                    ask=self._asker(handoff_budget),
                )
                verdicts = await run_checks(output, ctx, task.checks)
                passed = all(v.passed for v in verdicts)
                attempts.append(
                    self._attempt(
                        entry,
                        rung,
                        "accepted" if passed else "rejected",
                        bool(retry),
                        usage=usage,
                        latency=time.monotonic() - t0,
                        verdicts=verdicts,
                    )
                )
                if passed:
                    return self._deliver(
                        task, decision, attempts, escalations, started, output, entry, verdicts
                    )
                previous = task.dump_output(output)
                feedback = [r for v in verdicts if not v.passed for r in v.reasons] or ["rejected"]
            if failure is None and rung + 1 < len(decision.ladder):
                last = attempts[-1].outcome if attempts else None
                if last in ("rejected", "invalid_output"):
                    escalations += 1
        return self._give_up(task, decision, attempts, escalations, started, failure)

    # -- one call -------------------------------------------------------------------------------

    def _slot(self, entry: ModelEntry) -> AbstractAsyncContextManager[Any]:
        """Waits for a free slot on models with `max_concurrency`; a no-op for the others."""
        if entry.max_concurrency is None:
            return nullcontext()
        limiter = self._limiters.get(entry.id)
        if limiter is None:
            limiter = self._limiters[entry.id] = anyio.CapacityLimiter(entry.max_concurrency)
        return limiter

    def _agent(self, entry: ModelEntry, output_type: type[Any]) -> Agent[None, Any]:
        key = (entry.id, output_type)
        agent = self._agents.get(key)
        if agent is None:
            agent = Agent(
                self._models(entry),
                output_type=_output_spec(entry, output_type),
                retries={"output": 0, "tools": 0},
                name=f"subordinate:{entry.id}",
                capabilities=[self.tracing.instrumentation()] if self.tracing else None,
            )
            self._agents[key] = agent
        return agent

    async def _call(
        self,
        entry: ModelEntry,
        instructions: str,
        prompt: str,
        output_type: type[Any],
        usage: RunUsage,
        max_tokens: int,
        deadline_s: float | None,
    ) -> Any:
        timeout_s = min(deadline_s, self._timeout_s) if deadline_s else self._timeout_s
        async with self._slot(entry):
            result = await self._agent(entry, output_type).run(
                prompt,
                instructions=instructions,
                usage=usage,
                usage_limits=UsageLimits(request_limit=1),
                model_settings={"max_tokens": max_tokens, "timeout": timeout_s},
            )
        return result.output

    async def _run(
        self,
        entry: ModelEntry,
        task: Task[Any],
        usage: RunUsage,
        previous: Any,
        feedback: list[str] | None,
    ) -> Any:
        instructions, prompt = render(
            task, entry.prompt_variant, previous=previous, feedback=feedback
        )
        return await self._call(
            entry,
            instructions,
            prompt,
            task.output_type,
            usage,
            task.max_output_tokens,
            task.deadline_s,
        )

    def _asker(self, budget: Budget) -> Ask:
        async def ask(
            model_id: str, instructions: str, prompt: str, output_type: type[Any]
        ) -> Answer:
            entry = self.catalog[model_id]
            max_tokens = 256
            estimate = entry.cost(estimate_tokens(instructions + prompt) + 64, max_tokens)
            usage = RunUsage()
            with budget.reserve(estimate) as reservation:
                try:
                    output = await self._call(
                        entry, instructions, prompt, output_type, usage, max_tokens, None
                    )
                finally:
                    cost = entry.cost(usage.input_tokens, usage.output_tokens)
                    reservation.commit(cost)
            return Answer(
                output=output,
                model=model_id,
                cost_usd=cost,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
            )

        return ask

    def _estimate(
        self,
        entry: ModelEntry,
        task: Task[Any],
        decision: RouteDecision,
        previous: Any,
        feedback: list[str] | None,
    ) -> Decimal:
        extra = 0
        if feedback:
            extra = estimate_tokens(repr(previous) + " ".join(feedback)) + 32
        return entry.cost(decision.input_tokens + extra, task.max_output_tokens)

    # -- records --------------------------------------------------------------------------------

    @staticmethod
    def _attempt(
        entry: ModelEntry,
        rung: int,
        outcome: Any,
        feedback: bool,
        *,
        usage: RunUsage | None = None,
        latency: float = 0.0,
        verdicts: list[Verdict] | None = None,
        error: str | None = None,
    ) -> Attempt:
        tokens_in = usage.input_tokens if usage else 0
        tokens_out = usage.output_tokens if usage else 0
        check_cost = sum((v.cost_usd for v in verdicts or []), Decimal(0))
        return Attempt(
            model=entry.id,
            provider=entry.provider,
            tier=entry.tier,
            rung=rung,
            outcome=outcome,
            feedback=feedback,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=entry.cost(tokens_in, tokens_out) + check_cost,
            latency_s=round(latency, 4),
            verdicts=tuple(verdicts or ()),
            error=error,
        )

    def _record(self, record: HandoffRecord) -> HandoffRecord:
        self.records.append(record)
        if self._on_record is not None:
            self._on_record(record)
        return record

    def _base(
        self,
        task: Task[Any],
        decision: RouteDecision,
        attempts: list[Attempt],
        escalations: int,
        started: float,
    ) -> dict[str, Any]:
        return {
            "task_id": task.id,
            "task_kind": task.kind,
            "label": task.label,
            "risk": task.risk,
            "route": decision.ladder,
            "route_reasons": decision.steps,
            "attempts": tuple(attempts),
            "escalations": escalations,
            "input_tokens": sum(a.input_tokens for a in attempts),
            "output_tokens": sum(a.output_tokens for a in attempts),
            "cost_usd": sum((a.cost_usd for a in attempts), Decimal(0)),
            "latency_s": round(time.monotonic() - started, 4),
        }

    def _deliver(
        self,
        task: Task[T],
        decision: RouteDecision,
        attempts: list[Attempt],
        escalations: int,
        started: float,
        output: T,
        entry: ModelEntry,
        verdicts: list[Verdict],
    ) -> Delivery[T]:
        record = HandoffRecord(
            **self._base(task, decision, attempts, escalations, started),
            status="delivered",
            model=entry.id,
            provider=entry.provider,
            tier=entry.tier,
            verdicts=tuple(verdicts),
            output=task.dump_output(output),
        )
        return Delivery(output=output, record=self._record(record))

    def _give_up(
        self,
        task: Task[T],
        decision: RouteDecision,
        attempts: list[Attempt],
        escalations: int,
        started: float,
        failure: Exception | None,
    ) -> Delivery[T]:
        verdicts = [v for a in attempts for v in a.verdicts if not v.passed]
        if failure is None:
            summary = "; ".join(f"{a.model}: {a.outcome}" for a in attempts) or "nothing tried"
            if any(a.outcome in ("rejected", "invalid_output") for a in attempts):
                failure = VerificationFailed(
                    f"task {task.kind!r}: no output passed its checks ({summary})",
                    task_id=task.id,
                    attempts=attempts,
                    verdicts=verdicts,
                )
            else:
                failure = HandoffFailed(
                    f"task {task.kind!r}: every route failed ({summary})",
                    task_id=task.id,
                    attempts=attempts,
                )
        base = self._base(task, decision, attempts, escalations, started)
        if task.has_fallback:
            fallback: T = task.fallback  # type: ignore[assignment]
            record = HandoffRecord(
                **base,
                status="degraded",
                degraded=True,
                verdicts=tuple(verdicts),
                output=task.dump_output(fallback),
                error=str(failure),
            )
            return Delivery(output=fallback, record=self._record(record))
        self._record(
            HandoffRecord(**base, status="failed", verdicts=tuple(verdicts), error=str(failure))
        )
        raise failure
