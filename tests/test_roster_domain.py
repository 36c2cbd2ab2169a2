"""The support roster's domain: dataset, gold labels, predicates and the simulated models."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from handoffs.catalog import Catalog
from handoffs.handoff import Verdict
from handoffs.project import load_module
from handoffs.verify import CheckContext
from handoffs.verify.checks import Predicate

ROOT = Path(__file__).resolve().parent.parent
AGENTS = ROOT / "agents"
DATA = ROOT / "examples" / "data"


def roster(name: str) -> ModuleType:
    """Import `agents/<name>.py` as the roster loader does (with `tools/` mounted)."""
    return load_module(AGENTS, name, tools=ROOT / "tools")


def jsonl(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


TICKETS = jsonl("tickets.jsonl")
GOLD = {g["id"]: g for g in jsonl("tickets_gold.jsonl")}
FIELDS = ("order_id", "product", "email", "amount_usd")


@pytest.fixture(scope="module")
def support() -> ModuleType:
    return roster("support")


@pytest.fixture(scope="module")
def sim() -> ModuleType:
    return roster("simulation")


async def run_predicates(agent: Any, output: Any, input: Any) -> list[Verdict]:
    """Run a subordinate's predicate checks (not its judge) the way the engine does."""

    async def no_model(*_: Any) -> Any:
        raise AssertionError("predicates must not call a model")

    ctx = CheckContext(task=agent.task(input), producer="tiny", catalog=Catalog([]), ask=no_model)
    predicates = [c for c in agent.checks if isinstance(c, Predicate)]
    assert predicates, "the subordinate declares no predicate"
    return [await check(output, ctx) for check in predicates]


def test_dataset_parses_into_tickets_and_gold_covers_every_id(support: ModuleType) -> None:
    tickets = [support.Ticket.model_validate(t) for t in TICKETS]
    assert len(tickets) == 30
    assert [t.id for t in tickets] == sorted(GOLD) == [f"T-{n:03d}" for n in range(1, 31)]
    triages = [
        support.Triage(category=g["category"], urgent=g["urgent"], reason="gold")
        for g in GOLD.values()
    ]
    assert {t.category for t in triages} == set(support.Category.__args__)
    assert 8 <= sum(t.urgent for t in triages) <= 12
    for gold in GOLD.values():
        support.TicketFields.model_validate({k: gold[k] for k in FIELDS})


@pytest.mark.parametrize("ticket", TICKETS, ids=[t["id"] for t in TICKETS])
def test_solve_answers_validate_as_each_output_model(
    ticket: dict[str, Any], sim: ModuleType, support: ModuleType
) -> None:
    triage = support.Triage.model_validate(sim.solve("Triage", ticket))
    support.TicketFields.model_validate(sim.solve("TicketFields", ticket))
    request = support.ReplyRequest(ticket=support.Ticket.model_validate(ticket), triage=triage)
    draft = support.ReplyDraft.model_validate(sim.solve("ReplyDraft", request.model_dump()))
    assert ticket["customer"].split()[0] in draft.body
    assert sim.solve("Summary", ticket) is None


def test_solve_agrees_with_gold_on_category_and_urgency(sim: ModuleType) -> None:
    answers = {t["id"]: sim.solve("Triage", t) for t in TICKETS}
    category = sum(answers[i]["category"] == g["category"] for i, g in GOLD.items()) / len(GOLD)
    urgency = sum(answers[i]["urgent"] == g["urgent"] for i, g in GOLD.items()) / len(GOLD)
    fields = sum(
        sim.solve("TicketFields", t) == {k: GOLD[t["id"]][k] for k in FIELDS} for t in TICKETS
    ) / len(TICKETS)
    print(f"solve vs gold: category {category:.0%}, urgency {urgency:.0%}, all fields {fields:.0%}")
    assert category >= 0.8
    assert urgency >= 0.8


def test_grade_scores_a_wrong_category_low_and_a_wrong_urgency_medium(sim: ModuleType) -> None:
    ticket = TICKETS[0]  # T-001: charged twice -> billing, urgent
    good = sim.solve("Triage", ticket)
    assert sim.grade("Triage", ticket, good)[0] >= 0.8
    wrong_category, reasons = sim.grade("Triage", ticket, {**good, "category": "feature_request"})
    assert wrong_category < 0.5 and "billing" in reasons[0]
    assert 0.3 <= sim.grade("Triage", ticket, {**good, "urgent": False})[0] < 0.8
    assert sim.grade("Unknown", ticket, {}) == (0.9, [])


def test_grade_wants_a_reply_that_names_the_customer_and_the_problem(sim: ModuleType) -> None:
    request = {"ticket": TICKETS[3], "triage": sim.solve("Triage", TICKETS[3])}
    assert sim.grade("ReplyDraft", request, sim.solve("ReplyDraft", request))[0] >= 0.8
    generic = {"subject": "Hello", "body": "Dear customer, thanks for your message."}
    score, reasons = sim.grade("ReplyDraft", request, generic)
    assert score < 0.8 and len(reasons) == 2


async def test_extractor_predicates_reject_values_not_in_the_ticket(support: ModuleType) -> None:
    extractor = roster("extractor")
    ticket = support.Ticket.model_validate(TICKETS[3])  # T-004: ORD-48213, Acme Router X2
    invented = {
        "order_id": "ORD-48312",
        "email": "tom.becker@example.com",
        "product": "Acme Router X3",
        "amount_usd": 48213.0,
    }
    for field, value in invented.items():
        output = support.TicketFields.model_validate({field: value})
        failed = [v for v in await run_predicates(extractor.agent, output, ticket) if not v.passed]
        assert [v.check for v in failed] == [f"predicate:{field}_in_ticket"], field
        assert repr(value) in failed[0].reasons[0] or str(value) in failed[0].reasons[0]


