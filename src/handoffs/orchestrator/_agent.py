"""The orchestrator: a pydantic-ai `Agent` on a strong model whose tools delegate typed subtasks.

Each `Subordinate` becomes one tool whose arguments are the subordinate's input model. Calling the
tool hands a `Task` to the job's `Session` (route, verify, escalate, budget) and returns the
validated output to the orchestrator framed as data — never as instructions. Several tool calls in
one model step run concurrently (pydantic-ai runs parallel tool calls together).

The trust boundary, per run (`handoffs.orchestrator`):

- quarantine, the default: the orchestrator sees only an answer's constrained fields; its free
  text (keys too), a provider's error, a refusal and a side effect's result are held behind opaque
  handles, which it may pass on but never read. `quarantine=False` is an explicit opt-out, logged
  at every run (`handoffs.orchestrator` logger, WARNING);
- provenance: every value the orchestrator passes to a side-effecting tool (`actions=[...]`) or
  to a subordinate's `source` has origins — the goal, the job's input, a verified field, free
  text, a provider message, a tool result — and is admitted only by the action's declaration.

Loop guards, per run: `max_handoffs` delegations in all, `max_depth` nesting, and `max_repeats` of
the very same delegation — a result that asks to be fetched again cannot loop the job.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar, cast

import anyio
from opentelemetry import trace
from pydantic import BaseModel, ValidationError
from pydantic_ai import Agent, RunContext, Tool, capture_run_messages
from pydantic_ai.exceptions import FallbackExceptionGroup, ModelAPIError, UsageLimitExceeded
from pydantic_ai.framing import register_tag, wrap
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.usage import UsageLimits

from handoffs.engine import HANDOFF_SLOTS, Helm, Recorder, Session
from handoffs.errors import BudgetExceeded, HandoffError
from handoffs.handoff import HandoffRecord
from handoffs.orchestrator._action import (
    ActionPolicy,
    ActionRecord,
    SideEffect,
    admit,
    guarded_tool,
    refuse,
)
from handoffs.orchestrator._origin import Origin
from handoffs.orchestrator._provenance import Ledger
from handoffs.orchestrator._reference import (
    HANDLE,
    describe_items,
    reference_schema,
    refused_handles,
    resolved,
    visible,
)
from handoffs.task import (
    NO_FALLBACK,
    NoFallback,
    Risk,
    Task,
    json_schema_of,
)
from handoffs.verify import Check

__all__ = ["FAN_OUT", "JobResult", "Orchestrator", "OrchestratorSpec", "Subordinate"]

InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT")

RESULT_TAG = register_tag("subordinate_result")
"""The data frame every subordinate result reaches the orchestrator in."""
DATA_TAG = register_tag("job_data")
"""The data frame the job's input reaches the orchestrator in."""
FAN_OUT = "delegate_each"
ALL_ITEMS = "all"
"""`delegate_each`'s `inputs` for every item of the job, in order."""
"""The tool a by-reference run adds: one subordinate tool on many inputs in one call."""
REFERENCE_NOTE = (
    "Items are shown by handle (ref) and a few fields; tools take handles, never payloads. "
    "delegate_each runs one tool on many items."
)
"""What a by-reference run adds to the goal, after the items."""
logger = logging.getLogger("handoffs.orchestrator")
"""Where opting out of the trust boundary is logged (WARNING), once per run."""
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
    quarantine: bool = True
    """Hide what subordinates and providers wrote behind opaque handles (the safe mode);
    False is an explicit opt-out, logged at every run."""
    actions: tuple[SideEffect, ...] = ()
    """Side-effecting tools the orchestrator may call, behind `action_policy`."""
    action_policy: ActionPolicy = field(default_factory=ActionPolicy)
    describe: tuple[str, ...] | None = None
    """Pass the job's items by reference: the orchestrator sees each item's handle and these
    fields of it (e.g. `("id",)`), never the payload. None: the items are shown whole."""


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
    """Texts held from the orchestrator behind handles (quarantine mode): answers' free text,
    provider messages, tool results."""
    quarantine: bool = True
    """Whether the run was in the safe mode (False: the opt-out)."""
    orchestrator_input_tokens: int = 0
    """Tokens the orchestrator's own requests read (every step re-reads the conversation)."""
    orchestrator_output_tokens: int = 0
    """Tokens the orchestrator's own requests wrote (its plans and tool arguments)."""
    orchestrator_cache_read_tokens: int = 0
    """Of the orchestrator's input tokens, those served from the provider's prompt cache."""
    orchestrator_cache_saved_usd: Decimal = Decimal(0)
    """What prompt caching saved on the orchestrator's own requests."""

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


