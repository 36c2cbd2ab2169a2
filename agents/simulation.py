"""How the SIMULATED frontier and mid models behave when no API keys are set.

The fake provider serves these answers under the cloud tiers' names, labelled "simulated". They
come from a keyword-and-regex reading of the ticket text (an "expert" that never sees gold labels):
`solve` answers a subordinate's task, `grade` is the judge, `plan` is the orchestrator.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from functools import partial
from typing import Any, cast

from handoffs_tools.tickets import (
    asks_for_refund,
    dollar_amounts,
    emails_in,
    first_name,
    mentions,
    order_ids_in,
    products_in,
)

__all__ = ["grade", "plan", "solve"]


def _rx(*words: str) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(words) + r")\b", re.I)


_TAKEOVER = _rx(r"hacked", r"someone changed my password", r"compromised", r"unauthori[sz]ed login")
_CHARGE = _rx(
    r"charged", r"charges?", r"overcharged", r"billed", r"bill", r"invoice", r"vat", r"price",
    r"subscription fee", r"payment",
)  # fmt: skip
_MONEY_TAKEN = _rx(r"charged", r"charges", r"overcharged", r"billed")
_REFUND = _rx(r"refund\w*")
_FEATURE = _rx(
    r"would love", r"would be (?:really |very )?(?:great|helpful|nice)", r"please add",
    r"any plans? to", r"feature request", r"can you add", r"wish\w*",
)  # fmt: skip
_SHIPPING = _rx(
    r"ORD-\d{5}", r"tracking", r"delivered", r"delivery", r"shipped", r"shipment", r"package",
    r"arrived", r"never arrived", r"expedite",
)  # fmt: skip
_ERROR = _rx(
    r"\w*error", r"crash\w*", r"outage", r"bug", r"5\d\d", r"429", r"exception", r"is down",
)  # fmt: skip
_ACCESS = _rx(
    r"locked out", r"log ?in", r"password", r"2fa", r"two-factor", r"suspended",
    r"change the email", r"account email", r"reset email",
)  # fmt: skip
_GLITCH = _rx(r"not working", r"stuck", r"broken", r"delayed", r"late", r"freez\w*", r"slow")

_OUTAGE = _rx(r"outage", r"is down", r"nobody", r"can't work", r"all \d+ of our users", r"blocked")
_TWICE = _rx(r"twice", r"two charges", r"double[- ]charged", r"duplicate charge", r"charged again")
_LEGAL = _rx(r"lawyer", r"attorney", r"legal action", r"sue", r"lawsuit", r"court")
_SECURITY = _rx(r"hacked", r"someone changed my password", r"freeze it")
_STUCK = _rx(r"locked out", r"suspended", r"can't log in", r"cannot log in", r"hasn't arrived")
_DEADLINE = _rx(
    r"today", r"tonight", r"tomorrow", r"deadline", r"by \d+ ?(?:am|pm)", r"noon",
    r"(?:on|by) (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)",
)  # fmt: skip


def _text(ticket: Mapping[str, Any]) -> str:
    text = f"{ticket.get('subject', '')}\n{ticket.get('body', '')}"
    return text.replace("\u2019", "'")  # curly apostrophes read as straight ones


def _category(text: str) -> tuple[str, str]:
    """The category and the reason, rules tried from most to least specific."""
    rules: list[tuple[str, re.Pattern[str], str]] = [
        ("account", _TAKEOVER, "someone else has taken over the account"),
        ("billing", _MONEY_TAKEN, "money was taken"),
        ("feature_request", _FEATURE, "the customer asks for something new"),
        ("shipping", _SHIPPING, "an order's delivery went wrong"),
        ("billing", _CHARGE, "a question about what was billed"),
        ("billing", _REFUND, "the customer wants money back"),
        ("bug", _ERROR, "the product shows an error or is down"),
        ("account", _ACCESS, "the customer cannot get into or change the account"),
        ("bug", _GLITCH, "part of the product misbehaves"),
    ]
    for category, pattern, why in rules:
        hit = pattern.search(text)
        if hit:
            return category, f"{why} ({hit.group(0)!r})"
    return "other", "no clear request or problem is stated"


def _urgency(text: str) -> str | None:
    """Why the ticket is urgent, or None when it is not."""
    for pattern, why in ((_OUTAGE, "outage"), (_TWICE, "money taken twice"),
                         (_LEGAL, "legal threat"), (_SECURITY, "account hijacked")):  # fmt: skip
        if pattern.search(text):
            return why
    if _STUCK.search(text) and _DEADLINE.search(text):
        return "blocked before a deadline"
    return None


def _triage(ticket: Mapping[str, Any]) -> dict[str, Any]:
    text = _text(ticket)
    category, why = _category(text)
    urgent = _urgency(text)
    reason = f"{why[0].upper()}{why[1:]}" + (f"; urgent: {urgent}." if urgent else ".")
    return {"category": category, "urgent": urgent is not None, "reason": reason[:160]}


def _fields(ticket: Mapping[str, Any]) -> dict[str, Any]:
    text = _text(ticket)

    def first(values: list[Any]) -> Any:
        return values[0] if values else None

    return {
        "order_id": first(order_ids_in(text)),
        "product": first(products_in(text)),
        "email": first(emails_in(text)),
        "amount_usd": first(dollar_amounts(text)),
    }


_NEXT_STEP = {
    "billing": "Our billing team is reviewing the charges on your account now",
    "bug": "Our engineers are investigating and we will update you as soon as it is fixed",
    "account": "Our account security team is restoring your access now",
    "shipping": "We are checking with the carrier and will confirm a delivery date",
    "feature_request": "We have passed your suggestion to the product team",
    "other": "A member of our team will follow up with you personally",
}


def _reply(request: Mapping[str, Any]) -> dict[str, Any]:
    ticket: Mapping[str, Any] = request.get("ticket", request)
    triage: Mapping[str, Any] = request.get("triage") or _triage(ticket)
    name = first_name(str(ticket.get("customer", ""))) or "there"
    subject = str(ticket.get("subject", "your request"))
    lines = [
        f"Hi {name},",
        f'Thank you for writing about "{subject}". I am sorry for the trouble this has caused.',
        _NEXT_STEP.get(str(triage.get("category")), _NEXT_STEP["other"]) + ".",
    ]
    if asks_for_refund(_text(ticket)):
        lines.append("If the charge was made in error, we will refund it in full.")
    if triage.get("urgent"):
        lines.append("We have marked your ticket urgent and will reply within two hours.")
    lines.append("Best regards,\nThe Support Team")
    return {"subject": f"Re: {subject}", "body": "\n\n".join(lines)}


def solve(output_title: str, input: dict[str, Any]) -> dict[str, Any] | None:
    """The simulated expert's answer for the output model titled `output_title`, or None."""
    if output_title == "Triage":
        return _triage(input)
    if output_title == "TicketFields":
        return _fields(input)
    if output_title == "ReplyDraft":
        return _reply(input)
    return None


