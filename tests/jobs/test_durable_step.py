"""A side-effecting tool wrapped with `durable_step` runs once per job: a replay of the job gets
its journaled result back instead of calling it again."""

from __future__ import annotations

from pathlib import Path

from dbos import DBOS

from handoffs.jobs import JobQueue, Worker, durable_step

sent: list[str] = []


@durable_step
async def send_email(to: str) -> str:
    """A tool with a side effect the world must see once."""
    sent.append(to)
    return f"sent to {to}"


@DBOS.workflow(name="tests.jobs.notify")
async def notify(to: str) -> list[str]:
    return [await send_email(to), await send_email(f"{to}, cc")]


async def test_a_durable_step_is_replayed_from_the_journal_not_called_again(
    tmp_path: Path, sqlite_url: str
) -> None:
    sent.clear()
    assert await send_email("outside") == "sent to outside"  # outside a job: a plain call
    with JobQueue(sqlite_url, config=tmp_path / "none.toml"):
        async with Worker(sqlite_url, supervise=False):
            first = await DBOS.start_workflow_async(notify, "ann")
            assert await first.get_result() == ["sent to ann", "sent to ann, cc"]
            # Re-run the workflow from its second step: the first comes from the journal.
            replay = await DBOS.fork_workflow_async(first.get_workflow_id(), 2)
            assert await replay.get_result() == ["sent to ann", "sent to ann, cc"]
    assert sent == ["outside", "ann", "ann, cc", "ann, cc"]
