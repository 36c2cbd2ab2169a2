"""How good are the local tiers? Each one alone, and the ladders, on the 30 bundled tickets.

Shows: the demo's ticket classifier (`agents/classifier.py`: its instructions, output type and
checks) run over `examples/data/tickets.jsonl` and scored against `examples/data/tickets_gold.jsonl`
(category accuracy, urgent accuracy), once per setup:

- `local` alone: SmolLM2-135M, schema check only;
- `local-strong` alone: Qwen2.5-Coder-1.5B (opt-in: `handoffs models install qwen2.5-coder-1.5b`);
- the `classify` ladder of `handoffs.toml` (local -> mid -> frontier) and of `handoffs.local.toml`
  (local -> local-strong -> mid -> frontier), with the classifier's checks (`roster`): its
  predicate and a judge on `mid`. Offline, `mid` and `frontier` are SIMULATED by the demo's
  keyword heuristic (`agents/simulation.py`), and so is the judge, whose feedback names the
  category it expects: these rows measure the mechanics (who delivered), not the local models;
- `local-only`: local -> local-strong with the classifier's predicate only: every model and every
  check real. The "delivered by" column says who answered.

Every call is real for the local models (llama.cpp in this process, temperature 0); the table is
printed as Markdown, with the command that made it. A setup whose model is not installed is
skipped with one line saying how to install it.

    .venv/bin/python examples/10_local_tiers.py [--limit N] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import anyio

from handoffs import Budget, Check, Config, Policy, Rule, load_config
from handoffs.orchestrator import Subordinate
from handoffs.project import configured_session, job_simulation, load_job, open_portfolio
from handoffs.providers import local_problem
from handoffs.verify.checks import Predicate

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "examples" / "jobs" / "support-triage.toml"
GOLD = ROOT / "examples" / "data" / "tickets_gold.jsonl"


@dataclass(frozen=True, kw_only=True)
class Setup:
    name: str
    config: str
    ladder: tuple[str, ...]
    checks: Literal["schema", "roster", "predicate"]
    """`roster`: the classifier's own checks (its predicate and the judge on mid); `predicate`:
    its predicate only (no simulated judge: every check is real); `schema`: the schema only."""


SETUPS = [
    Setup(name="smollm2", config="handoffs.toml", ladder=("local",), checks="schema"),
    Setup(name="qwen", config="handoffs.local.toml", ladder=("local-strong",), checks="schema"),
    Setup(
        name="ladder", config="handoffs.toml", ladder=("local", "mid", "frontier"), checks="roster"
    ),
    Setup(
        name="ladder-local",
        config="handoffs.local.toml",
        ladder=("local", "local-strong", "mid", "frontier"),
        checks="roster",
    ),
    Setup(
        name="local-only",
        config="handoffs.local.toml",
        ladder=("local", "local-strong"),
        checks="predicate",
    ),
]


@dataclass(kw_only=True)
class Score:
    setup: Setup
    n: int = 0
    category: int = 0
    urgent: int = 0
    by: Counter[str] = field(default_factory=Counter[str])
    seconds: list[float] = field(default_factory=list[float])


def gold() -> dict[str, dict[str, Any]]:
    lines = GOLD.read_text().splitlines()
    return {row["id"]: row for row in map(json.loads, lines) if row}


def missing(config: Config, ladder: tuple[str, ...]) -> str | None:
    """Why a ladder's local model cannot run here (one line), or None."""
    for model_id in ladder:
        embedded = config.catalog[model_id].embedded
        if embedded and (problem := local_problem(embedded)):
            return problem
    return None


def kept(classifier: Subordinate[Any, Any], setup: Setup) -> tuple[Check, ...]:
    """The classifier's checks this setup runs."""
    if setup.checks == "roster":
        return tuple(classifier.checks)
    if setup.checks == "predicate":
        return tuple(c for c in classifier.checks if isinstance(c, Predicate))
    return ()


