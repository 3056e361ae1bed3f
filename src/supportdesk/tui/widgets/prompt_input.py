"""Multi-line input: Enter sends; the 'newline' binding (shift+enter, ctrl+j) adds a line."""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import TextArea


class PromptInput(TextArea):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("shift+enter,ctrl+j", "newline", "New line", id="prompt.newline", show=False)]

    def on_mount(self) -> None:
        self.cursor_blink = False  # a steady cursor: calmer, and stable in screenshots

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            text = self.text.strip()
            if text:
                self.post_message(self.Submitted(text))
                self.clear()
            return
        await super()._on_key(event)

    def action_newline(self) -> None:
        self.insert("\n")
