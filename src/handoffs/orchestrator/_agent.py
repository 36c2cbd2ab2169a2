"""The orchestrator: a pydantic-ai `Agent` on a strong model whose tools delegate typed subtasks.

Each `Subordinate` becomes one tool whose arguments are the subordinate's input model. Calling the
tool hands a `Task` to the job's `Session` (route, verify, escalate, budget) and returns the
validated output to the orchestrator framed as data — never as instructions. Several tool calls in
one model step run concurrently (pydantic-ai runs parallel tool calls together).

Two structural defences, both per run:

- `quarantine=True`: the orchestrator sees only an answer's constrained fields; its free text is
  replaced by opaque references (`handoffs.orchestrator`), which it may pass on but never read;
- `actions=[...]`: side-effecting tools (`handoffs.orchestrator`) refuse arguments that carry
  subordinate free text unless the `ActionPolicy` allows it, quarantined or not.

Loop guards, per run: `max_handoffs` delegations in all, `max_depth` nesting, and `max_repeats` of
the very same delegation — a result that asks to be fetched again cannot loop the job.
"""

from __future__ import annotations

import inspect
import json
from collections import Counter
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar, cast

from opentelemetry import trace
from pydantic import BaseModel
from pydantic_ai import Agent, RunContext, Tool, capture_run_messages
from pydantic_ai.exceptions import FallbackExceptionGroup, ModelAPIError, UsageLimitExceeded
from pydantic_ai.framing import register_tag, wrap
from pydantic_ai.messages import ModelMessage
from pydantic_ai.usage import UsageLimits

from handoffs.engine import Helm, Recorder, Session
from handoffs.errors import BudgetExceeded, HandoffError
from handoffs.handoff import HandoffRecord
from handoffs.orchestrator._action import (
    ActionPolicy,
    ActionRecord,
    SideEffect,
    guarded_tool,
    provenance,
    refuse,
)
from handoffs.orchestrator._quarantine import Quarantine
from handoffs.task import (
    NO_FALLBACK,
    NoFallback,
    Risk,
    Task,
    json_schema_of,
)
from handoffs.verify import Check

__all__ = ["JobResult", "Orchestrator", "OrchestratorSpec", "Subordinate"]

InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT")

RESULT_TAG = register_tag("subordinate_result")
"""The data frame every subordinate result reaches the orchestrator in."""
DATA_TAG = register_tag("job_data")
"""The data frame the job's input reaches the orchestrator in."""
_DEPTH: ContextVar[int] = ContextVar("handoffs_delegation_depth", default=0)
"""How many delegations enclose the current task (parallel siblings each see their own)."""


@dataclass(frozen=True, kw_only=True)
class Subordinate(Generic[InT, OutT]):
    """A typed delegate: the orchestrator calls it as a tool named `name` with an `input_type`."""

    name: str
    """Tool name the orchestrator sees, e.g. `classify_ticket`."""
    kind: str
    """Task kind the router keys on."""
    input_type: type[InT]
    output_type: type[OutT]
    instructions: str
    description: str = ""
    """When the orchestrator should call it (the tool description)."""
    risk: Risk = "medium"
    checks: Sequence[Check] = ()
    max_cost_usd: Decimal | None = None
    max_output_tokens: int = 512
    deadline_s: float | None = None
    fallback: OutT | NoFallback = NO_FALLBACK
    source: Callable[[InT], Any] | None = None
    """What the subordinate reads, fetched from the orchestrator's request (sync or async): e.g.
    run a read-only tool and hand its output over, so untrusted content (a document, an email, a
    web page) reaches the subordinate and never the orchestrator. None: the request itself.
    The request's arguments pass the action policy first, as a side effect's would."""

    def task(self, input: InT, **overrides: Any) -> Task[OutT]:
        """The `Task` this subordinate runs for one input."""
        task: Task[OutT] = Task(
            kind=self.kind,
            input=input,
            output_type=self.output_type,
            instructions=self.instructions,
            risk=self.risk,
            checks=tuple(self.checks),
            max_cost_usd=self.max_cost_usd,
            max_output_tokens=self.max_output_tokens,
            deadline_s=self.deadline_s,
            fallback=self.fallback,
        )
        return replace(task, **overrides) if overrides else task


@dataclass(frozen=True, kw_only=True)
class OrchestratorSpec:
    """How a roster describes its orchestrator: the model and the standing instructions."""

    model: str
    """Catalog id of the orchestrator's model (a frontier model)."""
    instructions: str
    max_handoffs: int = 100
    max_depth: int = 1
    max_repeats: int = 2
    """How many times one run may make the very same delegation (same tool, same input)."""
    quarantine: bool = False
    """Hide subordinates' free text from the orchestrator behind opaque references."""
    actions: tuple[SideEffect, ...] = ()
    """Side-effecting tools the orchestrator may call, behind `action_policy`."""
    action_policy: ActionPolicy = field(default_factory=ActionPolicy)