def fan_out_table(
    inputs: list[Any], results: list[dict[str, Any]], fields: list[str], *, every: bool = False
) -> Any:
    """A fan-out's results as a table: how many were delivered, the rows of the delivered ones
    (input, result handle, the asked `fields` of the answer) when fields are asked, and each
    one not delivered with its input and status. Over every item (`every`), the rows are the
    items' in order, one per item, and carry no input column (a row of an item not delivered
    is null). A fraction of the tokens of one object per result, for a plan that needs a few
    fields of many answers."""
    rows: list[list[Any] | None] = []
    missed: list[dict[str, Any]] = []
    for given, shown in zip(inputs, results, strict=True):
        if "status" in shown:  # no status: delivered
            missed.append({"input": given, **{k: v for k, v in shown.items() if k != "input"}})
            if every:
                rows.append(None)
        elif fields:
            output = cast(dict[str, Any], shown.get("output") or {})
            row = [shown.get("result"), *(output.get(f) for f in fields)]
            rows.append(row if every else [given, *row])
    table: dict[str, Any] = {"delivered": len(results) - len(missed)}
    if fields:
        table["columns"] = ["result", *fields] if every else ["input", "result", *fields]
        table["rows"] = rows
    if missed:
        table["not_delivered"] = missed
    return table


def _frame(subordinate: str, payload: dict[str, Any] | list[Any] | str) -> str:
    if isinstance(payload, str):  # framed already
        return payload
    body = json.dumps(payload, ensure_ascii=False, default=str)
    return wrap(RESULT_TAG, body, subordinate=subordinate)


