"""Fault injection in the fake provider, seen through the real SDKs and pydantic-ai over loopback.

The matrix pins the table in `handoffs.testing.fault`: every fault x {OpenAI wire, Anthropic
wire} x {plain, streaming}, with the SDKs' own retries off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import pytest
import pytest_asyncio
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.exceptions import (
    ContentFilterError,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelContextWindowExceededError,
    ModelHTTPError,
    ModelOverloadedError,
    ModelRateLimitError,
    ModelRequestRejectedError,
    ModelRequestTimeout,
    ModelServerError,
    ModelTimeoutError,
    ModelUnavailableError,
    UnexpectedModelBehavior,
)
from pydantic_ai.models import Model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings

from handoffs.testing import (
    FakeMessage,
    FakeProvider,
    FakeRequest,
    Fault,
    First,
    LoopbackServer,
    Outage,
    Rate,
    Reply,
    ScriptedModel,
    faulty,
    refused_url,
)
from handoffs.testing.fake_provider import NO_RESPONSE
from handoffs.testing.fault import Faulty

Wire = Literal["openai", "anthropic"]
Mode = Literal["plain", "stream"]
MakeModel = Callable[[Wire], Model]
pytestmark = pytest.mark.asyncio(loop_scope="module")
WIRES: tuple[Wire, ...] = ("openai", "anthropic")
MODES: tuple[Mode, ...] = ("plain", "stream")
TEXT = "The quick brown fox jumps over the lazy dog, twice over and again."
TIMEOUT: ModelSettings = {"timeout": 0.2}
LONG_STALL_S = 30.0
"""Far beyond any client timeout here; the server stops stalling as soon as the client hangs up."""


class City(BaseModel):
    name: str
    population: int


def answer(request: FakeRequest) -> Reply:
    """A healthy model: JSON for a structured output, else `TEXT`."""
    if request.output_tool is not None:
        return Reply.json({"name": "Paris", "population": 2_100_000})
    return Reply(text=TEXT)


@pytest.fixture(scope="module")
def fake() -> FakeProvider:
    return FakeProvider()


@pytest.fixture(scope="module")
def server(fake: FakeProvider) -> Iterator[LoopbackServer]:
    with LoopbackServer(fake) as srv:
        yield srv


@pytest.fixture(autouse=True)
def healthy(fake: FakeProvider) -> None:
    """Each test starts with a healthy model "m", no outage and an empty request log."""
    fake.reset()
    fake.add("m", ScriptedModel(answer=answer))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def models(server: LoopbackServer) -> AsyncIterator[MakeModel]:
    """Model "m" on either wire, through SDK clients that never retry (shared: making a client
    costs ~35 ms)."""
    async with (
        AsyncOpenAI(base_url=server.openai_base_url, api_key="t", max_retries=0) as openai,
        AsyncAnthropic(base_url=server.anthropic_base_url, api_key="t", max_retries=0) as anthropic,
    ):

        def make(wire: Wire) -> Model:
            if wire == "openai":
                return OpenAIChatModel("m", provider=OpenAIProvider(openai_client=openai))
            return AnthropicModel("m", provider=AnthropicProvider(anthropic_client=anthropic))

        yield make


async def run(
    model: Model, mode: Mode, output_type: type[Any] = str, settings: ModelSettings | None = None
) -> Any:
    """One agent run, plain (`run`) or streamed (`run_stream`); returns the output."""
    agent = Agent(model, output_type=output_type, model_settings=settings)
    if mode == "plain":
        return (await agent.run("go")).output
    async with agent.run_stream("go") as streamed:
        return await streamed.get_output()


@dataclass(frozen=True, kw_only=True)
class Seen:
    """What the client sees: an error of class `error` with `attrs`, or `output`."""

    error: type[Exception] | None = None
    http: bool = False
    """Whether the error is also a `ModelHTTPError`."""
    attrs: dict[str, object] = field(default_factory=dict[str, object])
    output: object = None
    requests: int = 1
    """How many requests the provider logs (each retry of the agent's output is one more)."""


@dataclass(frozen=True, kw_only=True)
class Case:
    fault: Fault
    seen: Callable[[Wire, Mode], Seen]
    output_type: type[Any] = str
    settings: ModelSettings | None = None


def same(seen: Seen) -> Callable[[Wire, Mode], Seen]:
    return lambda wire, mode: seen


def http(error: type[Exception], status: int, **attrs: object) -> Seen:
    return Seen(error=error, http=True, attrs={"status_code": status, "in_stream": False, **attrs})


READ_CUT = Seen(error=ModelConnectionError, attrs={"phase": "read"})
TIMED_OUT = Seen(error=ModelTimeoutError, attrs={"phase": "read"})
JSON_DECODE = Seen(error=ModelAPIError)
RETRIED_EMPTY = Seen(error=UnexpectedModelBehavior, requests=2)


def cut_clean(wire: Wire, mode: Mode) -> Seen:
    if mode == "plain":
        return JSON_DECODE
    return Seen(output="The quick " if wire == "openai" else "The ")


def overloaded_in_stream(wire: Wire, mode: Mode) -> Seen:
    if mode == "plain":
        return http(ModelOverloadedError, 529)
    if wire == "anthropic":
        return http(ModelOverloadedError, 529, in_stream=True)
    return http(ModelServerError, 500, in_stream=True)  # OpenAI classifies by the error's type


def off_schema_streamed(wire: Wire, mode: Mode) -> Seen:
    # run_stream cannot retry output validation; run does once, then gives up
    return Seen(error=UnexpectedModelBehavior, requests=2 if mode == "plain" else 1)


CASES: dict[str, Case] = {
    "500": Case(fault=Fault.http(500), seen=same(http(ModelServerError, 500))),
    "502 page": Case(fault=Fault.http(502, html=True), seen=same(http(ModelServerError, 502))),
    "503": Case(fault=Fault.http(503), seen=same(http(ModelUnavailableError, 503))),
    "529": Case(fault=Fault.http(529), seen=same(http(ModelOverloadedError, 529))),
    "429": Case(
        fault=Fault.http(429, retry_after_s=1.5),
        seen=same(http(ModelRateLimitError, 429, retry_after=1.5)),
    ),
    "400": Case(fault=Fault.http(400), seen=same(http(ModelRequestRejectedError, 400))),
    "401": Case(fault=Fault.http(401), seen=same(http(ModelAuthenticationError, 401))),
    "context length": Case(
        fault=Fault.context_length(),
        seen=same(http(ModelContextWindowExceededError, 400)),
    ),
    "content filter": Case(fault=Fault.content_filter(), seen=same(Seen(error=ContentFilterError))),
    "content filter after text": Case(
        fault=Fault.content_filter(partial=Reply(text="Partial")), seen=same(Seen(output="Partial"))
    ),
    "content filter 400": Case(
        fault=Fault.content_filter_error(), seen=same(http(ModelRequestRejectedError, 400))
    ),
    "refuse": Case(fault=Fault.refuse(), seen=same(READ_CUT)),
    "refuse, reset": Case(fault=Fault.refuse(cut="reset"), seen=same(READ_CUT)),
    "stall": Case(fault=Fault.stall(LONG_STALL_S), seen=same(TIMED_OUT), settings=TIMEOUT),
    "stall mid-stream": Case(
        fault=Fault.stall_mid_stream(LONG_STALL_S), seen=same(TIMED_OUT), settings=TIMEOUT
    ),
    "truncate": Case(fault=Fault.truncate(), seen=same(READ_CUT)),
    "truncate, reset": Case(fault=Fault.truncate(cut="reset"), seen=same(READ_CUT)),
    "truncate, ended": Case(fault=Fault.truncate(cut="end"), seen=cut_clean),
    "malformed": Case(fault=Fault.malformed(), seen=same(JSON_DECODE)),
    "stream error 529": Case(fault=Fault.stream_error(529), seen=overloaded_in_stream),
    "empty": Case(fault=Fault.empty(), seen=same(RETRIED_EMPTY)),
    "empty, structured": Case(fault=Fault.empty(), seen=same(RETRIED_EMPTY), output_type=City),
    "off schema": Case(fault=Fault.off_schema(), seen=same(Seen(output='{"unexpected": "fault"}'))),
    "off schema, structured": Case(
        fault=Fault.off_schema(), seen=off_schema_streamed, output_type=City
    ),
}


def logged_status(fault: Fault, mode: Mode) -> int:
    if fault.kind == "refuse":
        return NO_RESPONSE
    if fault.kind in ("http", "stream_error") and (fault.kind == "http" or mode == "plain"):
        return fault.status
    if fault.kind in ("context_length", "content_filter_error"):
        return 400
    return 200


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("name", list(CASES))
async def test_fault_matrix(
    name: str, wire: Wire, mode: Mode, fake: FakeProvider, models: MakeModel
) -> None:
    case = CASES[name]
    seen = case.seen(wire, mode)
    fake.add("m", ScriptedModel(answer=faulty(answer, case.fault)))

    if seen.error is None:
        assert await run(models(wire), mode, case.output_type, case.settings) == seen.output
    else:
        with pytest.raises(seen.error) as caught:
            await run(models(wire), mode, case.output_type, case.settings)
        error = caught.value
        assert type(error).__name__ == seen.error.__name__  # no more specific category
        assert isinstance(error, ModelHTTPError) == seen.http
        assert {key: getattr(error, key) for key in seen.attrs} == seen.attrs

    status = logged_status(case.fault, mode)
    stream = mode == "stream"
    expected = [(status, case.fault.kind, stream)] * seen.requests
    assert [(r.status, r.fault, r.stream) for r in fake.requests] == expected


@pytest.mark.parametrize("wire", WIRES)
async def test_provider_error_fields_name_the_cause(
    wire: Wire, fake: FakeProvider, models: MakeModel
) -> None:
    fake.add("m", ScriptedModel(answer=faulty(answer, Fault.context_length())))
    with pytest.raises(ModelContextWindowExceededError) as context:
        await run(models(wire), "plain")
    fake.add("m", ScriptedModel(answer=faulty(answer, Fault.http(529))))
    with pytest.raises(ModelOverloadedError) as overloaded:
        await run(models(wire), "plain")
    fake.add("m", ScriptedModel(answer=faulty(answer, Fault.content_filter_error())))
    with pytest.raises(ModelRequestRejectedError) as blocked:
        await run(models(wire), "plain")
    busy = Fault.http(503, message="The server is overloaded or not ready yet.")
    fake.add("m", ScriptedModel(answer=faulty(answer, busy)))
    with pytest.raises(ModelOverloadedError) as busy_503:
        await run(models(wire), "plain")
    assert isinstance(busy_503.value, ModelHTTPError) and busy_503.value.status_code == 503

    if wire == "openai":
        assert context.value.provider_error_code == "context_length_exceeded"
        assert blocked.value.provider_error_code == "content_filter"
        assert overloaded.value.provider_error_type == "server_error"
    else:
        assert context.value.provider_error_type == "invalid_request_error"
        assert "prompt is too long" in str(context.value.body)
        assert "content filtering policy" in str(blocked.value.body)
        assert overloaded.value.provider_error_type == "overloaded_error"


@pytest.mark.parametrize("wire", WIRES)
async def test_gateway_page_is_the_error_body(wire: Wire, fake: FakeProvider, models: MakeModel):
    fake.add("m", ScriptedModel(answer=faulty(answer, Fault.http(502, html=True))))
    with pytest.raises(ModelServerError) as caught:
        await run(models(wire), "plain")
    assert isinstance(caught.value, ModelHTTPError)
    assert isinstance(caught.value.body, str) and "502 Bad Gateway" in caught.value.body


@pytest.mark.parametrize("wire", WIRES)
async def test_whole_second_retry_after_is_read_from_the_header(
    wire: Wire, fake: FakeProvider, models: MakeModel
):
    fake.add("m", ScriptedModel(answer=faulty(answer, Fault.http(429, retry_after_s=7))))
    with pytest.raises(ModelRateLimitError) as caught:
        await run(models(wire), "stream")
    assert caught.value.retry_after == 7
    assert isinstance(caught.value, ModelHTTPError) and caught.value.headers is not None
    assert caught.value.headers["retry-after"] == "7"


@pytest.mark.parametrize("wire", WIRES)
async def test_first_event_timeout_bounds_a_stalled_stream(
    wire: Wire, fake: FakeProvider, models: MakeModel
):
    fake.add("m", ScriptedModel(answer=faulty(answer, Fault.stall(LONG_STALL_S))))
    with pytest.raises(ModelRequestTimeout) as caught:
        await run(models(wire), "stream", settings={"first_event_timeout": 0.2})
    assert caught.value.setting == "first_event_timeout"
    assert [(r.status, r.fault) for r in fake.requests] == [(200, "stall")]


@pytest.mark.parametrize("wire", WIRES)
async def test_request_timeout_bounds_a_stream_stalled_midway(
    wire: Wire, fake: FakeProvider, models: MakeModel
):
    fake.add("m", ScriptedModel(answer=faulty(answer, Fault.stall_mid_stream(LONG_STALL_S))))
    settings: ModelSettings = {"first_event_timeout": 0.2, "request_timeout": 0.3}
    with pytest.raises(ModelRequestTimeout) as caught:
        await run(models(wire), "stream", settings=settings)
    assert caught.value.setting == "request_timeout"  # the first event did arrive


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wire", WIRES)
async def test_a_short_stall_only_delays_the_answer(
    wire: Wire, mode: Mode, fake: FakeProvider, models: MakeModel
):
    fake.add("m", ScriptedModel(answer=faulty(answer, Fault.stall_mid_stream(0.01))))
    assert await run(models(wire), mode) == TEXT
    fake.add("m", ScriptedModel(answer=faulty(answer, Fault.stall(0.01))))
    assert await run(models(wire), mode) == TEXT


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.truncate(), ModelConnectionError),
        (Fault.malformed(), ModelAPIError),
        (Fault.stream_error(529), ModelAPIError),
    ],
)
async def test_a_stream_broken_midway_has_already_delivered_part_of_the_answer(
    wire: Wire, fault: Fault, error: type[Exception], fake: FakeProvider, models: MakeModel
):
    """Why a failover must buffer: the caller saw the script's first words before the error."""
    fake.add("m", ScriptedModel(answer=faulty(answer, fault)))
    deltas: list[str] = []
    with pytest.raises(error):
        async with Agent(models(wire)).run_stream("go") as streamed:
            async for delta in streamed.stream_text(delta=True, debounce_by=None):
                deltas.append(delta)
    assert deltas and TEXT.startswith("".join(deltas)) and "".join(deltas) != TEXT


