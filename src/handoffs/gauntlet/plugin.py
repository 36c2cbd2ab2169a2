"""The Gauntlet as a pytest plugin: a `gauntlet` fixture and a `gauntlet` marker.

Installed with the package (entry point `pytest11`), so any test suite can attack its own jobs:

```python
def test_triage_job_holds_under_attack(gauntlet):
    gauntlet.run("jobs/triage.toml", attacks=["injection", "confident_lie"]).assert_held()


@pytest.mark.gauntlet(seed=3, limit=5, quarantine=True)
def test_triage_job_holds_in_quarantine(gauntlet):
    card = gauntlet.run("jobs/triage.toml", attacks=["injection"])
    assert not card.missed
```
`run` works in sync and async tests alike (inside a running event loop it runs the Gauntlet on a
worker thread); `await gauntlet.arun(...)` runs it on the test's own loop. Marker keywords are the
defaults of `run`: `seed`, `limit`, `config`, `quarantine`, `weaken`, `concurrency`.

Nothing heavy is imported until a test uses the fixture.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from handoffs.gauntlet._attack import Attack
    from handoffs.gauntlet._scorecard import Scorecard
    from handoffs.project import Config, JobSpec

__all__ = ["GauntletFixture", "gauntlet", "pytest_configure"]

MARKER = "gauntlet"


def pytest_configure(config: pytest.Config) -> None:
    """Register the `gauntlet` marker."""
    config.addinivalue_line(
        "markers",
        "gauntlet(seed=0, limit=None, config='handoffs.toml', quarantine=None, weaken=(), "
        "concurrency=3): defaults for the `gauntlet` fixture in this test",
    )


class GauntletFixture:
    """Runs the Gauntlet on a job from a test; `run(...)` returns the `Scorecard`."""

    def __init__(self, defaults: Mapping[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.last: Scorecard | None = None
        """The last scorecard, for a closer look after a failed assertion."""

    def run(
        self,
        job: str | Path | JobSpec,
        *,
        attacks: Sequence[str | Attack] | None = None,
        **options: Any,
    ) -> Scorecard:
        """Attack `job` (a job file or a loaded `JobSpec`) with `attacks` (names, families or
        `Attack` objects; the full catalogue by default) and return the scorecard."""
        import anyio

        async def go() -> Scorecard:
            return await self.arun(job, attacks=attacks, **options)

        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop running in this thread: run one here
            return anyio.run(go)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(anyio.run, go).result()

    async def arun(
        self,
        job: str | Path | JobSpec,
        *,
        attacks: Sequence[str | Attack] | None = None,
        **options: Any,
    ) -> Scorecard:
        """`run`, awaited on the caller's event loop."""
        from handoffs.gauntlet._attack import Attack
        from handoffs.gauntlet._runner import Defences, Gauntlet
        from handoffs.project import JobSpec, load_config, load_job

        settings = {**self.defaults, **options}
        unknown = sorted(
            set(settings) - {"seed", "limit", "config", "quarantine", "weaken", "concurrency"}
        )
        if unknown:
            raise TypeError(f"unknown gauntlet option(s): {', '.join(unknown)}")
        config: Config | str | Path = settings.get("config", "handoffs.toml")
        cfg = config if not isinstance(config, str | Path) else load_config(Path(config))
        spec = job if isinstance(job, JobSpec) else load_job(Path(job), cfg.catalog)
        defences = Defences.weakened(
            list(settings.get("weaken", ())), quarantine=settings.get("quarantine")
        )
        runner = Gauntlet(
            spec,
            cfg,
            seed=int(settings.get("seed", 0)),
            defences=defences,
            data_limit=settings.get("limit"),
            concurrency=int(settings.get("concurrency", 3)),
        )
        chosen: list[Attack] | None = None
        if attacks is not None:
            names = [a for a in attacks if isinstance(a, str)]
            chosen = [a for a in attacks if isinstance(a, Attack)]
            if names:
                chosen += runner.attacks(names)
        self.last = await runner.run(chosen)
        return self.last


@pytest.fixture
def gauntlet(request: pytest.FixtureRequest) -> GauntletFixture:
    """Attack a job's handoffs: `gauntlet.run(job, attacks=[...]).assert_held()`."""
    marker = request.node.get_closest_marker(MARKER)
    return GauntletFixture(dict(marker.kwargs) if marker is not None else {})
