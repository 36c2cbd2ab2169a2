"""Inputs by reference: the orchestrator plans over handles, the engine carries the payloads.

A job's items (tickets, documents, records) are registered with the run. The orchestrator is
shown each item as a handle and the few fields the job author chose to describe it by
(`describe = ["id"]` in the job file), never the payload:

```
data (what the job holds)                         what the orchestrator is shown
{"id": "T-001", "customer": ..., "body": ...}  -> {"ref": "⟦q:5d41402a⟧", "id": "T-001"}
```
Handles are the quarantine's (`⟦q:…⟧`: one mechanism, not two), made from the item's content,
so a durable job that resumes in another process makes the same ones. A delegate tool takes
handles where its input takes a record: a flat input (a record of scalars, like a ticket) is
passed whole as `{"ref": "⟦q:…⟧"}`; a composite input takes a handle in each record-valued field
(`{"ticket": "⟦q:…⟧", "triage": "⟦q:…⟧"}`). The engine resolves each handle into the value it
stands for and validates the result as the subordinate's typed input. A delivered answer comes
back the same way: its handle (`result`) and its constrained fields, its free text left behind
the handle. A handle the run never made — another job's, or an invented one — is refused with a
message to the orchestrator; nothing is run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from pydantic import BaseModel

from handoffs.orchestrator._origin import Origin
from handoffs.orchestrator._provenance import Ledger
from handoffs.orchestrator._quarantine import REF
from handoffs.task import json_schema_of

__all__ = [
    "HANDLE",
    "describe_items",
    "flat",
    "reference_schema",
    "refused_handles",
    "resolved",
    "visible",
]

HANDLE: dict[str, Any] = {"type": "string", "pattern": "^⟦q:[0-9a-f]{8}⟧$"}
"""The JSON Schema of a handle, as the orchestrator's tools declare it."""


def _is_record(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> bool:
    """Whether a property's schema is a record (a model or an object), possibly optional."""
    while "$ref" in schema:
        schema = cast(Mapping[str, Any], defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {}))
    if "anyOf" in schema:
        branches = cast(list[Mapping[str, Any]], schema["anyOf"])
        return any(_is_record(b, defs) for b in branches)
    return schema.get("type") == "object" or "properties" in schema


def flat(input_type: type[BaseModel]) -> bool:
    """Whether `input_type` is a flat record (no record-valued field): passed whole by handle."""
    schema = json_schema_of(input_type)
    defs = cast(Mapping[str, Any], schema.get("$defs", {}))
    props = cast(Mapping[str, Any], schema.get("properties", {}))
    return not any(_is_record(p, defs) for p in props.values())


def reference_schema(input_type: type[BaseModel]) -> dict[str, Any]:
    """The parameters a delegate tool declares when its roster passes by reference.

    A flat input: `{"ref": handle}`. A composite one: its fields, each record-valued field a
    handle (scalar fields as they are)."""
    if flat(input_type):
        return {
            "type": "object",
            "properties": {"ref": {**HANDLE, "description": "The handle of the item to work on"}},
            "required": ["ref"],
            "additionalProperties": False,
        }
    schema = json_schema_of(input_type)
    defs = cast(Mapping[str, Any], schema.get("$defs", {}))
    props = cast(Mapping[str, Any], schema.get("properties", {}))
    out: dict[str, Any] = {}
    for name, prop in props.items():
        if _is_record(cast(Mapping[str, Any], prop), defs):
            described = cast(Mapping[str, Any], prop).get("description")
            out[name] = {**HANDLE, "description": f"Handle of {described or name}"}
        else:
            out[name] = dict(cast(Mapping[str, Any], prop))
    params: dict[str, Any] = {
        "type": "object",
        "properties": out,
        "required": list(cast(list[str], schema.get("required", []))),
        "additionalProperties": False,
    }
    return params


def resolved(input_type: type[BaseModel], request: Mapping[str, Any], ledger: Ledger) -> Any:
    """What a by-reference call's `request` stands for: every handle replaced by its value, and
    the `ref` of a flat input by the whole record."""
    if flat(input_type) and set(request) == {"ref"}:
        return ledger.resolve(request["ref"])
    return ledger.resolve(dict(request))


def refused_handles(request: Any, ledger: Ledger) -> str | None:
    """Why a request cannot run (it names a handle this run never made), or None."""
    unknown = ledger.quarantine.unknown(request)
    if not unknown:
        return None
    named = ", ".join(unknown)
    return (
        f"unknown handle {named}: not an item or result of this job (handles cannot be "
        "invented or carried over from another job); pass a handle this job showed you"
    )


def describe_items(ledger: Ledger, data: Any, describe: Sequence[str]) -> Any:
    """Register the job's items with `ledger` and return what the orchestrator is shown: for a
    list of records, each record's handle and its `describe` fields; any other data whole."""
    if not isinstance(data, list):
        return data
    shown: list[Any] = []
    for index, item in enumerate(cast(list[Any], data)):
        if not isinstance(item, dict):
            shown.append(item)
            continue
        record = cast(dict[str, Any], item)
        ref = ledger.quarantine.refer(
            record, Origin(kind="job_input", source=f"[{index}]"), kind="item"
        )
        shown.append({"ref": ref, **{k: record[k] for k in describe if k in record}})
    return shown


def visible(shown: Any) -> Any:
    """A delivered answer as a by-reference run shows it: its constrained fields that have a
    value (free text stays behind the answer's handle; a null is left out)."""
    if isinstance(shown, dict):
        return {
            k: visible(v)
            for k, v in cast(dict[str, Any], shown).items()
            if v is not None and not (isinstance(v, str) and REF.search(v))
        }
    if isinstance(shown, list):
        return [visible(v) for v in cast(list[Any], shown)]
    return shown
