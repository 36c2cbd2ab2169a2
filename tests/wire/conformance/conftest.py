"""Fixtures of the conformance suite: the two independent servers, shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import WireServer


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WireServer, WireServer]]:
    """(hostile, healthy): two instances of the independent server on loopback.

    Every example builds fresh SDK clients, and each one loads the system CA bundle into an SSL
    context (~40 ms) it never uses on plain-HTTP loopback; an empty `SSL_CERT_DIR` makes that free.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SSL_CERT_FILE", raising=False)
        patch.setenv("SSL_CERT_DIR", str(tmp_path_factory.mktemp("no-ca")))
        with WireServer(name="hostile") as hostile, WireServer(name="healthy") as healthy:
            yield hostile, healthy
