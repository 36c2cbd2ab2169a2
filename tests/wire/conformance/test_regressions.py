"""Regression corpus of the wire conformance suite (issue 13).

Every case is a provider response the property tests found breaking one of the engine's promises,
reduced to its smallest form and pinned as an explicit scenario. Each is `xfail(strict=True)`:
the suite is green while the defect stands, and the case turns red (XPASS) the day the engine is
fixed, so its marker can be removed and it becomes a plain regression test. Each case checks only
the invariant its defect breaks (`harness.of_kind`), so fixing one defect flips one case.

The engine file/function each defect comes from is named in the case's docstring.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from .harness import LONG_STALL_S, PRICE_OUT, Scenario, of_kind, run
from .server import WireServer
from .wire import Recipe

Servers = tuple[WireServer, WireServer]


def xfail(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"issue 13: {reason}")


def assert_none(servers: Servers, scenario: Scenario, *kinds: str) -> None:
    found = of_kind(run(scenario, *servers), *kinds)
    assert not found, scenario.short() + "\n  " + "\n  ".join(found)


# -- answers that are not whole, delivered as if they were ------------------------------------


def test_truncated_openai_stream_is_delivered_as_complete_at_zero_cost(servers: Servers) -> None:
    """Half the SSE events of a str answer (role + 5 of 8 content chunks), no finish chunk, no
    usage chunk, no `[DONE]`, then a clean close of an EOF-delimited body. pydantic-ai 2.68 fills
    in `finish_reason='stop'` for such a stream, so `call.Caller.call`'s `reason is None` guard
    never fires on the OpenAI wire: the fragment is delivered, not degraded, at $0.

    Fixed: `Caller` counts a stream as finished only when the wire said so (the raw reason in
    `provider_details`); the fragment is a provider fault (`MalformedResponse`), charged its
    reservation, and the equivalent answers."""
    scenario = Scenario(
        wire="openai",
        stream=True,
        recipes=(Recipe(words=8, edits=(("cut", 6),), framing="close", ending="clean"),),
    )
    assert_none(servers, scenario, "delivery", "cost")


@pytest.mark.parametrize(
    ("wire", "stream"),
    [("openai", False), ("openai", True), ("anthropic", False), ("anthropic", True)],
)
def test_an_answer_cut_off_at_max_tokens_is_delivered_as_complete(
    servers: Servers, wire: str, stream: bool
) -> None:
    """`finish_reason: "length"` (Anthropic `stop_reason: "max_tokens"`) on a str task: the
    provider says it stopped at the token limit, mid-answer. pydantic-ai returns the cut text as
    the run's output; `call.Caller.call` only rejects `content_filter` and a missing reason, so
    the engine delivers the fragment as a complete, verified answer.

    Fixed: `_call._whole` reads a `length` finish as an invalid answer (retried with feedback,
    then escalated), on the agent path and the thin path alike."""
    scenario = Scenario(wire=wire, stream=stream, recipes=(Recipe(finish="length"),))  # type: ignore[arg-type]
    assert_none(servers, scenario, "delivery")


def test_an_unknown_finish_reason_on_plain_openai_is_delivered_as_complete(
    servers: Servers,
) -> None:
    """A plain Chat Completions body with `finish_reason: "guardrail_intervened"` (what a
    gateway's guardrail puts on the text it substituted). pydantic-ai maps the unknown value to
    `finish_reason=None`; `call.Caller.call` only treats None as a broken stream when the entry
    streams, so on a plain call the guardrail's text is delivered as the model's answer.

    Fixed: a plain response from a wire with no finish reason pydantic-ai knows is a
    `MalformedResponse` (a provider fault: failover)."""
    scenario = Scenario(wire="openai", recipes=(Recipe(finish="odd"),))
    assert_none(servers, scenario, "delivery")


# -- provider responses that escape delegate() outside the documented error tree ----------------


def test_empty_choices_escapes_as_a_bare_index_error(servers: Servers) -> None:
    """`{"choices": [], "usage": {...}}` with status 200. pydantic-ai indexes `choices[0]` and
    raises IndexError; `fault.classify` returns None for it and `delegate.Session._turn` re-raises
    it, so the handoff neither fails over nor leaves a record.

    Fixed: `ReadableModel` turns the IndexError into a `MalformedResponse` (a provider fault:
    failover, recorded, charged its reservation since the usage was never read)."""
    scenario = Scenario(wire="openai", recipes=(Recipe(choices="empty"),))
    assert_none(servers, scenario, "escape", "lost")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_usage_missing_escapes_as_attribute_error(servers: Servers, stream: bool) -> None:
    """A Messages response (or `message_start` event) with no `usage` object: pydantic-ai's usage
    mapping reads `None.output_tokens_details`. The AttributeError is not a provider fault to
    `fault.classify`, so `delegate.Session._turn` re-raises it: no failover, no record.

    Fixed: `ReadableModel` turns what an adapter raises on a body it cannot read, plain or
    streamed, into a `MalformedResponse` (failover, recorded, charged its reservation)."""
    scenario = Scenario(wire="anthropic", stream=stream, recipes=(Recipe(usage="missing"),))
    assert_none(servers, scenario, "escape", "lost")


def test_anthropic_stream_not_opening_with_message_start_escapes_as_assertion_error(
    servers: Servers,
) -> None:
    """The first two events swapped (`content_block_start` before `message_start`). pydantic-ai
    asserts the first chunk is a `message_start`; the AssertionError escapes
    `delegate.Session._turn` unsorted (no failover, no record).

    Fixed: as above, `ReadableModel.request_stream`."""
    scenario = Scenario(wire="anthropic", stream=True, recipes=(Recipe(edits=(("swap", 0),)),))
    assert_none(servers, scenario, "escape", "lost")


@pytest.mark.parametrize(
    "recipe",
    [
        Recipe(status=400, cut=0),  # Content-Length 99, nothing sent, FIN
        Recipe(status=500, cut=5, framing="chunked"),  # a chunked error body cut after 5 bytes
        Recipe(status=413, cut=0, ending="abrupt"),  # headers, then an RST: httpx ReadError
    ],
    ids=["400-length", "500-chunked", "413-reset"],
)
def test_openai_stream_error_status_with_a_cut_body_escapes_as_an_httpx_error(
    servers: Servers, recipe: Recipe
) -> None:
    """A streamed Chat Completions request answered by an error status whose body breaks off.
    The openai SDK reads the error body outside its own error mapping, so httpx's
    RemoteProtocolError / ReadError reaches the engine raw; `fault.classify` does not know it (not
    an OSError), and `delegate.Session._turn` re-raises it: no failover, no record. (The same
    plain request is fine, and so is the Anthropic SDK.)

    Fixed: `fault.classify` sorts the HTTP stack's transport errors (httpx's, httpcore's, and
    httpx2's, which this openai SDK talks through) as `unavailable`."""
    scenario = Scenario(wire="openai", stream=True, recipes=(recipe,))
    assert_none(servers, scenario, "escape", "lost")


# -- failover that never happens ------------------------------------------------------------


@pytest.mark.parametrize(
    "recipe",
    [Recipe(status=429, retry_after="0"), Recipe(status=429, retry_after_ms="50")],
    ids=["retry-after-0", "retry-after-ms-50"],
)
def test_persistent_429_is_waited_out_while_the_healthy_equivalent_is_never_called(
    servers: Servers, recipe: Recipe
) -> None:
    """Every request to the primary gets 429 with a Retry-After that fits the deadline. The
    healthy equivalent is on the same rung. `delegate.Session._turn` waits
    (`_wait_for_rate_limit`) and calls the same model again, with no cap on how often, until
    `max_attempts` is spent: HandoffTimeout (or the fallback), the healthy model never called.

    Fixed: `Guard.walk` gives the rung's equivalents their turn first and waits out a 429 only
    once none is left."""
    scenario = Scenario(wire="openai", topology="failover", recipes=(recipe,))
    assert_none(servers, scenario, "liveness")


# -- money --------------------------------------------------------------------------------------


@pytest.mark.parametrize("finish", ["natural", "length"])
def test_a_provider_ignoring_max_tokens_overspends_by_one_response_then_is_out(
    servers: Servers, finish: str
) -> None:
    """`max_tokens: 64` sent; the provider answers and reports 640 completion tokens. The call
    reserved the cost of 64 and the provider billed 640, so a $0.20 budget ends above its limit
    (it ended at $0.26, and with every handoff going back to that provider, at $4.80 on $0.10).

    Fixed as far as it can be: usage past the `max_tokens` sent is an `overrun` provider fault,
    charged in full, that opens the endpoint's breaker at once, so the overspend is that one
    response's excess (out price x (640 - 64)) and no later handoff calls the provider again.
    The same when it says it stopped at the limit (`finish_reason: "length"`): an answer cut off
    "at max_tokens" that ran past them is an overrun, not an invalid answer that leaves the
    breaker closed (seen under load: the half-open trial closed it again)."""
    scenario = Scenario(
        wire="openai",
        budget_usd=Decimal("0.2"),
        max_output_tokens=64,
        recipes=(Recipe(usage="inflated", inflate=10, finish=finish),),  # type: ignore[arg-type]
        delegations=3,
    )
    outcome = run(scenario, *servers)
    found = of_kind(outcome, "escape", "lost", "record", "attempts", "cost", "reserved")
    assert not found, scenario.short() + "\n  " + "\n  ".join(found)
    excess = PRICE_OUT * (640 - 64) / Decimal(1_000_000)
    assert scenario.budget_usd is not None
    assert outcome.delegations[-1].spent <= scenario.budget_usd + excess
    assert [len(d.hostile) for d in outcome.delegations] == [1, 0, 0]
    first, second = outcome.delegations[0].record, outcome.delegations[1].record
    assert first is not None and first.attempts[0].fault == "overrun"
    assert second is not None  # the router drops it: its breaker opened on the overrun
    reasons = {step.model: step.reason for step in second.route_reasons}
    assert reasons["primary"].startswith("unavailable: circuit open"), reasons


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_a_read_timeout_mid_stream_is_recorded_at_zero(servers: Servers, wire: str) -> None:
    """A streamed answer stalls after its first 4 tokens, beyond `request_timeout`. pydantic-ai
    raises ModelRequestTimeout; the run's usage holds only what the provider had *reported* so far:
    nothing on OpenAI (usage comes in the last chunk), so the attempt is recorded at $0; on
    Anthropic the provisional `message_start` figures (input, 1 output token), not the tokens
    streamed since. `delegate.Session._turn` commits that as the call's cost.

    Fixed: a fault after the request was sent (`ProviderFault.billable`) is charged at least the
    call's reservation."""
    scenario = Scenario(
        wire=wire,  # type: ignore[arg-type]
        stream=True,
        recipes=(Recipe(words=8, stall_at=5, stall_s=LONG_STALL_S),),
    )
    assert_none(servers, scenario, "cost")


@pytest.mark.parametrize(("wire", "at"), [("openai", 3), ("anthropic", 4)])
def test_a_provider_error_mid_stream_is_not_charged_for_the_streamed_tokens(
    servers: Servers, wire: str, at: int
) -> None:
    """Two content deltas, then a provider error event (OpenAI `data: {"error": ...}`, Anthropic
    `event: error` overloaded). The failover is right; the cost is not: as with a timeout, only
    usage already reported is charged ($0 on OpenAI).

    Fixed: an error inside a stream is billable: charged at least the reservation."""
    scenario = Scenario(wire=wire, stream=True, recipes=(Recipe(stream_error_at=at),))  # type: ignore[arg-type]
    assert_none(servers, scenario, "cost")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_complete_answer_without_usage_is_recorded_at_zero(
    servers: Servers, stream: bool
) -> None:
    """An OpenAI-compatible server that sends no `usage` (plain) or no usage chunk despite
    `stream_options.include_usage` (stream). The answer is delivered and its attempt recorded at
    $0: `trail.Trail.add` prices only reported usage, so the budget never sees the call.

    Fixed: a response that reports no usage is charged its reservation."""
    scenario = Scenario(wire="openai", stream=stream, recipes=(Recipe(usage="missing"),))
    assert_none(servers, scenario, "cost")


def test_a_response_that_fails_to_parse_is_recorded_at_zero_despite_its_usage(
    servers: Servers,
) -> None:
    """`"choices": null` with a full `usage` object: pydantic-ai rejects the body
    (UnexpectedModelBehavior) before it maps the usage, and `delegate.Session._turn` records the
    invalid_output attempt (and its feedback retry) at $0.

    Fixed: a response that reports no usage is charged its reservation."""
    scenario = Scenario(wire="openai", recipes=(Recipe(choices="null"),))
    assert_none(servers, scenario, "cost")


@xfail("Anthropic pause_turn makes pydantic-ai send more requests than the engine records")
def test_anthropic_pause_turn_makes_requests_no_attempt_records(servers: Servers) -> None:
    """`stop_reason: "pause_turn"`: pydantic-ai continues the paused turn with another request
    inside the same `Agent.run`, despite `UsageLimits(request_limit=1)` in `call.Caller.call`.
    Here one `pause_turn`, then an `end_turn`: two requests, one attempt. A provider that keeps
    answering `pause_turn` gets as many requests as fit in `request_timeout` (19 in 0.8 s on
    loopback), and the single attempt is reserved for one request and charged one request's
    usage (the last)."""
    scenario = Scenario(wire="anthropic", recipes=(Recipe(finish="odd"),), then="healthy")
    assert_none(servers, scenario, "attempts")
