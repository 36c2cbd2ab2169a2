"""Provider responses from recipes, and an independent reading of what was really sent.

A `Recipe` says how one response goes wrong (or right), independently of the request; `realize`
turns it into a `Reply` for the request the SDK really sent (its wire, model, `max_tokens`, whether
it streams, whether it offered the `final_result` tool). `judge` re-parses the body bytes the
server really wrote, from the OpenAI Chat Completions and Anthropic Messages specs alone, and says
whether they held a complete answer, what it was, and what a provider bills for it.

Tokens: every token the server generates is at least four characters long (a word with its space,
or a 4-6 character slice of JSON), so the count of tokens really streamed is never more than a
chars/4 estimate of the text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .server import Framing, Reply, Request, Segment

__all__ = ["Recipe", "Truth", "healthy", "judge", "realize", "wire_of"]

Wire = Literal["openai", "anthropic"]
Content = Literal["fit", "text", "tool-bad", "empty", "blank", "null", "html"]
Finish = Literal["natural", "missing", "null", "length", "content_filter", "mismatch", "odd"]
Usage = Literal["exact", "missing", "zero", "inflated"]
Choices = Literal["one", "empty", "missing", "null", "two"]
ErrorBody = Literal["json", "html", "empty", "context_length", "content_filter"]
ContentType = Literal["right", "wrong", "missing"]

WORDS = (
    " alpha",
    " bravo",
    " charlie",
    " delta",
    " echo",
    " foxtrot",
    " golf",
    " hotel",
    " india",
    " juliet",
    " kilo",
    " lima",
    " mike",
    " november",
    " oscar",
    " papa",
)
UNICODE_WORDS = (" café", " naïve", " façade", " 東京都庁", " Ελλάδα", " emoji😀🚀")
TOOL = "final_result"
GOOD_ARGS = {"category": "billing", "priority": 2}
BAD_ARGS = {"category": "refund", "priority": "soon"}


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """How one response is made. The defaults are a healthy provider."""

    status: int = 200
    error_body: ErrorBody = "json"
    retry_after: str | None = None
    retry_after_ms: str | None = None
    content: Content = "fit"
    words: int = 5
    finish: Finish = "natural"
    usage: Usage = "exact"
    inflate: int = 10
    """With `usage="inflated"`: report this many times the request's max_tokens as output."""
    choices: Choices = "one"
    edits: tuple[tuple[str, int], ...] = ()
    """On a stream's events, in order (see `_edit`): ("drop", i), ("dup", i), ("swap", i) with
    i+1, ("cut", i): end the stream before event i; ("drop-content", i), ("swap-content", i) on
    answer-token events only. Indexes are taken modulo the number of events they apply to."""
    done: bool = True
    """OpenAI's `data: [DONE]`; Anthropic's `message_stop`."""
    stream_error_at: int | None = None
    """Insert a provider error event before this event (modulo the count)."""
    framing: Framing | None = None
    """None: `length` for JSON, `chunked` for a stream."""
    cut: int | None = None
    """Stop after this many body bytes (modulo the body's length + 1)."""
    ending: Literal["keep", "clean", "abrupt"] = "keep"
    stall_headers_s: float = 0.0
    stall_at: int | None = None
    """Stall before this segment (modulo the count)."""
    stall_s: float = 0.0
    content_type: ContentType = "right"
    pieces: int = 1
    """A JSON body is written in this many segments (so a stall can fall inside it)."""
    unicode: bool = False
    """Text tokens with multi-byte UTF-8 characters."""
    split_writes: bool = False
    """Write every SSE event in two writes, split at its middle byte (maybe inside a character)."""
    pings: bool = False
    """SSE comments (`: keep-alive`) and Anthropic `ping` events between the events."""
    crlf: bool = False
    """SSE lines end with CRLF instead of LF."""


def wire_of(request: Request) -> Wire:
    return "anthropic" if request.path.rstrip("/").endswith("/messages") else "openai"


