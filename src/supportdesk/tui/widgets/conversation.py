"""The conversation: one widget per message; answers stream in through ``MarkdownStream``."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
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
    "approved": ("approved", "badge-approved"),
    "error": ("error", "badge-error"),
}


class MessageView(Vertical, can_focus=True):
    """A user question or an assistant answer. Answers carry their route, sources and timings."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "leave(1)", "Next", show=False),
        Binding("shift+tab", "leave(-1)", "Previous", show=False),
    ]

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

    def action_leave(self, direction: int) -> None:
        if isinstance(self.parent, ConversationView):
            self.parent.leave(direction)

    def on_click(self) -> None:
        self.focus()


class ConversationView(VerticalScroll):
    """Scrolls with the newest message unless the agent scrolled up to read: an answer that
    grows or is finalised stays in sight, never half under the prompt.

    The conversation is one Tab stop, not one per message: from it (or from a clicked message)
    up/down walk the messages and the side panels follow; Tab leaves it. A printable key typed
    while it has focus goes to the prompt (``Typed``), so nothing the agent types is lost.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "walk(-1)", "Previous message", show=False),
        Binding("down", "walk(1)", "Next message", show=False),
    ]

    class Typed(Message):
        """A printable key pressed in the conversation: it belongs in the prompt."""

        def __init__(self, character: str) -> None:
            super().__init__()
            self.character = character

    following = True
    """At the end of the conversation (not scrolled up to read): growth is followed."""

    def allow_focus_children(self) -> bool:
        return False  # messages are reached by click and up/down, not by Tab

    def add(self, view: MessageView) -> MessageView:
        self.mount(view)
        self.following = True  # a new message: back to the end
        self.follow()
        return view

    def follow(self) -> None:
        """Back to the end once the layout has caught up, unless the agent scrolled up to read."""
        if self.following:
            self.call_after_refresh(self.scroll_end, animate=False)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.following = new_value >= self.max_scroll_y - 1

    def on_resize(self) -> None:
        self.follow()  # the prompt grew or the terminal shrank: the end stays in sight

    def answers(self) -> list[MessageView]:
        return [v for v in self.query(MessageView) if v.role == "assistant"]

    def action_walk(self, step: int) -> None:
        views = list(self.query(MessageView))
        if not views:
            return
        focused = self.screen.focused
        if isinstance(focused, MessageView) and focused in views:
            index = max(0, min(len(views) - 1, views.index(focused) + step))
        else:
            selected = [v for v in views if v.has_class("selected")]
            index = views.index(selected[0]) if selected else len(views) - 1
        views[index].focus()

    def on_key(self, event: events.Key) -> None:
        if event.is_printable and event.character:
            event.stop()
            event.prevent_default()
            self.post_message(self.Typed(event.character))

    def leave(self, direction: int) -> None:
        """Tab from a message: on to the widget after (or before) the conversation."""
        self.screen.set_focus(self, scroll_visible=False)  # at once: focus() would wait for the next tick
        if direction > 0:
            self.screen.focus_next()
        else:
            self.screen.focus_previous()
