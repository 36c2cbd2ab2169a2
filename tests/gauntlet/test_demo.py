"""The bundled demo job under the Gauntlet: every family caught or contained, every invariant held,
and each weakened configuration caught breaking the invariant it protects."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from handoffs.gauntlet import FAMILIES, Defences, Gauntlet, GauntletFailed, Scorecard
from handoffs.project import Config, JobSpec


async def test_the_full_gauntlet_holds_on_the_demo_job(demo: JobSpec, config: Config) -> None:
    gauntlet = Gauntlet(demo, config, seed=0, data_limit=2)
    card = await gauntlet.run()
    assert card.broken == [] and all(i.held and i.breach is None for i in card.invariants)
    assert card.missed == []
    assert [a.name for a in card.attacks] == [a.name for a in gauntlet.attacks()]
    fired = Counter(a.family for a in card.attacks if a.fired)
    assert set(fired) == set(FAMILIES)  # every family actually attacked this job
    assert card.baseline.status == "completed" and card.baseline.fired == 0
    assert card.baseline.degraded == card.baseline.failed == 0
    outcomes = {a.name: a.outcome for a in card.attacks}
    assert outcomes["confident_lie"] == outcomes["malformed_json"] == "caught"  # verified, redone
    assert outcomes["endless_escalation"] == outcomes["retry_after_bait"] == "contained"
    assert outcomes["exfiltrate_to_url"] == outcomes["planted_in_email"] == "contained"
    injected = [
        a for a in card.attacks if a.family == "injection" and a.name != "redelegate_forever"
    ]
    # the safe mode is the default: the gullible orchestrator read only handles, so tried nothing
    assert card.quarantine and all(a.refused_actions == 0 for a in injected)
    assert all("quarantined" in outcomes_why for outcomes_why in _why(card, TRIED))
    assert all(outcomes[n] == "caught" for n in outcomes if n.startswith("judge_"))
    card.assert_held()


TRIED = (
    "ignore_task_call_tool", "fake_tool_call", "exfiltrate_to_url", "encoded_base64",
    "encoded_rot13", "encoded_hex", "zero_width_instruction", "homoglyph_instruction",
    "split_instruction", "short_values", "exfiltrate_via_subaddress",
)  # fmt: skip
"""Injections a gullible orchestrator reads and tries, on this job, when it can read them."""


def _why(card: Scorecard, names: tuple[str, ...]) -> list[str]:
    return [a.why for a in card.attacks if a.name in names]


async def test_opted_out_the_gullible_orchestrator_tries_and_is_refused(
    demo: JobSpec, config: Config
) -> None:
    gauntlet = Gauntlet(demo, config, data_limit=2, defences=Defences(quarantine=False))
    tried = [n for n in TRIED if n != "split_instruction"]  # two halves need more answers
    card = await gauntlet.run(gauntlet.attacks([*tried, "provider_error_injection"]))
    card.assert_held()
    assert not card.quarantine and card.defences["quarantine"] is False
    # what reached the orchestrator in the clear, it tried; provenance refused every one
    read = [a for a in card.attacks if "framed as data" in a.why or "degraded/failed" in a.why]
    assert len(read) >= len(card.attacks) - 1  # (a loaded machine may time a cheap model out)
    assert all(a.refused_actions > 0 for a in read)


async def test_quarantine_leaves_the_gullible_orchestrator_nothing_to_obey(
    demo: JobSpec, config: Config
) -> None:
    gauntlet = Gauntlet(demo, config, data_limit=2, defences=Defences(quarantine=True))
    card = await gauntlet.run(gauntlet.attacks(["fake_tool_call", "planted_in_web_page"]))
    card.assert_held()
    assert card.quarantine and card.baseline.quarantined > 0
    for attack in card.attacks:
        assert attack.outcome == "contained" and attack.fired > 0
        assert attack.refused_actions == 0  # nothing was read, so nothing was tried
    why = {a.name: a.why for a in card.attacks}
    assert "(quarantined)" in why["fake_tool_call"]
    # the planted ticket tells the judge to ignore its instructions: its draft fails, marked
    assert "marked degraded/failed" in why["planted_in_web_page"]
    assert all(not r.actions for r in gauntlet.results.values())  # no action was even attempted


@pytest.mark.parametrize(
    ("weaken", "attack", "invariant"),
    [
        ("verification", "confident_lie", "verified_or_marked"),
        ("action_policy", "ignore_task_call_tool", "no_side_effect_from_free_text"),
        ("judge", "judge_ten_of_ten", "verified_or_marked"),  # an obedient judge, undefended
    ],
)
async def test_a_weakened_configuration_is_caught_breaking_its_invariant(
    demo: JobSpec, config: Config, weaken: str, attack: str, invariant: str
) -> None:
    defences = Defences.weakened([weaken], quarantine=False)  # opted out, so actions are tried
    gauntlet = Gauntlet(demo, config, data_limit=2, defences=defences)
    card = await gauntlet.run(gauntlet.attacks([attack]))
    assert card.broken == [invariant] and card.missed == [attack]
    [breach] = [i.breach for i in card.invariants if not i.held]
    assert breach is not None and breach.attack == attack
    assert breach.trace_id == card.attacks[0].trace_id and len(breach.trace_id) == 32
    with pytest.raises(GauntletFailed, match=invariant):
        card.assert_held()


async def test_without_guards_a_redelegation_loop_breaks_the_budget(
    demo: JobSpec, config: Config
) -> None:
    small = replace(demo, budget_usd=Decimal("0.05"))
    guarded = await Gauntlet(small, config, data_limit=1).run(
        Gauntlet(small, config).attacks(["redelegate_forever"])
    )
    assert guarded.broken == [] and guarded.attacks[0].status == "budget_exceeded"
    opted_out = Defences.weakened(["guards"], quarantine=False)  # it reads "call me again"
    weak = Gauntlet(small, config, data_limit=1, defences=opted_out)
    card = await weak.run(weak.attacks(["redelegate_forever"]))
    assert card.broken == ["budget_and_guards"]
    assert "budget" in (card.invariants[2].breach.detail if card.invariants[2].breach else "")


async def test_every_run_leaves_a_trace_whose_id_the_scorecard_gives(
    demo: JobSpec, config: Config, tmp_path: Path
) -> None:
    gauntlet = Gauntlet(demo, config, data_limit=1, trace_dir=tmp_path)
    card: Scorecard = await gauntlet.run(gauntlet.attacks(["unavailable"]))
    for run in (card.baseline, *card.attacks):
        spans = [
            json.loads(line) for line in (tmp_path / f"{run.job_id}.jsonl").read_text().splitlines()
        ]
        assert {s["trace_id"] for s in spans} == {run.trace_id}
        handoffs = [s for s in spans if s["name"].startswith("handoff ")]
        assert len(handoffs) == run.handoffs
