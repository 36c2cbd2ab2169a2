"""The engine wing: `Session` routes, reserves, calls, verifies, retries with feedback, escalates,
fails over and streams every handoff's record to its sinks; a `HandoffRunner` may make a handoff
elsewhere (durable jobs, the Gauntlet); the orchestrator's own model fails over through `Helm`;
both call models through one `Guard` (breakers, reservations, spend caps, faults, the 429 policy);
retry caps and spending caps.
"""

from handoffs.engine._batch import (
    BatchAnswer,
    BatchModels,
    BatchPlan,
    batch_urgent,
    plan_batch,
    read_answer,
)
from handoffs.engine._call import prompt_cached
from handoffs.engine._cap import Caps, SpendCap
from handoffs.engine._guard import EXPOSURE, Exposure
from handoffs.engine._helm import ORCHESTRATOR_KIND, Helm
from handoffs.engine._prompt import prompt_bound
from handoffs.engine._retry import RetryPolicy
from handoffs.engine._session import (
    ASK_MAX_TOKENS,
    ASK_PROMPT_TOKENS,
    FEEDBACK_PROMPT_TOKENS,
    HANDOFF_SLOTS,
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
    "EXPOSURE",
    "FEEDBACK_PROMPT_TOKENS",
    "HANDOFF_SLOTS",
    "KEEP_RECORDS",
    "ORCHESTRATOR_KIND",
    "BatchAnswer",
    "BatchModels",
    "BatchPlan",
    "Caps",
    "Exposure",
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
    "batch_urgent",
    "plan_batch",
    "prompt_bound",
    "prompt_cached",
    "read_answer",
    "run_here",
]
