"""examples/06_gauntlet.py runs offline and shows what it claims to."""

from __future__ import annotations

from ..test_examples import run_example


def test_gauntlet_example_holds_then_catches_the_weakened_configuration() -> None:
    out = run_example("06_gauntlet.py")
    framed, quarantined, weakened = out.split("\n== ")[1:]
    for family in ("output", "injection", "economic", "provider", "degradation"):
        assert f"  {family} " in framed
    assert "missed" not in framed and framed.count("held    ") == 6
    assert "fake_tool_call     contained" in framed and "actions refused" in framed
    assert "(quarantined)" in quarantined and "actions refused" not in quarantined
    assert "confident_lie      missed    broke verified_or_marked" in weakened
    assert "BROKEN  verified_or_marked by confident_lie (trace " in weakened
    assert "=> BROKEN: verified_or_marked" in weakened
