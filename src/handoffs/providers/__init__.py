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
    local_problem,
    shared_server,
)
from handoffs.providers._portfolio import Portfolio
from handoffs.providers._secret import redact
from handoffs.providers._simulator import SimulatedDomain, Simulator, load_simulator
from handoffs.providers._weights import (
    LOCAL_MODELS,
    LocalModel,
    install_command,
    install_model,
    join_parts,
    model_path,
    models_dir,
    remove_model,
)

__all__ = [
    "INSTALL_HINT",
    "LOCAL_MODELS",
    "FaultKind",
    "LocalModel",
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
    "install_command",
    "install_model",
    "join_parts",
    "load_simulator",
    "local_available",
    "local_problem",
    "model_path",
    "models_dir",
    "redact",
    "remove_model",
    "shared_server",
]
