"""Test doubles at the wire: a fake OpenAI/Anthropic server with scripted models.

provider = FakeProvider({"small": ScriptedModel(answer=lambda request: Reply(text="hi"))})
with LoopbackServer(provider) as server:
    model = OpenAIChatModel("small", provider=OpenAIProvider(base_url=server.openai_base_url, api_key="test"))
"""

from ._script import Script, estimate_tokens
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
from .server import LoopbackServer, serve

__all__ = [
    "FakeMessage",
    "FakeProvider",
    "FakeRequest",
    "FakeTool",
    "Fault",
    "LoggedRequest",
    "LoopbackServer",
    "Reply",
    "Script",
    "ScriptedModel",
    "ToolCall",
    "estimate_tokens",
    "serve",
]
