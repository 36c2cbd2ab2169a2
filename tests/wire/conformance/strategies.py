"""Hypothesis strategies over provider responses and scenarios.

`recipes()` draws anything the wire can carry: any status with any Retry-After, bodies cut at any
byte, SSE events dropped / duplicated / swapped / cut, usage missing, zero or far above
`max_tokens`, empty or odd `choices` and content, any finish reason, stalls short and long, clean
and abrupt closes. `sound_recipes()` leaves out the regions where the engine is known to break a
promise (each exclusion names its regression case in `test_regressions.py`), so the default
property run is green and any new failure is a new defect.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from .harness import LONG_STALL_S, Scenario
from .wire import Recipe

__all__ = ["recipes", "scenarios", "sound_recipes", "sound_scenarios"]

ERROR_STATUSES = (400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529)
RETRY_AFTER = (None, "0", "1", "30", "-1", "soon", "0.05", "Wed, 21 Oct 2015 07:28:00 GMT")
RETRY_AFTER_MS = (None, "0", "50", "5000", "-5", "nan")
STALLS = (0.02, 0.08, LONG_STALL_S)


def _weighted(common: Any, *rare: Any) -> st.SearchStrategy[Any]:
    """`common` about two times in three, else one of `rare`."""
    return st.one_of(st.just(common), st.just(common), st.sampled_from(rare))


@st.composite
def recipes(draw: st.DrawFn, *, sound: bool = False) -> Recipe:
    fields: dict[str, Any] = {}
    if draw(st.integers(0, 3)) == 0:
        status = draw(st.sampled_from(ERROR_STATUSES))
        fields["status"] = status
        fields["error_body"] = draw(
            st.sampled_from(("json", "html", "empty", "context_length", "content_filter"))
        )
        if status in (429, 503, 529) or draw(st.booleans()):
            fields["retry_after"] = draw(st.sampled_from(RETRY_AFTER))
            fields["retry_after_ms"] = draw(_weighted(None, *RETRY_AFTER_MS[1:]))
    else:
        fields["content"] = draw(_weighted("fit", "text", "tool-bad", "empty", "blank", "null"))
        fields["words"] = draw(st.integers(1, 12))
        fields["finish"] = draw(
            _weighted("natural", "missing", "null", "length", "content_filter", "mismatch", "odd")
        )
        fields["usage"] = draw(_weighted("exact", "missing", "zero", "inflated"))
        fields["inflate"] = draw(st.sampled_from((2, 10, 50)))
        fields["choices"] = draw(_weighted("one", "empty", "missing", "null", "two"))
        ops = st.tuples(st.sampled_from(("drop", "dup", "swap", "cut")), st.integers(0, 40))
        fields["edits"] = tuple(draw(st.lists(ops, max_size=3)))
        fields["done"] = draw(st.sampled_from((True, True, True, False)))
        fields["stream_error_at"] = draw(_weighted(None, 0, 1, 3, 6, 40))
        fields["content_type"] = draw(_weighted("right", "wrong", "missing"))
    fields["framing"] = draw(_weighted(None, "length", "length-sent", "close", "chunked"))
    if draw(st.integers(0, 2)) == 0:
        fields["cut"] = draw(st.integers(0, 4000))
    fields["ending"] = draw(_weighted("keep", "clean", "abrupt"))
    fields["pieces"] = draw(st.integers(1, 3))
    if draw(st.integers(0, 5)) == 0:
        fields["stall_headers_s"] = draw(st.sampled_from(STALLS))
    if draw(st.integers(0, 4)) == 0:
        fields["stall_at"] = draw(st.integers(0, 40))
        fields["stall_s"] = draw(st.sampled_from(STALLS))
    recipe = Recipe(**fields)
    if sound:
        recipe = soundify(recipe)
    return recipe


def soundify(recipe: Recipe) -> Recipe:
    """`recipe` moved out of every known-defect region (see `test_regressions.py`)."""
    return recipe  # filled in as defects are confirmed


def sound_recipes() -> st.SearchStrategy[Recipe]:
    return recipes(sound=True)


@st.composite
def scenarios(draw: st.DrawFn, *, sound: bool = False) -> Scenario:
    budget = draw(
        st.one_of(
            st.none(),
            st.sampled_from([Decimal("0.05"), Decimal("0.15"), Decimal("0.3"), Decimal("1")]),
        )
    )
    return Scenario(
        wire=draw(st.sampled_from(("openai", "anthropic"))),
        stream=draw(st.booleans()),
        healthy_stream=draw(st.booleans()),
        output=draw(st.sampled_from(("str", "model"))),
        fallback=draw(st.booleans()),
        topology=draw(st.sampled_from(("failover", "ladder"))),
        budget_usd=budget,
        max_output_tokens=draw(st.sampled_from((16, 64, 128))),
        feedback_retries=draw(st.integers(0, 1)),
        recipes=tuple(draw(st.lists(recipes(sound=sound), min_size=1, max_size=3))),
        then=draw(st.sampled_from(("repeat", "healthy"))),
        delegations=draw(st.integers(1, 2)),
        sweeps=draw(st.integers(1, 2)),
    )


def sound_scenarios() -> st.SearchStrategy[Scenario]:
    return scenarios(sound=True)
