"""``supportdesk history``: browse stored conversations and export them as training data."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from supportdesk.cli.context import AppContext, console, fail, history_store
from supportdesk.cli.help import App
from supportdesk.history import HistoryError, HistoryStore, open_history
from supportdesk.sanitize import safe_name, safe_text

app = App(help="Browse and export the conversation history.", no_args_is_help=True)


@app.callback()
def _through_server(ctx: typer.Context) -> None:
    """With --server, only list, show, export go through the team server; the rest work on local files."""
    if ctx.obj.server and ctx.invoked_subcommand not in ('list', 'show', 'export'):
        ctx.obj.local_only(f"history {ctx.invoked_subcommand}")


def _path(ctx: typer.Context) -> Path:
    """The SQLite file (``move-aside``); a history on a database server has none."""
    appctx: AppContext = ctx.obj
    if appctx.settings.history.url.startswith(("postgresql://", "postgres://")):
        fail("the history is a database server (history.url), not a file: there is nothing to move aside")
    return Path(appctx.settings.history_location)


@app.command("list")
def list_conversations(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("-n", min=1)] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per conversation.")] = False,
    everyone: Annotated[bool, typer.Option(
        "--everyone", help="Through --server: the whole team's conversations (trainer, admin).")] = False,
) -> None:
    """Recent conversations (through --server: your own, or the team's with --everyone)."""
    with history_store(ctx) as store:
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
    with history_store(ctx) as store:
        messages = store.messages(conversation_id)
    if not messages:
        fail(f"no conversation {conversation_id}")
    for m in messages:
        if m.role == "user":
            console.print(f"[bold]> {escape(safe_text(m.content))}[/]")
            continue
        rating = {1: " 👍", -1: " 👎"}.get(m.feedback, "")
        # The route in brackets, escaped: '[cyan][grounded][/]' read '[grounded]' as a style and showed nothing.
        console.print(f"[cyan]\\[{escape(m.kind or 'no route')}][/]{rating} {escape(safe_text(m.content))}")
        if m.reason:
            console.print(f"   [dim]why: {escape(safe_text(m.reason))}[/]")
        cited = [c for c in m.citations if isinstance(c, dict) and c.get("cited")]
        for c in cited:
            console.print(f"   [dim][{c.get('number', '?')}] {escape(safe_name(str(c.get('source', '?'))))} — "
                          f"{escape(safe_name(str(c.get('heading') or '')))}[/]")


@app.command("export")
def export(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="JSONL file (default: stdout).")] = None,
    rated_good: Annotated[bool, typer.Option(
        "--rated-good", help="Training data: each 👍 reply (a hand-off too) with the conversation before it; "
                             "replies nobody rated 👍 are left out.")] = False,
) -> None:
    """Conversations as JSONL chat records, the format 'supportdesk adapter prepare' reads."""
    with history_store(ctx) as store:
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


@app.command("migrate")
def migrate_cmd(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="The target: postgresql://USER@HOST:PORT/DB (or sqlite:///PATH).")],
    as_json: Annotated[bool, typer.Option("--json", help="The report as one JSON object.")] = False,
) -> None:
    """Copy this history (history.url, or the SQLite file in the data dir) into another store and verify the
    counts. Run it again at any time: it copies only what is new (and rating changes), never twice."""
    from dataclasses import asdict

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from supportdesk.history.migrate import migrate
    from supportdesk.settings import redact_url

    appctx: AppContext = ctx.obj
    if not to.startswith(("postgresql://", "postgres://", "sqlite:///")):
        fail(f"--to {redact_url(to)!r}: give postgresql://USER@HOST:PORT/DATABASE or sqlite:///PATH")
    target_location = to.removeprefix("sqlite:///")
    settings = appctx.settings
    try:
        source = open_history(settings)
    except (HistoryError, OSError) as exc:
        fail(f"cannot open the history to copy: {exc}")
    try:
        target = HistoryStore(target_location, pool_size=2, connect_timeout_s=settings.history.connect_timeout_s)
    except (HistoryError, OSError) as exc:
        source.close()
        fail(f"cannot open the target: {exc}")
    try:
        with Progress(TextColumn("copying"), BarColumn(), MofNCompleteColumn(), console=console,
                      transient=True, disable=as_json) as bar:
            task = bar.add_task("copy", total=None)
            report = migrate(source, target, lambda done, total: bar.update(task, completed=done, total=total))
    except ValueError as exc:
        fail(str(exc))
    except HistoryError as exc:
        fail(f"the copy stopped (whole conversations only were written; run it again to finish): {exc}")
    finally:
        source.close()
        target.close()
    if as_json:
        print(json.dumps({**asdict(report), "verified": report.verified}))
    else:
        table = Table(title=f"{escape(report.source)} → {escape(report.target)}")
        for col in ("", "conversations", "messages", "citations", "ratings"):
            table.add_column(col)
        for label, c in (("copied now", report.copied), ("in the source", report.in_source),
                         ("from it in the target", report.in_target)):
            table.add_row(label, str(c.conversations), str(c.messages), str(c.citations), str(c.ratings))
        console.print(table)
        console.print(f"ratings updated: {report.ratings_updated}; tokens copied: {report.tokens_copied}; approved "
                      f"answers copied: {report.approved_copied}; proposals copied: {report.proposals_copied}")
    if not report.verified:
        fail("the counts differ (see above): the target does not hold everything from the source")
    if not as_json:
        console.print("verified: every conversation, message, citation and rating is in the target")
