"""Property-based wire conformance: the engine against provider responses nobody scripted.

Each example runs a real `Session` (real `openai` / `anthropic` SDKs through pydantic-ai, real
loopback sockets) against two instances of this suite's own HTTP server (`server.py`): a hostile
one serving generated responses (`strategies.py`) and a healthy failover. What the hostile server
really wrote is re-read from the wire specs (`wire.judge`) and every outcome is checked against
the invariants in `harness.violations`:

- nothing but `HandoffsError` subclasses escapes `delegate`, and every handoff leaves one record;
- a non-degraded delivery is a whole, valid answer from the last response; a degraded one is the
  task's fallback, marked so;
- every request that reached a server is an attempt, charged at least what the provider billed;
- the budget's spend never passes its limit, nothing stays reserved;
- with a healthy model on the route, a handoff only ends without its answer for a budget or a
  refusal (4xx, content filter) by the hostile provider.

Profiles: the default run is seeded (`derandomize`) and bounded (40-80 examples per property,
well under a minute on a loaded 2-core machine). `HANDOFFS_CONFORMANCE=long` runs ten times more,
randomly seeded, with shrinking, for on-demand hunts (`hunt.py` tallies every violation class).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from handoffs.handoff import Delivery

from .harness import Scenario, check, run
from .server import WireServer
from .strategies import healthy_transports, scenarios
from .wire import judge

LONG = os.environ.get("HANDOFFS_CONFORMANCE", "") == "long"
Servers = tuple[WireServer, WireServer]


def profile(default: int, long: int, *, shrink: bool = True) -> Any:
    """Seeded and bounded by default; `HANDOFFS_CONFORMANCE=long` for ten times more, at random."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    if shrink and LONG:
        phases.append(Phase.shrink)
    return settings(
        max_examples=long if LONG else default,
        deadline=None,
        derandomize=not LONG,
        database=None,
        phases=phases,
        report_multiple_bugs=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
    )


@profile(40, 400)
@given(scenario=healthy_transports())
def test_a_healthy_answer_is_delivered_whatever_the_transport(
    servers: Servers, scenario: Scenario
) -> None:
    """A correct answer, however HTTP carries it, is the primary's delivery at its exact cost."""
    outcome = run(scenario, *servers)
    check(outcome)
    (d,) = outcome.delegations
    assert isinstance(d.result, Delivery), d.result
    assert d.result.model == "primary" and not d.result.degraded, scenario.short()
    (exchange,) = d.hostile
    truth = judge(exchange.request, exchange.reply, bytes(exchange.sent))
    assert outcome.catalog is not None
    billed = outcome.catalog["primary"].cost(truth.reported_in, truth.reported_out)
    assert d.result.cost_usd == billed, (scenario.short(), d.result.cost_usd, billed)


@profile(80, 800)
@given(scenario=scenarios(sound=True))
def test_responses_outside_the_known_defects_keep_every_promise(
    servers: Servers, scenario: Scenario
) -> None:
    """Every invariant, on any response outside the regions `strategies.soundify` leaves out
    (each pinned by a case in `test_regressions.py`). Must stay green; a failure is a new defect:
    pin it in the corpus and, until it is fixed, move its region out in `soundify`."""
    check(run(scenario, *servers))


@pytest.mark.xfail(
    strict=False,
    reason="issue 13: the unrestricted attack hits the defects pinned in test_regressions.py",
)
@profile(25, 300)
@given(scenario=scenarios())
def test_any_response_keeps_every_promise(servers: Servers, scenario: Scenario) -> None:
    """Every invariant, on any response at all. Fails today (see the corpus); it passes, and
    this marker can go, once every case in `test_regressions.py` passes."""
    check(run(scenario, *servers))