_STOPWORDS = frozenset("about after again before being could from have into just need please "
                       "since still that their there they this what when where which with would your".split())  # fmt: skip


def _topic_words(ticket: Mapping[str, Any]) -> set[str]:
    words = re.findall(r"[A-Za-z][A-Za-z0-9-]{3,}", str(ticket.get("subject", "")))
    return {w.casefold() for w in words if w.casefold() not in _STOPWORDS}


def grade(
    output_title: str, input: dict[str, Any], answer: dict[str, Any]
) -> tuple[float, list[str]]:
    """The simulated judge: a score in [0, 1] for `answer`, and the reasons it lost points."""
    if output_title == "Triage":
        expected = _triage(input)
        if answer.get("category") != expected["category"]:
            return 0.2, [f"category should be {expected['category']}: {expected['reason']}"]
        if bool(answer.get("urgent")) != expected["urgent"]:
            state = "urgent" if expected["urgent"] else "not urgent"
            return 0.5, [f"the ticket is {state}: {expected['reason']}"]
        return 0.95, []
    if output_title == "TicketFields":
        expected = _fields(input)
        wrong = [k for k, v in expected.items() if answer.get(k) != v]
        return max(0.0, 1.0 - 0.25 * len(wrong)), [f"{k} should be {expected[k]!r}" for k in wrong]
    if output_title == "ReplyDraft":
        ticket: Mapping[str, Any] = input.get("ticket", input)
        body = f"{answer.get('subject', '')}\n{answer.get('body', '')}"
        score, reasons = 1.0, list[str]()
        name = first_name(str(ticket.get("customer", "")))
        if name and not mentions(body, name):
            score -= 0.5
            reasons.append(f"does not address {name} by name")
        topic = _topic_words(ticket) | set(order_ids_in(_text(ticket)))
        if topic and not any(mentions(body, word) for word in topic):
            score -= 0.4
            reasons.append("does not mention what the ticket is about")
        if not str(answer.get("body", "")).strip():
            score = 0.0
            reasons.append("the body is empty")
        return round(max(score, 0.0), 2), reasons
    return 0.9, []


