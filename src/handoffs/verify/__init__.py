"""The verify wing: running checks over a subordinate's output (`run_checks`) and the built-in
checks (`checks.predicate`, `checks.judge`, `checks.agreement`). Checks return verdicts; the
engine decides what a failed one means.
"""

from handoffs.verify import checks
from handoffs.verify._run import Answer, Ask, Check, CheckContext, run_checks

__all__ = [
    "Answer",
    "Ask",
    "Check",
    "CheckContext",
    "checks",
    "run_checks",
]
