"""Run untrusted Python from model answers in a separate, limited process, and report what it did.

`run_cases(jobs)` starts one worker interpreter (`python -I -S`: isolated mode, no site-packages,
empty environment, a fresh temporary working directory). For each job the worker forks a child
that lowers its limits (address space, CPU seconds, file size, no core files), defines the
program, evaluates each case's call under an alarm, and reports `(status, value)` per case over a
pipe; a child that overruns its wall-clock allowance is killed. `status` is `pass`, `fail`,
`error` or `timeout`; `value` is the `repr` of what the call returned (cut to 200 characters), so
two programs can be compared on the same inputs.

This is a *benchmark* sandbox for recorded answers: a process boundary with resource limits and
timeouts, not a security boundary against code written to escape (no network or filesystem
namespace). POSIX only (it forks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

__all__ = ["Job", "Outcome", "run_cases"]

Outcome = tuple[str, str]
"""(status, repr of the value) of one case: status is pass, fail, error or timeout."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A program and the calls to try on it."""

    definitions: str
    entry: str | None
    """The program's answer function: names the cases call but the program lacks are bound to it."""
    calls: tuple[tuple[str, str, str, bool], ...]
    """(function, call source, expected source or text, expected is printed text)."""


_WORKER = r"""
import json, os, resource, select, signal, sys, time, ast, math

def limit(seconds):
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    resource.setrlimit(resource.RLIMIT_CPU, (seconds + 1, seconds + 2))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

class Late(BaseException):
    pass

def late(signum, frame):
    raise Late()

def same(value, expected):
    if value == expected:
        return True
    if isinstance(value, float) or isinstance(expected, float):
        try:
            return math.isclose(float(value), float(expected), rel_tol=1e-6, abs_tol=1e-9)
        except Exception:
            return False
    if isinstance(value, (list, tuple)) and isinstance(expected, (list, tuple)):
        return len(value) == len(expected) and all(same(a, b) for a, b in zip(value, expected))
    return False

def child(job, per_call):
    results = []
    signal.signal(signal.SIGALRM, late)
    space = {"__name__": "__candidate__"}
    try:
        signal.setitimer(signal.ITIMER_REAL, per_call)
        exec(compile(job["definitions"], "<answer>", "exec"), space)
        signal.setitimer(signal.ITIMER_REAL, 0)
    except BaseException as exc:
        signal.setitimer(signal.ITIMER_REAL, 0)
        status = "timeout" if isinstance(exc, Late) else "error"
        return [(status, "") for _ in job["calls"]]
    entry = space.get(job["entry"]) if job["entry"] else None
    late_calls = 0
    for function, call, expected, printed in job["calls"]:
        if function not in space and entry is not None:
            space[function] = entry
        if late_calls >= 2:
            results.append(("timeout", ""))
            continue
        try:
            signal.setitimer(signal.ITIMER_REAL, per_call)
            value = eval(call, space)
            signal.setitimer(signal.ITIMER_REAL, 0)
        except BaseException as exc:
            signal.setitimer(signal.ITIMER_REAL, 0)
            late_calls += isinstance(exc, Late)
            results.append(("timeout" if isinstance(exc, Late) else "error", ""))
            continue
        try:
            text = repr(value)[:200]
            if printed:
                try:
                    ok = same(value, ast.literal_eval(expected))
                except Exception:
                    ok = False
                ok = ok or str(value).strip() == expected.strip()
            else:
                ok = same(value, ast.literal_eval(expected))
        except BaseException:
            text, ok = "", False
        results.append(("pass" if ok else "fail", text))
    return results

def run(job, per_call, wall):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 0
        try:
            limit(int(per_call * (1 + len(job["calls"]))) + 1)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            data = json.dumps(child(job, per_call)).encode()
            with os.fdopen(write, "wb") as out:
                out.write(data)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write)
    chunks, deadline = [], time.monotonic() + wall
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([read], [], [], left)[0]:
            os.kill(pid, signal.SIGKILL)
            break
        chunk = os.read(read, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        return [("timeout", "") for _ in job["calls"]]

def main():
    per_call, wall = float(sys.argv[1]), float(sys.argv[2])
    for line in sys.stdin:
        job = json.loads(line)
        sys.stdout.write(json.dumps(run(job, per_call, wall)) + "\n")
        sys.stdout.flush()

main()
"""


def _run_chunk(jobs: Sequence[Job], per_call_s: float, wall_s: float) -> list[list[Outcome]]:
    lines = "".join(
        json.dumps({"definitions": j.definitions, "entry": j.entry, "calls": j.calls}) + "\n"
        for j in jobs
    )
    with tempfile.TemporaryDirectory(prefix="handoffs-sandbox-") as cwd:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _WORKER, str(per_call_s), str(wall_s)],
            input=lines,
            capture_output=True,
            text=True,
            cwd=cwd,
            env={"PATH": os.defpath},
            timeout=wall_s * len(jobs) + 60,
            check=False,
        )
    results = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    if len(results) != len(jobs):
        raise RuntimeError(f"sandbox worker failed: {done.stderr.strip()[-500:]}")
    return [[(str(s), str(v)) for s, v in r] for r in results]


def run_cases(
    jobs: Sequence[Job], *, per_call_s: float = 0.25, wall_s: float = 10.0, workers: int = 1
) -> list[list[Outcome]]:
    """Run every job's calls in the sandbox; one list of outcomes per job, in order.

    `workers` worker processes share the jobs (round-robin); each call may take `per_call_s`
    seconds and each job `wall_s` in all, after two late calls a job's remaining calls are skipped
    as timeouts.
    """
    if not jobs:
        return []
    count = max(1, min(workers, len(jobs)))
    chunks = [jobs[w::count] for w in range(count)]

    def run(chunk: Sequence[Job]) -> list[list[Outcome]]:
        return _run_chunk(chunk, per_call_s, wall_s)

    with ThreadPoolExecutor(max_workers=count) as pool:
        parts = list(pool.map(run, chunks))
    results: list[list[Outcome]] = [[] for _ in jobs]
    for w, part in enumerate(parts):
        for n, outcome in enumerate(part):
            results[w + n * count] = outcome
    return results
