"""Approved answers in the TUI (issue 28): edit an answer's draft and propose it; review proposals."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option


class EditAnswerScreen(ModalScreen[str | None]):
    """The selected answer's draft in an editor; ctrl+s returns the edited text (a proposal), esc nothing."""

    CSS_PATH = "approved.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Propose", id="edit.propose", priority=True),
        Binding("escape", "cancel", "Close", id="edit.close"),
    ]

    def __init__(self, question: str, draft: str, title: str = "Propose an approved answer") -> None:
        super().__init__()
        self.question = question
        self.draft = draft
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="approved-dialog"):
            yield Label(Text(self.title_text, style="bold"))
            if self.question:
                yield Label(Text(f"question: {self.question}"), classes="approved-question")
            yield TextArea(self.draft, id="approved-editor", soft_wrap=True)
            yield Label(Text("ctrl+s proposes it for a trainer's review · esc closes"), classes="approved-hint")

    def on_mount(self) -> None:
        self.query_one("#approved-editor", TextArea).focus()

    def action_submit(self) -> None:
        text = self.query_one("#approved-editor", TextArea).text.strip()
        if not text:
            self.notify("the answer is empty", severity="warning")
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ReviewScreen(ModalScreen[None]):
    """Pending proposals (a trainer's): a accepts, e edits then accepts, r rejects; each is done at once."""

    CSS_PATH = "approved.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "accept", "Accept", id="review.accept"),
        Binding("e", "edit", "Edit + accept", id="review.edit"),
        Binding("r", "reject", "Reject", id="review.reject"),
        Binding("escape", "close", "Close", id="review.close"),
    ]

    def __init__(self, approved: Any) -> None:
        super().__init__()
        self.approved = approved
        self.pending: list[Any] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="approved-dialog"):
            yield Label(Text("Proposed answers waiting for review", style="bold"))
            yield OptionList(id="proposals")
            yield Static("", id="proposal-detail")
            yield Label(Text("a accept · e edit then accept · r reject · esc closes"), classes="approved-hint")

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exit_on_error=False, group="review")
    def load(self) -> None:
        try:
            pending = self.approved.proposals("pending")
        except Exception as exc:  # noqa: BLE001 - a refusal (an agent's token) or a history problem is shown
            self.app.call_from_thread(self.notify, str(exc), title="proposals", severity="error", timeout=10)
            return
        self.app.call_from_thread(self._show, pending)

    def _show(self, pending: list[Any]) -> None:
        self.pending = pending
        options = self.query_one("#proposals", OptionList)
        options.clear_options()
        options.add_options([Option(f"#{p.id} {p.proposed_by or '-'}: {p.question[:70]}", id=str(p.id)) for p in pending])
        if pending:
            options.highlighted = 0
            options.focus()
        self._detail()

    def _current(self) -> Any | None:
        index = self.query_one("#proposals", OptionList).highlighted
        return self.pending[index] if index is not None and 0 <= index < len(self.pending) else None

    @on(OptionList.OptionHighlighted)
    def _detail(self) -> None:
        p = self._current()
        detail = self.query_one("#proposal-detail", Static)
        if p is None:
            detail.update("no proposals wait for review")
            return
        detail.update(Text.assemble(("question: ", "bold"), p.question, "\n", ("draft: ", "dim"), (p.draft or "-", "dim"),
                                    "\n", ("proposed: ", "bold green"), p.proposed))

    def action_accept(self) -> None:
        p = self._current()
        if p is not None:
            self._review(p.id, "accept", None)

    def action_edit(self) -> None:
        p = self._current()
        if p is None:
            return

        def done(text: str | None) -> None:
            if text:
                self._review(p.id, "accept", text)

        self.app.push_screen(EditAnswerScreen(p.question, p.proposed, "Edit, then accept"), done)

    def action_reject(self) -> None:
        p = self._current()
        if p is not None:
            self._review(p.id, "reject", None)

    @work(thread=True, exit_on_error=False, group="review")
    def _review(self, proposal_id: int, verdict: str, text: str | None) -> None:
        try:
            if verdict == "accept":
                answer_id = self.approved.accept(proposal_id, text)
                note = f"proposal #{proposal_id} accepted: approved answer #{answer_id}"
            else:
                self.approved.reject(proposal_id)
                note = f"proposal #{proposal_id} rejected"
        except Exception as exc:  # noqa: BLE001 - shown, the screen stays
            self.app.call_from_thread(self.notify, str(exc), title="review", severity="error", timeout=10)
            return
        self.app.call_from_thread(self.notify, note)
        self.load()

    def action_close(self) -> None:
        self.dismiss(None)


def approved_notes(result: Any, keys: dict[str, tuple[str, str]]) -> list[str]:
    """The notes under an answer: the approved answer it is, or the one suggested instead (and its key)."""
    if result.approved_citation:
        return [result.approved_citation]
    if result.suggestions:
        best = result.suggestions[0]
        key = keys.get("send-suggestion", ("f3", ""))[0]
        return [f"suggested: approved answer #{best['answer_id']} ({best['score']:.2f}), {key} sends it"]
    return []
