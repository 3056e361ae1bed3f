"""``supportdesk serve``: one supportdesk for a whole support team, and its role tokens."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from supportdesk.cli.context import AppContext, console, err_console, fail
from supportdesk.cli.help import App

app = App(help="Run the team server (the TUI and CLI connect with --server URL), and manage its tokens.")
token_app = App(help="Role tokens: agent (ask), trainer (+ adapters, export), admin (+ KB reload, tokens).",
                no_args_is_help=True)
app.add_typer(token_app, name="token")


@app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535, help="Port (default 8765; 0: any).")] = None,
) -> None:
    """Serve the KB, the model, the router and the history to every agent's TUI and CLI."""
    if ctx.invoked_subcommand is not None:
        return
    appctx: AppContext = ctx.obj
    if appctx.server:
        fail("'serve' runs the server itself: drop --server / SUPPORTDESK_SERVER")
    settings = appctx.settings
    from supportdesk.server.core import CoreError
    from supportdesk.server.run import ServeSettingsError, check_tls
    from supportdesk.server.run import serve as run_server

    host = host or settings.serve.host
    try:
        tls = check_tls(settings)  # at once, before anything loads
    except ServeSettingsError as exc:
        fail(f"cannot serve: {exc}")
    if host not in ("127.0.0.1", "localhost", "::1") and not tls:
        err_console.print(f"[yellow]warning:[/] listening on {escape(host)} without TLS: tokens and answers cross "
                          "the network in clear (set serve.ssl_certfile and serve.ssl_keyfile)")
    try:
        run_server(settings, host, settings.serve.port if port is None else port,
                   say=lambda text: err_console.print(escape(text), highlight=False))
    except (CoreError, ServeSettingsError) as exc:
        fail(str(exc))
    except RuntimeError as exc:  # the index could not be built, say
        fail(f"cannot serve: {exc}")


def _tokens(appctx: AppContext):
    """The token store of the local data dir (the server's), or the server's API with --server."""
    from supportdesk.history import HistoryError, open_history
    from supportdesk.server.tokens import TokenStore

    try:
        return TokenStore(open_history(appctx.settings))
    except (HistoryError, OSError) as exc:
        fail(f"cannot open the token store: {exc}")


@token_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Who holds it (recorded with their questions).")],
    role: Annotated[str, typer.Option("--role", help="agent | trainer | admin")] = "agent",
    expires_days: Annotated[float | None, typer.Option("--expires-days", help="Expire after this many days.")] = None,
) -> None:
    """Print a new token once (only its hash is stored). Give it to its holder as SUPPORTDESK_TOKEN."""
    from supportdesk.server.tokens import TokenError, check_expires_days

    appctx: AppContext = ctx.obj
    try:
        check_expires_days(expires_days)  # before anything is sent: inf or nan is not even JSON
    except TokenError as exc:
        fail(str(exc))
    if appctx.server:
        token = appctx.through_server(lambda remote: remote.tokens.create(name, role, expires_days))
    else:
        try:
            token = _tokens(appctx).create(name, role, expires_days)
        except TokenError as exc:
            fail(str(exc))
    err_console.print(f"token for {escape(name)} ({escape(role)}); shown once, keep it secret:")
    print(token)


@token_app.command("list")
def list_tokens(ctx: typer.Context) -> None:
    """Active tokens: name, role, created, expires, last used (never the tokens themselves)."""
    appctx: AppContext = ctx.obj
    rows = appctx.through_server(lambda remote: remote.tokens.list()) if appctx.server else _tokens(appctx).list()
    table = Table(title="tokens")
    for col in ("name", "role", "created", "expires", "last used"):
        table.add_column(col)

    def when(t: object) -> str:
        if t is None:
            return "-"
        try:
            return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(t)))  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError, OSError):
            return "invalid"

    for r in rows:
        expires = "invalid (refused)" if r.get("invalid") else when(r["expires_at"])
        table.add_row(escape(str(r["name"])), str(r["role"]), when(r["created_at"]), expires, when(r["last_used_at"]))
    console.print(table)


@token_app.command("revoke")
def revoke(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The token's name.")]) -> None:
    """Revoke a token at once (its holder's next request gets 401)."""
    appctx: AppContext = ctx.obj
    if appctx.server:
        appctx.through_server(lambda remote: remote.tokens.revoke(name))
    elif not _tokens(appctx).revoke(name):
        fail(f"no active token named {name!r}")
    console.print(f"revoked {escape(name)}")
