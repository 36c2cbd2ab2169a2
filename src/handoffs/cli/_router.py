"""`handoffs router train`: fit the router's scorer on recorded outcomes or on traces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from handoffs.cli.terminal import JsonOpt, err, fail, out
from handoffs.errors import ConfigError
from handoffs.routing import Example, fit_linear_scorer, passed, read_examples
from handoffs.tracing import collect

__all__ = ["router_app"]


PROMPTLESS = (
    "the data carries no prompt text (traces never do): the scorer learns only each model's pass "
    "rate per task kind, not which prompts it fails; for prompt features record outcomes with "
    '[policy] outcomes = "outcomes.jsonl" in handoffs.toml and train on that file'
)


def _trace_examples(folder: Path) -> list[Example]:
    examples: list[Example] = []
    for row in collect(folder):
        kind = str(row.summary.get("task_kind") or "")
        outcomes = list(row.summary.get("outcomes") or [])
        for model, outcome in zip(row.attempt_models, outcomes, strict=False):
            verdict = passed(str(outcome))
            if verdict is not None:
                examples.append(Example(kind=kind, prompt="", model=model, passed=verdict))
    return examples


def _examples(path: Path) -> list[Example]:
    """Traces (a folder of `.handoffs/traces` JSONL) or recorded outcomes, whichever `path` holds."""
    if path.is_dir() and any(path.glob("*.jsonl")):
        first = next(p for p in sorted(path.glob("*.jsonl")))
        line = first.read_text(encoding="utf-8").split("\n", 1)[0]
        if '"span_id"' in line and '"trace_id"' in line:
            return _trace_examples(path)
    return read_examples(path)


router_app = typer.Typer(
    help="The router's learned scorer.", no_args_is_help=True, rich_markup_mode=None
)


@router_app.callback()
def _router() -> None:
    """The router's learned scorer."""


@router_app.command()
def train(
    data: Annotated[
        Path,
        typer.Option("--data", help="Recorded outcomes: an export, a folder of them, or traces."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The scorer file to write (.npz).")
    ],
    l2: Annotated[
        float | None, typer.Option(help="Regularisation; default: chosen on held-out outcomes.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit a scorer on recorded outcomes and save it; name it in handoffs.toml as policy.scorer."""
    try:
        examples = _examples(data)
        if not examples:
            raise ConfigError(f"{data}: no recorded outcomes")
        if l2 is not None and not 0 < l2 < 10:
            raise ConfigError("--l2 must be a positive number below 10")
        scorer = fit_linear_scorer(examples, l2=l2)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    try:
        scorer.save(output)
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}") from None
    warnings = [PROMPTLESS] if all(not e.prompt for e in examples) else []
    counts = scorer.examples or {}
    models: list[dict[str, object]] = [
        {
            "model": m,
            "outcomes": counts.get(m, 0),
            "pass_rate": sum(e.passed for e in examples if e.model == m) / max(counts.get(m, 0), 1),
            "l2": (scorer.l2 or {}).get(m),
        }
        for m in scorer.models
    ]
    doc = {
        "output": str(output),
        "models": models,
        "kinds": len({e.kind for e in examples}),
        "prompts": len({(e.kind, e.prompt) for e in examples}),
        "warnings": warnings,
    }
    for warning in warnings:
        err.print(f"warning: {warning}", highlight=False, markup=False, soft_wrap=True)
    if as_json:
        out.print_json(json.dumps(doc), highlight=False)
        return
    for entry in models:
        out.print(
            f"{entry['model']}: {entry['outcomes']} outcomes, pass rate "
            f"{float(str(entry['pass_rate'])):.1%}, l2 {entry['l2']}",
            highlight=False,
        )
    err.print(f"scorer written to {output}", highlight=False)
