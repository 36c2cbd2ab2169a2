"""On-demand defect hunt: run many generated scenarios and tally every violation class.

    cd /work/wt-conf && PYTHONPATH=src python -m tests.wire.conformance.hunt [N] [SEED] [--sound]

Unlike the property tests, which stop at the first failing example, this keeps going and prints
each distinct violation (numbers blanked) with its count and the shortest scenario that showed it:
the starting point for a new case in `test_regressions.py`.
"""

from __future__ import annotations

import collections
import os
import re
import sys
import tempfile
import time

from hypothesis import HealthCheck, Phase, given, seed, settings

from .harness import Scenario, run, violations
from .server import WireServer
from .strategies import scenarios


def signature(violation: str) -> str:
    text = violation.split(": ", 1)[-1]
    text = re.sub(r"\$[0-9.E+-]+", "$X", text)
    return re.sub(r"\d+", "N", text)[:160]


def hunt(n: int, seed_value: int, *, sound: bool) -> dict[str, list[tuple[Scenario, str]]]:
    found: dict[str, list[tuple[Scenario, str]]] = collections.defaultdict(list)
    with WireServer(name="hostile") as hostile, WireServer(name="healthy") as good:

        @seed(seed_value)
        @settings(
            max_examples=n,
            deadline=None,
            phases=[Phase.generate],
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(scenarios(sound=sound))
        def one(scenario: Scenario) -> None:
            for v in violations(run(scenario, hostile, good)):
                found[v[: v.index("]") + 1] + " " + signature(v)].append((scenario, v))

        one()
    return found


def main(argv: list[str]) -> None:
    os.environ.pop("SSL_CERT_FILE", None)  # see conftest.servers: no CA bundle for loopback HTTP
    os.environ["SSL_CERT_DIR"] = tempfile.mkdtemp(prefix="no-ca-")
    args = [a for a in argv if not a.startswith("--")]
    n = int(args[0]) if args else 200
    seed_value = int(args[1]) if len(args) > 1 else 0
    started = time.monotonic()
    found = hunt(n, seed_value, sound="--sound" in argv)
    print(f"{n} examples, seed {seed_value}, {time.monotonic() - started:.0f}s")
    for key, seen in sorted(found.items(), key=lambda kv: -len(kv[1])):
        scenario, violation = min(seen, key=lambda p: len(p[0].short()))
        print(f"{len(seen):4d} {key}\n       {scenario.short()}\n       {violation[:300]}")


if __name__ == "__main__":
    main(sys.argv[1:])
