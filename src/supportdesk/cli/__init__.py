"""The ``supportdesk`` command line: every feature of the app is reachable from here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from supportdesk.cli import adapter as adapter_cmd
from supportdesk.cli import answers as answers_cmd
from supportdesk.cli import ask as ask_cmd
from supportdesk.cli import config as config_cmd
from supportdesk.cli import eval_answers as eval_answers_cmd
from supportdesk.cli import evaluate as evaluate_cmd
from supportdesk.cli import gaps as gaps_cmd
from supportdesk.cli import history as history_cmd
from supportdesk.cli import kb as kb_cmd
from supportdesk.cli import models as models_cmd
from supportdesk.cli import serve as serve_cmd
from supportdesk.cli.context import AppContext
from supportdesk.cli.help import App

app = App(
    name="supportdesk",
    help="Hybrid customer-support bot: brand-voice model + grounded retrieval over your docs.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(kb_cmd.app, name="kb")
app.add_typer(models_cmd.app, name="models")
app.add_typer(history_cmd.app, name="history")
app.add_typer(adapter_cmd.app, name="adapter")
app.add_typer(answers_cmd.app, name="answers")
app.command("config")(config_cmd.show)
app.command("ask")(ask_cmd.ask)
app.command("eval")(evaluate_cmd.evaluate)
app.command("eval-public")(evaluate_cmd.evaluate_public)
app.command("eval-social")(evaluate_cmd.evaluate_social)
app.command("eval-answers")(eval_answers_cmd.eval_answers)
app.command("eval-approved")(answers_cmd.eval_approved)
app.add_typer(evaluate_cmd.router_app, name="router")
app.add_typer(serve_cmd.app, name="serve")
app.add_typer(gaps_cmd.app, name="gaps")
app.command("insights")(gaps_cmd.insights_cmd)
app.command("eval-gaps")(gaps_cmd.eval_gaps)

# Commands that run only on this machine's files (training, evaluation, model servers).
_LOCAL_ONLY = {"eval", "eval-public", "eval-answers", "eval-social", "eval-gaps", "eval-approved", "router",
               "models"}


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        import supportdesk

        try:
            number = version("supportdesk")
        except PackageNotFoundError:
            number = supportdesk.__version__
        print(f"supportdesk {number}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Runtime data folder (index, history). Env: SUPPORTDESK_DATA_DIR.")
    ] = None,
    kb_dir: Annotated[
        Path | None, typer.Option("--kb", help="Folder of documents to index. Env: SUPPORTDESK_KB_DIR.")
    ] = None,
    server: Annotated[
        str | None, typer.Option("--server", envvar="SUPPORTDESK_SERVER",
                                 help="A team server's URL ('supportdesk serve'): the TUI and commands use it.")
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", envvar="SUPPORTDESK_TOKEN", show_default=False,
                                 help="Your token for --server (prefer the SUPPORTDESK_TOKEN variable).")
    ] = None,
    _show_version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_version, help="Print the version and exit.")] = False,
) -> None:
    ctx.obj = AppContext(overrides={"data_dir": data_dir, "kb_dir": kb_dir}, server=server or None, token=token,
                         command=ctx.invoked_subcommand)
    if server and ctx.invoked_subcommand in _LOCAL_ONLY:
        ctx.obj.local_only(ctx.invoked_subcommand)
    if ctx.invoked_subcommand is None:
        from supportdesk.client import session_factory
        from supportdesk.tui.app import run

        run(ctx.obj.settings, session_factory(server, token))


def main() -> None:
    """Run the CLI. The last line of defence: a file or database problem that no command
    foresaw is still one line naming it, not a traceback (``SUPPORTDESK_DEBUG=1`` shows it)."""
    import os
    import sqlite3

    from supportdesk.history import HistoryError

    try:
        app()
    except (OSError, sqlite3.Error, HistoryError, UnicodeError) as exc:
        if os.environ.get("SUPPORTDESK_DEBUG"):
            raise
        from supportdesk.cli.context import fail

        where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        try:
            fail(f"{type(exc).__name__}{where}: {detail}")
        except typer.Exit as done:
            raise SystemExit(done.exit_code) from None
