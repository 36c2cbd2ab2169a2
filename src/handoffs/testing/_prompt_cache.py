"""The fake provider's prompt cache: which prefixes each model has seen, and what a request reads
from it and writes to it, reported the way each wire reports it.

- Anthropic caches only at breakpoints: the blocks a request marks with `cache_control` (tools,
  then system, then messages, in that order) and a top-level `cache_control` (automatic caching:
  the last block). The longest prefix of at least `min_tokens` written before that ends at a
  breakpoint or up to 19 blocks before one is read (`cache_read_input_tokens`: a conversation's
  next turn reads the last one's); the rest, up to the last breakpoint, is written
  (`cache_creation_input_tokens`); `input_tokens` is only what is left after both.
- OpenAI caches every prompt of at least `min_tokens` by itself: a request reads the longest
  prefix it shares with an earlier one of the same model, in 128-token blocks from 1024 on
  (`prompt_tokens_details.cached_tokens`, part of `prompt_tokens`). It charges nothing to write.

Tokens are the fake's estimate (about four characters a token, `estimate_tokens`), taken over the
request's text in the order the cache reads it (`FakeRequest.prefix_text`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any, Final, cast

from ._json import JsonObject, object_or_none
from ._script import FakeRequest

__all__ = ["CacheUse", "PromptCache"]

_BLOCK_TOKENS: Final = 128
"""OpenAI reads its cache in blocks of 128 tokens."""
_CHARS_PER_TOKEN: Final = 4
_LOOKBACK: Final = 20
"""Anthropic looks for a hit at each breakpoint and the 19 blocks before it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheUse:
    """What one request read from and wrote to the prompt cache, in input tokens."""

    read: int = 0
    written: int = 0


def _marked(block: object) -> bool:
    found = object_or_none(block)
    return found is not None and found.get("cache_control") is not None


def _block_text(block: object) -> str:
    found = object_or_none(block)
    if found is None:
        return str(block)
    if found.get("type") == "text":
        return str(found.get("text", ""))
    if "input_schema" in found:  # a tool
        parameters = json.dumps(found.get("input_schema"), ensure_ascii=False)
        return "\n".join(
            (str(found.get("name", "")), str(found.get("description", "")), parameters)
        )
    kept = {k: v for k, v in found.items() if k != "cache_control"}
    return json.dumps(kept, ensure_ascii=False, sort_keys=True)


def _anthropic_blocks(body: JsonObject) -> list[tuple[str, bool]]:
    """The request's cacheable blocks in cache order, each with whether it is a breakpoint."""
    blocks: list[tuple[str, bool]] = []
    tools: list[Any] = body.get("tools") or []
    blocks.extend((_block_text(tool), _marked(tool)) for tool in tools)
    system = body.get("system")
    if isinstance(system, str):
        blocks.append((system, False))
    elif isinstance(system, list):
        blocks.extend((_block_text(block), _marked(block)) for block in cast(list[Any], system))
    messages: list[Any] = body.get("messages") or []
    for message in messages:
        content = (object_or_none(message) or {}).get("content")
        if isinstance(content, str):
            blocks.append((content, False))
        elif isinstance(content, list):
            parts = cast(list[Any], content)
            blocks.extend((_block_text(block), _marked(block)) for block in parts)
    if body.get("cache_control") is not None and blocks:  # automatic caching: the last block
        blocks[-1] = (blocks[-1][0], True)
    return blocks


class PromptCache:
    """The prefixes each model has seen; `use` says what a request reads and writes."""

    def __init__(self, *, min_tokens: int = 1024) -> None:
        """`min_tokens`: the shortest prefix either provider caches (1024 for most models)."""
        self.min_tokens = min_tokens
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget every cached prefix."""
        with self._lock:
            self._seen.clear()

    def use(self, request: FakeRequest, body: JsonObject, input_tokens: int) -> CacheUse:
        """What `request` (its raw `body`) reads from and writes to the cache, at most
        `input_tokens` in all; remembers what it writes."""
        if request.wire == "anthropic":
            use = self._anthropic(request.model, body)
        else:
            use = self._openai(request.model, request.prefix_text)
        read = min(use.read, input_tokens)
        return CacheUse(read=read, written=min(use.written, input_tokens - read))

    def _anthropic(self, model: str, body: JsonObject) -> CacheUse:
        digest = hashlib.sha256(f"{model}\0".encode())
        length = 0
        prefixes: list[tuple[str, int]] = []  # (digest, tokens) of the prefix ending at each block
        points: list[int] = []  # the blocks that are breakpoints
        for index, (block, marked) in enumerate(_anthropic_blocks(body)):
            piece = f"\n{block}" if index else block
            digest.update(piece.encode())
            length += len(piece)
            prefixes.append((digest.copy().hexdigest(), length // _CHARS_PER_TOKEN))
            if marked and prefixes[-1][1] >= self.min_tokens:
                points.append(index)
        if not points:
            return CacheUse()
        with self._lock:  # a hit: a prefix written before, ending up to 20 blocks back
            read = max(
                (
                    tokens
                    for point in points
                    for key, tokens in prefixes[max(0, point - _LOOKBACK + 1) : point + 1]
                    if tokens >= self.min_tokens and key in self._seen
                ),
                default=0,
            )
            self._seen.update(prefixes[point][0] for point in points)
        return CacheUse(read=read, written=prefixes[points[-1]][1] - read)

    def _openai(self, model: str, text: str) -> CacheUse:
        step = _BLOCK_TOKENS * _CHARS_PER_TOKEN
        digest = hashlib.sha256(f"{model}\0".encode())
        blocks: list[tuple[str, int]] = []
        for end in range(step, len(text) + 1, step):
            digest.update(text[end - step : end].encode())
            tokens = end // _CHARS_PER_TOKEN
            if tokens >= self.min_tokens:
                blocks.append((digest.copy().hexdigest(), tokens))
        with self._lock:
            read = max((tokens for key, tokens in blocks if key in self._seen), default=0)
            self._seen.update(key for key, _ in blocks)
        return CacheUse(read=read)