async def score(setup: Setup, config: Config, limit: int) -> Score:
    spec = load_job(JOB, config.catalog)
    classifier: Subordinate[Any, Any] = next(s for s in spec.subordinates if s.kind == "classify")
    answers = gold()
    result = Score(setup=setup)
    judged = setup.checks == "roster"
    ids = sorted({*setup.ladder, "mid"} if judged else set(setup.ladder))  # mid: the judge
    config = replace(config, policy=Policy(rules=(Rule(kind="classify", ladder=setup.ladder),)))
    with open_portfolio(config, simulation=job_simulation(spec), model_ids=ids) as portfolio:
        session = configured_session(config, portfolio, Budget("5"))
        for row in spec.data[:limit]:
            ticket = classifier.input_type.model_validate(row)
            task = classifier.task(ticket, checks=kept(classifier, setup))
            started = time.monotonic()
            delivery = await session.delegate(task)
            result.seconds.append(time.monotonic() - started)
            expected = answers[row["id"]]
            result.n += 1
            result.category += delivery.output.category == expected["category"]
            result.urgent += delivery.output.urgent == expected["urgent"]
            result.by[delivery.model or "degraded"] += 1
        await portfolio.aclose()
    return result


def row(s: Score) -> str:
    by = ", ".join(f"{model} {n}" for model, n in s.by.most_common())
    median = statistics.median(s.seconds) if s.seconds else 0.0
    return (
        f"| {s.setup.name} | {' → '.join(s.setup.ladder)} | {s.setup.checks} "
        f"| {s.category}/{s.n} = {s.category / s.n:.2f} | {s.urgent}/{s.n} = {s.urgent / s.n:.2f} "
        f"| {by} | {median:.1f} s | {sum(s.seconds):.0f} s |"
    )


def score_run(path: Path) -> None:
    """Score a `handoffs run --json` document of the demo job: its delivered classifications and
    extractions against the gold labels, and which model delivered them."""
    report = json.loads(path.read_text())
    answers = gold()
    for kind, fields in (("classify", ("category", "urgent")), ("extract", EXTRACTED)):
        records = [h for h in report["handoffs"] if h["task_kind"] == kind]
        by = Counter(h["model"] or "degraded" for h in records)
        right = Counter[str]()
        for h in records:
            expected = answers[h["label"]]
            for name in fields:
                right[name] += (h["output"] or {}).get(name) == expected[name]
        n = len(records)
        scores = ", ".join(f"{name} {right[name]}/{n}" for name in fields)
        models = ", ".join(f"{m} {k}" for m, k in by.most_common())
        print(f"{kind}: {n} handoffs; {scores}; delivered by {models}")
    print(f"status {report['status']}; total ${report['total_cost_usd']}")


EXTRACTED = ("order_id", "product", "email", "amount_usd")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=30, help="tickets to score (default: 30)")
    names = [s.name for s in SETUPS]
    parser.add_argument("--only", nargs="*", choices=names, default=names, help="setups to run")
    parser.add_argument(
        "--score-run",
        type=Path,
        metavar="JSON",
        help="instead: score a `handoffs run examples/jobs/support-triage.toml --json` document",
    )
    args = parser.parse_args()
    if args.score_run:
        score_run(args.score_run)
        return
    command = " ".join(["python examples/10_local_tiers.py", *sys.argv[1:]])
    print(f"command: {command}")
    scores: list[Score] = []
    for setup in SETUPS:
        if setup.name not in args.only:
            continue
        config = load_config(ROOT / setup.config)
        if problem := missing(config, setup.ladder):
            print(f"skipped {setup.name}: {problem}")
            continue
        print(f"running {setup.name}: {' -> '.join(setup.ladder)} ...", flush=True)
        scores.append(await score(setup, config, args.limit))
    print()
    print("| setup | ladder | checks | category | urgent | delivered by | median | total |")
    print("|---|---|---|---|---|---|---|---|")
    for s in scores:
        print(row(s))


if __name__ == "__main__":
    anyio.run(main)
