"""The candidate config `handoffs qualify` writes: the original `handoffs.toml` with each qualified
kind's ladder starting at its cheapest adequate model, for `handoffs report shadow --policy`.

A rule for the kind keeps the models of its ladder that cost more than the new first rung (they
are what it escalates to); a kind without its own rule gets one. Relative file paths of the
original (`[policy] scorer`, `outcomes`) are made absolute, so the file works wherever it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from handoffs.catalog import Catalog
from handoffs.project._config import Config
from handoffs.project._files import read_toml
from handoffs.routing import Rule

__all__ = ["candidate_toml", "nominal_prices"]

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def nominal_prices(catalog: Catalog) -> dict[str, Decimal]:
    """What one nominal call (1,000 tokens in, 200 out) costs on each model: the sweep's order."""
    return {e.id: e.cost(1000, 200) for e in catalog.values()}


def _rule(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rule.name:
        out["name"] = rule.name
    if rule.kind != "*":
        out["kind"] = rule.kind
    if rule.risk != "*":
        out["risk"] = rule.risk
    out["ladder"] = list(rule.ladder)
    return out


def _rules(config: Config, chosen: Mapping[str, str]) -> list[dict[str, Any]]:
    prices = nominal_prices(config.catalog)
    rules = [_rule(r) for r in config.policy.rules]
    for kind, model in chosen.items():
        mine = [r for r in rules if r.get("kind") == kind]
        if not mine:
            stronger = [e.id for e in config.catalog.by_strength()[:1] if e.id != model]
            mine = [{"name": f"qualified-{kind}", "kind": kind, "ladder": stronger}]
            rules.insert(0, mine[0])
        for rule in mine:
            above = [m for m in rule["ladder"] if prices[m] > prices[model] and m != model]
            rule["ladder"] = [model, *above]
    return rules


def candidate_toml(config: Config, chosen: Mapping[str, str]) -> str:
    """The candidate config as TOML text: `config`'s file with the chosen first rungs."""
    data: dict[str, Any] = read_toml(config.path, "config file") if config.path else {}
    base = config.path.parent if config.path else Path()
    policy = dict(cast(dict[str, Any], data.get("policy", {})))
    for key in ("scorer", "outcomes"):
        if isinstance(policy.get(key), str):
            policy[key] = str((base / policy[key]).resolve())
    policy["rules"] = _rules(config, chosen)
    data["policy"] = policy
    header = (
        "# Written by `handoffs qualify`: the first rung of each qualified kind is its cheapest\n"
    )
    header += "# adequate model. Replay it before use: handoffs report shadow --policy THIS_FILE\n"
    return header + _dump(data)


def _key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in cast(list[Any], value)) + "]"
    if isinstance(value, dict):
        items = cast(dict[str, Any], value).items()
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in items) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _is_tables(value: Any) -> bool:
    if not isinstance(value, list):
        return False
    items = cast(list[Any], value)
    return bool(items) and all(isinstance(v, dict) for v in items)


def _dump(data: Mapping[str, Any], prefix: str = "") -> str:
    lines: list[str] = []
    nested: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict) or _is_tables(value):
            nested.append((key, cast(Any, value)))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in nested:
        name = f"{prefix}{_key(key)}"
        if isinstance(value, dict):
            out += f"\n[{name}]\n" + _dump(cast(dict[str, Any], value), name + ".")
        else:
            for table in cast(list[dict[str, Any]], value):
                out += f"\n[[{name}]]\n" + _dump(table, name + ".")
    return out
