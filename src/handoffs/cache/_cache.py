"""The verified response cache: answers reused only where they are right for the new input.

```
look_up(task)                        -> None: the cache does not apply (kind not opted in, task.cache=False)
  exact: same scope, same reuse key, same input         -> served, marked cache="exact"
  semantic: nearest inputs in the same scope and key, similarity >= threshold
     the task's own checks run on the cached output against the NEW input
        pass                                             -> served, marked cache="semantic"
        fail / no check that reads the input             -> miss (the nearest candidate is named)
  otherwise                                              -> miss: the handoff runs as usual
  the store cannot be read (a lost database, a locked file) -> miss, logged: the cache never
                                                            fails a handoff
lookup.keep(delivery)                -> stores a verified (not degraded) delivery (a store that
                                        cannot be written: not stored, logged)
```
The reuse key is what makes an answer reusable: the task kind, instructions, input and output
schemas, check names, risk, model override, required capabilities and the session's fingerprint
(its catalog, routing rules and rendered prompt templates) — change any and older answers stop
matching. The scope (a tenant or a job) is part of every lookup, so an answer never crosses
scopes. Judges and agreement votes are model calls: by default (`CachePolicy.judges=False`) they
are not re-run on a semantic hit, and a task with no other check is never served semantically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import sys
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar, cast

import anyio.to_thread

from handoffs.cache._embed import Embedder, default_embedder
from handoffs.cache._store import Answer, AnswerStore, Stored
from handoffs.errors import ConfigError
from handoffs.handoff import Delivery, HandoffRecord, Verdict
from handoffs.task import Check, CheckContext, Task
from handoffs.verify import run_checks
from handoffs.verify.checks import Agreement, Judge

__all__ = ["CachePolicy", "Lookup", "ResponseCache", "input_text"]

T = TypeVar("T")

log = logging.getLogger("handoffs.cache")


def _store_errors() -> tuple[type[Exception], ...]:
    """What a store raises when its database cannot be read or written: the OS's and SQLite's
    errors (the standard library's, and pysqlite3's where sqlite-vec uses it), and psycopg's
    when a PostgreSQL store has imported it."""
    errors: list[type[Exception]] = [OSError, sqlite3.Error]
    for name in ("pysqlite3.dbapi2", "psycopg"):
        module = sys.modules.get(name)
        if module is not None:
            errors.append(cast(type[Exception], module.Error))
    return tuple(errors)


@dataclass(frozen=True, slots=True, kw_only=True)
class CachePolicy:
    """What the cache serves and keeps (`[cache]` in handoffs.toml)."""

    kinds: frozenset[str] | None = None
    """The task kinds that use the cache; None: every kind. A task's own `cache` overrides."""
    ttl_s: float | None = 86400.0
    """How long a stored answer may be served, in seconds; None: until its key changes."""
    semantic: bool = True
    """Serve verified near-duplicates, not only exact repeats."""
    threshold: float = 0.95
    """The least cosine similarity of two inputs for a semantic candidate."""
    judges: bool = False
    """Re-run judge and agreement checks (model calls, charged) on a semantic hit. Off: they are
    skipped, and a task with no other check is not served semantically."""
    candidates: int = 3
    """How many nearest candidates a semantic lookup verifies, nearest first."""
    keep: bool = True
    """Store verified deliveries; False: serve from what is stored, add nothing (read-only)."""

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"cache threshold must be in (0, 1], not {self.threshold}")
        if self.ttl_s is not None and self.ttl_s < 0:
            raise ConfigError(f"cache ttl_s must not be negative, not {self.ttl_s}")
        if self.candidates < 1:
            raise ConfigError(f"cache candidates must be at least 1, not {self.candidates}")

    def applies(self, task: Task[Any]) -> bool:
        """Whether `task` uses the cache under this policy."""
        if task.cache is not None:
            return task.cache
        return self.kinds is None or task.kind in self.kinds


