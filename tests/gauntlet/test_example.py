"""examples/06_gauntlet.py runs offline and shows what it claims to."""

from __future__ import annotations

from ..test_examples import run_example


def test_gauntlet_example_holds_then_catches_the_weakened_configuration() -> None:
    out = run_example("06_gauntlet.py")
    safe, opted_out, weakened = out.split("\n== ")[1:]
    for family in ("output", "injection", "economic", "provider", "degradation"):
        assert f"  {family} " in safe
    assert "missed" not in safe and safe.count("held    ") == 6 and "(quarantine: True)" in safe
    assert "fake_tool_call     contained" in safe and "(quarantined)" in safe
    assert "actions refused" not in safe  # nothing was even tried
    assert "(quarantine: False)" in opted_out and "missed" not in opted_out
    assert "fake_tool_call     contained" in opted_out and "actions refused" in opted_out
    assert "confident_lie      missed    broke verified_or_marked" in weakened
    assert "BROKEN  verified_or_marked by confident_lie (trace " in weakened
    assert "=> BROKEN: verified_or_marked" in weakened