@pytest.mark.parametrize("wire", WIRES)
async def test_a_cleanly_ended_truncated_stream_passes_for_a_short_answer(
    wire: Wire, fake: FakeProvider, models: MakeModel
):
    """No error: only the missing provider finish reason gives the truncation away."""
    fake.add("m", ScriptedModel(answer=faulty(answer, Fault.truncate(cut="end"))))
    async with Agent(models(wire)).run_stream("go") as streamed:
        output = await streamed.get_output()
    assert TEXT.startswith(output) and output != TEXT
    details = streamed.response.provider_details or {}
    assert "finish_reason" not in details
    # OpenAIChatModel fills in "stop" for a stream that ends without one; Anthropic leaves None
    assert streamed.response.finish_reason == ("stop" if wire == "openai" else None)


@pytest.mark.parametrize("wire", WIRES)
async def test_a_refusal_after_text_is_an_answer_marked_content_filter(
    wire: Wire, fake: FakeProvider, models: MakeModel
):
    fault = Fault.content_filter(partial=Reply(text="Here is how"))
    fake.add("m", ScriptedModel(answer=faulty(answer, fault)))
    result = await Agent(models(wire)).run("go")
    assert result.output == "Here is how"
    assert result.response.finish_reason == "content_filter"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wire", WIRES)
