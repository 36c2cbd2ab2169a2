"""The orchestrator wing: a pydantic-ai agent whose tools are typed delegations, and the trust
boundary around it (quarantine of subordinate free text, the side-effect policy of actions).
"""

from handoffs.orchestrator._action import ActionPolicy, Allow, SideEffect, side_effect
from handoffs.orchestrator._agent import JobResult, Orchestrator, OrchestratorSpec, Subordinate
from handoffs.orchestrator._quarantine import REF, Quarantine, free_text

__all__ = [
    "REF",
    "ActionPolicy",
    "Allow",
    "JobResult",
    "Orchestrator",
    "OrchestratorSpec",
    "Quarantine",
    "SideEffect",
    "Subordinate",
    "free_text",
    "side_effect",
]
