"""``supportdesk history``: browse stored conversations and export them as training data."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from supportdesk.cli.context import AppContext, console, fail
from supportdesk.history import HistoryError, HistoryStore
from supportdesk.sanitize import safe_name, safe_text

app = typer.Typer(help="Browse and export the conversation history.", no_args_is_help=True)


@app.callback()
def _through_server(ctx: typer.Context) -> None:
    """With --server, only list, show, export go through the team server; the rest work on local files."""
    if ctx.obj.server and ctx.invoked_subcommand not in ('list', 'show', 'export'):
        ctx.obj.local_only(f"history {ctx.invoked_subcommand}")


def _path(ctx: typer.Context) -> Path:
    appctx: AppContext = ctx.obj
    return appctx.settings.data_dir / "history.sqlite3"


@contextmanager
def _store(ctx: typer.Context) -> Iterator[HistoryStore]:
    """The history, open for one command; a damaged file is one clear message, from opening or any read.
    With --server, the team server's (an agent sees their own conversations)."""
    appctx: AppContext = ctx.obj
    if appctx.server:
        from supportdesk.models.base import BackendError

        try:
            yield appctx.remote.history
        except BackendError as exc:
            fail(str(exc))
        return
    try:
        store = HistoryStore(_path(ctx))
    except (HistoryError, OSError) as exc:
        fail(f"cannot open the history: {exc}")
    try:
        yield store
    except HistoryError as exc:
        fail(str(exc))
    finally:
        store.close()


@app.command("list")
def list_conversations(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("-n", min=1)] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per conversation.")] = False,
    everyone: Annotated[bool, typer.Option(
        "--everyone", help="Through --server: the whole team's conversations (trainer, admin).")] = False,
) -> None:
    """Recent conversations (through --server: your own, or the team's with --everyone)."""
    with _store(ctx) as store:
        found = store.conversations(limit, everyone=True) if everyone and ctx.obj.server else store.conversations(limit)
    if as_json:
        from dataclasses import asdict

        for c in found:
            print(json.dumps(asdict(c), ensure_ascii=False))
        return
    table = Table(title="conversations")
    owners = any(c.owner for c in found)
    for col in ("id", "updated", "messages", *(["agent"] if owners else []), "title"):
        table.add_column(col)
    for c in found:
        table.add_row(str(c.id), time.strftime("%Y-%m-%d %H:%M", time.localtime(c.updated_at)), str(c.message_count),
                      *([escape(safe_name(c.owner or "-"))] if owners else []), escape(safe_name(c.title)))
    console.print(table)


@app.command("show")
def show(ctx: typer.Context, conversation_id: int) -> None:
    """One conversation with routes, citations and feedback."""
    with _store(ctx) as store:
        messages = store.messages(conversation_id)
    if not messages:
        fail(f"no conversation {conversation_id}")
    for m in messages:
        if m.role == "user":
            console.print(f"[bold]> {escape(safe_text(m.content))}[/]")
            continue
        rating = {1: " 👍", -1: " 👎"}.get(m.feedback, "")
        console.print(f"[cyan][{escape(str(m.kind))}][/]{rating} {escape(safe_text(m.content))}")
        cited = [c for c in m.citations if isinstance(c, dict) and c.get("cited")]
        for c in cited:
            console.print(f"   [dim][{c.get('number', '?')}] {escape(safe_name(str(c.get('source', '?'))))} — "
                          f"{escape(safe_name(str(c.get('heading') or '')))}[/]")


@app.command("export")
def export(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="JSONL file (default: stdout).")] = None,
    rated_good: Annotated[bool, typer.Option("--rated-good", help="Only 👍 answers, each with its context.")] = False,
) -> None:
    """Conversations as JSONL chat records, the format 'supportdesk adapter prepare' reads."""
    with _store(ctx) as store:
        lines = [json.dumps(record, ensure_ascii=False) for record in store.export(rated_good_only=rated_good)]
    if output is None:
        for line in lines:
            print(line)
    else:
        output.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        console.print(f"wrote {len(lines)} records to {output}")


@app.command("move-aside")
def move_aside_cmd(ctx: typer.Context) -> None:
    """Rename a damaged history file out of the way (nothing is deleted); the next start makes a new one."""
    from supportdesk.history import move_aside

    ctx.obj.local_only("history move-aside")
    path = _path(ctx)
    if not path.exists():
        fail(f"no history file at {path}")
    try:
        moved = move_aside(path)
    except OSError as exc:
        fail(f"cannot move {path}: {exc.strerror or exc}")
    console.print(f"moved {path} to {moved}; a new history starts with the next conversation")
