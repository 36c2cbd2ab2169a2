"""Keys never leave in text: every error text a provider sends back is redacted before the engine
stores, traces or prints it.

`Portfolio` remembers every key it reads from the environment; `redact` replaces those (and
anything shaped like a provider key, for keys this process never read) with `[redacted]`. A
provider that echoes the request's key in an error body therefore leaves no key in attempts,
records, traces, the jobs database or CLI output.
"""

from __future__ import annotations

import re
import threading

__all__ = ["REDACTED", "redact", "remember"]

REDACTED = "[redacted]"

_SHAPES = re.compile(
    r"(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,})"  # OpenAI and Anthropic key shapes
    r"|(?:(?<=Bearer )[A-Za-z0-9_\-.=]{16,})"  # an Authorization header's token
    r"|(?:AKIA[0-9A-Z]{16})"  # AWS access key ids (Bedrock gateways)
)
_known: set[str] = set()
_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None


def remember(secret: str) -> None:
    """Treat `secret` as a key from now on (short placeholders are ignored)."""
    global _pattern
    if len(secret) < 8:
        return
    with _lock:
        if secret not in _known:
            _known.add(secret)
            alternatives = sorted(_known, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def redact(text: str) -> str:
    """`text` with every remembered key and every key-shaped token replaced by `[redacted]`."""
    known = _pattern
    if known is not None:
        text = known.sub(REDACTED, text)
    return _SHAPES.sub(REDACTED, text)
