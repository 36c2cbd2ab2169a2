"""The providers wing: building pydantic-ai models from catalog entries (the one place keys are
read), the embedded local tier, simulated models, and what a provider's error means.
"""

from handoffs.providers._fault import (
    FaultKind,
    MalformedResponse,
    OutputOverrun,
    ProviderFault,
    ReadableModel,
    classify,
)
from handoffs.providers._local import (
    INSTALL_HINT,
    LocalModelUnavailable,
    LocalServer,
    find_gguf,
    local_available,
    shared_server,
)
from handoffs.providers._portfolio import Portfolio
from handoffs.providers._secret import redact
from handoffs.providers._simulator import SimulatedDomain, Simulator, load_simulator

__all__ = [
    "INSTALL_HINT",
    "FaultKind",
    "LocalModelUnavailable",
    "LocalServer",
    "MalformedResponse",
    "OutputOverrun",
    "Portfolio",
    "ProviderFault",
    "ReadableModel",
    "SimulatedDomain",
    "Simulator",
    "classify",
    "find_gguf",
    "load_simulator",
    "local_available",
    "redact",
    "shared_server",
]
