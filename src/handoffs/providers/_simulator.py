"""Simulated models: who serves the cloud tiers when their keys are missing.

The offline portfolio's `frontier` and `mid` are served by a simulator: a local server speaking the
providers' wire formats. The runtime does not ship one; it finds one through the
`handoffs.simulators` entry point group (the `[simulate]` extra installs `handoffs.testing`'s fake
provider as `fake`), so the run path never imports test doubles, and a team may plug in its own.

A simulator is called with the served model names and their added latency, and the job's domain
(`SimulatedDomain`, or None); it returns a context manager that serves them and yields the base
URL (`http://127.0.0.1:PORT`) both wires are reached under.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol, cast

from handoffs.errors import ConfigError

__all__ = ["SIMULATORS", "SimulatedDomain", "Simulator", "load_simulator"]

SIMULATORS = "handoffs.simulators"
"""The entry point group simulators register under."""

INSTALL_HINT = "pip install 'handoffs[simulate]'"


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatedDomain:
    """What a job tells a simulator about its domain: its simulation module (a roster file with
    `solve`, `grade`, `plan`) and its subordinates' output types."""

    module: Any
    output_types: tuple[type[Any], ...] = ()


class Simulator(Protocol):
    """Serves simulated models: `latency_s` maps each served model name to its added latency."""

    def __call__(
        self, latency_s: Mapping[str, float], domain: SimulatedDomain | None
    ) -> AbstractContextManager[str]: ...


def load_simulator(name: str = "fake") -> Simulator:
    """The simulator registered as `name`; a `ConfigError` saying what to install if none is."""
    found = entry_points(group=SIMULATORS, name=name)
    if not found:
        raise ConfigError(
            f"simulated models need a simulator and none is installed as {name!r}: {INSTALL_HINT}"
        )
    try:
        return cast(Simulator, next(iter(found)).load())
    except ImportError as exc:
        raise ConfigError(
            f"the {name!r} simulator cannot be loaded ({exc}): {INSTALL_HINT}"
        ) from None