async def test_refused_url_refuses_before_sending(wire: Wire, mode: Mode):
    with refused_url() as url:
        async with (
            AsyncOpenAI(base_url=f"{url}/v1", api_key="t", max_retries=0) as openai,
            AsyncAnthropic(base_url=url, api_key="t", max_retries=0) as anthropic,
        ):
            model: Model = (
                OpenAIChatModel("m", provider=OpenAIProvider(openai_client=openai))
                if wire == "openai"
                else AnthropicModel("m", provider=AnthropicProvider(anthropic_client=anthropic))
            )
            with pytest.raises(ModelConnectionError) as caught:
                await run(model, mode)
    assert type(caught.value) is ModelConnectionError and caught.value.phase == "connect"


def request(text: str = "hi") -> FakeRequest:
    return FakeRequest(
        wire="openai",
        model="m",
        system="",
        messages=[FakeMessage(role="user", text=text)],
        tools=[],
        output_schema=None,
        stream=False,
        max_tokens=None,
    )


async def injected(script: Faulty, count: int) -> list[bool]:
    """Ask `script` `count` times; True where it answered with a fault."""
    return [isinstance(await script(request()), Fault) for _ in range(count)]


async def test_a_rate_fails_a_seeded_reproducible_share_of_requests():
    first = await injected(faulty(answer, Fault.http(503), when=Rate(0.3, seed=7)), 1000)
    again = await injected(faulty(answer, Fault.http(503), when=Rate(0.3, seed=7)), 1000)
    other = await injected(faulty(answer, Fault.http(503), when=Rate(0.3, seed=8)), 1000)
    assert first == again != other
    assert 250 <= sum(first) <= 350 and 250 <= sum(other) <= 350
    assert sum(await injected(faulty(answer, Fault.http(503), when=Rate(0.0)), 100)) == 0
    assert sum(await injected(faulty(answer, Fault.http(503), when=Rate(1.0)), 100)) == 100


