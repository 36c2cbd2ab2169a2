"""The engine wing: `Session` routes, reserves, calls, verifies, retries with feedback, escalates,
fails over and streams every handoff's record to its sinks; a `HandoffRunner` may make a handoff
elsewhere (durable jobs, the Gauntlet); the orchestrator's own model fails over through `Helm`;
retry caps and spending caps.
"""

from handoffs.engine._cap import Caps, SpendCap
from handoffs.engine._helm import Helm
from handoffs.engine._retry import RetryPolicy
from handoffs.engine._session import (
    ASK_MAX_TOKENS,
    ASK_PROMPT_TOKENS,
    FEEDBACK_PROMPT_TOKENS,
    KEEP_RECORDS,
    HandoffRunner,
    ModelSource,
    Run,
    Session,
    run_here,
)
from handoffs.engine._sink import Recorder, RecordSink, Tally

__all__ = [
    "ASK_MAX_TOKENS",
    "ASK_PROMPT_TOKENS",
    "FEEDBACK_PROMPT_TOKENS",
    "KEEP_RECORDS",
    "Caps",
    "HandoffRunner",
    "Helm",
    "ModelSource",
    "RecordSink",
    "Recorder",
    "RetryPolicy",
    "Run",
    "Session",
    "SpendCap",
    "Tally",
    "run_here",
]
