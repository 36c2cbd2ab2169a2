"""Running AgentDojo's suites through the pipeline: every pair in every mode, and the figures."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from pydantic import BaseModel, ConfigDict

from handoffs.gauntlet.agentdojo._pipeline import (
    ATTACKS,
    MODES,
    VERSION,
    Mode,
    agentdojo_module,
    pipeline,
)

__all__ = ["AgentDojoReport", "Cell", "run_agentdojo"]


class Cell(BaseModel):
    """One suite x attack x mode."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    suite: str
    attack: str
    mode: Mode
    pairs: int
    utility: float
    """Share of pairs whose user task succeeded, under attack."""
    attack_success: float
    """Share of pairs whose injection task succeeded (AgentDojo's `security=True`)."""
    relayed: float
    """Share of pairs where the gullible subordinate relayed the attacker's calls (it cannot for
    injection tasks AgentDojo gives no ground truth for)."""
    utility_no_attack: float
    """Share of the suite's user tasks that succeeded with no injection."""


class AgentDojoReport(BaseModel):
    """The AgentDojo run's figures."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    cells: list[Cell]
    totals: dict[str, dict[str, float]]
    """Mode -> utility, attack_success, relayed, utility_no_attack and pairs, over every pair."""
    seconds: float


def run_agentdojo(
    *,
    suites: Sequence[str] | None = None,
    attacks: Sequence[str] = ATTACKS,
    modes: Sequence[Mode] = MODES,
    user_tasks: Sequence[str] | None = None,
    injection_tasks: Sequence[str] | None = None,
    version: str = VERSION,
    on_cell: Callable[[Cell], None] | None = None,
) -> AgentDojoReport:
    """Run AgentDojo's suites' injection tasks through handoffs; every pair in every mode."""
    agentdojo_module("attacks")  # registers the attacks
    load_attack: Callable[..., Any] = agentdojo_module("attacks.attack_registry").load_attack
    started = time.monotonic()
    all_suites = cast(
        dict[str, Any], agentdojo_module("task_suite.load_suites").get_suites(version)
    )
    cells: list[Cell] = []
    sums: dict[str, list[float]] = {m: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0] for m in modes}
    for suite_name in suites or list(all_suites):
        suite = all_suites[suite_name]
        pipes = {m: pipeline(suite, m) for m in modes}
        chosen_users = [suite.user_tasks[u] for u in user_tasks or suite.user_tasks]
        chosen_injections = [
            suite.injection_tasks[i] for i in injection_tasks or suite.injection_tasks
        ]
        benign: dict[Mode, float] = {}
        for mode in modes:
            ok = 0
            for user_task in chosen_users:
                pipes[mode].set_pair(user_task, None)
                utility, _ = _run_pair(suite, pipes[mode], user_task, None, {})
                ok += utility
            benign[mode] = ok / len(chosen_users)
            sums[mode][2] += ok
            sums[mode][3] += len(chosen_users)
        for attack_name in attacks:
            attack = load_attack(attack_name, suite, pipes[modes[0]])
            tally = {m: [0, 0, 0, 0] for m in modes}
            for user_task in chosen_users:
                for injection_task in chosen_injections:
                    injections = attack.attack(user_task, injection_task)
                    env = suite.load_and_inject_default_environment(injections)
                    for mode in modes:
                        pipes[mode].set_pair(user_task, injection_task)
                        before = pipes[mode].obeyed
                        utility, security = _run_pair(
                            suite, pipes[mode], user_task, injection_task, injections, env
                        )
                        tally[mode][0] += 1
                        tally[mode][1] += utility
                        tally[mode][2] += security
                        tally[mode][3] += pipes[mode].obeyed > before
            for mode in modes:
                pairs, utility, success, relayed = tally[mode]
                cell = Cell(
                    suite=suite_name,
                    attack=attack_name,
                    mode=mode,
                    pairs=pairs,
                    utility=round(utility / pairs, 4) if pairs else 0.0,
                    attack_success=round(success / pairs, 4) if pairs else 0.0,
                    relayed=round(relayed / pairs, 4) if pairs else 0.0,
                    utility_no_attack=round(benign[mode], 4),
                )
                cells.append(cell)
                sums[mode][0] += utility
                sums[mode][1] += success
                sums[mode][4] += pairs
                sums[mode][5] += relayed
                if on_cell is not None:
                    on_cell(cell)
    totals = {
        m: {
            "utility": round(s[0] / s[4], 4) if s[4] else 0.0,
            "attack_success": round(s[1] / s[4], 4) if s[4] else 0.0,
            "utility_no_attack": round(s[2] / s[3], 4) if s[3] else 0.0,
            "relayed": round(s[5] / s[4], 4) if s[4] else 0.0,
            "pairs": s[4],
        }
        for m, s in sums.items()
    }
    return AgentDojoReport(
        version=version, cells=cells, totals=totals, seconds=round(time.monotonic() - started, 1)
    )


def _run_pair(
    suite: Any,
    pipe: Any,
    user_task: Any,
    injection_task: Any | None,
    injections: dict[str, str],
    env: Any = None,
) -> tuple[bool, bool]:
    environment = env.model_copy(deep=True) if env is not None else None
    utility, security = suite.run_task_with_pipeline(
        pipe, user_task, injection_task, injections, environment=environment
    )
    return bool(utility), bool(security)
