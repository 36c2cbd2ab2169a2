"""The batch lane inside durable jobs: a job's drafts go in one provider batch (the fake
provider's Anthropic Message Batches), and a worker killed with SIGKILL while the batch is pending
is succeeded by one that polls the same batch id: the fake sees exactly one create."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from handoffs.jobs import JobQueue

from .harness import TICKETS, Models, WorkerProcess, write_job

KEY_ENV = "HANDOFFS_BATCH_TEST_KEY"


@pytest.fixture
def batch_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key the job's Anthropic entry reads (set before `spawn` copies the environment)."""
    monkeypatch.setenv(KEY_ENV, "test-key")


def write_batch_job(directory: Path, models: Models, tickets: list[dict[str, object]]) -> Path:
    """The harness's triage job with `mid` on the Anthropic wire, drafts batched."""
    url = models.base_url
    (directory / "handoffs.toml").write_text(
        "[portfolio]\nsimulate_missing_keys = false\n\n"
        f'[models.frontier]\nprovider = "openai-compatible"\nname = "frontier"\n'
        f'base_url = "{url}/v1"\ntier = "frontier"\ninput_usd_per_mtok = "3"\n'
        'output_usd_per_mtok = "15"\ncontext_window = 200000\n\n'
        f'[models.mid]\nprovider = "anthropic"\nname = "mid"\nbase_url = "{url}"\n'
        f'api_key_env = "{KEY_ENV}"\ntier = "mid"\ninput_usd_per_mtok = "0.4"\n'
        'output_usd_per_mtok = "1.6"\ncontext_window = 128000\n\n'
        + "".join(
            f'[[policy.rules]]\nkind = "{kind}"\nladder = ["mid", "frontier"]\n\n'
            for kind in ("classify", "extract", "draft")
        )
    )
    job = models.use(write_job(directory, url, tickets, "batched"))
    job.write_text(job.read_text() + 'batch = ["draft"]\nbatch_poll_s = 0.05\n')
    return job


async def _until(models: Models, what: Callable[[], bool], timeout_s: float = 60) -> None:
    """Wait until `what()` holds, re-checked whenever the fake creates or polls a batch."""
    wait = models.provider.batches.wait_for
    if not await anyio.to_thread.run_sync(wait, what, timeout_s):
        raise TimeoutError


async def test_a_pending_batch_survives_a_killed_worker_without_being_resubmitted(
    tmp_path: Path,
    models: Models,
    sqlite_url: str,
    batch_key: None,
    spawn: Callable[..., WorkerProcess],
) -> None:
    job = write_batch_job(tmp_path, models, TICKETS[:4])
    config = tmp_path / "handoffs.toml"
    batches = models.provider.batches
    batches.hold = True  # pending until the test lets it end
    with JobQueue(sqlite_url, config=config) as queue:
        handle = await queue.submit(job, trace_dir=None)
        first = spawn(sqlite_url, config)
        try:
            await _until(
                models, lambda: len(batches.created) == 1 and batches.created[0].polls >= 2
            )
        except TimeoutError:
            raise AssertionError(first.output()) from None
        (batch,) = batches.created
        status = handle.status()
        assert status.progress is not None
        assert status.progress.pending_batches == {batch.id: len(batch.items)}
        first.kill()
        polls_before = batch.polls
        second = spawn(sqlite_url, config, args=("--dead-after", "2"))  # soon sees the first dead
        try:
            await _until(models, lambda: batch.polls > polls_before)  # the new worker polls it
        except TimeoutError:
            raise AssertionError(second.output()) from None
        batches.hold = False
        try:
            with anyio.fail_after(90):
                report = await handle.result()
        except TimeoutError:
            raise AssertionError(second.output()) from None
        after = handle.status()

    assert report.status == "completed"
    assert after.progress is not None and after.progress.pending_batches == {}
    assert len(batches.created) == 1, "the pending batch was submitted again"
    drafts = [r for r in report.handoffs if r.task_kind == "draft"]
    assert drafts and len(drafts) == len(batch.items)
    for record in drafts:
        assert record.status == "delivered"
        assert record.batch_id == batch.id
        assert record.attempts[0].lane == "batch"
        assert record.batch_saved_usd > 0, record.attempts[0]
    # drafts were not asked for on the ordinary wire (the judge's checks are, on the frontier)
    asked = [r for r in models.answered() if r.model == "mid" and models.title(r) == "ReplyDraft"]
    assert asked == []
    assert {r.task_kind for r in report.handoffs if r.attempts[0].lane == "batch"} == {"draft"}