@dataclass(frozen=True, kw_only=True)
class JobResult(Generic[OutT]):
    """What one orchestrated job produced and what it cost."""

    output: OutT | None
    status: Literal["completed", "budget_exceeded", "failed"]
    records: tuple[HandoffRecord, ...]
    orchestrator_cost_usd: Decimal
    orchestrator_requests: int
    error: str | None = None
    messages: list[ModelMessage] = field(default_factory=list[ModelMessage])
    actions: tuple[ActionRecord, ...] = ()
    """Every call of a side-effecting tool, executed or refused, in order."""
    quarantined: int = 0
    """Free-text values hidden from the orchestrator behind references (quarantine mode)."""

    @property
    def handoff_cost_usd(self) -> Decimal:
        return sum((r.cost_usd for r in self.records), Decimal(0))

    @property
    def cost_usd(self) -> Decimal:
        """Everything the job spent: the orchestrator's own calls and every handoff."""
        return self.orchestrator_cost_usd + self.handoff_cost_usd


def _model_failure(exc: ModelAPIError | FallbackExceptionGroup) -> str:
    if isinstance(exc, FallbackExceptionGroup):
        each = "; ".join(f"{type(e).__name__}: {e}" for e in exc.exceptions)
        return f"orchestrator model failed on every model of its chain: {each}"
    return f"orchestrator model failed: {type(exc).__name__}: {exc}"


def _frame(subordinate: str, payload: dict[str, Any]) -> str:
    body = json.dumps(payload, ensure_ascii=False, default=str)
    return wrap(RESULT_TAG, body, subordinate=subordinate)


@dataclass(kw_only=True)
class _Run:
    """What one `Orchestrator.run` keeps between its tool calls."""

    quarantine: Quarantine
    actions: list[ActionRecord] = field(default_factory=list[ActionRecord])
    repeats: Counter[str] = field(default_factory=Counter[str])


