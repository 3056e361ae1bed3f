"""The conversation: one widget per message; answers stream in through ``MarkdownStream``."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Label, Markdown, Static

BADGES = {
    "voice": ("brand voice", "badge-voice"),
    "grounded": ("grounded", "badge-grounded"),
    "handoff": ("handed off", "badge-handoff"),
    "clarify": ("clarify", "badge-clarify"),
    "decline": ("declined", "badge-decline"),
    "error": ("error", "badge-error"),
}


class MessageView(Vertical, can_focus=True):
    """A user question or an assistant answer. Answers carry their route, sources and timings."""

    class Selected(Message):
        def __init__(self, view: MessageView) -> None:
            super().__init__()
            self.view = view

    feedback: reactive[int] = reactive(0)

    def __init__(self, role: str, text: str = "", *, data: dict[str, Any] | None = None, speaker: str = "Assistant",
                 **kwargs: Any) -> None:
        super().__init__(classes=f"message {role}", **kwargs)
        self.role = role
        self.speaker = speaker
        """The brand profile's assistant name (never a person's)."""
        self.text = text
        self.data: dict[str, Any] = data or {}
        self.message_id: int | None = self.data.get("message_id")
        self.stream: Any = None
        self._note = ""
        self._ready = False

    def compose(self) -> ComposeResult:
        with Horizontal(classes="message-header"):
            yield Label("You" if self.role == "user" else self.speaker, classes="who")
            yield Label("", id="badge", classes="badge")
            yield Label("", id="feedback", classes="feedback")
        if self.role == "user":
            yield Static(Text(self.text), classes="body")
        else:
            yield Markdown(self.text, classes="body")
        yield Label("", id="note", classes="note")

    def on_mount(self) -> None:
        self._ready = True
        if self.role == "assistant":
            self.set_kind(self.data.get("kind"), self.data.get("reason"))
            self.feedback = int(self.data.get("feedback") or 0)
        self.set_note(self._note)

    def set_kind(self, kind: str | None, reason: str | None = None) -> None:
        self.data["kind"] = kind
        if not self._ready:
            return
        badge = self.query_one("#badge", Label)
        if kind in BADGES:
            label, css = BADGES[kind]
            badge.update(f" {label} ")
            badge.set_classes(f"badge {css}")
            badge.tooltip = reason or label
        else:
            badge.update("")

    def set_note(self, note: str) -> None:
        self._note = note
        if self._ready:
            label = self.query_one("#note", Label)
            label.update(Text(note))
            label.display = bool(note)

    def watch_feedback(self, value: int) -> None:
        if self.role == "assistant" and self._ready:
            self.query_one("#feedback", Label).update({1: "👍", -1: "👎"}.get(value, ""))

    @property
    def markdown(self) -> Markdown:
        return self.query_one(Markdown)

    def on_focus(self) -> None:
        self.post_message(self.Selected(self))

    def on_click(self) -> None:
        self.focus()


class ConversationView(VerticalScroll):
    """Scrolls with the newest message unless the agent scrolled up to read."""

    def add(self, view: MessageView) -> MessageView:
        self.mount(view)
        self.call_after_refresh(self.scroll_end, animate=False)
        return view

    def answers(self) -> list[MessageView]:
        return [v for v in self.query(MessageView) if v.role == "assistant"]
