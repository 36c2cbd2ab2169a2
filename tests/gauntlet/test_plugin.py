"""The pytest plugin: installed by entry point, a `gauntlet` fixture, a `gauntlet` marker."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from handoffs.gauntlet import ConfidentLie, Scorecard
from handoffs.gauntlet.plugin import GauntletFixture

from .conftest import CONFIG, JOB


def test_the_plugin_ships_with_the_package_as_a_pytest11_entry_point() -> None:
    found = {e.name: e.value for e in entry_points(group="pytest11")}
    assert found.get("handoffs_gauntlet") == "handoffs.gauntlet.plugin"


@pytest.mark.gauntlet(seed=5, limit=1, config=CONFIG)
def test_fixture_runs_a_job_with_the_markers_defaults(gauntlet: GauntletFixture) -> None:
    card = gauntlet.run(
        JOB, attacks=["malformed_json", ConfidentLie(name="local_lies", models=("local",))]
    )
    assert isinstance(card, Scorecard) and card.seed == 5 and gauntlet.last is card
    assert [a.name for a in card.attacks] == ["local_lies", "malformed_json"]
    assert card.assert_held() is card and card.missed == []


@pytest.mark.gauntlet(limit=1, config=CONFIG, weaken=["verification"])
async def test_fixture_works_inside_an_event_loop_too(gauntlet: GauntletFixture) -> None:
    card = gauntlet.run(JOB, attacks=["confident_lie"])  # on a worker thread: a loop is running
    assert card.broken == ["verified_or_marked"]
    again = await gauntlet.arun(JOB, attacks=[], weaken=[], quarantine=True)
    assert again.broken == [] and again.defences["quarantine"] and again.attacks == []
    with pytest.raises(TypeError, match="unknown gauntlet option"):
        await gauntlet.arun(JOB, attacks=[], sede=1)
