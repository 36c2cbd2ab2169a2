"""`handoffs bench cache`, small: the labelled set's construction and the document's shape."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from handoffs.cli import app
from handoffs_bench.cache import labelled_set

ROOT = Path(__file__).resolve().parents[2]


def _lines(name: str) -> list[dict[str, object]]:
    text = (ROOT / "examples" / "data" / name).read_text()
    return [json.loads(line) for line in text.splitlines() if line]


def test_the_labelled_set_keeps_paraphrase_answers_and_changes_look_alike_answers() -> None:
    tickets, gold = _lines("tickets.jsonl"), _lines("tickets_gold.jsonl")
    variants = labelled_set(tickets, gold)
    seeds = {str(t["id"]): t for t in tickets}
    for v in variants:
        seed = seeds[v.seed]
        assert v.ticket["id"] != v.seed and v.ticket != seed
        paraphrase = v.edit in ("greet", "thanks", "subject")
        assert v.same_answer is paraphrase
    edits = {v.edit for v in variants}
    assert edits == {
        "greet",
        "thanks",
        "subject",
        "amount",
        "order",
        "add_order",
        "email",
        "product",
    }
    amount = next(v for v in variants if v.seed == "T-001" and v.edit == "amount")
    assert "59.99" in str(amount.ticket["body"]) and amount.answer["amount_usd"] == 59.99


def test_bench_cache_json_compares_the_verified_cache_with_a_plain_one() -> None:
    result = CliRunner().invoke(
        app,
        [
            "bench", "cache", "--tickets", "1", "--threshold", "0.9",
            "--roster", str(ROOT / "agents"), "--data", str(ROOT / "examples" / "data"), "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["tickets"] == 1 and doc["variants"] == doc["paraphrases"] + doc["look_alikes"]
    (row,) = doc["rows"]
    for name in ("verified", "plain"):
        for key in ("hits", "hit_rate", "false_hits", "false_hit_rate", "saved_usd"):
            assert key in row[name]
    # T-001's look-alikes change its amount or product, which its checks read: never served
    assert row["verified"]["false_hits_by_edit"].get("amount", 0) == 0
    assert row["verified"]["false_hit_rate"] <= row["plain"]["false_hit_rate"]


def test_bench_cache_refuses_nonsense_in_one_line() -> None:
    result = CliRunner().invoke(app, ["bench", "cache", "--threshold", "1.5"])
    assert result.exit_code == 2
    assert "threshold" in result.stderr
