"""`handoffs bench cache`: the verified response cache beside a plain semantic cache.

The labelled set is built from the bundled tickets (`examples/data/tickets.jsonl`, answers in
`tickets_gold.jsonl`) by deterministic edits, each variant a new ticket id:

- **paraphrases** (the right answer is unchanged): a different greeting (`greet`), a closing
  sentence added (`thanks`), the subject line lower-cased behind `Re: ` (`subject`);
- **look-alikes** (a minimal edit that changes the right answer): the dollar amount raised by 10
  (`amount`), the order id's last digit changed (`order`), the email's local part changed
  (`email`), the product swapped for another bundled product (`product`), and an order id added
  to a ticket that had none (`add_order`).

The task is the roster's extractor (`agents/extractor.py`: order id, product, email, amount, each
checked against the ticket by a predicate). Its model is scripted to answer every ticket right,
priced as `gpt-4.1-mini`, through the real engine (`Session`); so every wrong answer in the
figures is the cache's, not the model's. The 30 original tickets are delegated first, filling
the cache; each variant is then looked up (read-only: variants add nothing):

- **verified**: `handoffs.cache`: the nearest stored answers at or above the threshold are
  served only if the extractor's predicates pass on them against the variant's ticket;
- **plain**: the nearest stored answer at or above the same threshold, served as it is (what a
  semantic cache without verification does), with the same embedder and the same input text.

Reported per threshold: hits, hit rate, false hits (a served answer that differs from the
variant's right answer) and their share of hits, and $ saved (the cost of each variant's own
handoff, measured without a cache, summed over every hit; and over the right ones only: a false
hit "saves" money too, which is the problem).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from pydantic_ai.models import Model
from rich.table import Table

from handoffs.cache import CachePolicy, CacheStore, ResponseCache, default_embedder, input_text
from handoffs.catalog import Catalog, ModelEntry
from handoffs.cli.terminal import JsonOpt, err, fail, out
from handoffs.engine import Session
from handoffs.project import load_module
from handoffs.routing import Policy, Rule
from handoffs.task import Task
from handoffs.testing.scripted import ScriptCall, scripted

__all__ = ["Variant", "cache", "labelled_set", "run_cache_bench"]

FIELDS = ("order_id", "product", "email", "amount_usd")


@dataclass(frozen=True, slots=True, kw_only=True)
class Variant:
    """One labelled input: a ticket, its right answer, and how it was made from its seed."""

    ticket: dict[str, Any]
    answer: dict[str, Any]
    seed: str
    """The id of the bundled ticket it was made from."""
    edit: str
    """`greet`, `thanks`, `subject` (paraphrases) or `amount`, `order`, `email`, `product`,
    `add_order` (look-alikes)."""
    same_answer: bool
    """True for a paraphrase: the seed's answer is still right."""


def _written_amount(text: str, amount: float) -> str | None:
    for form in (f"{amount:,.2f}", f"{amount:.2f}", f"{amount:,.0f}", f"{amount:.0f}"):
        if re.search(rf"(?<![\d.,]){re.escape(form)}(?![\d]|[.,]\d)", text):
            return form
    return None


def _replace_everywhere(ticket: dict[str, Any], old: str, new: str) -> dict[str, Any] | None:
    subject = str(ticket["subject"]).replace(old, new)
    body = str(ticket["body"]).replace(old, new)
    if subject == ticket["subject"] and body == ticket["body"]:
        return None
    return {**ticket, "subject": subject, "body": body}