async def test_a_rate_over_the_wire_fails_exactly_the_drawn_requests(
    fake: FakeProvider, models: MakeModel
):
    rate = Rate(0.3, seed=3)
    script = faulty(answer, Fault.http(503), when=rate)
    fake.add("m", ScriptedModel(answer=script))
    outcomes: list[int] = []
    for number in range(1, 21):
        wire: Wire = WIRES[number % 2]
        try:
            await run(models(wire), "plain")
            outcomes.append(200)
        except ModelUnavailableError:
            outcomes.append(503)
    drawn = [503 if rate.fires(n) else 200 for n in range(1, 21)]
    assert outcomes == drawn == [r.status for r in fake.requests]
    assert (script.seen, script.injected) == (20, drawn.count(503))
    assert 0 < script.injected < 20


async def test_first_fails_the_first_requests_then_recovers(fake: FakeProvider, models: MakeModel):
    fake.add("m", ScriptedModel(answer=faulty(answer, Fault.refuse(), when=First(2))))
    for _ in range(2):
        with pytest.raises(ModelConnectionError):
            await run(models("anthropic"), "stream")
    assert await run(models("anthropic"), "stream") == TEXT
    assert [r.status for r in fake.requests] == [NO_RESPONSE, NO_RESPONSE, 200]


