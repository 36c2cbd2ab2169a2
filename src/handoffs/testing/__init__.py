"""Test doubles at the wire: a fake OpenAI/Anthropic server with scripted models, and faults.

provider = FakeProvider({"small": ScriptedModel(answer=lambda request: Reply(text="hi"))})
with LoopbackServer(provider) as server:
    model = OpenAIChatModel("small", provider=OpenAIProvider(base_url=server.openai_base_url, api_key="test"))

Faults (`handoffs.testing.fault` tables what a client sees for each): a script returns
`Fault.http(503)` for one request; `faulty(script, Fault.truncate(), when=Rate(0.3, seed=1))`
fails a reproducible 30 %; `with provider.outage("small"): ...` fails every request meanwhile.
"""

from ._script import FaultKind, Script, estimate_tokens
from .fake_provider import (
    FakeMessage,
    FakeProvider,
    FakeRequest,
    FakeTool,
    Fault,
    LoggedRequest,
    Reply,
    ScriptedModel,
    ToolCall,
)
from .fault import Faulty, First, Outage, Rate, Trigger, faulty
from .server import LoopbackServer, refused_url, serve

__all__ = [
    "FakeMessage",
    "FakeProvider",
    "FakeRequest",
    "FakeTool",
    "Fault",
    "FaultKind",
    "Faulty",
    "First",
    "LoggedRequest",
    "LoopbackServer",
    "Outage",
    "Rate",
    "Reply",
    "Script",
    "ScriptedModel",
    "ToolCall",
    "Trigger",
    "estimate_tokens",
    "faulty",
    "refused_url",
    "serve",
]