def input_text(task: Task[Any]) -> str:
    """The text of a task's input that is embedded: its string and number values, in order,
    one per line (field names carry no meaning to compare)."""
    values: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():  # pyright: ignore[reportUnknownVariableType]
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:  # pyright: ignore[reportUnknownVariableType]
                walk(item)
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            values.append(str(value))

    walk(task.input_data())
    return "\n".join(values)


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _reuse_key(task: Task[Any], fingerprint: str) -> str:
    return _digest(
        task.kind,
        task.instructions,
        task.input_schema(),
        task.output_schema_text(),
        [c.name for c in task.checks],
        task.risk,
        task.model,
        sorted(task.requires),
        fingerprint,
    )


def _model_check(check: Check) -> bool:
    return isinstance(check, Judge | Agreement)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Candidate:
    stored: Stored
    verdicts: tuple[Verdict, ...]
    passed: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Lookup(Generic[T]):
    """One task's lookup: the delivery it served (`hit`), or what a miss found, and where the
    handoff's delivery is kept once it is made."""

    cache: ResponseCache
    task: Task[T]
    key: str
    exact: str
    vector: list[float] | None
    hit: Delivery[T] | None = None
    """The cached delivery served, marked `cache="exact"` or `"semantic"`; None: a miss."""
    nearest: _Candidate | None = None
    """The nearest candidate that was verified (on a miss: the one its checks refused)."""

    def missed(self, record: HandoffRecord) -> HandoffRecord:
        """The record of the handoff made after this miss, marked `cache="miss"` (with the
        nearest candidate refused, if one was close enough to be verified)."""
        near = self.nearest
        return record.model_copy(
            update={
                "cache": "miss",
                "cache_similarity": round(near.stored.similarity, 4) if near else None,
                "cache_source": near.stored.task_id if near else None,
            }
        )

    async def keep(self, delivery: Delivery[T]) -> bool:
        """Store `delivery` for later lookups if it was verified: delivered, not degraded, made by
        a model (not itself served from the cache). Returns whether it was stored."""
        record = delivery.record
        if record.status != "delivered" or record.degraded or record.cache in ("exact", "semantic"):
            return False
        if not self.cache.policy.keep:
            return False
        cache = self.cache
        answer = Answer(
            scope=cache.scope,
            key=self.key,
            exact=self.exact,
            space=cache.store.space(cache.scope, self.key, cache.embedder.model),
            task_id=record.task_id,
            model=record.model,
            provider=record.provider,
            tier=record.tier,
            output=record.output,
            verdicts=[v.model_dump(mode="json") for v in record.verdicts],
            cost_usd=format(record.cost_usd, "f"),
        )
        try:
            await anyio.to_thread.run_sync(
                lambda: cache.store.put(answer, vector=self.vector, ttl_s=cache.policy.ttl_s)
            )
        except _store_errors() as exc:
            log.warning("cache: answer of %s not kept: %s", record.task_id, exc)
            return False
        return True


