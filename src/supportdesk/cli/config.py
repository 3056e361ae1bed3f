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
    from supportdesk.brand import load_brand

    rows = explain(app.settings, app.overrides)
    brand = load_brand(app.settings)
    profile = (f"{brand.company or 'no company named'} ({brand.assistant_name})", brand.source,
               "The brand profile in use: [brand] settings over the KB folder's profile file over neutral defaults.")
    if as_json:
        data = {k: {"value": v, "source": s, "description": d} for k, v, s, d in rows}
        data["brand.profile"] = {"value": profile[0], "source": profile[1], "description": profile[2],
                                 "warnings": list(brand.warnings)}
        print(json.dumps(data, indent=1))
        return
    table = Table(title="supportdesk settings", show_lines=False)
    table.add_column("setting", style="bold")
    table.add_column("value")
    table.add_column("source", style="cyan")
    table.add_column("description", style="dim")
    for key, value, source, description in rows:
        table.add_row(key, Text(str(value)), source, Text(description))  # never markup: '[a, b]' is data
    console.print(table)
    console.print(Text(f"brand profile: {profile[0]} from {profile[1]}"))
    for warning in brand.warnings:
        console.print(Text(f"brand profile warning: {warning}", style="yellow"))
    from supportdesk.cpu import describe

    console.print(Text(f"CPU: {describe(app.settings.embedding)}"))
