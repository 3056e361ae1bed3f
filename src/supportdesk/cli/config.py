"""``supportdesk config``: the effective settings and where each value came from."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from supportdesk.cli.context import AppContext, console, fail
from supportdesk.settings import explain

WIDE = 120
"""Below this many columns the table leaves the descriptions out (``config KEY`` shows one whole)."""


def show(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Argument(
        help="One setting (dotted: retrieval.top_k) or a section (retrieval); default: all of them.",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: key → value, source, description.")] = False,
) -> None:
    """Print every setting (or KEY), its value, and its source (cli, env, .env, a TOML file, default)."""
    app: AppContext = ctx.obj
    from supportdesk.brand import load_brand

    rows = explain(app.settings, app.overrides)
    brand = load_brand(app.settings)
    profile = (f"{brand.company or 'no company named'} ({brand.assistant_name})", brand.source,
               "The brand profile in use: [brand] settings over the KB folder's profile file over neutral defaults.")
    show_profile = key is None or key.strip().split(".")[0] == "brand"
    if key is not None:
        wanted = key.strip()
        rows = [r for r in rows if r[0] == wanted or r[0].startswith(wanted + ".")]
        if not rows:
            from supportdesk.settings import _suggest

            known = {r[0] for r in explain(app.settings, app.overrides)}
            fail(f"no setting '{wanted}'{_suggest(wanted, known | {k.split('.')[0] for k in known})} "
                 "('supportdesk config' lists them all)")
    if as_json:
        data = {k: {"value": v, "source": s, "description": d} for k, v, s, d in rows}
        if show_profile:
            data["brand.profile"] = {"value": profile[0], "source": profile[1], "description": profile[2],
                                     "warnings": list(brand.warnings)}
        print(json.dumps(data, indent=1))
        return
    described = console.width >= WIDE
    if key is not None and (len(rows) == 1 or not described):  # asked for: each whole, descriptions too
        for name, value, source, description in rows:
            console.print(Text(f"{name} = {value}"), soft_wrap=True)
            console.print(Text(f"  source: {source}", style="cyan"), soft_wrap=True)
            if description:
                console.print(Text(f"  {description}", style="dim"))
        return
    table = Table(title="supportdesk settings", show_lines=False)
    table.add_column("setting", style="bold", no_wrap=True, min_width=max(len(r[0]) for r in rows))  # never cut
    table.add_column("value", overflow="fold")
    table.add_column("source", style="cyan", overflow="fold")
    if described:
        table.add_column("description", style="dim")
    for name, value, source, description in rows:  # never markup: '[a, b]' is data
        table.add_row(name, Text(str(value)), source, *([Text(description)] if described else []))
    console.print(table)
    if show_profile:
        console.print(Text(f"brand profile: {profile[0]} from {profile[1]}"))
        for warning in brand.warnings:
            console.print(Text(f"brand profile warning: {warning}", style="yellow"))
    if not described:
        console.print(Text("descriptions: 'supportdesk config KEY' (one setting or a section), or --json; "
                           f"or a terminal of {WIDE}+ columns", style="dim"))
    if key is None:
        from supportdesk.cpu import describe

        console.print(Text(f"CPU: {describe(app.settings.embedding)}"))
