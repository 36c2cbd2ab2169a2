"""The Gauntlet: attack your own handoffs before production does.

A job is run against a *hostile portfolio* — its own models, played by its simulation on the fake
provider, with chosen subordinates replaced by adversarial scripted models — once per attack, and
every run is checked against the invariants (`handoffs.gauntlet`) and scored:

```python
from handoffs.gauntlet import Gauntlet, select
scorecard = await Gauntlet(job, config, seed=1).run(select(["injection", "confident_lie"]))
scorecard.assert_held()
```
From the command line: `handoffs gauntlet JOB [--attacks NAMES] [--seed N] [--json]`; in a test
suite: the `gauntlet` pytest fixture (`handoffs.gauntlet.plugin`).

Families: output (malformed, off-schema, lies, inflated, oversized, empty), injection (in outputs
and in the inputs subordinates read, obeyed by a gullible subordinate; aimed at the judge, obeyed
by an obedient judge), economic (escalation,
budget, retry bait), provider (every fault of the fake provider), degradation (silently worse or
slower).
"""

from handoffs.gauntlet._attack import Attack, Family, Harm, Hostility
from handoffs.gauntlet._call import Call
from handoffs.gauntlet._catalogue import FAMILIES, catalogue, opt_in, select
from handoffs.gauntlet._drill import LenientJudge, SilentlySlower, SilentlyWorse
from handoffs.gauntlet._economic import BudgetExhaustion, EndlessEscalation, RetryAfterBait
from handoffs.gauntlet._gullible import GullibleOrchestrator, instructions_in
from handoffs.gauntlet._injection import (
    ExfiltrateToUrl,
    FakeSystemFrame,
    FakeToolCall,
    IgnoreTaskCallTool,
    OutputInjection,
    PlantedInstruction,
    RedelegateForever,
)
from handoffs.gauntlet._invariant import INVARIANTS
from handoffs.gauntlet._judge import JUDGE_PAYLOADS, JudgeInjection
from handoffs.gauntlet._output import (
    ConfidentLie,
    EmptyOutput,
    ExtraField,
    InflatedConfidence,
    MalformedJson,
    MissingField,
    OutputAttack,
    OversizedOutput,
    SchemaViolation,
)
from handoffs.gauntlet._provider import ProviderFault
from handoffs.gauntlet._runner import Defences, Gauntlet
from handoffs.gauntlet._scorecard import (
    AttackResult,
    Breach,
    GauntletFailed,
    InvariantResult,
    Scorecard,
)

__all__ = [
    "FAMILIES",
    "INVARIANTS",
    "JUDGE_PAYLOADS",
    "Attack",
    "AttackResult",
    "Breach",
    "BudgetExhaustion",
    "Call",
    "ConfidentLie",
    "Defences",
    "EmptyOutput",
    "EndlessEscalation",
    "ExfiltrateToUrl",
    "ExtraField",
    "FakeSystemFrame",
    "FakeToolCall",
    "Family",
    "Gauntlet",
    "GauntletFailed",
    "GullibleOrchestrator",
    "Harm",
    "Hostility",
    "IgnoreTaskCallTool",
    "InflatedConfidence",
    "InvariantResult",
    "JudgeInjection",
    "LenientJudge",
    "MalformedJson",
    "MissingField",
    "OutputAttack",
    "OutputInjection",
    "OversizedOutput",
    "PlantedInstruction",
    "ProviderFault",
    "RedelegateForever",
    "RetryAfterBait",
    "SchemaViolation",
    "Scorecard",
    "SilentlySlower",
    "SilentlyWorse",
    "catalogue",
    "instructions_in",
    "opt_in",
    "select",
]