@dataclass(kw_only=True)
class _Run:
    """What one `Orchestrator.run` keeps between its tool calls."""

    ledger: Ledger
    data: Any
    by_reference: bool = False
    """Whether the job's items are passed by handle (`describe` is set)."""
    items: list[str] = field(default_factory=list[str])
    """By reference: the handles of the job's items, in order (`delegate_each` over "all")."""
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
        quarantine: bool = True,
        actions: Sequence[SideEffect] = (),
        action_policy: ActionPolicy | None = None,
        describe: Sequence[str] | None = None,
        fan_out: int = 8,
    ) -> None:
        """`tools` are read-only helpers whose results the orchestrator reads as they are (keep
        untrusted content out of them: give it to a subordinate's `source`); anything that
        changes the world goes in `actions`. `quarantine=False` opts out of the safe mode.

        `describe` passes the job's items by reference (`handoffs.orchestrator` `_reference`):
        the orchestrator is shown each item's handle and these fields, its delegate tools take
        handles, and `delegate_each` runs one tool on many items, `fan_out` at a time."""
        names = [s.name for s in subordinates] + [a.name for a in actions]
        if describe is not None:
            names.append(FAN_OUT)
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
        self.describe = tuple(describe) if describe is not None else None
        self.fan_out = fan_out

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
            describe=spec.describe,
        )

    async def _handoff(
        self, sub: Subordinate[Any, Any], run: _Run, asked: dict[str, Any]
    ) -> dict[str, Any] | str:
        """One delegation the orchestrator asked for (`asked`: the tool's arguments, handles
        unresolved): the loop guards, the handles, the source, the session; what it is shown (a
        refusal by the action policy comes framed as it is)."""
        if self._handoffs >= self.max_handoffs:
            error = f"the job's limit of {self.max_handoffs} handoffs is reached"
            return {"status": "refused", "error": error}
        depth = _DEPTH.get()
        if depth >= self.max_depth:
            return {"status": "refused", "error": "maximum delegation depth"}
        if run.by_reference and (why := refused_handles(asked, run.ledger)) is not None:
            return {"status": "refused", "error": why}
        same = json.dumps([sub.name, asked], sort_keys=True, default=str)
        if run.repeats[same] >= self.max_repeats:
            error = f"this exact delegation was already made {self.max_repeats} times"
            return {"status": "refused", "error": error}
        value = (
            resolved(sub.input_type, asked, run.ledger)
            if run.by_reference
            else run.ledger.resolve(asked)
        )
        try:
            task_input: Any = sub.input_type.model_validate(value)  # handles read as data
        except ValidationError as exc:  # where, never what: the values may be payloads
            where = sorted({".".join(str(p) for p in e["loc"]) or "input" for e in exc.errors()})
            error = f"not a valid {sub.input_type.__name__}: check {', '.join(where)}"
            return {"status": "refused", "error": error}
        if sub.source is not None:  # fetching reaches the world: its arguments follow the plan
            policy = self.action_policy
            admission = admit(sub.name, asked, ledger=run.ledger, policy=policy, data=run.data)
            if admission.refused and policy.enforce:
                return refuse(sub.name, admission, run.actions)  # framed as an action's
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
                error = run.ledger.show_message("tool_result", sub.name, str(exc))
                kind = f"source failed: {type(exc).__name__}"
                return {"status": "failed", "error_kind": kind, "error": error}
        task = sub.task(task_input)
        token = _DEPTH.set(depth + 1)
        try:
            delivery = await self.session.delegate(task)
        except BudgetExceeded as exc:  # the job's own ledger speaks: no outside text
            return {"status": "failed", "handoff": task.id, "error": str(exc)}
        except HandoffError as exc:  # carries what providers, models and judges said
            error = run.ledger.show_message("provider_message", sub.name, str(exc))
            kind = type(exc).__name__
            return {"status": "failed", "handoff": task.id, "error_kind": kind, "error": error}
        finally:
            _DEPTH.reset(token)
        record = delivery.record
        output, hidden = record.output, list[str]()
        if not record.degraded:  # a fallback is the roster's own text, not a subordinate's
            passed = frozenset(v.check for v in record.verdicts if v.passed)
            schema = json_schema_of(sub.output_type)
            output, hidden = run.ledger.show_answer(sub.name, schema, record.output, passed)
        if run.by_reference:  # the answer by its handle and its constrained fields
            origin = Origin(kind="free_text", source=sub.name)
            ref = run.ledger.quarantine.refer(record.output, origin, kind=f"result:{sub.name}")
            shown = {"result": ref, "output": visible(output)}
            if record.status != "delivered":  # no status: delivered
                shown = {"status": record.status, **shown}
            return shown
        payload: dict[str, Any] = {
            "status": record.status,
            "handoff": task.id,
            "output": output,
            "model": record.model,
            "cost_usd": str(record.cost_usd),
        }
        if hidden:
            payload["quarantined"] = hidden
        return payload

    def _tool(self, sub: Subordinate[Any, Any], run: _Run) -> Tool[Any]:
        description = sub.description or sub.instructions
        if run.by_reference:

            async def by_reference(ctx: RunContext[Any], **asked: Any) -> str:
                return _frame(sub.name, await self._handoff(sub, run, asked))

            params = reference_schema(sub.input_type)
            return Tool.from_schema(by_reference, sub.name, description, params, takes_ctx=True)

        async def delegate(ctx: RunContext[Any], request: Any) -> str:
            asked = request.model_dump(mode="json")
            return _frame(sub.name, await self._handoff(sub, run, asked))

        delegate.__annotations__ = {
            "ctx": RunContext[Any],
            "request": sub.input_type,
            "return": str,
        }
        return Tool(delegate, takes_ctx=True, name=sub.name, description=description)

    def _fan_out_tool(self, run: _Run) -> Tool[Any]:
        """`delegate_each`: one subordinate tool on many inputs in one call, each a handoff
        of its own (routing, checks, budget, tracing), `fan_out` at a time."""
        by_name = {s.name: s for s in self.subordinates}

        async def delegate_each(
            ctx: RunContext[Any],
            tool: str,
            inputs: list[Any] | str,
            fields: list[str] | None = None,
        ) -> str:
            sub = by_name.get(tool)
            if sub is None:
                return _frame(tool, {"status": "refused", "error": f"no tool named {tool!r}"})
            every = isinstance(inputs, str)
            if isinstance(inputs, str):
                if inputs != ALL_ITEMS:
                    error = f'inputs is a list of handles or objects, or "{ALL_ITEMS}"'
                    return _frame(tool, {"status": "refused", "error": error})
                inputs = list(run.items)
            results: list[dict[str, Any]] = [{} for _ in inputs]
            slots = anyio.Semaphore(self.fan_out)

            async def one(index: int, item: Any) -> None:  # in order: a handle is not echoed
                asked = {"ref": item} if isinstance(item, str) else item
                # the limit is held while a handoff is made, not around asking for it: a
                # durable job's steps then start in the fan-out's order (`HANDOFF_SLOTS`)
                HANDOFF_SLOTS.set(slots)
                if not isinstance(asked, dict):
                    shown: dict[str, Any] | str = {
                        "status": "refused",
                        "error": "an input is a handle or an object",
                    }
                else:
                    shown = await self._handoff(sub, run, cast(dict[str, Any], asked))
                if isinstance(shown, str):  # the action policy's framed refusal
                    shown = {"status": "refused", "refusal": shown}
                results[index] = shown if isinstance(item, str) else {"input": item, **shown}

            async with anyio.create_task_group() as group:
                for index, item in enumerate(inputs):
                    group.start_soon(one, index, item)
            if fields is None:
                return _frame(tool, results)
            return _frame(tool, fan_out_table(inputs, results, fields, every=every))

        names = [s.name for s in self.subordinates]
        params: dict[str, Any] = {
            "type": "object",
            "properties": {
                "tool": {"type": "string", "enum": names, "description": "The tool to run"},
                "inputs": {
                    "anyOf": [
                        {
                            "type": "array",
                            "items": {"anyOf": [HANDLE, {"type": "object"}]},
                        },
                        {"const": ALL_ITEMS},
                    ],
                    "description": "Per run: an item's handle, or the tool's arguments (with "
                    f'handles); "{ALL_ITEMS}": every item',
                },
                "fields": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Show only these fields, as table rows (input, result "
                    'handle, fields; no input over "all"); []: counts and failures',
                },
            },
            "required": ["tool", "inputs"],
            "additionalProperties": False,
        }
        description = (
            "Run one tool on many inputs in parallel, a handoff each. Results come in input "
            "order; one without status was delivered."
        )
        return Tool.from_schema(delegate_each, FAN_OUT, description, params, takes_ctx=True)

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
        ledger = Ledger(goal=goal, data=data, redact=self.quarantine)
        run = _Run(ledger=ledger, data=data, by_reference=self.describe is not None)
        shown = data if self.describe is None else describe_items(ledger, data, self.describe)
        if run.by_reference and isinstance(shown, list):
            listed = cast(list[Any], shown)
            run.items = [
                str(cast(dict[str, Any], i)["ref"])
                for i in listed
                if isinstance(i, dict) and "ref" in i
            ]
        self._log_opt_outs()
        tools: list[Tool[Any] | Callable[..., Any]] = [
            *self._extra_tools,
            *(self._tool(s, run) for s in self.subordinates),
            *([self._fan_out_tool(run)] if run.by_reference else []),
            *(
                guarded_tool(
                    a, ledger=run.ledger, policy=self.action_policy, log=run.actions, data=data
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
            prompt += "\n\n" + wrap(DATA_TAG, json.dumps(shown, ensure_ascii=False, default=str))
            if run.by_reference:
                prompt += "\n\n" + REFERENCE_NOTE
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
                    model_settings=helm.settings,
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
            orchestrator_cache_read_tokens=helm.cache_read_tokens,
            orchestrator_cache_saved_usd=helm.cache_saved_usd,
            error=error,
            messages=messages,
            actions=tuple(run.actions),
            quarantined=run.ledger.quarantine.held,
            quarantine=self.quarantine,
            orchestrator_input_tokens=sum(
                m.usage.input_tokens for m in messages if isinstance(m, ModelResponse)
            ),
            orchestrator_output_tokens=sum(
                m.usage.output_tokens for m in messages if isinstance(m, ModelResponse)
            ),
        )

    def _log_opt_outs(self) -> None:
        if not self.quarantine:
            logger.warning(
                "orchestrator %s: quarantine is off (opt-out): subordinates' free text, provider "
                "messages and tool results are shown to it, and everything it composes after "
                "reading them is refused by side effects that do not accept them",
                self.model_id,
            )
        if self.actions and not self.action_policy.enforce:
            logger.warning(
                "orchestrator %s: the action policy is not enforced (opt-out): side effects run "
                "whatever their arguments' origins",
                self.model_id,
            )
