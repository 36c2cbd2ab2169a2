"""The batch lane's engine half: a task as one request of a provider batch, and a batch's answer
taken as a handoff's first attempt.

```
plan_batch(session, task, batch_model)   which model (the first on the task's first rung with a
                                         batch API), the request it would send on its own
                                         (the thin path's parameters), what to hold for it
  ... the lane submits, waits and reads the batch (handoffs.jobs.BatchLane) ...
read_answer(plan, result)                the batch's result for the task: answered (typed), an
                                         invalid answer, or a fault (errored, expired, canceled)
session.prepare(task, batched=answer)    the handoff: the answer is its first attempt
  -> take_batched(...)                   charged at the batch price, checked as usual;
                                         passed: delivered; otherwise the ordinary route
```
The request is the one `Caller` makes for the task on that model: the same rendered prompt and the
same `ModelRequestParameters` the pydantic-ai agent would send (captured once per model and
output type by running the agent against a model that records them and answers nothing), encoded
by pydantic-ai's own `Model.batch_encode`; results are read by `Model.batch_decode` and
`read_output`, as a thin call reads its response.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import TypeAdapter
from pydantic_ai import Agent
from pydantic_ai.exceptions import UnexpectedModelBehavior
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, UserPromptPart
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.batch import BatchRequest, BatchResult
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from handoffs.catalog import ModelEntry, reserved_input_tokens, token_bound
from handoffs.engine._call import output_spec
from handoffs.engine._prompt import render
from handoffs.engine._thin import read_output, thin_eligible
from handoffs.handoff import FaultKind
from handoffs.providers import classify
from handoffs.task import Task

__all__ = [
    "BatchAnswer",
    "BatchModels",
    "BatchPlan",
    "batch_urgent",
    "plan_batch",
    "read_answer",
]

BatchModels = Callable[[ModelEntry], Model | None]
"""The model a catalog entry's batches go to, or None when it has no batch API (a `Portfolio`'s
`batch_model`)."""


def batch_urgent(task: Task[Any], kinds: frozenset[str] = frozenset()) -> bool:
    """Whether `task` asks for the batch lane: `urgency="batch"`, or a kind the job batches."""
    return task.urgency == "batch" or task.kind in kinds


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchPlan:
    """One task's place in a batch: the model, the request, what is held for it."""

    task: Task[Any]
    entry: ModelEntry
    model: Model
    """The pydantic-ai model whose batch API takes the request."""
    request: BatchRequest
    parameters: ModelRequestParameters
    hold_usd: Decimal
    """The most the request can cost at the batch price (its prompt bound, `max_output_tokens`)."""
    ordinary_usd: Decimal
    """The same bound at the ordinary price."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchAnswer:
    """What a provider batch answered for one task."""

    model: str
    """The catalog id the batch went to."""
    batch_id: str
    outcome: Literal["answered", "invalid", "fault"]
    """`answered`: a typed output; `invalid`: an answer that does not validate; `fault`: none
    (the request errored, expired or was canceled)."""
    output: Any = None
    error: str | None = None
    fault: FaultKind | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    waited_s: float = 0.0
    """From the batch's submission to its results."""


class _Recorder(WrapperModel):
    """Records the request parameters the agent sends, and answers nothing usable (the agent
    then gives up on its output at once: `retries={"output": 0}`)."""

    parameters: ModelRequestParameters | None = None

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        self.parameters = dataclasses.replace(model_request_parameters, instruction_parts=None)
        return ModelResponse(parts=[])


_parameters: dict[tuple[int, str, type[Any]], ModelRequestParameters] = {}


async def request_parameters(
    model: Model, entry: ModelEntry, output_type: type[Any]
) -> ModelRequestParameters:
    """The parameters the engine's agent sends `model` for `output_type` (captured once)."""
    key = (id(model), entry.structured_output, output_type)
    found = _parameters.get(key)
    if found is None:
        recorder = _Recorder(model)
        agent = Agent(
            recorder,
            output_type=output_spec(entry, output_type),
            retries={"output": 0, "tools": 0},
        )
        try:
            await agent.run("?")
        except UnexpectedModelBehavior:
            pass
        assert recorder.parameters is not None, "the agent made no request"
        found = _parameters[key] = recorder.parameters
    return found


async def plan_batch(
    task: Task[Any], ladder: list[list[ModelEntry]], batch_models: BatchModels
) -> BatchPlan | str:
    """The batch request of `task` on the first model of its first rung (`ladder`, the route's
    rungs) with a batch API, or why it takes the ordinary route."""
    if "tools" in task.requires or not thin_eligible(task.output_type):
        return "the batch lane takes tool-less tasks with structured output"
    if not ladder:
        return "no route"
    for entry in ladder[0]:
        factor = entry.batch_factor
        if factor is None:
            continue
        if task.deadline_s is not None and task.deadline_s < entry.batch_window_s:
            return f"its {task.deadline_s:g}s deadline is shorter than {entry.id}'s batch window"
        model = batch_models(entry)
        if model is None or model.batch_max_requests is None:
            continue
        instructions, prompt = render(task, entry.prompt_variant)
        parameters = await request_parameters(model, entry, task.output_type)
        messages: list[ModelMessage] = [
            ModelRequest(parts=[UserPromptPart(prompt)], instructions=instructions or None)
        ]
        request = BatchRequest(
            custom_id=task.id,  # a batch may renumber it
            messages=messages,
            model_settings={"max_tokens": task.max_output_tokens},
            model_request_parameters=parameters,
        )
        text = instructions + prompt + task.output_schema_text()
        tokens = reserved_input_tokens(token_bound(text))
        ordinary = entry.cost(tokens, task.max_output_tokens)
        return BatchPlan(
            task=task,
            entry=entry,
            model=model,
            request=request,
            parameters=parameters,
            hold_usd=entry.batch_cost(tokens, task.max_output_tokens),
            ordinary_usd=ordinary,
        )
    return "no model on the first rung has a batch API"


_adapters: dict[type[Any], TypeAdapter[Any]] = {}


def read_answer(
    plan: BatchPlan, result: BatchResult | None, *, batch_id: str, waited_s: float
) -> BatchAnswer:
    """The batch's `result` for `plan`'s task (None: the results left it out), read as a thin
    call reads its response."""
    common: dict[str, Any] = {"model": plan.entry.id, "batch_id": batch_id, "waited_s": waited_s}
    if result is None:
        return BatchAnswer(outcome="fault", error="missing from the batch's results", **common)
    try:
        response = plan.model.batch_decode(result, plan.request)
    except Exception as exc:
        fault = classify(exc)
        detail = fault.detail if fault else f"{type(exc).__name__}: {exc}"
        return BatchAnswer(
            outcome="fault",
            error=f"batch request {result.status}: {detail}"[:300],
            fault=fault.kind if fault else "unavailable",
            **common,
        )
    common["input_tokens"] = response.usage.input_tokens
    common["output_tokens"] = response.usage.output_tokens
    adapter = _adapters.get(plan.task.output_type)
    if adapter is None:
        adapter = _adapters[plan.task.output_type] = TypeAdapter(plan.task.output_type)
    try:
        if response.finish_reason == "length":
            raise UnexpectedModelBehavior("the answer was cut off at max_tokens")
        output = read_output(response, plan.parameters, adapter)
    except UnexpectedModelBehavior as exc:
        return BatchAnswer(outcome="invalid", error=" ".join(str(exc).split())[:300], **common)
    return BatchAnswer(outcome="answered", output=output, **common)
