"""`examples/05_durable_jobs.py` runs offline and shows what it claims."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_durable_jobs_example_resumes_on_a_second_worker_and_cancels_a_job() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "05_durable_jobs.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    job_id = re.search(r"submitted ([0-9a-f]{12}) \(key 'example-triage'\): queued", out)
    assert job_id, out
    stopped = re.search(
        r"stopped mid-job: the job is still running in the database, (\d+) handoffs", out
    )
    assert stopped and 0 < int(stopped.group(1)) < 70, out
    assert "(1 job handed over): completed, 70 handoffs, 70 handoff steps in the journal" in out
    assert f"submitted again with the same key: job {job_id.group(1)}, completed" in out
    cancelled = re.search(
        r"cancelled job [0-9a-f]{12}: cancelled, (\d+) finished handoffs kept", out
    )
    assert cancelled and int(cancelled.group(1)) >= 5, out