def _output(result: dict[str, Any] | str) -> dict[str, Any] | None:
    if isinstance(result, dict):
        output: Any = result.get("output")
        return cast(dict[str, Any], output) if isinstance(output, dict) else None
    return None


def plan(
    tickets: list[dict[str, Any]], results: list[tuple[str, dict[str, Any], dict[str, Any] | str]]
) -> list[tuple[str, dict[str, Any]]] | str:
    """The simulated orchestrator: the next batch of tool calls, or the final summary when done.

    By reference (each ticket shown as `{"ref": handle, "id": ...}`), it plans as a frontier
    model would over handles: step 1 classifies and extracts every ticket in two `delegate_each`
    calls, step 2 drafts replies for the urgent ones in one, step 3 summarises. With the tickets
    shown whole it calls one tool per ticket: classify every ticket; then extract every ticket and
    draft for the urgent ones; then summarise. A call already made (even one that failed) is not
    repeated.
    """
    if tickets and all("ref" in t for t in tickets):
        return _plan_by_reference(tickets, results)
    called: dict[str, dict[str, dict[str, Any] | str]] = {}
    for tool, args, result in results:
        ticket_id = str(args.get("ticket", args).get("id"))
        called.setdefault(tool, {})[ticket_id] = result
    classified = called.get("classify_ticket", {})
    todo = [("classify_ticket", t) for t in tickets if t["id"] not in classified]
    if todo:
        return todo
    triage = {tid: _output(result) for tid, result in classified.items()}
    extracted, drafted = called.get("extract_fields", {}), called.get("draft_reply", {})
    for t in tickets:
        if t["id"] not in extracted:
            todo.append(("extract_fields", t))
        tri = triage.get(t["id"])
        if tri and tri.get("urgent") and t["id"] not in drafted:
            todo.append(("draft_reply", {"ticket": t, "triage": tri}))
    if todo:
        return todo
    return _summary(tickets, results, triage)


def _plan_by_reference(
    tickets: list[dict[str, Any]], results: list[tuple[str, dict[str, Any], dict[str, Any] | str]]
) -> list[tuple[str, dict[str, Any]]] | str:
    refs = [str(t["ref"]) for t in tickets]
    done: dict[str, dict[str, dict[str, Any]]] = {}  # tool -> ticket handle -> its result
    for tool, args, result in results:
        if tool != "delegate_each":
            continue
        inputs = refs if args.get("inputs") == "all" else cast(list[Any], args.get("inputs", []))
        for given, item in _fanned_out(inputs, result):
            ref = given if isinstance(given, str) else cast(dict[str, Any], given).get("ticket")
            done.setdefault(str(args.get("tool")), {})[str(ref)] = item
    todo: list[tuple[str, dict[str, Any]]] = []
    # what the plan reads of each answer: a classification's category and urgency; of an
    # extraction and a reply, only whether they were delivered
    for tool, fields in (("classify_ticket", ["category", "urgent"]), ("extract_fields", [])):
        left = [r for r in refs if r not in done.get(tool, {})]
        if left:
            inputs: Any = "all" if len(left) == len(refs) else left
            todo.append(("delegate_each", {"tool": tool, "inputs": inputs, "fields": fields}))
    if todo:
        return todo
    classified, drafted = done["classify_ticket"], done.get("draft_reply", {})
    urgent = [
        {"ticket": r, "triage": classified[r]["result"]}
        for r in refs
        if classified[r].get("status") == "delivered"
        and classified[r].get("output", {}).get("urgent")
        and r not in drafted
    ]
    if urgent:
        return [("delegate_each", {"tool": "draft_reply", "inputs": urgent, "fields": []})]
    ids = {str(t["ref"]): str(t["id"]) for t in tickets}  # a result without status: delivered
    categories = Counter(str(i.get("output", {}).get("category")) for i in classified.values())
    urgent_ids = sorted(ids[r] for r, i in classified.items() if i.get("output", {}).get("urgent"))
    replies = sum(1 for i in drafted.values() if i.get("status") == "delivered")
    human = sorted(
        {
            ids.get(r, r)
            for per in done.values()
            for r, i in per.items()
            if i.get("status") != "delivered"
        }
    )
    return _summary_line(len(tickets), categories, urgent_ids, replies, human)


