"""Modal screens: help with the keys, a full chunk, a picker, the history browser."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option


class _Modal(ModalScreen[Any]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Close", id="modal.close")]

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class HelpScreen(_Modal):
    """Every binding of the app with its current key (after any remapping)."""

    def __init__(self, bindings: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = bindings

    def compose(self) -> ComposeResult:
        table = Table(title="supportdesk keys", expand=True)
        table.add_column("key", style="bold cyan")
        table.add_column("action")
        table.add_column("binding id", style="dim")
        for key, description, binding_id in self.rows:
            table.add_row(key, description, binding_id)
        table.add_row("enter", "send the message", "")
        table.add_row("shift+enter / ctrl+j", "new line in the message", "prompt.newline")
        table.add_row("click · tab, then ↑/↓", "select a message", "")
        table.add_row("typing on a message", "goes to the prompt", "")
        with Vertical(classes="dialog"):
            yield Static(table)
            yield Label(Text("esc closes · remap a key by its binding id: [tui] keymap in settings"), classes="hint")


class ChunkScreen(_Modal):
    def __init__(self, citation: dict[str, Any]) -> None:
        super().__init__()
        self.citation = citation

    def compose(self) -> ComposeResult:
        c = self.citation
        where = c.get("source", "?") + (f", page {c['page']}" if c.get("page") else "")
        with Vertical(classes="dialog"):
            yield Label(Text(f"{where}  ·  score {float(c.get('score', 0)):.3f}", style="bold"))
            if c.get("heading"):
                yield Label(Text(c["heading"], style="italic"))
            with VerticalScroll(classes="chunk-text"):
                yield Static(Text(c.get("text") or c.get("snippet", "")))
            yield Label("esc closes", classes="hint")


class PickerScreen(_Modal):
    def __init__(self, title: str, options: list[tuple[str, str]], current: str | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.options = options
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="panel-title")
            yield OptionList(*[Option(("● " if value == self.current else "  ") + label, id=value)
                               for value, label in self.options])
            yield Label("enter chooses · esc cancels", classes="hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class HistoryScreen(_Modal):
    def __init__(self, conversations: list[Any]) -> None:
        super().__init__()
        self.conversations = conversations

    def compose(self) -> ComposeResult:
        options = [
            Option(f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(c.updated_at))}  "
                   f"{(c.title or '(empty)')[:50]}  ({c.message_count})", id=str(c.id))
            for c in self.conversations
        ]
        with Vertical(classes="dialog"):
            yield Label("Conversations", classes="panel-title")
            yield OptionList(*options) if options else Label("no conversations yet")
            yield Label("enter opens · esc cancels", classes="hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id or 0))


class ConfirmScreen(_Modal):
    """A yes/no question about something that changes files; dismisses with True or False/None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, title: str, body: str, yes: str = "yes", no: str = "no") -> None:
        super().__init__()
        self.title_text, self.body, self.yes, self.no = title, body, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="panel-title")
            yield Static(Text(self.body))
            yield OptionList(Option(f"y  {self.yes}", id="yes"), Option(f"n  {self.no}", id="no"))
            yield Label("y / n · enter chooses · esc: no", classes="hint")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id == "yes")