@pytest.mark.parametrize("ticket", TICKETS, ids=[t["id"] for t in TICKETS])
async def test_extractor_predicates_accept_the_gold_values(
    ticket: dict[str, Any], support: ModuleType
) -> None:
    extractor = roster("extractor")
    gold = support.TicketFields.model_validate({k: GOLD[ticket["id"]][k] for k in FIELDS})
    upper = gold.model_copy(update={"product": gold.product and gold.product.upper()})
    for output in (gold, upper):
        verdicts = await run_predicates(extractor.agent, output, support.Ticket(**ticket))
        assert all(v.passed for v in verdicts), verdicts


async def test_classifier_predicate_flags_a_refund_classified_as_feature_request(
    support: ModuleType,
) -> None:
    classifier = roster("classifier")
    ticket = support.Ticket.model_validate(TICKETS[8])  # T-009: refund for a cancelled plan
    wrong = support.Triage(category="feature_request", urgent=False, reason="wants a refund")
    [verdict] = await run_predicates(classifier.agent, wrong, ticket)
    assert not verdict.passed and "billing" in verdict.reasons[0]
    right = wrong.model_copy(update={"category": "billing"})
    assert all(v.passed for v in await run_predicates(classifier.agent, right, ticket))
    dark_mode = support.Ticket.model_validate(TICKETS[4])  # T-005: a real feature request
    assert all(v.passed for v in await run_predicates(classifier.agent, wrong, dark_mode))


async def test_writer_predicates_reject_an_unasked_refund_and_a_nameless_reply(
    support: ModuleType,
) -> None:
    writer = roster("writer")
    ticket = support.Ticket.model_validate(TICKETS[1])  # T-002: a crash, no refund asked
    triage = support.Triage(category="bug", urgent=False, reason="crash")
    request = support.ReplyRequest(ticket=ticket, triage=triage)
    promise = support.ReplyDraft(subject="Re", body="Hi James, we will refund your plan today.")
    nameless = support.ReplyDraft(subject="Re", body="Hello, we are looking into the crash.")
    fine = support.ReplyDraft(subject="Re", body="Hi James, our engineers are on the crash.")
    failed = {
        name: [v.check for v in await run_predicates(writer.agent, draft, request) if not v.passed]
        for name, draft in (("promise", promise), ("nameless", nameless), ("fine", fine))
    }
    assert failed == {
        "promise": ["predicate:no_unasked_refund"],
        "nameless": ["predicate:addresses_customer"],
        "fine": [],
    }


def test_plan_classifies_then_extracts_and_drafts_for_urgent_then_summarises(
    sim: ModuleType,
) -> None:
    tickets = [TICKETS[0], TICKETS[1], TICKETS[4]]  # T-001 urgent billing, T-002 bug, T-005 feature
    results: list[tuple[str, dict[str, Any], dict[str, Any] | str]] = []

    def answer(calls: list[tuple[str, dict[str, Any]]]) -> None:
        for tool, args in calls:
            title = {"classify_ticket": "Triage", "extract_fields": "TicketFields"}.get(
                tool, "ReplyDraft"
            )
            results.append((tool, args, {"status": "delivered", "output": sim.solve(title, args)}))

    step1 = sim.plan(tickets, results)
    assert step1 == [("classify_ticket", t) for t in tickets]
    answer(step1)
    step2 = sim.plan(tickets, results)
    assert [(tool, args.get("id") or args["ticket"]["id"]) for tool, args in step2] == [
        ("extract_fields", "T-001"),
        ("draft_reply", "T-001"),
        ("extract_fields", "T-002"),
        ("extract_fields", "T-005"),
    ]
    assert step2[1][1]["triage"]["urgent"] is True
    answer(step2)
    summary = sim.plan(tickets, results)
    assert isinstance(summary, str)
    assert "3 tickets" in summary and "Urgent: 1 (T-001)" in summary
    assert "Replies drafted: 1" in summary and "Need a human: none" in summary


def test_plan_does_not_repeat_a_failed_call_and_flags_it_for_a_human(sim: ModuleType) -> None:
    tickets = [TICKETS[0]]
    results: list[tuple[str, dict[str, Any], dict[str, Any] | str]] = [
        ("classify_ticket", TICKETS[0], {"status": "failed", "error": "every rung failed"})
    ]
    assert sim.plan(tickets, results) == [("extract_fields", TICKETS[0])]
    results.append(("extract_fields", TICKETS[0], "tool error"))
    summary = sim.plan(tickets, results)
    assert isinstance(summary, str) and "Need a human: T-001" in summary


def test_ticket_tools_read_numbers_ids_and_products() -> None:
    roster("support")  # mounts tools/ as handoffs_tools
    tickets = importlib.import_module("handoffs_tools.tickets")
    text = "Order ORD-48213 cost $1,250.00 (not 12.5 USD); write to a.b@example.org about the Smart Plug."
    assert tickets.numbers_in(text) == [1250.0, 12.5]
    assert tickets.dollar_amounts(text) == [1250.0, 12.5]
    assert tickets.order_ids_in(text) == ["ORD-48213"]
    assert tickets.emails_in(text) == ["a.b@example.org"]
    assert tickets.products_in(text) == ["Smart Plug"]
    assert tickets.mentions(text, "smart  plug") and not tickets.mentions(text, "")
