"""The demo job and its configuration, loaded once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from handoffs.project import Config, JobSpec, load_config, load_job

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "examples" / "jobs" / "support-triage.toml"
CONFIG = ROOT / "handoffs.toml"


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(CONFIG)


@pytest.fixture(scope="module")
def demo(config: Config) -> JobSpec:
    return load_job(JOB, config.catalog)