async def test_an_outage_switch_fails_every_request_until_it_ends(
    fake: FakeProvider, models: MakeModel
):
    outage = fake.outage("m")  # off until started
    assert await run(models("openai"), "plain") == TEXT
    with outage:
        for wire in WIRES:
            with pytest.raises(ModelUnavailableError):
                await run(models(wire), "plain")
    assert await run(models("anthropic"), "plain") == TEXT

    outage.start()
    with pytest.raises(ModelUnavailableError):
        await run(models("openai"), "stream")
    outage.end()
    assert await run(models("openai"), "stream") == TEXT
    statuses = [(r.status, r.fault) for r in fake.requests]
    ok, down = (200, None), (503, "http")
    assert statuses == [ok, down, down, ok, down, ok]


async def test_an_outage_can_inject_any_fault_and_outlives_a_swapped_script(
    fake: FakeProvider, models: MakeModel
):
    with fake.outage("m", Fault.truncate()):
        fake.add("m", ScriptedModel(answer=lambda r: Reply(text="swapped " * 8)))
        deltas: list[str] = []
        with pytest.raises(ModelConnectionError):
            async with Agent(models("openai")).run_stream("go") as streamed:
                async for delta in streamed.stream_text(delta=True, debounce_by=None):
                    deltas.append(delta)
    assert "".join(deltas).startswith("swapped")  # the swapped script's answer, cut short
    assert await run(models("openai"), "plain") == "swapped " * 8