def _wants_tool(request: Request) -> bool:
    tools = request.json.get("tools") if isinstance(request.json, dict) else None
    if not isinstance(tools, list):
        return False
    for tool in tools:
        name = tool.get("name") or (tool.get("function") or {}).get("name")
        if name == TOOL:
            return True
    return False


def input_tokens_of(request: Request) -> int:
    """What this server says the prompt cost: a quarter of the request body's bytes."""
    return max(1, len(request.body) // 4)


def _json_pieces(text: str) -> list[str]:
    """`text` in 4-6 character slices (the last may be shorter only if `text` is)."""
    pieces: list[str] = []
    i = 0
    sizes = (4, 5, 6)
    n = 0
    while i < len(text):
        size = sizes[n % 3]
        if len(text) - (i + size) < 4:
            size = len(text) - i
        pieces.append(text[i : i + size])
        i += size
        n += 1
    return pieces


@dataclass(frozen=True)
class _Plan:
    kind: Literal["text", "tool", "none"]
    tokens: tuple[str, ...]
    null: bool = False


def _plan(recipe: Recipe, request: Request) -> _Plan:
    content = recipe.content
    if content == "fit":
        content = "tool-good" if _wants_tool(request) else "text"  # type: ignore[assignment]
    if content == "text":
        words = UNICODE_WORDS if recipe.unicode else WORDS
        return _Plan("text", tuple(words[i % len(words)] for i in range(max(1, recipe.words))))
    if content == "blank":
        return _Plan("text", ("    ",))
    if content in ("empty", "null"):
        return _Plan("none", (), null=content == "null")
    args = GOOD_ARGS if content == "tool-good" else BAD_ARGS
    return _Plan("tool", tuple(_json_pieces(json.dumps(args))))


def _finish_value(recipe: Recipe, plan: _Plan, wire: Wire) -> tuple[bool, Any]:
    """(include the field, its value)."""
    natural_openai = "tool_calls" if plan.kind == "tool" else "stop"
    natural_anthropic = "tool_use" if plan.kind == "tool" else "end_turn"
    f = recipe.finish
    if f == "missing":
        return False, None
    if f == "null":
        return True, None
    if wire == "openai":
        value = {
            "natural": natural_openai,
            "length": "length",
            "content_filter": "content_filter",
            "odd": "guardrail_intervened",
            "mismatch": "stop" if plan.kind == "tool" else "tool_calls",
        }[f]
    else:
        value = {
            "natural": natural_anthropic,
            "length": "max_tokens",
            "content_filter": "refusal",
            "odd": "pause_turn",
            "mismatch": "end_turn" if plan.kind == "tool" else "tool_use",
        }[f]
    return True, value


def _usage_numbers(recipe: Recipe, plan: _Plan, request: Request) -> tuple[int, int] | None:
    if recipe.usage == "missing":
        return None
    if recipe.usage == "zero":
        return 0, 0
    out = len(plan.tokens)
    if recipe.usage == "inflated":
        out = max(out, recipe.inflate * (request.max_tokens or 100))
    return input_tokens_of(request), out


def _error_body(recipe: Recipe, wire: Wire) -> tuple[bytes, str]:
    kind = recipe.error_body
    if kind == "html":
        page = f"<html><body><h1>{recipe.status} Bad Gateway</h1></body></html>"
        return page.encode(), "text/html"
    if kind == "empty":
        return b"", "application/json"
    message, code, etype = "something went wrong", None, "server_error"
    if kind == "context_length":
        message, code, etype = (
            "This model's maximum context length is 10 tokens; prompt is too long",
            "context_length_exceeded",
            "invalid_request_error",
        )
    elif kind == "content_filter":
        message, code, etype = (
            "The response was filtered due to the prompt triggering content filtering policy",
            "content_filter",
            "invalid_request_error",
        )
    if wire == "openai":
        body = {"error": {"message": message, "type": etype, "param": None, "code": code}}
    else:
        body = {"type": "error", "error": {"type": etype, "message": message}}
    return json.dumps(body).encode(), "application/json"


# -- OpenAI --------------------------------------------------------------------------------------


def _openai_plain(recipe: Recipe, plan: _Plan, request: Request) -> bytes:
    message: dict[str, Any] = {"role": "assistant"}
    if plan.kind == "text":
        message["content"] = "".join(plan.tokens)
    elif plan.kind == "tool":
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": "call_conf1",
                "type": "function",
                "function": {"name": TOOL, "arguments": "".join(plan.tokens)},
            }
        ]
    else:
        message["content"] = None if plan.null else ""
    choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None}
    has_finish, finish = _finish_value(recipe, plan, "openai")
    if has_finish:
        choice["finish_reason"] = finish
    body: dict[str, Any] = {
        "id": "chatcmpl-conf",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": request.model or "m",
    }
    if recipe.choices == "one":
        body["choices"] = [choice]
    elif recipe.choices == "two":
        other = json.loads(json.dumps(choice))
        other["index"] = 1
        body["choices"] = [choice, other]
    elif recipe.choices == "empty":
        body["choices"] = []
    elif recipe.choices == "null":
        body["choices"] = None
    usage = _usage_numbers(recipe, plan, request)
    if usage is not None:
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
        }
    return json.dumps(body).encode()