def labelled_set(tickets: list[dict[str, Any]], gold: list[dict[str, Any]]) -> list[Variant]:
    """The paraphrases and look-alikes of `tickets` (see the module docstring), in order."""
    answers = {g["id"]: {f: g[f] for f in FIELDS} for g in gold}
    products = sorted({str(g["product"]) for g in gold if g["product"]})
    variants: list[Variant] = []
    for n, ticket in enumerate(tickets):
        tid, right = ticket["id"], answers[ticket["id"]]

        def add(
            edit: str,
            changed: dict[str, Any] | None,
            answer: dict[str, Any],
            tid: str = tid,
            right: dict[str, Any] = right,
        ) -> None:
            if changed is not None:
                made = {**changed, "id": f"{tid}-{edit}"}
                variants.append(
                    Variant(
                        ticket=made,
                        answer=answer,
                        seed=tid,
                        edit=edit,
                        same_answer=answer == right,
                    )
                )

        body = str(ticket["body"])
        greeted = re.sub(r"^(Hi|Hello|Hey)\b[^,]*,\s*", "", body)
        add("greet", {**ticket, "body": f"Hello there, {greeted}"}, right)
        add("thanks", {**ticket, "body": f"{body} Thanks in advance for your help."}, right)
        add("subject", {**ticket, "subject": f"Re: {str(ticket['subject']).lower()}"}, right)
        text = f"{ticket['subject']}\n{body}"
        amount = right["amount_usd"]
        written = _written_amount(text, amount) if amount is not None else None
        if amount is not None and written is not None:
            raised = amount + 10
            form = f"{raised:,.2f}" if "." in written else f"{raised:,.0f}"
            changed = _replace_everywhere(
                ticket, written, form.replace(",", "") if "," not in written else form
            )
            add("amount", changed, {**right, "amount_usd": raised})
        if right["order_id"]:
            old = str(right["order_id"])
            new = old[:-1] + str((int(old[-1]) + 1) % 10)
            add("order", _replace_everywhere(ticket, old, new), {**right, "order_id": new})
        else:
            new = f"ORD-{90000 + n:05d}"
            added = {**ticket, "body": f"{body} My order number is {new}."}
            add("add_order", added, {**right, "order_id": new})
        if right["email"]:
            old = str(right["email"])
            new = old.replace("@", "1@", 1)
            add("email", _replace_everywhere(ticket, old, new), {**right, "email": new})
        if right["product"]:
            old = str(right["product"])
            other = products[(products.index(old) + 1) % len(products)]
            add("product", _replace_everywhere(ticket, old, other), {**right, "product": other})
    return variants


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    for f in FIELDS:
        x, y = a.get(f), b.get(f)
        if isinstance(x, str) and isinstance(y, str):
            if x.casefold() != y.casefold():
                return False
        elif isinstance(x, int | float) and isinstance(y, int | float):
            if abs(x - y) > 0.005:
                return False
        elif x != y:
            return False
    return True


MODEL = ModelEntry(
    id="mid",
    provider="openai-compatible",
    name="gpt-4.1-mini",
    tier="mid",
    input_usd_per_mtok=Decimal("0.40"),
    output_usd_per_mtok=Decimal("1.60"),
    context_window=128000,
    base_url="http://127.0.0.1:9/v1",
)


def _oracle(answers: dict[str, dict[str, Any]]) -> Callable[[ModelEntry], Model]:
    """A model that answers every ticket right (by its id in the prompt)."""

    def answer(call: ScriptCall) -> dict[str, Any]:
        found = re.search(r'"id":\s*"([^"]+)"', call.prompt)
        if found is None or found.group(1) not in answers:
            raise AssertionError(f"unknown ticket in prompt: {call.prompt[:120]}")
        return answers[found.group(1)]

    model = scripted(answer, name="oracle")
    return lambda entry: model


@dataclass(frozen=True, slots=True, kw_only=True)
class _Tally:
    hits: int
    false_hits: int
    paraphrase_hits: int
    look_alike_hits: int
    saved_usd: Decimal
    saved_right_usd: Decimal
    false_by_edit: dict[str, int]

    def as_json(self, variants: list[Variant]) -> dict[str, Any]:
        paraphrases = sum(1 for v in variants if v.same_answer)
        look_alikes = len(variants) - paraphrases
        return {
            "hits": self.hits,
            "hit_rate": self.hits / len(variants) if variants else 0.0,
            "false_hits": self.false_hits,
            "false_hit_rate": self.false_hits / self.hits if self.hits else 0.0,
            "paraphrases_served": self.paraphrase_hits,
            "paraphrase_hit_rate": self.paraphrase_hits / paraphrases if paraphrases else 0.0,
            "look_alikes_served": self.look_alike_hits,
            "look_alike_served_rate": self.look_alike_hits / look_alikes if look_alikes else 0.0,
            "saved_usd": format(self.saved_usd, "f"),
            "saved_on_right_answers_usd": format(self.saved_right_usd, "f"),
            "false_hits_by_edit": self.false_by_edit,
        }


