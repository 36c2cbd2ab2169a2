"""Fixtures of the conformance suite: the two independent servers, shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import WireServer


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[WireServer, WireServer]]:
    """(hostile, healthy): two instances of the independent server on loopback."""
    with WireServer(name="hostile") as hostile, WireServer(name="healthy") as healthy:
        yield hostile, healthy
