"""Scripted subordinates for unit tests: a pydantic-ai `FunctionModel` that answers with data.

```python
model = scripted(lambda call: {"category": "billing"} if "invoice" in call.prompt else {"category": "other"})
```
The answer is returned the way the agent asked for output: as a call to its output tool, or as
JSON text. A script can fail like a provider does by raising, e.g. `fail(503)`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

__all__ = ["ScriptCall", "fail", "scripted"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptCall:
    """What a scripted model is asked: the latest user prompt, the instructions, the call number."""

    model: str
    prompt: str
    instructions: str
    number: int
    """1 for the first call this scripted model receives, 2 for the next..."""
    output_schema: dict[str, Any] | None


def fail(status: int, model: str = "scripted") -> ModelHTTPError:
    """A provider-shaped HTTP error for a script to raise (e.g. `raise fail(503)`)."""
    return ModelHTTPError(status, model, body={"error": {"message": f"scripted {status}"}})


def _last_prompt(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart):
                    content = part.content
                    return content if isinstance(content, str) else str(content)
    return ""


def scripted(answer: Callable[[ScriptCall], Any], *, name: str = "scripted") -> FunctionModel:
    """A `FunctionModel` whose every answer is `answer(call)` (sync or async): data, or a str."""
    calls = 0

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        nonlocal calls
        calls += 1
        tool = info.output_tools[0] if info.output_tools else None
        call = ScriptCall(
            model=name,
            prompt=_last_prompt(messages),
            instructions=info.instructions or "",
            number=calls,
            output_schema=tool.parameters_json_schema if tool else None,
        )
        data = answer(call)
        if inspect.isawaitable(data):
            data = await data
        if tool is not None:
            return ModelResponse(parts=[ToolCallPart(tool.name, data)], model_name=name)
        text = data if isinstance(data, str) else json.dumps(data)
        return ModelResponse(parts=[TextPart(text)], model_name=name)

    return FunctionModel(respond, model_name=name)