class ResponseCache:
    """Verified answers of earlier handoffs in one `scope`, kept in an `AnswerStore` (`CacheStore`:
    a SQLite file; `PostgresStore`: a PostgreSQL database).

    `Session(cache=...)` looks every task up before routing it and keeps every verified delivery.
    `scoped(...)` gives the same store under another scope (a tenant, a job): lookups never see
    answers stored under a different scope.
    """

    def __init__(
        self,
        store: AnswerStore,
        *,
        scope: str,
        policy: CachePolicy | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        if not scope:
            raise ValueError("a cache scope must not be empty")
        self.store = store
        self.scope = scope
        """Whose answers these are: a tenant, or one job."""
        self.policy = policy or CachePolicy()
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        """What embeds inputs for semantic lookups (`default_embedder()` unless given)."""
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    def scoped(self, scope: str) -> ResponseCache:
        """This cache's store and policy under another scope."""
        return ResponseCache(self.store, scope=scope, policy=self.policy, embedder=self._embedder)

    async def look_up(
        self, task: Task[T], ctx: CheckContext, *, fingerprint: str
    ) -> Lookup[T] | None:
        """Look `task` up (None: the cache does not apply to it). `ctx` runs the task's checks on
        a semantic candidate; `fingerprint` names what else makes an answer reusable (the
        session's catalog, routing rules and prompt templates)."""
        if not self.policy.applies(task):
            return None
        try:
            return await self._look_up(task, ctx, fingerprint)
        except _store_errors() as exc:
            log.warning("cache: lookup of %s failed, handoff made as a miss: %s", task.id, exc)
            key = _reuse_key(task, fingerprint)
            exact = _digest(key, task.input_data())
            return Lookup(cache=self, task=task, key=key, exact=exact, vector=None)

    async def _look_up(self, task: Task[T], ctx: CheckContext, fingerprint: str) -> Lookup[T]:
        started = time.monotonic()
        key = _reuse_key(task, fingerprint)
        exact = _digest(key, task.input_data())
        found = await anyio.to_thread.run_sync(self.store.exact, self.scope, exact)
        if found is not None:
            verdicts = tuple(Verdict.model_validate(v) for v in found.verdicts)
            hit = self._delivery(task, found, "exact", verdicts, started)
            return Lookup(cache=self, task=task, key=key, exact=exact, vector=None, hit=hit)
        if not self.policy.semantic:
            return Lookup(cache=self, task=task, key=key, exact=exact, vector=None)
        embedder = self.embedder
        text = input_text(task)
        vector = (await anyio.to_thread.run_sync(embedder.embed, [text]))[0]
        space = self.store.space(self.scope, key, embedder.model)
        near = await anyio.to_thread.run_sync(
            lambda: self.store.nearest(space, vector, k=self.policy.candidates)
        )
        checks = [c for c in task.checks if self.policy.judges or not _model_check(c)]
        nearest: _Candidate | None = None
        hit: Delivery[T] | None = None
        for stored in near:
            if stored.similarity < self.policy.threshold:
                break
            candidate = await self._verify(task, stored, ctx, checks)
            nearest = nearest or candidate
            if candidate.passed:
                hit = self._delivery(task, stored, "semantic", candidate.verdicts, started)
                break
        return Lookup(
            cache=self, task=task, key=key, exact=exact, vector=vector, hit=hit, nearest=nearest
        )

    async def _verify(
        self, task: Task[Any], stored: Stored, ctx: CheckContext, checks: list[Check]
    ) -> _Candidate:
        """Run the task's checks on a stored output against the new input."""
        if not checks:  # nothing reads the new input: schema alone cannot vouch for it
            reason = "no check that reads the input"
            refused = Verdict(check="cache", passed=False, reasons=(reason,))
            return _Candidate(stored=stored, verdicts=(refused,), passed=False)
        try:
            output = task.parse_output(stored.output)
        except ValueError as exc:  # the output type changed shape under the same schema text
            refused = Verdict(check="schema", passed=False, reasons=(str(exc)[:200],))
            return _Candidate(stored=stored, verdicts=(refused,), passed=False)
        context = replace(ctx, task=task, producer=stored.model or ctx.producer)
        verdicts = tuple(await run_checks(output, context, checks))
        return _Candidate(stored=stored, verdicts=verdicts, passed=all(v.passed for v in verdicts))

    def _delivery(
        self,
        task: Task[T],
        stored: Stored,
        kind: Literal["exact", "semantic"],
        verdicts: tuple[Verdict, ...],
        started: float,
    ) -> Delivery[T]:
        record = HandoffRecord(
            task_id=task.id,
            task_kind=task.kind,
            risk=task.risk,
            label=task.label,
            status="delivered",
            route=(),
            model=stored.model,
            provider=stored.provider,  # pyright: ignore[reportArgumentType]  # validated
            tier=stored.tier,  # pyright: ignore[reportArgumentType]  # validated
            verdicts=verdicts,
            cost_usd=sum((v.cost_usd for v in verdicts), Decimal(0))
            if kind == "semantic"
            else Decimal(0),
            latency_s=time.monotonic() - started,
            output=stored.output,
            cache=kind,
            cache_similarity=round(stored.similarity, 4),
            cache_source=stored.task_id,
            cache_saved_usd=Decimal(stored.cost_usd),
        )
        return Delivery(output=task.parse_output(stored.output), record=record)
