"""What every CLI command shares: settings built once from flags, env, .env and TOML."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from supportdesk.sanitize import safe_text
from supportdesk.settings import Settings, SettingsFileError, data_dir_problem, load_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from supportdesk.client.remote import RemoteSession

T = TypeVar("T")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear line to stderr and exit: bad input never shows a traceback.

    Messages often quote file names and server replies: control characters are made visible,
    never sent to the terminal raw.
    """
    err_console.print(f"[bold red]error:[/] {escape(safe_text(message))}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@dataclass
class AppContext:
    overrides: dict[str, Any] = field(default_factory=dict)
    server: str | None = None
    """A team server's URL (``--server``, ``SUPPORTDESK_SERVER``): commands go through it."""
    token: str | None = None
    command: str | None = None
    """The sub-command being run (``config`` shows a data dir that is a file as a warning)."""

    @cached_property
    def remote(self) -> RemoteSession:
        """The team server's client (``--server``), a ``Session`` like the embedded one."""
        from supportdesk.client.remote import RemoteSession

        return RemoteSession(self.settings, self.server or "", self.token)

    def through_server(self, call: Callable[[RemoteSession], T]) -> T:
        """``call`` on the team server's client; a refusal or an unreachable server is one line."""
        from supportdesk.models.base import BackendError

        try:
            return call(self.remote)
        except BackendError as exc:
            fail(str(exc))

    def local_only(self, command: str) -> None:
        """Commands that work on this machine's files say so when pointed at a server."""
        if self.server:
            fail(f"'{command}' works on this machine's files and does not go through --server / SUPPORTDESK_SERVER: "
                 "run it on the server's machine (unset SUPPORTDESK_SERVER to run it here)")

    @cached_property
    def settings(self) -> Settings:
        try:
            settings = load_settings(**self.overrides)
        except SettingsFileError as exc:
            fail(f"cannot read settings: {exc}")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            fail(f"invalid settings: {problems}")
        except Exception as exc:  # noqa: BLE001 - a malformed TOML file, say: shown, never a traceback
            fail(f"cannot read settings: {exc}")
        for warning in settings.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(safe_text(warning))}", soft_wrap=True)
        problem = data_dir_problem(settings.data_dir)
        if problem and self.command != "config" and not self.server:  # through --server the data dir is unused
            fail(problem)
        if problem:
            err_console.print(f"[yellow]warning:[/] {escape(safe_text(problem))}", soft_wrap=True)
        return settings

    def knowledge_base(self):
        from supportdesk.kb import KnowledgeBase

        return KnowledgeBase(self.settings)

    def built_knowledge_base(self):
        """The KB with its index loaded, or one clear line saying how to get one."""
        from supportdesk.kb.store import IndexIntegrityError

        kb = self.knowledge_base()
        try:
            snapshot = kb.snapshot()
        except IndexIntegrityError as exc:
            fail(f"{exc}. Rebuild with 'supportdesk kb build --force'.")
        if snapshot is None:
            fail(f"no index yet in {kb.store.root}: run 'supportdesk kb build' first")
        if kb.load_warning:
            err_console.print(f"[yellow]warning:[/] {escape(kb.load_warning)}")
        return kb


@contextmanager
def history_store(ctx: typer.Context) -> Iterator[Any]:
    """The history, open for one command; a damaged file is one clear message, from opening or any read.
    With --server, the team server's (an agent sees their own conversations)."""
    from supportdesk.history import HistoryError, open_history

    appctx: AppContext = ctx.obj
    if appctx.server:
        from supportdesk.models.base import BackendError

        try:
            yield appctx.remote.history
        except BackendError as exc:
            fail(str(exc))
        return
    try:
        store = open_history(appctx.settings)
    except (HistoryError, OSError) as exc:
        fail(f"cannot open the history: {exc}")
    try:
        yield store
    except HistoryError as exc:
        fail(str(exc))
    finally:
        store.close()
