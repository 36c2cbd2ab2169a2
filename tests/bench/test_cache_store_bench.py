"""`handoffs bench cache-store`, small: the document's shape, and a mistake is one line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from handoffs.cli import app


def test_a_small_run_times_each_store_against_sqlite_vec_at_each_size() -> None:
    args = ["bench", "cache-store", "--sizes", "20,60", "--lookups", "5", "--repeats", "2"]
    result = CliRunner().invoke(app, [*args, "--stores", "sqlite-vec,sqlite-scan", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = [(f["store"], f["entries"]) for f in data["figures"]]
    if data["skipped"]:  # without the [cache] extra: no sqlite-vec, no ratio
        assert rows == [("sqlite-scan", 20), ("sqlite-scan", 60)]
        return
    assert rows == [
        ("sqlite-vec", 20),
        ("sqlite-vec", 60),
        ("sqlite-scan", 20),
        ("sqlite-scan", 60),
    ]
    for f in data["figures"]:
        assert 0 < f["lookup_ms_min"] <= f["lookup_ms_median"] <= f["lookup_ms_max"]
        assert f["vs_sqlite_vec"] > 0
    assert [f["vs_sqlite_vec"] for f in data["figures"][:2]] == [1.0, 1.0]


def test_an_unknown_store_is_one_line() -> None:
    result = CliRunner().invoke(app, ["bench", "cache-store", "--stores", "redis"])
    assert result.exit_code == 2
    assert "unknown store 'redis'" in result.output