def _tally(served: list[tuple[Variant, dict[str, Any], Decimal]]) -> _Tally:
    false_by_edit: dict[str, int] = {}
    for v, output, _ in served:
        if not _same(output, v.answer):
            false_by_edit[v.edit] = false_by_edit.get(v.edit, 0) + 1
    return _Tally(
        false_by_edit=false_by_edit,
        hits=len(served),
        false_hits=sum(1 for v, output, _ in served if not _same(output, v.answer)),
        paraphrase_hits=sum(1 for v, _, _ in served if v.same_answer),
        look_alike_hits=sum(1 for v, _, _ in served if not v.same_answer),
        saved_usd=sum((cost for _, _, cost in served), Decimal(0)),
        saved_right_usd=sum(
            (cost for v, output, cost in served if _same(output, v.answer)), Decimal(0)
        ),
    )


async def run_cache_bench(
    *,
    roster: Path,
    data: Path,
    thresholds: list[float],
    tickets: int | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Build the labelled set, run the verified and the plain cache over it at each threshold,
    and return the document `handoffs bench cache --json` prints."""
    seeds = [json.loads(line) for line in (data / "tickets.jsonl").read_text().splitlines() if line]
    gold = [json.loads(line) for line in (data / "tickets_gold.jsonl").read_text().splitlines() if line]  # fmt: skip
    seeds = seeds[:tickets] if tickets else seeds
    variants = labelled_set(seeds, gold)
    extractor: Any = load_module(roster, "extractor").agent
    ticket_type: Any = extractor.input_type
    answers = {g["id"]: {f: g[f] for f in FIELDS} for g in gold}
    answers.update({v.ticket["id"]: v.answer for v in variants})
    catalog = Catalog([MODEL])
    policy = Policy(rules=(Rule(kind=extractor.kind, ladder=("mid",)),))
    models = _oracle(answers)
    embedder = default_embedder()

    def task(ticket: dict[str, Any]) -> Task[Any]:
        return extractor.task(ticket_type.model_validate(ticket), fallback=None)

    def session(cache: ResponseCache | None) -> Session:
        return Session(catalog=catalog, models=models, policy=policy, cache=cache, tracing=False)

    progress(f"{len(variants)} variants of {len(seeds)} tickets; measuring each one's own cost")
    cold = session(None)
    cost: dict[str, Decimal] = {}
    for v in variants:
        cost[v.ticket["id"]] = (await cold.delegate(task(v.ticket))).cost_usd
    seed_text = [input_text(task(s)) for s in seeds]
    seed_vectors = await anyio.to_thread.run_sync(embedder.embed, seed_text)
    variant_vectors = await anyio.to_thread.run_sync(
        embedder.embed, [input_text(task(v.ticket)) for v in variants]
    )
    rows: list[dict[str, Any]] = []
    index = ""
    for threshold in thresholds:
        progress(f"threshold {threshold}: verified cache")
        store = CacheStore()
        index = store.index
        policy_ = CachePolicy(threshold=threshold)
        warm = session(ResponseCache(store, scope="bench", policy=policy_, embedder=embedder))
        for s in seeds:
            await warm.delegate(task(s))
        read_only = ResponseCache(
            store, scope="bench", policy=replace(policy_, keep=False), embedder=embedder
        )
        reader = session(read_only)
        verified: list[tuple[Variant, dict[str, Any], Decimal]] = []
        for v in variants:
            delivery = await reader.delegate(task(v.ticket))
            if delivery.record.cache in ("exact", "semantic"):
                verified.append((v, dict(delivery.record.output), cost[v.ticket["id"]]))
        store.close()
        progress(f"threshold {threshold}: plain semantic cache")
        plain: list[tuple[Variant, dict[str, Any], Decimal]] = []
        for v, vector in zip(variants, variant_vectors, strict=True):
            sims = [sum(a * b for a, b in zip(vector, s, strict=True)) for s in seed_vectors]
            best = max(range(len(seeds)), key=lambda i: sims[i])
            if sims[best] >= threshold:
                plain.append((v, answers[seeds[best]["id"]], cost[v.ticket["id"]]))
        rows.append(
            {
                "threshold": threshold,
                "verified": _tally(verified).as_json(variants),
                "plain": _tally(plain).as_json(variants),
            }
        )
    edits: dict[str, int] = {}
    for v in variants:
        edits[v.edit] = edits.get(v.edit, 0) + 1
    return {
        "tickets": len(seeds),
        "variants": len(variants),
        "paraphrases": sum(1 for v in variants if v.same_answer),
        "look_alikes": sum(1 for v in variants if not v.same_answer),
        "edits": edits,
        "embedder": embedder.model,
        "index": index,
        "model": f"{MODEL.name} (scripted to answer right; priced as {MODEL.name})",
        "cost_without_cache_usd": format(sum(cost.values(), Decimal(0)), "f"),
        "rows": rows,
    }


def cache(
    roster: Annotated[Path, typer.Option(help="The roster whose extractor is the task.")] = Path(
        "agents"
    ),
    data: Annotated[
        Path, typer.Option(help="The folder of tickets.jsonl and tickets_gold.jsonl.")
    ] = Path("examples/data"),
    threshold: Annotated[
        str, typer.Option(help="Similarity thresholds to measure, comma-separated.")
    ] = "0.95,0.97,0.99",
    tickets: Annotated[
        int, typer.Option(help="Use only the first N tickets (0: all of them).")
    ] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Hit rate, false-hit rate and $ saved of the verified response cache beside a plain
    semantic cache at the same threshold, on paraphrases and look-alikes of the bundled tickets."""
    try:
        thresholds = [float(t) for t in threshold.split(",") if t.strip()]
    except ValueError:
        raise fail(f"--threshold must be comma-separated numbers, not {threshold!r}") from None
    if not thresholds or not all(0 < t <= 1 for t in thresholds):
        raise fail("every --threshold must be in (0, 1]")
    if tickets < 0:
        raise fail("--tickets must not be negative")
    for name in ("tickets.jsonl", "tickets_gold.jsonl"):
        if not (data / name).is_file():
            raise fail(f"not found: {data / name}")
    if not (roster / "extractor.py").is_file():
        raise fail(f"roster has no extractor.py: {roster}")
    doc = anyio.run(
        lambda: run_cache_bench(
            roster=roster,
            data=data,
            thresholds=thresholds,
            tickets=tickets or None,
            progress=lambda line: None if as_json else err.print(line, highlight=False),
        )
    )
    if as_json:
        out.print_json(json.dumps(doc))
        return
    table = Table(
        title=f"{doc['variants']} inputs ({doc['paraphrases']} paraphrases, {doc['look_alikes']} "
        f"look-alikes) from {doc['tickets']} tickets; {doc['embedder']}, {doc['index']}",
        title_justify="left",
    )
    for col in (
        "threshold",
        "cache",
        "hits",
        "hit rate",
        "false hits",
        "false-hit rate",
        "$ saved",
        "on right answers",
    ):
        table.add_column(col, justify="left" if col == "cache" else "right")
    for row in doc["rows"]:
        for name in ("verified", "plain"):
            t = row[name]
            table.add_row(
                f"{row['threshold']:.2f}",
                name,
                str(t["hits"]),
                f"{t['hit_rate']:.0%}",
                str(t["false_hits"]),
                f"{t['false_hit_rate']:.0%}",
                f"${t['saved_usd']}",
                f"${t['saved_on_right_answers_usd']}",
            )
    out.print(table)
    out.print(f"without a cache: ${doc['cost_without_cache_usd']}", highlight=False)
