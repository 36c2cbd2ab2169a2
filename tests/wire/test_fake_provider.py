"""The fake provider, reached through the real openai/anthropic SDKs and pydantic-ai over loopback."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal

import httpx2
import pytest
from anthropic import AsyncAnthropic
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import AsyncOpenAI
from pydantic import BaseModel
from pydantic_ai import Agent, NativeOutput
from pydantic_ai.exceptions import (
    ModelHTTPError,
    ModelNotFoundError,
    ModelOverloadedError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models import Model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider

import handoffs.testing
from handoffs.testing import (
    FakeProvider,
    FakeRequest,
    Fault,
    LoopbackServer,
    Reply,
    ScriptedModel,
    ToolCall,
)

Wire = Literal["openai", "anthropic"]
MakeModel = Callable[[Wire, str], Model]
WIRES = pytest.mark.parametrize("wire", ["openai", "anthropic"])


class City(BaseModel):
    name: str
    population: int


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def server(fake: FakeProvider) -> Iterator[LoopbackServer]:
    with LoopbackServer(fake) as srv:
        yield srv


@pytest.fixture
async def models(server: LoopbackServer) -> AsyncIterator[MakeModel]:
    """Models built the documented way: providers given a base URL, closed after the test."""
    async with (
        OpenAIProvider(base_url=server.openai_base_url, api_key="test") as openai,
        AnthropicProvider(base_url=server.anthropic_base_url, api_key="test") as anthropic,
    ):

        def make(wire: Wire, model_id: str) -> Model:
            if wire == "openai":
                return OpenAIChatModel(model_id, provider=openai)
            return AnthropicModel(model_id, provider=anthropic)

        yield make


@pytest.fixture
async def unretried(server: LoopbackServer) -> AsyncIterator[MakeModel]:
    """Models whose SDK clients never retry, so a fault surfaces on the first answer."""
    async with (
        AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0) as openai,
        AsyncAnthropic(
            base_url=server.anthropic_base_url, api_key="test", max_retries=0
        ) as anthropic,
    ):

        def make(wire: Wire, model_id: str) -> Model:
            if wire == "openai":
                return OpenAIChatModel(model_id, provider=OpenAIProvider(openai_client=openai))
            return AnthropicModel(model_id, provider=AnthropicProvider(anthropic_client=anthropic))

        yield make


def script(fake: FakeProvider, answer: Callable[[FakeRequest], Reply | Fault]) -> None:
    fake.add("m", ScriptedModel(answer=answer))


def lookup_then_answer(request: FakeRequest) -> Reply:
    """Call `lookup` first, then answer with what it returned."""
    if not request.tool_results:
        return Reply(tool_calls=[ToolCall(name="lookup", arguments={"city": "Paris"})])
    return Reply(text=f"lookup said {request.tool_result('lookup')}")


def agent_with_lookup(model: Model) -> Agent[None, str]:
    agent = Agent(model)

    @agent.tool_plain
    def lookup(city: str) -> str:  # pyright: ignore[reportUnusedFunction]
        return f"{city}=2100000"

    return agent


@WIRES
async def test_text_reply_becomes_agent_output(wire: Wire, fake: FakeProvider, models: MakeModel):
    script(fake, lambda r: Reply(text=f"echo: {r.last_user_text} / {r.system}"))
    agent = Agent(models(wire, "m"), instructions="Be brief.")

    result = await agent.run("hello")

    assert result.output == "echo: hello / Be brief."
    [logged] = fake.requests
    assert (logged.wire, logged.model, logged.status, logged.stream) == (wire, "m", 200, False)


@WIRES
async def test_json_reply_fills_default_tool_output(
    wire: Wire, fake: FakeProvider, models: MakeModel
):
    seen: list[FakeRequest] = []

    def answer(request: FakeRequest) -> Reply:
        seen.append(request)
        return Reply.json({"name": "Paris", "population": 2_100_000})

    script(fake, answer)
    result = await Agent(models(wire, "m"), output_type=City).run("biggest French city?")

    assert result.output == City(name="Paris", population=2_100_000)
    # pydantic-ai would also accept bare JSON text here: pin that it came as an output tool call
    response = result.all_messages()[1]
    assert isinstance(response, ModelResponse)
    assert [type(p).__name__ for p in response.parts] == ["ToolCallPart"]
    [request] = seen
    assert request.output_tool is not None and request.output_tool.name == "final_result"
    assert request.tool_choice == "required"
    assert request.output_schema is None


@WIRES
async def test_non_object_json_is_wrapped_for_scalar_tool_output(
    wire: Wire, fake: FakeProvider, models: MakeModel
):
    script(fake, lambda r: Reply.json(42))
    result = await Agent(models(wire, "m"), output_type=int).run("answer?")
    assert result.output == 42


async def test_native_output_is_sent_as_response_format(fake: FakeProvider, models: MakeModel):
    seen: list[FakeRequest] = []

    def answer(request: FakeRequest) -> Reply:
        seen.append(request)
        return Reply.json({"name": "Lyon", "population": 520_000})

    script(fake, answer)
    result = await Agent(models("openai", "m"), output_type=NativeOutput(City)).run("a city")

    assert result.output == City(name="Lyon", population=520_000)
    [request] = seen
    assert request.tools == []
    assert request.output_schema is not None
    assert set(request.output_schema["properties"]) == {"name", "population"}
    body = fake.requests[0].body
    assert body is not None and body["response_format"]["type"] == "json_schema"


@WIRES
async def test_tool_call_round_trip_is_logged_once_per_request(
    wire: Wire, fake: FakeProvider, models: MakeModel
):
    script(fake, lookup_then_answer)

    result = await agent_with_lookup(models(wire, "m")).run("population of Paris?")

    assert result.output == "lookup said Paris=2100000"
    assert [(e.model, e.status) for e in fake.requests] == [("m", 200), ("m", 200)]
    second = fake.requests[1].request
    assert second is not None
    [call] = second.messages[-2].tool_calls
    assert (call.name, call.arguments) == ("lookup", {"city": "Paris"})
    [result_message] = second.tool_results
    assert (result_message.tool_call_id, result_message.tool_name) == (call.id, "lookup")


@WIRES
async def test_streamed_text_arrives_in_several_deltas(
    wire: Wire, fake: FakeProvider, models: MakeModel
):
    text = "The quick brown fox jumps over the lazy dog, twice over."
    script(fake, lambda r: Reply(text=text, input_tokens=11, output_tokens=13))

    async with Agent(models(wire, "m")).run_stream("go") as run:
        deltas = [delta async for delta in run.stream_text(delta=True, debounce_by=None)]

    assert "".join(deltas) == text
    assert len(deltas) > 1
    assert (run.usage.input_tokens, run.usage.output_tokens) == (11, 13)
    [logged] = fake.requests
    assert logged.stream is True


@WIRES
async def test_streamed_tool_call_arguments_are_reassembled(
    wire: Wire, fake: FakeProvider, models: MakeModel
):
    long_city = "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch"

    def answer(request: FakeRequest) -> Reply:
        if not request.tool_results:
            return Reply(tool_calls=[ToolCall(name="lookup", arguments={"city": long_city})])
        return Reply(text=f"lookup said {request.tool_result('lookup')}")

    script(fake, answer)
    async with agent_with_lookup(models(wire, "m")).run_stream("population?") as run:
        output = await run.get_output()

    assert output == f"lookup said {long_city}=2100000"
    assert [e.stream for e in fake.requests] == [True, True]


@WIRES
async def test_scripted_and_estimated_tokens_reach_run_usage(
    wire: Wire, fake: FakeProvider, models: MakeModel
):
    script(fake, lambda r: Reply(text="x" * 40, input_tokens=123, output_tokens=45))
    scripted_usage = (await Agent(models(wire, "m")).run("count me")).usage
    assert (scripted_usage.input_tokens, scripted_usage.output_tokens) == (123, 45)

    script(fake, lambda r: Reply(text="x" * 40))
    estimated = (await Agent(models(wire, "m")).run("count me")).usage
    assert estimated.output_tokens == 10  # 40 characters at ~4 a token
    assert [(e.input_tokens, e.output_tokens) for e in fake.requests] == [
        (123, 45),
        (estimated.input_tokens, 10),
    ]


@WIRES
@pytest.mark.parametrize("status", [500, 503, 529])
async def test_server_fault_surfaces_as_model_http_error(
    wire: Wire, status: int, fake: FakeProvider, unretried: MakeModel
):
    script(fake, lambda r: Fault(status=status))
    with pytest.raises(ModelHTTPError) as caught:
        await Agent(unretried(wire, "m")).run("hi")
    assert caught.value.status_code == status
    if status == 529:
        assert isinstance(caught.value, ModelOverloadedError)
    assert [e.status for e in fake.requests] == [status]


@WIRES
async def test_rate_limit_fault_carries_retry_after(
    wire: Wire, fake: FakeProvider, unretried: MakeModel
):
    script(fake, lambda r: Fault(status=429, retry_after_s=7))
    with pytest.raises(ModelRateLimitError) as caught:
        await Agent(unretried(wire, "m")).run("hi")
    assert isinstance(caught.value, ModelHTTPError) and caught.value.status_code == 429
    assert caught.value.retry_after == 7


@WIRES
async def test_stall_beyond_client_timeout_raises_timeout(
    wire: Wire, fake: FakeProvider, unretried: MakeModel
):
    script(fake, lambda r: Fault(stall_s=60))
    agent = Agent(unretried(wire, "m"), model_settings={"timeout": 0.2})
    with pytest.raises(ModelTimeoutError):
        await agent.run("hi")
    assert len(fake.requests) == 1


@WIRES
async def test_unknown_model_is_a_provider_shaped_404(
    wire: Wire, fake: FakeProvider, unretried: MakeModel
):
    with pytest.raises(ModelNotFoundError) as caught:
        await Agent(unretried(wire, "nope")).run("hi")
    assert isinstance(caught.value, ModelHTTPError) and caught.value.status_code == 404
    [logged] = fake.requests
    assert (logged.model, logged.status) == ("nope", 404)


async def test_script_exception_becomes_500_naming_it(fake: FakeProvider, unretried: MakeModel):
    def broken(request: FakeRequest) -> Reply:
        raise LookupError("no such fixture")

    script(fake, broken)
    with pytest.raises(ModelHTTPError) as caught:
        await Agent(unretried("openai", "m")).run("hi")
    assert caught.value.status_code == 500
    assert "no such fixture" in str(caught.value.body)


async def test_async_script_with_latency_and_swapped_behaviour(
    fake: FakeProvider, models: MakeModel
):
    async def answer(request: FakeRequest) -> Reply:
        await asyncio.sleep(0)
        return Reply(text="first")

    fake.add("m", ScriptedModel(answer=answer, latency_s=0.01))
    agent = Agent(models("anthropic", "m"))
    assert (await agent.run("a")).output == "first"
    script(fake, lambda r: Reply(text="second"))
    assert (await agent.run("b")).output == "second"


async def test_models_endpoint_lists_scripted_ids(fake: FakeProvider, server: LoopbackServer):
    script(fake, lambda r: Reply(text=""))
    fake.add("other", ScriptedModel(answer=lambda r: Reply(text="")))
    async with AsyncOpenAI(
        base_url=server.openai_base_url, api_key="test", max_retries=0
    ) as client:
        page = await client.models.list()
    assert [m.id for m in page.data] == ["m", "other"]


async def test_unreadable_body_is_a_400(fake: FakeProvider, server: LoopbackServer):
    async with httpx2.AsyncClient(base_url=server.base_url) as client:
        bad_json = await client.post("/v1/chat/completions", content=b"{nope")
        bad_shape = await client.post("/v1/messages", json={"model": "m", "messages": "hi"})
        no_route = await client.get("/v2/elsewhere")
    assert (
        bad_json.status_code == 400 and bad_json.json()["error"]["type"] == "invalid_request_error"
    )
    assert bad_shape.status_code == 400 and bad_shape.json()["type"] == "error"
    assert no_route.status_code == 404
    assert [e.status for e in fake.requests] == [400, 400]


async def _exchange_everywhere(server: LoopbackServer) -> list[str]:
    """Ask model "m" once per wire and mode through the bare SDKs; return the four texts."""
    prompt: list[Any] = [{"role": "user", "content": "hi"}]
    async with (
        AsyncOpenAI(base_url=server.openai_base_url, api_key="t", max_retries=0) as openai,
        AsyncAnthropic(base_url=server.anthropic_base_url, api_key="t", max_retries=0) as anthropic,
    ):
        plain = await openai.chat.completions.create(model="m", messages=prompt)
        chunks = await openai.chat.completions.create(model="m", messages=prompt, stream=True)
        streamed = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        message = await anthropic.messages.create(model="m", max_tokens=10, messages=prompt)
        async with anthropic.messages.stream(model="m", max_tokens=10, messages=prompt) as events:
            anthropic_streamed = await events.get_final_text()
    anthropic_plain = "".join(block.text for block in message.content if block.type == "text")
    return [plain.choices[0].message.content or "", streamed, anthropic_plain, anthropic_streamed]


def test_any_text_survives_both_wires_streamed_and_not():
    fake = FakeProvider()
    with LoopbackServer(fake) as server:

        @settings(max_examples=15, deadline=None)
        @given(text=st.text(min_size=1, max_size=200))
        def check(text: str) -> None:
            script(fake, lambda r: Reply(text=text))
            assert asyncio.run(_exchange_everywhere(server)) == [text] * 4

        check()


def test_server_lifecycle_leaves_no_thread_behind():
    server = LoopbackServer(FakeProvider())
    with pytest.raises(RuntimeError):
        _ = server.base_url
    server.stop()  # not started: nothing to do
    url = server.start()
    assert url.startswith("http://127.0.0.1:") and server.openai_base_url == f"{url}/v1"
    with pytest.raises(RuntimeError):
        server.start()
    server.stop()
    assert not any(t.name == "handoffs-loopback-server" for t in threading.enumerate())
    with handoffs.testing.serve(FakeProvider()) as again:
        assert again.anthropic_base_url.startswith("http://127.0.0.1:")


def test_public_names_are_pinned():
    assert handoffs.testing.__all__ == sorted(handoffs.testing.__all__)
    assert handoffs.testing.__all__ == [
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
