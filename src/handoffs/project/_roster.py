"""Loading a project's roster (`agents/`) and tool functions (`tools/`) by path.

Each folder is mounted as a synthetic package, `handoffs_roster` and `handoffs_tools`, so roster
files can import each other relatively (`from .support import Ticket`) and import tools as
`from handoffs_tools.tickets import load_tickets` — without putting the folders on `sys.path` or
claiming a top-level name such as `agents`, which belongs to another SDK.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import types
from pathlib import Path
from typing import Any

from handoffs.errors import ConfigError

__all__ = [
    "ROSTER_PACKAGE",
    "TOOLS_PACKAGE",
    "digest",
    "load_agent",
    "load_module",
    "loaded_files",
    "mount",
]

ROSTER_PACKAGE = "handoffs_roster"
TOOLS_PACKAGE = "handoffs_tools"


def mount(directory: Path, package: str) -> None:
    """Make `directory` importable as the package `package` (replacing an earlier mount)."""
    directory = directory.resolve()
    if not directory.is_dir():
        raise ConfigError(f"{package} folder not found: {directory}")
    current = sys.modules.get(package)
    if current is not None and list(getattr(current, "__path__", [])) == [str(directory)]:
        return
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]
    module = types.ModuleType(package, f"roster folder {directory}")
    module.__path__ = [str(directory)]
    module.__file__ = None
    sys.modules[package] = module
    importlib.invalidate_caches()


def load_module(roster: Path, name: str, *, tools: Path | None = None) -> types.ModuleType:
    """Import `roster/<name>.py` as `handoffs_roster.<name>` (mounting `tools/` beside it)."""
    mount(roster, ROSTER_PACKAGE)
    tools = tools if tools is not None else roster.parent / "tools"
    if tools.is_dir():
        mount(tools, TOOLS_PACKAGE)
    if not (roster / f"{name}.py").is_file():
        raise ConfigError(f"roster file not found: {roster / (name + '.py')}")
    try:
        module = importlib.import_module(f"{ROSTER_PACKAGE}.{name}")
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"cannot load roster file {name}.py: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def load_agent(roster: Path, name: str, *, tools: Path | None = None) -> Any:
    """Import `roster/<name>.py` and return its module-level `agent`."""
    module = load_module(roster, name, tools=tools)
    if not hasattr(module, "agent"):
        raise ConfigError(f"roster file {name}.py defines no module-level `agent`")
    return module.agent


def loaded_files() -> list[Path]:
    """The files of the roster and tools modules imported so far: those a job loaded and those
    they import (`from .support import Ticket`, `handoffs_tools.tickets`)."""
    files: set[Path] = set()
    for name, module in list(sys.modules.items()):
        if name.startswith((f"{ROSTER_PACKAGE}.", f"{TOOLS_PACKAGE}.")):
            file = getattr(module, "__file__", None)
            if isinstance(file, str):
                files.add(Path(file))
    return sorted(files)


def digest(path: Path) -> str | None:
    """The SHA-256 of a file's bytes, or None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
