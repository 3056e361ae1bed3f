"""The sources panel: for the selected answer, cited sources first (with their [n]), then the
other retrieved chunks; each with score, file, heading and a snippet. Enter opens the chunk."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Label, ListItem, ListView, Static


def voice_note(result: Any) -> str:
    """What the sources panel says about a brand-voice reply's check (empty when it passed)."""
    check = getattr(result, "voice_check", None) or {}
    if check.get("passed", True):
        return ""
    return "brand-voice draft replaced by an approved reply: " + "; ".join(check.get("problems", []))


class SourceItem(ListItem):
    def __init__(self, citation: dict[str, Any]) -> None:
        super().__init__(classes="source-item" + (" cited" if citation.get("cited") else ""))
        self.citation = citation

    def compose(self) -> ComposeResult:
        c = self.citation
        marker = f"[{c['number']}]" if c.get("number") else " · "
        where = c.get("source", "?") + (f" p.{c['page']}" if c.get("page") else "")
        head = Text.assemble((marker + " ", "bold"), (f"{float(c.get('score', 0)):.2f} ", "cyan"), where)
        if c.get("cited"):
            head.append("  cited", "green")
        yield Label(head, classes="source-head")
        if c.get("heading"):
            yield Label(Text(c["heading"], style="italic"), classes="source-heading")
        yield Label(Text(c.get("snippet", "")[:160]), classes="source-snippet")


class SourcesPanel(Vertical):
    class Open(Message):
        def __init__(self, citation: dict[str, Any]) -> None:
            super().__init__()
            self.citation = citation

    def compose(self) -> ComposeResult:
        yield Label("Sources", classes="panel-title")
        yield Static("", id="route-reason", classes="route-reason")
        yield ListView(id="source-list")

    def show(self, data: dict[str, Any] | None) -> None:
        data = data or {}
        reason = self.query_one("#route-reason", Static)
        note = data.get("reason") or ""
        if data.get("handoff_reason"):
            note = f"handed off: {data['handoff_reason']}"
        if data.get("decline_reason"):
            note = f"declined: {data['decline_reason']}"
        if data.get("voice_note"):
            note = f"{note}\n{data['voice_note']}" if note else data["voice_note"]
        if data.get("clarify_reason"):
            note = f"asked to clarify: {data['clarify_reason']}"
        elif data.get("answerability"):
            note = f"{note}\n{data['answerability']}" if note else data["answerability"]
        for removed in data.get("claims_removed") or []:
            note += f"\ndropped: {removed['sentence'][:80]} ({removed['reason']})"
        reason.update(Text(note))
        items = data.get("citations") or []
        shown = [c for c in items if c.get("number")]
        others = [c for c in items if not c.get("number")]
        ordered = sorted(shown, key=lambda c: (not c.get("cited"), c["number"])) + others
        listing = self.query_one(ListView)
        listing.clear()
        if not ordered:
            listing.append(ListItem(Label("no sources for this answer"), disabled=True))
        for citation in ordered:
            listing.append(SourceItem(citation))
        if ordered:
            self.call_after_refresh(setattr, listing, "index", 0)

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        if isinstance(event.item, SourceItem):
            self.post_message(self.Open(event.item.citation))
