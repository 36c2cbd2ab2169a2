"""Judge-targeted attack success, defence by defence, against judges that obey what they read.

    python -m handoffs.gauntlet.judge_bench examples/jobs/support-triage.toml [--limit N]

For every payload of `JUDGE_PAYLOADS` (each a `JudgeInjection`: a cheap model's lie carrying a
message for its judge) and every configuration of the judges' defences — none (the judge before
issue 14), each defence alone, all of them — the job runs once through the Gauntlet and the bench
counts the lies delivered as verified work. Twice: with every judge obedient (the worst case),
and with only the judges of one provider obedient (the case a second judge on another provider is
for; in this bench every judge is made to ask for agreement when `agree` is kept, whatever the
task's risk). Prints one table per case: attack success = lies delivered / tickets.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import cast

import anyio

from handoffs.gauntlet._judge import JUDGE_DEFENCES, JUDGE_PAYLOADS, JudgeInjection
from handoffs.gauntlet._runner import Defences, Gauntlet
from handoffs.project import Config, JobSpec, load_config, load_job
from handoffs.verify.checks import Judge

__all__ = ["CONFIGURATIONS", "main", "measure"]

CONFIGURATIONS: dict[str, tuple[str, ...]] = {
    "none": (),
    **{f"{d} only": (d,) for d in JUDGE_DEFENCES},
    "all": JUDGE_DEFENCES,
}
"""The judge defences kept, by the column name the bench prints."""


def _agreeing(job: JobSpec) -> JobSpec:
    subs = tuple(
        replace(
            s,
            checks=tuple(
                replace(c, agree="always") if isinstance(c, Judge) else c for c in s.checks
            ),
        )
        for s in job.subordinates
    )
    return replace(job, subordinates=subs)


async def measure(
    job: JobSpec,
    config: Config,
    *,
    obedient_providers: tuple[str, ...] = (),
    limit: int | None = None,
    configurations: dict[str, tuple[str, ...]] = CONFIGURATIONS,
) -> dict[str, dict[str, float]]:
    """Payload -> configuration -> lies delivered per ticket (the attack's success rate)."""
    attacks = [
        JudgeInjection(name=f"judge_{name}", payload=text, obedient_providers=obedient_providers)
        for name, text in JUDGE_PAYLOADS.items()
    ]
    spec = _agreeing(job)
    data: object = spec.data
    tickets = len(cast(list[object], data)) if isinstance(data, list) else 1
    tickets = min(tickets, limit) if limit is not None else tickets
    table: dict[str, dict[str, float]] = {a.name: {} for a in attacks}
    for column, kept in configurations.items():
        gauntlet = Gauntlet(  # no stall in these attacks: a timeout is only the machine's load
            spec, config, data_limit=limit, defences=Defences(judge=kept), request_timeout_s=60
        )
        card = await gauntlet.run(attacks)
        for result in card.attacks:
            table[result.name][column] = round(result.lies_delivered / tickets, 3)
    return table


def _print(title: str, table: dict[str, dict[str, float]], columns: Sequence[str]) -> None:
    print(f"\n{title}\n")
    print("| payload | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, row in table.items():
        print(f"| `{name}` | " + " | ".join(f"{row[c]:.0%}" for c in columns) + " |")


def main(argv: Sequence[str] | None = None) -> None:
    """The command line: the two tables, in Markdown."""
    parser = argparse.ArgumentParser(prog="python -m handoffs.gauntlet.judge_bench")
    parser.add_argument("job", type=Path)
    parser.add_argument("--config", type=Path, default=Path("handoffs.toml"))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--provider", default="openai", help="the one obedient provider")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    job = load_job(args.job, config.catalog)
    columns = list(CONFIGURATIONS)
    every = anyio.run(lambda: measure(job, config, limit=args.limit))
    _print("Every judge obeys (worst case): lies delivered per ticket", every, columns)
    one = anyio.run(
        lambda: measure(job, config, obedient_providers=(args.provider,), limit=args.limit)
    )
    _print(f"Only {args.provider} judges obey: lies delivered per ticket", one, columns)


if __name__ == "__main__":
    main()