class Orchestrator:
    """Runs a goal on a strong model that delegates to typed subordinates through one `Session`."""

    def __init__(
        self,
        *,
        model: str,
        subordinates: Sequence[Subordinate[Any, Any]],
        session: Session,
        instructions: str = "",
        tools: Sequence[Tool[Any] | Callable[..., Any]] = (),
        max_handoffs: int = 100,
        max_depth: int = 1,
        max_tokens: int = 2048,
        max_repeats: int = 2,
        quarantine: bool = False,
        actions: Sequence[SideEffect] = (),
        action_policy: ActionPolicy | None = None,
    ) -> None:
        """`tools` are read-only helpers; anything that changes the world goes in `actions`."""
        names = [s.name for s in subordinates] + [a.name for a in actions]
        if len(set(names)) != len(names):
            raise ValueError(f"subordinate and action names must be unique: {names}")
        self.model_id = model
        self.subordinates = tuple(subordinates)
        self.session = session
        self.instructions = instructions
        self.max_handoffs = max_handoffs
        self.max_depth = max_depth
        self._extra_tools = tuple(tools)
        self._max_tokens = max_tokens
        self._handoffs = 0
        self.max_repeats = max_repeats
        self.quarantine = quarantine
        self.actions = tuple(actions)
        self.action_policy = action_policy if action_policy is not None else ActionPolicy()

    @classmethod
    def from_spec(
        cls,
        spec: OrchestratorSpec,
        *,
        subordinates: Sequence[Subordinate[Any, Any]],
        session: Session,
    ) -> Orchestrator:
        """Build an orchestrator from a roster's `OrchestratorSpec`."""
        return cls(
            model=spec.model,
            subordinates=subordinates,
            session=session,
            instructions=spec.instructions,
            max_handoffs=spec.max_handoffs,
            max_depth=spec.max_depth,
            max_repeats=spec.max_repeats,
            quarantine=spec.quarantine,
            actions=spec.actions,
            action_policy=spec.action_policy,
        )

    def _tool(self, sub: Subordinate[Any, Any], run: _Run) -> Tool[Any]:
        schema = json_schema_of(sub.output_type)

        async def delegate(ctx: RunContext[Any], request: Any) -> str:
            if self._handoffs >= self.max_handoffs:
                return _frame(
                    sub.name,
                    {
                        "status": "refused",
                        "error": f"the job's limit of {self.max_handoffs} handoffs is reached",
                    },
                )
            depth = _DEPTH.get()
            if depth >= self.max_depth:
                return _frame(sub.name, {"status": "refused", "error": "maximum delegation depth"})
            asked = request.model_dump(mode="json")
            same = json.dumps([sub.name, asked], sort_keys=True)
            if run.repeats[same] >= self.max_repeats:
                error = f"this exact delegation was already made {self.max_repeats} times"
                return _frame(sub.name, {"status": "refused", "error": error})
            resolved, _ = run.quarantine.resolve(asked)
            task_input: Any = sub.input_type.model_validate(resolved)  # references read as data
            if sub.source is not None:  # fetching reaches the world: its arguments follow the plan
                policy = self.action_policy
                _, tainted = provenance(sub.name, asked, quarantine=run.quarantine, policy=policy)
                if tainted and policy.enforce:
                    return refuse(sub.name, resolved, tainted, run.actions)
            run.repeats[same] += 1
            self._handoffs += 1
            if self.session.tracing is not None:  # the current span is pydantic-ai's execute_tool
                self.session.tracing.mark_transfer(trace.get_current_span(), sub.name)
            if sub.source is not None:
                try:
                    task_input = sub.source(task_input)
                    if inspect.isawaitable(task_input):
                        task_input = await task_input
                except Exception as exc:  # a source that fails is the subordinate's failure
                    error = f"source failed: {type(exc).__name__}: {exc}"
                    return _frame(sub.name, {"status": "failed", "error": error})
            task = sub.task(task_input)
            token = _DEPTH.set(depth + 1)
            try:
                delivery = await self.session.delegate(task)
            except (HandoffError, BudgetExceeded) as exc:
                return _frame(sub.name, {"status": "failed", "handoff": task.id, "error": str(exc)})
            finally:
                _DEPTH.reset(token)
            record = delivery.record
            output, hidden = record.output, list[str]()
            if not record.degraded:  # a fallback is the roster's own text, not a subordinate's
                output, hidden = run.quarantine.admit(sub.name, schema, record.output)
            payload: dict[str, Any] = {
                "status": record.status,
                "handoff": task.id,
                "output": output,
                "model": record.model,
                "cost_usd": str(record.cost_usd),
            }
            if hidden:
                payload["quarantined"] = hidden
            return _frame(sub.name, payload)

        delegate.__annotations__ = {
            "ctx": RunContext[Any],
            "request": sub.input_type,
            "return": str,
        }
        return Tool(
            delegate, takes_ctx=True, name=sub.name, description=sub.description or sub.instructions
        )

    async def run(
        self,
        goal: str,
        *,
        data: Any = None,
        deps: Any = None,
        output_type: type[Any] = str,
        usage_limits: UsageLimits | None = None,
    ) -> JobResult[Any]:
        """Work on `goal` (with `data` framed as data) until the orchestrator answers.

        Never raises for a spent budget, a loop guard or a failure of the orchestrator's own model:
        the result's status says `budget_exceeded` or `failed` and keeps every handoff that
        finished.
        """
        entry = self.session.catalog[self.model_id]
        helm = Helm(self.session, entry.id, self._max_tokens)
        run = _Run(quarantine=Quarantine(redact=self.quarantine))
        run.quarantine.trust(goal)
        tools: list[Tool[Any] | Callable[..., Any]] = [
            *self._extra_tools,
            *(self._tool(s, run) for s in self.subordinates),
            *(
                guarded_tool(
                    a, quarantine=run.quarantine, policy=self.action_policy, log=run.actions
                )
                for a in self.actions
            ),
        ]
        agent: Agent[Any, Any] = Agent(
            helm.model,
            output_type=output_type,
            instructions=self.instructions or None,
            tools=tools,
            name="orchestrator",
            deps_type=cast(type[Any], type(deps)),
            capabilities=[tracing.instrumentation()] if (tracing := self.session.tracing) else None,
        )
        prompt = goal
        if data is not None:
            prompt += "\n\n" + wrap(DATA_TAG, json.dumps(data, ensure_ascii=False, default=str))
        limits = usage_limits or UsageLimits(request_limit=max(50, self.max_handoffs + 10))
        recorder = Recorder()  # this run's handoffs, for its result
        self._handoffs = 0  # max_handoffs is per run
        status: Literal["completed", "budget_exceeded", "failed"] = "completed"
        output: Any = None
        error: str | None = None
        messages: list[ModelMessage] = []
        # the messages are kept when a guard stops the run, too
        with self.session.attached(recorder), capture_run_messages() as captured:
            try:
                result = await agent.run(
                    prompt,
                    deps=deps,
                    usage_limits=limits,
                    model_settings={"max_tokens": self._max_tokens},
                )
                output, messages = result.output, result.all_messages()
            except BudgetExceeded as exc:
                status, error, messages = "budget_exceeded", str(exc), list(captured)
            except UsageLimitExceeded as exc:  # the orchestrator's own loop guard
                status, error = "failed", f"orchestrator stopped: {exc}"
                messages = list(captured)
            except (ModelAPIError, FallbackExceptionGroup) as exc:  # its own models failed:
                status, error = "failed", _model_failure(exc)  # the finished handoffs are kept
                messages = list(captured)
        return JobResult(
            output=output,
            status=status,
            records=tuple(recorder.records),
            orchestrator_cost_usd=helm.spent_usd,
            orchestrator_requests=helm.requests,
            error=error,
            messages=messages,
            actions=tuple(run.actions),
            quarantined=run.quarantine.held,
        )
