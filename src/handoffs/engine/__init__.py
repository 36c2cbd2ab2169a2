"""The engine wing: `Session` routes, reserves, calls, verifies, retries with feedback, escalates,
fails over and records every handoff; the orchestrator's own model fails over through `Helm`;
retry caps and spending caps.
"""

from handoffs.engine._cap import Caps, SpendCap
from handoffs.engine._helm import Helm
from handoffs.engine._retry import RetryPolicy
from handoffs.engine._session import (
    ASK_MAX_TOKENS,
    ASK_PROMPT_TOKENS,
    FEEDBACK_PROMPT_TOKENS,
    ModelSource,
    Session,
)

__all__ = [
    "ASK_MAX_TOKENS",
    "ASK_PROMPT_TOKENS",
    "FEEDBACK_PROMPT_TOKENS",
    "Caps",
    "Helm",
    "ModelSource",
    "RetryPolicy",
    "Session",
    "SpendCap",
]