def _openai_events(recipe: Recipe, plan: _Plan, request: Request) -> list[bytes]:
    base = {
        "id": "chatcmpl-conf",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": request.model or "m",
    }

    def chunk(delta: dict[str, Any], finish: Any = None, *, with_finish: bool = True) -> bytes:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None}
        if with_finish:
            choice["finish_reason"] = finish
        return b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    if plan.kind == "text":
        events += [chunk({"content": token}) for token in plan.tokens]
    elif plan.kind == "tool":
        head = {
            "index": 0,
            "id": "call_conf1",
            "type": "function",
            "function": {"name": TOOL, "arguments": ""},
        }
        events.append(chunk({"tool_calls": [head]}))
        events += [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": token}}]})
            for token in plan.tokens
        ]
    elif plan.null:
        events.append(chunk({"content": None}))
    has_finish, finish = _finish_value(recipe, plan, "openai")
    if has_finish:
        events.append(chunk({}, finish))
    usage = _usage_numbers(recipe, plan, request)
    if usage is not None:
        body = {
            **base,
            "choices": [],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": usage[0] + usage[1],
            },
        }
        events.append(b"data: " + json.dumps(body).encode() + b"\n\n")
    if recipe.done:
        events.append(b"data: [DONE]\n\n")
    return events


def _openai_error_event() -> bytes:
    body = {"error": {"message": "overloaded mid-stream", "type": "server_error", "code": None}}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


# -- Anthropic -----------------------------------------------------------------------------------


def _anthropic_blocks(plan: _Plan) -> list[dict[str, Any]]:
    if plan.kind == "text":
        return [{"type": "text", "text": "".join(plan.tokens)}]
    if plan.kind == "tool":
        return [
            {
                "type": "tool_use",
                "id": "toolu_conf1",
                "name": TOOL,
                "input": json.loads("".join(plan.tokens)),
            }
        ]
    return [] if plan.null else [{"type": "text", "text": ""}]


