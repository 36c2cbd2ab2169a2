"""`[health]`, `[retry]`, `[[caps]]`, `failover` and `stream` in `handoffs.toml`: read, validated,
and refused in one line."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from handoffs.cli import app
from handoffs.errors import ConfigError
from handoffs.project import config_from_dict, load_config

ROOT = Path(__file__).resolve().parents[1]


def base() -> dict[str, Any]:
    with (ROOT / "handoffs.toml").open("rb") as fh:
        return tomllib.load(fh)


def test_the_default_config_declares_failover_chains_and_the_reliability_settings() -> None:
    config = load_config(ROOT / "handoffs.toml")
    assert config.catalog.rung("frontier") == ("frontier", "frontier-openai")
    assert config.catalog.rung("mid") == ("mid", "mid-anthropic")
    assert config.catalog["frontier-openai"].provider == "openai"  # another provider
    assert config.health.failure_threshold == 3 and config.health.success_threshold == 5
    assert config.health.probe_interval_s == 60 and config.health.probe_timeout_s == 5
    assert config.retry.max_attempts == 8 and config.retry.sweeps == 2
    assert not config.caps


def test_caps_are_read_with_their_period() -> None:
    data = base()
    data["caps"] = [{"model": "frontier", "kind": "classify", "usd": "5.00", "per": "day"}]
    caps = config_from_dict(data).caps
    assert [(c.model, c.kind, c.usd, c.per) for c in caps.caps] == [
        ("frontier", "classify", Decimal("5.00"), "day")
    ]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(health={"failure_threshold": 0}), "[health]: thresholds"),
        (lambda d: d.update(health={"cooldown": 3}), "[health]: unknown key(s) cooldown"),
        (lambda d: d.update(health={"error_rate": "high"}), "[health] error_rate must be a number"),
        (lambda d: d.update(retry={"max_attempts": 0}), "[retry]: max_attempts and sweeps"),
        (lambda d: d.update(retry={"sweeps": True}), "[retry] sweeps must be a number"),
        (lambda d: d.update(caps=[{"model": "nope", "usd": 1}]), "caps: unknown model id 'nope'"),
        (lambda d: d.update(caps=[{"model": "mid"}]), "caps[0]: usd is required"),
        (lambda d: d.update(caps=[{"usd": 1, "per": "week"}]), "caps[0]: per must be hour, day"),
        (
            lambda d: d["models"]["mid"].update(failover=["ghost"]),
            "failover names unknown model id 'ghost'",
        ),
        (lambda d: d["models"]["mid"].update(stream="yes"), "stream must be true or false"),
    ],
)
def test_bad_reliability_settings_are_one_line_config_errors(edit: Any, message: str) -> None:
    data = base()
    edit(data)
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_cli_refuses_a_bad_health_table_with_exit_2(tmp_path: Path) -> None:
    text = (
        (ROOT / "handoffs.toml")
        .read_text()
        .replace("failure_threshold = 3", "failure_threshold = -1")
    )
    bad = tmp_path / "handoffs.toml"
    bad.write_text(text)
    job = ROOT / "examples" / "jobs" / "support-triage.toml"
    result = CliRunner().invoke(
        app, ["run", str(job), "--config", str(bad), "--trace-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "[health]: thresholds" in result.stderr and "Traceback" not in result.output
