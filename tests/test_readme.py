"""The README's code runs: its first-screen example delegates, verifies and escalates for real."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from handoffs.providers import local_available

ROOT = Path(__file__).resolve().parent.parent


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_has_the_delegate_verify_escalate_example_first() -> None:
    first = python_blocks()[0]
    assert "session.delegate(Task(" in first and "checks.judge(" in first


@pytest.mark.local
@pytest.mark.skipif(not local_available(), reason="needs the [local] extra (SmolLM2)")
def test_first_screen_example_runs_offline_on_the_local_model(tmp_path: Path) -> None:
    script = tmp_path / "readme_example.py"
    script.write_text(python_blocks()[0])
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("category=") and "urgent=" in lines[0]  # a validated Triage
    model, cost, attempts, escalations, source = lines[1].split()
    assert model in ("local", "mid", "frontier") and float(cost) > 0
    # offline, only the local tier is a real model: anything above it says it is a stand-in
    assert source == ("real" if model == "local" else "SIMULATED")
    assert "E" not in cost  # a plain decimal, never 9E-7
    assert int(attempts) == len(lines) - 2 and int(escalations) >= 0
    assert lines[2].startswith("local ")  # the local tier answered first, for real