def _anthropic_plain(recipe: Recipe, plan: _Plan, request: Request) -> bytes:
    has_finish, finish = _finish_value(recipe, plan, "anthropic")
    body: dict[str, Any] = {
        "id": "msg_conf",
        "type": "message",
        "role": "assistant",
        "model": request.model or "m",
        "content": _anthropic_blocks(plan),
        "stop_sequence": None,
    }
    if has_finish:
        body["stop_reason"] = finish
    usage = _usage_numbers(recipe, plan, request)
    if usage is not None:
        body["usage"] = {"input_tokens": usage[0], "output_tokens": usage[1]}
    return json.dumps(body).encode()


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _anthropic_events(recipe: Recipe, plan: _Plan, request: Request) -> list[bytes]:
    usage = _usage_numbers(recipe, plan, request)
    message: dict[str, Any] = {
        "id": "msg_conf",
        "type": "message",
        "role": "assistant",
        "model": request.model or "m",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    if usage is not None:
        message["usage"] = {"input_tokens": usage[0], "output_tokens": min(1, usage[1])}
    events = [_sse("message_start", {"type": "message_start", "message": message})]
    if plan.kind == "text" or (plan.kind == "none" and not plan.null):
        events.append(
            _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        events += [
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": token},
                },
            )
            for token in plan.tokens
        ]
        events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
    elif plan.kind == "tool":
        block = {"type": "tool_use", "id": "toolu_conf1", "name": TOOL, "input": {}}
        events.append(
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            )
        )
        events += [
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": token},
                },
            )
            for token in plan.tokens
        ]
        events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
    has_finish, finish = _finish_value(recipe, plan, "anthropic")
    delta: dict[str, Any] = {"type": "message_delta", "delta": {"stop_sequence": None}}
    if has_finish:
        delta["delta"]["stop_reason"] = finish
    if usage is not None:
        delta["usage"] = {"output_tokens": usage[1]}
    else:
        delta["usage"] = {}
    if has_finish or usage is not None:
        events.append(_sse("message_delta", delta))
    if recipe.done:
        events.append(_sse("message_stop", {"type": "message_stop"}))
    return events


def _anthropic_error_event() -> bytes:
    return _sse(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )


# -- realize -------------------------------------------------------------------------------------


def _is_content(event: bytes) -> bool:
    """Whether an SSE event carries answer tokens (a text or tool-argument delta)."""
    if b"content_block_delta" in event:
        return True
    try:
        data = json.loads(event.split(b"data: ", 1)[1])
        delta = data["choices"][0]["delta"]
    except (IndexError, KeyError, TypeError, ValueError):
        return False
    calls = delta.get("tool_calls") or [{}]
    return bool(delta.get("content") or (calls[0].get("function") or {}).get("arguments"))


def _edit(events: list[bytes], edits: tuple[tuple[str, int], ...]) -> list[bytes]:
    """Apply stream edits. `drop`, `dup`, `swap` (with the next event) and `cut` (end the stream
    before it) take any event; `drop-content` and `swap-content` only answer-token events (swapped
    with the next one of those)."""
    events = list(events)
    for op, raw in edits:
        if op.endswith("-content"):
            where = [k for k, e in enumerate(events) if _is_content(e)]
            if len(where) < (2 if op == "swap-content" else 1):
                continue
            k = raw % len(where)
            if op == "drop-content":
                del events[where[k]]
            elif k + 1 < len(where):
                a, b = where[k], where[k + 1]
                events[a], events[b] = events[b], events[a]
            continue
        if not events:
            break
        i = raw % len(events)
        if op == "drop":
            del events[i]
        elif op == "dup":
            events.insert(i, events[i])
        elif op == "swap" and i + 1 < len(events):
            events[i], events[i + 1] = events[i + 1], events[i]
        elif op == "cut":
            del events[i:]
    return events


