"""``supportdesk history``: browse stored conversations and export them as training data."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from supportdesk.cli.context import AppContext, console, fail

app = typer.Typer(help="Browse and export the conversation history.", no_args_is_help=True)


def _store(ctx: typer.Context):
    from supportdesk.history import HistoryStore

    appctx: AppContext = ctx.obj
    try:
        return HistoryStore(appctx.settings.data_dir / "history.sqlite3")
    except Exception as exc:  # noqa: BLE001
        fail(f"cannot open the history: {exc}")


@app.command("list")
def list_conversations(ctx: typer.Context, limit: Annotated[int, typer.Option("-n", min=1)] = 30) -> None:
    """Recent conversations."""
    store = _store(ctx)
    table = Table(title="conversations")
    for col in ("id", "updated", "messages", "title"):
        table.add_column(col)
    for c in store.conversations(limit):
        table.add_row(str(c.id), time.strftime("%Y-%m-%d %H:%M", time.localtime(c.updated_at)), str(c.message_count),
                      escape(c.title))
    console.print(table)


@app.command("show")
def show(ctx: typer.Context, conversation_id: int) -> None:
    """One conversation with routes, citations and feedback."""
    store = _store(ctx)
    messages = store.messages(conversation_id)
    if not messages:
        fail(f"no conversation {conversation_id}")
    for m in messages:
        if m.role == "user":
            console.print(f"[bold]> {escape(m.content)}[/]")
            continue
        rating = {1: " 👍", -1: " 👎"}.get(m.feedback, "")
        console.print(f"[cyan][{m.kind}][/]{rating} {escape(m.content)}")
        cited = [c for c in m.citations if c.get("cited")]
        for c in cited:
            console.print(f"   [dim][{c['number']}] {escape(c['source'])} — {escape(c.get('heading') or '')}[/]")


@app.command("export")
def export(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="JSONL file (default: stdout).")] = None,
    rated_good: Annotated[bool, typer.Option("--rated-good", help="Only 👍 answers, each with its context.")] = False,
) -> None:
    """Conversations as JSONL chat records, the format 'supportdesk adapter prepare' reads."""
    store = _store(ctx)
    lines = [json.dumps(record, ensure_ascii=False) for record in store.export(rated_good_only=rated_good)]
    if output is None:
        for line in lines:
            print(line)
    else:
        output.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        console.print(f"wrote {len(lines)} records to {output}")
