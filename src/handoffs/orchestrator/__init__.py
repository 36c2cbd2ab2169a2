"""The orchestrator wing: a pydantic-ai agent whose tools are typed delegations, and the trust
boundary around it (quarantine of what subordinates and providers wrote, the provenance of every
value, and the per-argument policy of side effects).
"""

from handoffs.orchestrator._action import (
    ActionCall,
    ActionPolicy,
    ActionRecord,
    Allow,
    Requirement,
    SideEffect,
    same_record,
    side_effect,
)
from handoffs.orchestrator._agent import JobResult, Orchestrator, OrchestratorSpec, Subordinate
from handoffs.orchestrator._origin import DEFAULT_ACCEPTS, Accept, Accepts, From, Origin
from handoffs.orchestrator._provenance import Ledger, Provenance
from handoffs.orchestrator._quarantine import REF, Quarantine, free_text

__all__ = [
    "DEFAULT_ACCEPTS",
    "REF",
    "Accept",
    "Accepts",
    "ActionCall",
    "ActionPolicy",
    "ActionRecord",
    "Allow",
    "From",
    "JobResult",
    "Ledger",
    "Orchestrator",
    "OrchestratorSpec",
    "Origin",
    "Provenance",
    "Quarantine",
    "Requirement",
    "SideEffect",
    "Subordinate",
    "free_text",
    "same_record",
    "side_effect",
]