def realize(recipe: Recipe, request: Request) -> Reply:
    """The reply `recipe` makes for `request`; `meta` holds the recipe."""
    wire = wire_of(request)
    headers: list[tuple[str, str]] = []
    if recipe.retry_after is not None:
        headers.append(("retry-after", recipe.retry_after))
    if recipe.retry_after_ms is not None:
        headers.append(("retry-after-ms", recipe.retry_after_ms))
    if recipe.status == 200 and recipe.content == "html":
        # a proxy's or captive portal's page, with a 200, whatever was asked
        body = b"<html><head><title>Sign in</title></head><body>Please sign in.</body></html>"
        headers.append(("content-type", "text/html; charset=utf-8"))
        segments = _split(body, recipe.pieces)
        framing = recipe.framing or "length"
    elif recipe.status != 200:
        body, ctype = _error_body(recipe, wire)
        headers.append(("content-type", ctype))
        segments = _split(body, recipe.pieces)
        framing = recipe.framing or "length"
    elif request.stream:
        plan = _plan(recipe, request)
        events = (_openai_events if wire == "openai" else _anthropic_events)(recipe, plan, request)
        events = _edit(events, recipe.edits)
        if recipe.stream_error_at is not None:
            at = recipe.stream_error_at % (len(events) + 1)
            error = _openai_error_event() if wire == "openai" else _anthropic_error_event()
            events.insert(at, error)
        ctype = {"right": "text/event-stream", "wrong": "application/json", "missing": None}
        if ctype[recipe.content_type]:
            headers.append(("content-type", ctype[recipe.content_type]))  # type: ignore[arg-type]
        if recipe.pings:
            ping = b": keep-alive\n\n" if wire == "openai" else _sse("ping", {"type": "ping"})
            events = [x for e in events for x in (ping, e)]
        if recipe.crlf:
            events = [e.replace(b"\n", b"\r\n") for e in events]
        if recipe.split_writes:
            events = [x for e in events for x in (e[: len(e) // 2], e[len(e) // 2 :])]
        segments = tuple(Segment(e) for e in events)
        framing = recipe.framing or "chunked"
    else:
        plan = _plan(recipe, request)
        body = (_openai_plain if wire == "openai" else _anthropic_plain)(recipe, plan, request)
        ctype = {"right": "application/json", "wrong": "text/plain", "missing": None}
        if ctype[recipe.content_type]:
            headers.append(("content-type", ctype[recipe.content_type]))  # type: ignore[arg-type]
        segments = _split(body, recipe.pieces)
        framing = recipe.framing or "length"
    if wire == "anthropic":
        headers.append(("request-id", "req_conf"))
    else:
        headers.append(("x-request-id", "req_conf"))
    if recipe.stall_at is not None and recipe.stall_s and segments:
        i = recipe.stall_at % len(segments)
        segments = (*segments[:i], Segment(segments[i].data, recipe.stall_s), *segments[i + 1 :])
    total = sum(len(s.data) for s in segments)
    cut = None if recipe.cut is None else recipe.cut % (total + 1)
    return Reply(
        status=recipe.status,
        headers=tuple(headers),
        segments=tuple(segments),
        framing=framing,
        cut_at=cut,
        ending=recipe.ending,
        stall_headers_s=recipe.stall_headers_s,
        meta=recipe,
    )


def _split(body: bytes, pieces: int) -> tuple[Segment, ...]:
    if pieces <= 1 or len(body) < pieces:
        return (Segment(body),)
    size = -(-len(body) // pieces)
    return tuple(Segment(body[i : i + size]) for i in range(0, len(body), size))


def healthy(request: Request) -> Reply:
    """A provider that answers correctly, streamed or not, on either wire."""
    return realize(Recipe(), request)


# -- judge ---------------------------------------------------------------------------------------


@dataclass
class Truth:
    """What the bytes a server really wrote for one request held, read from the wire specs."""

    status: int
    stream: bool
    complete: bool = False
    """A 200 whose body held a whole, finished answer: a finish reason saying the model stopped on
    its own (for a plain JSON body: the whole document, unless its finish reason says it was cut
    off or filtered) and no error event."""
    broken: bool = False
    """An error event, a chunk that is not JSON, a stream with no `message_start`."""
    kind: Literal["text", "tool", "none"] = "none"
    text: str = ""
    tool_name: str | None = None
    tool_args: str = ""
    finish: str | None = None
    reported_in: int = 0
    reported_out: int = 0
    final_usage: bool = False
    """Whether the response's final usage figures were received (not only Anthropic's provisional
    `message_start` ones)."""
    streamed_tokens: int = 0
    """Content tokens in whole events received (streams), or in a whole JSON body."""
    notes: list[str] = field(default_factory=list[str])

    @property
    def billed_out(self) -> int:
        """The output a provider bills at least: what its final usage said when the client got it,
        else at least every token it streamed."""
        if self.final_usage:
            return self.reported_out
        return max(self.reported_out, self.streamed_tokens)

    def value(self, output_type: type[Any]) -> tuple[bool, Any]:
        """(whether a whole answer valid for `output_type` was sent, its value).

        Text is whole only when `complete`; a tool call's arguments are whole when they parse (a
        JSON object cannot parse until its closing brace), whatever the finish reason.
        """
        if self.status != 200 or self.broken:
            return False, None
        if output_type is str:
            if self.complete and self.kind == "text" and self.text:
                return True, self.text
            return False, None
        if self.kind != "tool" or self.tool_name != TOOL:
            return False, None
        try:
            return True, output_type.model_validate_json(self.tool_args)  # type: ignore[attr-defined]
        except ValueError:
            return False, None


_COMPLETE_OPENAI = {"stop", "tool_calls"}
_COMPLETE_ANTHROPIC = {"end_turn", "tool_use", "stop_sequence"}


def _count(text: str) -> int:
    """At most the tokens this server made `text` of (each is 4 to 9 characters)."""
    return -(-len(text) // 9) if text.strip() else 0


def judge(request: Request, reply: Reply, sent: bytes) -> Truth:
    """Read `sent` (the body bytes really written for `request`) as a client that knows the spec."""
    wire = wire_of(request)
    truth = Truth(status=reply.status, stream=request.stream)
    if reply.status != 200:
        return truth
    if not request.stream:
        try:
            body = json.loads(sent)
        except ValueError:
            truth.notes.append("body is not whole JSON")
            truth.broken = True
            return truth
        if not isinstance(body, dict):
            truth.broken = True
            return truth
        (_judge_openai_plain if wire == "openai" else _judge_anthropic_plain)(body, truth)
        return truth
    events = _sse_events(sent)
    (_judge_openai_stream if wire == "openai" else _judge_anthropic_stream)(events, truth)
    return truth


def _judge_openai_plain(body: dict[str, Any], truth: Truth) -> None:
    usage = body.get("usage")
    if isinstance(usage, dict):
        truth.reported_in = int(usage.get("prompt_tokens") or 0)
        truth.reported_out = int(usage.get("completion_tokens") or 0)
        truth.final_usage = True
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        truth.notes.append("no choices")
        return
    choice = choices[0]
    message = choice.get("message") or {}
    finish = choice.get("finish_reason")
    truth.finish = finish
    text = message.get("content")
    calls = message.get("tool_calls") or []
    if calls:
        truth.kind = "tool"
        truth.tool_name = calls[0]["function"]["name"]
        truth.tool_args = calls[0]["function"]["arguments"]
        truth.streamed_tokens = _count(truth.tool_args)
    elif isinstance(text, str) and text:
        truth.kind = "text"
        truth.text = text
        truth.streamed_tokens = _count(text)
    # a whole JSON document: only an explicit cut-off, filter or unknown reason says otherwise
    truth.complete = finish in (None, *_COMPLETE_OPENAI)


def _judge_anthropic_plain(body: dict[str, Any], truth: Truth) -> None:
    usage = body.get("usage")
    if isinstance(usage, dict):
        truth.reported_in = int(usage.get("input_tokens") or 0)
        truth.reported_out = int(usage.get("output_tokens") or 0)
        truth.final_usage = True
    finish = body.get("stop_reason")
    truth.finish = finish
    for block in body.get("content") or []:
        if block.get("type") == "text" and block.get("text"):
            truth.kind, truth.text = "text", truth.text + block["text"]
        elif block.get("type") == "tool_use":
            truth.kind = "tool"
            truth.tool_name = block.get("name")
            truth.tool_args = json.dumps(block.get("input"))
    truth.streamed_tokens = _count(truth.tool_args if truth.kind == "tool" else truth.text)
    truth.complete = finish in (None, *_COMPLETE_ANTHROPIC)


def _sse_events(sent: bytes) -> list[tuple[str | None, str]]:
    """Whole SSE events (terminated by a blank line) as (event name, data)."""
    text = sent.decode("utf-8", errors="replace")
    events: list[tuple[str | None, str]] = []
    blocks = re.split(r"\r?\n\r?\n", text)
    for block in blocks[:-1]:  # the last one is not terminated
        name: str | None = None
        data: list[str] = []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        if data:
            events.append((name, "\n".join(data)))
    return events


def _judge_openai_stream(events: list[tuple[str | None, str]], truth: Truth) -> None:
    finished = False
    for _, data in events:
        if data == "[DONE]":
            break
        try:
            chunk = json.loads(data)
        except ValueError:
            truth.broken = True
            continue
        if not isinstance(chunk, dict) or "error" in chunk:
            truth.broken = True
            truth.notes.append("error event")
            break  # the provider's error ends its stream: a client reads no further
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            truth.reported_in = int(usage.get("prompt_tokens") or 0)
            truth.reported_out = int(usage.get("completion_tokens") or 0)
            truth.final_usage = True
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if finished:  # malformed, but the text is all there: not a truncation
                    truth.notes.append("content after finish")
                if truth.kind != "tool":
                    truth.kind = "text"
                truth.text += delta["content"]
                truth.streamed_tokens += 1
            for call in delta.get("tool_calls") or []:
                fn = call.get("function") or {}
                if fn.get("name"):
                    truth.kind = "tool"
                    truth.tool_name = fn["name"]
                if fn.get("arguments"):
                    truth.tool_args += fn["arguments"]
                    truth.streamed_tokens += 1
            if choice.get("finish_reason"):
                truth.finish = choice["finish_reason"]
                finished = True
    ok = truth.finish in _COMPLETE_OPENAI
    truth.complete = finished and ok and not truth.broken


def _judge_anthropic_stream(events: list[tuple[str | None, str]], truth: Truth) -> None:
    finished = False
    started = False
    blocks: dict[int, str] = {}
    for name, data in events:
        try:
            event = json.loads(data)
        except ValueError:
            truth.broken = True
            continue
        kind = event.get("type", name)
        if kind == "error":
            truth.broken = True
            truth.notes.append("error event")
            break  # the provider's error ends its stream: a client reads no further
        elif kind == "message_start":
            if started:
                truth.notes.append("second message_start")
            started = True
            usage = (event.get("message") or {}).get("usage") or {}
            truth.reported_in = int(usage.get("input_tokens") or 0)
            truth.reported_out = max(truth.reported_out, int(usage.get("output_tokens") or 0))
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            blocks[event.get("index", 0)] = block.get("type", "")
            if block.get("type") == "tool_use":
                truth.kind = "tool"
                truth.tool_name = block.get("name")
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if finished:
                truth.notes.append("content after finish")
            if event.get("index", 0) not in blocks:
                truth.notes.append("delta outside a block")
            if delta.get("type") == "text_delta" and delta.get("text"):
                if truth.kind != "tool":
                    truth.kind = "text"
                truth.text += delta["text"]
                truth.streamed_tokens += 1
            elif delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                truth.tool_args += delta["partial_json"]
                truth.streamed_tokens += 1
        elif kind == "message_delta":
            usage = event.get("usage") or {}
            if "output_tokens" in usage:
                truth.reported_out = int(usage.get("output_tokens") or 0)
                truth.final_usage = True
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason:
                truth.finish = reason
                finished = True
    if not started:
        truth.broken = True
        truth.notes.append("no message_start")
    ok = truth.finish in _COMPLETE_ANTHROPIC
    truth.complete = finished and ok and not truth.broken
    if truth.kind == "tool" and not truth.tool_args:
        truth.tool_args = "{}"


def describe(recipe: Recipe) -> str:
    """The non-default fields of a recipe, for messages."""
    default = Recipe()
    parts = [
        f"{k}={getattr(recipe, k)!r}"
        for k in recipe.__dataclass_fields__
        if getattr(recipe, k) != getattr(default, k)
    ]
    return f"Recipe({', '.join(parts)})"


__all__ += ["describe", "input_tokens_of", "replace"]
