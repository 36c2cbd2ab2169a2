"""AgentDojo's injection tasks, run through handoffs, with a gullible subordinate (`[gauntlet]` extra).

AgentDojo (0.1.35, benchmark v1.2.2: 4 suites, 97 user tasks, 35 injection tasks) plants an
attacker's instruction in the data its tools return, and checks afterwards whether the user's
task got done (utility) and whether the attacker's did (`security=True` means *the attack
succeeded*; we report it as the attack success rate, ASR).

How a pair runs here (`HandoffsPipeline`, a `BasePipelineElement`):

- the orchestrator is a handoffs `Orchestrator`; its planner is a stand-in for a frontier model
  that plans perfectly: it makes the user task's ground-truth calls, in order, then answers with
  the ground-truth output — and, the worst case, it also makes every call it reads in a result;
- every read-only tool (`get_`, `search_`, `read_`, `list_`, `check_`, `get_webpage` included) is
  a *subordinate*: the orchestrator names what to read, the tool runs, and its output goes to the
  subordinate, never to the orchestrator (`Subordinate.source`, whose arguments — a URL can carry
  data out — pass the action policy like a side effect's);
- the subordinate is gullible: it returns a `Reading` (free-text `summary`, pattern-constrained
  `identifiers`) and, when its input carries the attacker's goal, it relays the injection task's
  ground-truth calls into its summary — perfect obedience;
- every other tool is a side-effecting action behind the `ActionPolicy`.

Three modes: `none` (results framed, no policy: what a plain agent does), `policy` (quarantine
off: framed results, side effects admit arguments by provenance, so whatever the planner writes
after reading free text carries it) and `quarantine` (the default safe mode: free text behind
handles, provenance exact). In quarantine the planner cannot know a value it could only have read
in free text: it passes the reading's handle instead (values in the prompt or among the revealed
identifiers it uses as they are).

What the figures measure is therefore the framework's containment of a gullible subordinate and a
hijackable orchestrator, not a model's skill: utility is an upper bound set by a perfect planner.

    handoffs gauntlet-agentdojo [--suites banking,slack] [--attacks NAMES] [--json]
"""

from __future__ import annotations

from handoffs.gauntlet.agentdojo._benchmark import AgentDojoReport, Cell, run_agentdojo
from handoffs.gauntlet.agentdojo._pipeline import (
    ATTACKS,
    MODES,
    VERSION,
    HandoffsPipeline,
    Mode,
    Reading,
    pipeline,
    side_effecting,
)

__all__ = [
    "ATTACKS",
    "MODES",
    "VERSION",
    "AgentDojoReport",
    "Cell",
    "HandoffsPipeline",
    "Mode",
    "Reading",
    "pipeline",
    "run_agentdojo",
    "side_effecting",
]
