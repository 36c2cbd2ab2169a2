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
        (
            lambda d: d.update(health={"failure_threshold": 0}),
            "config: health.failure_threshold: must be at least 1 (got 0)",
        ),
        (lambda d: d.update(health={"cooldown": 3}), "config: health.cooldown: unknown key"),
        (
            lambda d: d.update(health={"error_rate": "high"}),
            "config: health.error_rate: must be a number (got 'high')",
        ),
        (
            lambda d: d.update(health={"error_rate": 1.5}),
            "config: health.error_rate: must be at most 1 (got 1.5)",
        ),
        (
            lambda d: d.update(retry={"max_attempts": 0}),
            "config: retry.max_attempts: must be at least 1 (got 0)",
        ),
        (
            lambda d: d.update(retry={"sweeps": True}),
            "config: retry.sweeps: must be an integer (got True)",
        ),
        (
            lambda d: d.update(retry={"max_handoff_s": float("nan")}),
            "config: retry.max_handoff_s: must be a finite number (got nan)",
        ),
        (
            lambda d: d.update(caps=[{"model": "nope", "usd": 1}]),
            "config: caps[0].model: unknown model id 'nope'",
        ),
        (lambda d: d.update(caps=[{"model": "mid"}]), "config: caps[0].usd: is required"),
        (
            lambda d: d.update(caps=[{"usd": 1, "per": "week"}]),
            "config: caps[0].per: must be one of hour, day, process (got 'week')",
        ),
        (
            lambda d: d.update(caps=[{"usd": "-5"}]),
            "config: caps[0].usd: must not be negative (got '-5')",
        ),
        (lambda d: d.update(caps={"usd": 1}), "config: caps: must be an array"),
        (
            lambda d: d["models"]["mid"].update(failover=["ghost"]),
            "config: model 'mid': failover names unknown model id 'ghost'",
        ),
        (
            lambda d: d["models"]["mid"].update(stream="yes"),
            "config: models.mid.stream: must be true or false (got 'yes')",
        ),
        (
            lambda d: d.update(jobs={"spread": 1}),
            "config: jobs.spread: must be true or false (got 1)",
        ),
        (
            lambda d: d.update(portfolio={"request_timeout_s": -1}),
            "config: portfolio.request_timeout_s: must be greater than 0",
        ),
    ],
)
def test_bad_reliability_settings_are_one_line_config_errors(edit: Any, message: str) -> None:
    data = base()
    edit(data)
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert str(info.value).startswith(message) and "\n" not in str(info.value), str(info.value)


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
    assert f"{bad}: health.failure_threshold: must be at least 1 (got -1)" in result.stderr.replace(
        "\n", ""
    )
    assert "Traceback" not in result.output
