"""``supportdesk config``: the effective settings and where each value came from."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from supportdesk.cli.context import AppContext, console
from supportdesk.settings import explain


def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: key → value, source, description.")] = False,
) -> None:
    """Print every setting, its value, and its source (cli, env, .env, a TOML file, default)."""
    app: AppContext = ctx.obj
    rows = explain(app.settings, app.overrides)
    if as_json:
        print(json.dumps({k: {"value": v, "source": s, "description": d} for k, v, s, d in rows}, indent=1))
        return
    table = Table(title="supportdesk settings", show_lines=False)
    table.add_column("setting", style="bold")
    table.add_column("value")
    table.add_column("source", style="cyan")
    table.add_column("description", style="dim")
    for key, value, source, description in rows:
        table.add_row(key, Text(str(value)), source, Text(description))  # never markup: '[a, b]' is data
    console.print(table)
    from supportdesk.cpu import describe

    console.print(Text(f"CPU: {describe(app.settings.embedding)}"))