async def test_an_outage_window_runs_on_its_clock_without_sleeping():
    now = 100.0
    outage = Outage(clock=lambda: now)
    script = faulty(answer, Fault.http(529), when=outage)
    assert not outage.active and outage.ends_at is None

    outage.start(at=110.0, for_s=5.0)  # from t0 = 110 for 5 s
    assert outage.ends_at == 115.0
    seen: list[tuple[float, bool]] = []
    for now in (105.0, 110.0, 114.9, 115.0, 200.0):
        seen.append((now, (await injected(script, 1))[0]))
    assert seen == [(105.0, False), (110.0, True), (114.9, True), (115.0, False), (200.0, False)]

    now = 300.0
    outage.start(for_s=1.0)
    assert outage.active
    outage.end()  # ended early
    assert not outage.active and outage.ends_at == 300.0


async def test_nested_faults_combine_and_a_scripts_own_fault_wins():
    def flaky(request: FakeRequest) -> Reply | Fault:
        return Fault.http(401) if request.last_user_text == "bad key" else Reply(text=TEXT)

    outage = Outage()
    script = faulty(faulty(flaky, Fault.truncate(), when=First(1)), Fault.http(503), when=outage)
    first = await script(request())
    assert isinstance(first, Fault) and first.kind == "truncate"
    assert first.reply == Reply(text=TEXT)  # the script's answer, to be cut short
    with outage:
        down = await script(request())
    assert isinstance(down, Fault) and down.status == 503
    assert await script(request()) == Reply(text=TEXT)

    own = await faulty(flaky, Fault.truncate())(request("bad key"))
    assert isinstance(own, Fault) and own.status == 401


async def test_faults_reject_impossible_settings():
    with pytest.raises(ValueError, match="4xx or 5xx"):
        Fault.http(200)
    with pytest.raises(ValueError, match="truncate"):
        Fault.refuse(cut="end")
    with pytest.raises(ValueError, match="negative"):
        Fault.stall(-1)
    with pytest.raises(ValueError, match="between 0 and 1"):
        Rate(1.5)
    assert Fault(status=503) == Fault.http(503)  # the original constructor still works


async def test_concurrent_faulted_requests_are_each_logged_once(
    fake: FakeProvider, models: MakeModel
):
    script = faulty(answer, Fault.http(529), when=Rate(0.5, seed=1))
    fake.add("m", ScriptedModel(answer=script))
    failures = 0

    async def one(wire: Wire) -> None:
        nonlocal failures
        try:
            await run(models(wire), "stream")
        except ModelOverloadedError:
            failures += 1

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for index in range(40):
                group.start_soon(one, WIRES[index % 2])
    assert len(fake.requests) == 40 == script.seen
    assert [r.status for r in fake.requests].count(529) == failures == script.injected
