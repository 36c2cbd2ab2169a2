"""`handoffs config schema`: the JSON Schema of `handoffs.toml` or of a job file, for editors.

```sh
handoffs config schema > handoffs.schema.json        # then, as the TOML file's first line:
#:schema ./handoffs.schema.json                       # Taplo / Even Better TOML check and complete
handoffs config schema --job > job.schema.json
```
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from handoffs.cli.terminal import JsonOpt, out
from handoffs.project import ConfigFile, JobFile, json_schema

__all__ = ["config_app"]

config_app = typer.Typer(help="Describe the configuration files.", no_args_is_help=True)


@config_app.command("schema")
def schema(
    job: Annotated[
        bool, typer.Option("--job", help="The job file's schema instead of handoffs.toml's.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print the JSON Schema of `handoffs.toml` (or, with --job, of a job file) on stdout.

    Save it and name it on the TOML file's first line (`#:schema ./handoffs.schema.json`): editors
    with a TOML language server (Taplo, Even Better TOML) then complete keys and flag mistakes.
    The output is one JSON document, with or without --json.
    """
    del as_json  # the schema is JSON either way
    out.print_json(json.dumps(json_schema(JobFile if job else ConfigFile)), highlight=False)
