"""What a router can observe after paying for answers: their final answers, and what their code does.

`gather(data)` reads every recorded response once:

- `answer_key`: the comparable final answer of a response (a choice letter or a number), so two
  answers can be compared and counted as votes;
- for *code* task kinds (most responses hold a Python program and few hold a key), each program is
  run in the sandbox on every case any model's response stated (`handoffs_bench.program`): how many
  of each model's stated cases it passes, and, for every pair of programs, on how many cases they
  returned the same value. Which of these a policy may read depends on which models it paid for:
  the `CodeRun` arrays are indexed by the model whose answer states the cases.

Nothing here reads whether an answer was correct.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray

from handoffs.routing import Outcomes
from handoffs_bench.program import Program, parse_program
from handoffs_bench.sandbox import Job, run_cases

__all__ = ["CodeRun", "Evidence", "answer_key", "gather"]

_FINAL_NUMBER = re.compile(r"####\s*\$?(-?[\d,]*\.?\d+)")
_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")
_LETTER = re.compile(r"^\s*\(?([A-E])\b[).:]?")
_ANSWER_IS = re.compile(r"answer is:?\s*\(?([A-E])\b", re.IGNORECASE)


@cache
def answer_key(response: str) -> str | None:
    """The comparable final answer in a response: a choice letter or a number, else None.

    Code and free text yield None: two programs cannot be compared by their text.
    """
    if m := _FINAL_NUMBER.search(response):
        return m.group(1).replace(",", "").rstrip(".")
    if m := _LETTER.match(response) or _ANSWER_IS.search(response):
        return m.group(1).upper()
    if len(response) <= 40 and (numbers := _NUMBER.findall(response)):
        return numbers[-1].replace(",", "").rstrip(".")
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeRun:
    """What running every model's program on every stated case showed, for one prompt.

    Index order is the outcomes' model order; `s` is the model whose response stated the cases.
    """

    runnable: NDArray[np.bool_]
    """[k]: model k's answer holds a Python function."""
    stated: NDArray[np.int64]
    """[s]: how many cases model s's response stated."""
    passed: NDArray[np.int64]
    """[k, s]: how many of the cases stated by s model k's program passes."""
    equal: NDArray[np.int64]
    """[k, j, s]: on how many of s's cases programs k and j both returned, and returned the same."""
    compared: NDArray[np.int64]
    """[k, j, s]: on how many of s's cases programs k and j both returned a value."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """Observations per prompt id, for every model whose response was recorded."""

    models: tuple[str, ...]
    keys: Mapping[str, tuple[str | None, ...]]
    """prompt id -> each model's answer key (None: no key, or no response recorded)."""
    code: Mapping[str, CodeRun]
    """prompt id -> execution results, for prompts of code task kinds only."""
    code_kinds: frozenset[str]

    def merged(self, other: Evidence) -> Evidence:
        """Both sets of prompts (the models must match)."""
        if other.models != self.models:
            raise ValueError("evidence for different models")
        return Evidence(
            models=self.models,
            keys={**self.keys, **other.keys},
            code={**self.code, **other.code},
            code_kinds=self.code_kinds | other.code_kinds,
        )


def _code_kinds(data: Outcomes) -> frozenset[str]:
    """Task kinds where most recorded responses are programs and few carry an answer key."""
    kinds: set[str] = set()
    for kind in sorted(set(data.tasks)):
        rows = [i for i, t in enumerate(data.tasks) if t == kind]
        texts = [r[i] for r in data.responses.values() for i in rows]
        if not texts:
            continue
        programs = sum(1 for t in texts if (p := parse_program(t)) is not None and p.entry)
        keyed = sum(1 for t in texts if answer_key(t) is not None)
        if programs >= 0.5 * len(texts) and keyed < 0.5 * len(texts):
            kinds.add(kind)
    return frozenset(kinds)


def _run_code(data: Outcomes, rows: Sequence[int], workers: int) -> dict[str, CodeRun]:
    m = len(data.models)
    jobs: list[Job] = []
    owners: list[tuple[int, int, list[int]]] = []  # (row, model k, source model of each call)
    programs: dict[int, list[Program | None]] = {}
    for i in rows:
        progs = [
            parse_program(data.responses[name][i]) if name in data.responses else None
            for name in data.models
        ]
        programs[i] = progs
        pool = [(s, c) for s, p in enumerate(progs) if p is not None for c in p.cases]
        calls = tuple((c.function, c.call, c.expected, c.printed) for _, c in pool)
        for k, p in enumerate(progs):
            if p is not None and p.entry is not None:
                jobs.append(Job(definitions=p.definitions, entry=p.entry, calls=calls))
                owners.append((i, k, [s for s, _ in pool]))
    outcomes = run_cases(jobs, workers=workers)
    values: dict[tuple[int, int], list[str | None]] = {}
    runs: dict[str, CodeRun] = {}
    passed: dict[int, NDArray[np.int64]] = {i: np.zeros((m, m), np.int64) for i in rows}
    for (i, k, sources), results in zip(owners, outcomes, strict=True):
        values[i, k] = [v if st in ("pass", "fail") else None for st, v in results]
        for s, (status, _) in zip(sources, results, strict=True):
            passed[i][k, s] += status == "pass"
    for i in rows:
        progs = programs[i]
        sources = [s for s, p in enumerate(progs) if p is not None for _ in p.cases]
        equal = np.zeros((m, m, m), np.int64)
        compared = np.zeros((m, m, m), np.int64)
        for k in range(m):
            for j in range(k + 1, m):
                vk, vj = values.get((i, k)), values.get((i, j))
                if vk is None or vj is None:
                    continue
                for s, a, b in zip(sources, vk, vj, strict=True):
                    if a is not None and b is not None:
                        compared[k, j, s] += 1
                        equal[k, j, s] += a == b
        compared += compared.transpose(1, 0, 2)
        equal += equal.transpose(1, 0, 2)
        runs[data.prompt_ids[i]] = CodeRun(
            runnable=np.asarray([p is not None and p.entry is not None for p in progs]),
            stated=np.asarray([len(p.cases) if p else 0 for p in progs], np.int64),
            passed=passed[i],
            equal=equal,
            compared=compared,
        )
    return runs


def gather(data: Outcomes, *, workers: int = 2) -> Evidence:
    """Answer keys for every prompt, and sandboxed runs of the programs of code task kinds."""
    keys = {
        pid: tuple(
            answer_key(data.responses[name][i]) if name in data.responses else None
            for name in data.models
        )
        for i, pid in enumerate(data.prompt_ids)
    }
    code_kinds = _code_kinds(data)
    rows = [i for i, t in enumerate(data.tasks) if t in code_kinds]
    return Evidence(
        models=data.models,
        keys=keys,
        code=_run_code(data, rows, workers) if rows else {},
        code_kinds=code_kinds,
    )