def _fanned_out(inputs: list[Any], result: Any) -> list[tuple[Any, dict[str, Any]]]:
    """Each input of a `delegate_each` with what came back for it (`status` and `result` handle
    and `output` fields, as one object per result or as the table `fields` asks for)."""
    if isinstance(result, list):
        return [
            (given, {"status": "delivered", **cast(dict[str, Any], item)})
            for given, item in zip(inputs, cast(list[Any], result), strict=False)
        ]
    if not isinstance(result, dict):
        return []
    table = cast(dict[str, Any], result)
    if "delivered" not in table:  # refused whole: every input with it
        return [(given, table) for given in inputs]
    key = partial(json.dumps, sort_keys=True)
    missed = {
        key(m.get("input")): m for m in cast(list[dict[str, Any]], table.get("not_delivered", []))
    }
    columns = cast(list[str], table.get("columns", []))
    listed = cast(list[list[Any] | None], table.get("rows", []))
    if "input" not in columns:  # over every item: the rows are the inputs', in order
        listed = [
            None if row is None else [given, *row]
            for given, row in zip(inputs, listed, strict=False)
        ]
        columns = ["input", *columns]
    rows: dict[str, dict[str, Any]] = {}
    for row in listed:
        if row is None:
            continue
        cells = dict(zip(columns, row, strict=False))
        given, handle = cells.pop("input", None), cells.pop("result", None)
        rows[key(given)] = {"status": "delivered", "result": handle, "output": cells}
    return [
        (given, missed.get(key(given)) or rows.get(key(given)) or {"status": "delivered"})
        for given in inputs
    ]


def _summary(
    tickets: list[dict[str, Any]],
    results: list[tuple[str, dict[str, Any], dict[str, Any] | str]],
    triage: Mapping[str, dict[str, Any] | None],
) -> str:
    categories = Counter(str(t["category"]) for t in triage.values() if t)
    urgent = sorted(tid for tid, t in triage.items() if t and t.get("urgent"))
    replies = sum(1 for tool, _, r in results if tool == "draft_reply" and _output(r) is not None)
    human = sorted({str(args.get("ticket", args).get("id")) for _, args, r in results
                    if not isinstance(r, dict) or r.get("status") != "delivered"})  # fmt: skip
    return _summary_line(len(tickets), categories, urgent, replies, human)


def _summary_line(
    tickets: int, categories: Counter[str], urgent: list[str], replies: int, human: list[str]
) -> str:
    """The orchestrator's closing summary, as a frontier model would write it."""
    per_category = ", ".join(f"{c} {n}" for c, n in categories.most_common())
    return (
        f"Triaged {tickets} tickets: {per_category or 'none classified'}. "
        f"Urgent: {len(urgent)}{' (' + ', '.join(urgent) + ')' if urgent else ''}. "
        f"Replies drafted: {replies}. "
        f"Need a human: {', '.join(human) if human else 'none'}."
    )
