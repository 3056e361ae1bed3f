"""supportdesk's terminal app: a thin Textual shell over a ``Session`` (``supportdesk.session_protocol``):
the embedded ``SupportSession`` or a team server's client, told apart only by capability properties.

Long work (loading models, answering, reloading the KB, switching the model) runs in
``@work(thread=True)`` workers that post typed messages back; the event loop only renders.
Every failure becomes a notification and a usable screen, never a traceback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Footer, Header, Static

from supportdesk.history import HistoryError
from supportdesk.sanitize import clean_question, strip_control
from supportdesk.session_protocol import AnswerStream, Session
from supportdesk.settings import Settings
from supportdesk.tui.messages import (
    AnswerChunk,
    AnswerDone,
    AnswerFailed,
    AnswerWaiting,
    ModelSwitched,
    ReloadDone,
    ReloadFailed,
    ReloadProgress,
    SessionFailed,
    SessionProgress,
    SessionReady,
    StatusChanged,
)
from supportdesk.tui.screens.approved import EditAnswerScreen, ReviewScreen, approved_notes
from supportdesk.tui.screens.modals import ChunkScreen, ConfirmScreen, HelpScreen, HistoryScreen, PickerScreen
from supportdesk.tui.widgets.conversation import ConversationView, MessageView
from supportdesk.tui.widgets.latency import LatencyMeter
from supportdesk.tui.widgets.prompt_input import PromptInput
from supportdesk.tui.widgets.sources import SourcesPanel, voice_note
from supportdesk.wire import citations_to_json

COMMANDS: list[tuple[str, str, str]] = [
    ("New conversation", "new_conversation", "Start a fresh conversation"),
    ("Reload knowledge base", "reload_kb", "Re-index changed documents; chat keeps working"),
    ("Switch adapter", "switch_adapter", "Choose the brand-voice LoRA adapter"),
    ("Switch backend", "switch_backend", "Embedded llama.cpp or Ollama"),
    ("Copy answer", "copy_answer", "Copy the selected answer to the clipboard"),
    ("Good answer 👍", "feedback_up", "Rate the selected answer"),
    ("Bad answer 👎", "feedback_down", "Rate the selected answer"),
    ("Open conversation…", "open_history", "Browse and reopen past conversations"),
    ("Edit and propose answer", "edit_answer", "Rewrite the selected answer and propose it as an approved answer"),
    ("Send suggested approved answer", "send_suggestion", "Send the approved answer suggested for the selected answer"),
    ("Review proposed answers", "review_proposals", "Accept, edit or reject agents' proposals (trainers)"),
    ("Insights", "insights", "Per day: routes, hand-offs, ratings, latency; top knowledge gaps"),
    ("Help: keys", "help", "Show every key"),
]


class IndexNotReady(Exception):
    """A question asked while the first index was built, which then failed: not answered, and why."""


class _Ticket:
    """One question on its way to an answer. Cancelling it is instant for the screen; the
    answer's own cancel reaches the model as soon as it has one."""

    def __init__(self, widget_id: str) -> None:
        self.widget_id = widget_id
        self.cancelled = threading.Event()
        self.answer: AnswerStream | None = None

    def cancel(self) -> None:
        self.cancelled.set()
        answer = self.answer
        if answer is not None:
            answer.cancel()


MAX_BUILD_RESUMES = 3
"""How often one app resumes a background build that stopped unfinished (a crashing build is not retried forever)."""


class SupportCommands(Provider):
    """The command palette: the app's commands first, then Textual's own (theme, keys, quit…).

    One provider for both, because the palette lists what several providers discover in the
    order they happen to answer; a tie in a search goes to the app's command too.
    """

    SYSTEM_RANK = 0.9

    async def discover(self) -> Hits:
        for name, action, help_text in COMMANDS:
            yield DiscoveryHit(name, self._runner(action), help=help_text)
        for name, help_text, callback, discover in sorted(self.app.get_system_commands(self.screen),
                                                         key=lambda command: command[0]):
            if discover:
                yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, action, help_text in COMMANDS:
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), self._runner(action), help=help_text)
        for name, help_text, callback, *_ in self.app.get_system_commands(self.screen):
            score = matcher.match(name)
            if score > 0:
                yield Hit(score * self.SYSTEM_RANK, matcher.highlight(name), callback, help=help_text)

    def _runner(self, action: str) -> Callable[[], Any]:
        async def run() -> None:
            await self.app.run_action(action)

        return run


class SupportDeskApp(App[None]):
    CSS_PATH: ClassVar[list[str]] = ["app.tcss", "approved.tcss"]
    TITLE = "supportdesk"
    COMMANDS: ClassVar[set[Any]] = {SupportCommands}  # Textual's built-ins come through it, after the app's
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel_answer", "Cancel", id="cancel-answer", priority=True),
        Binding("f1", "help", "Help", id="help"),
        Binding("ctrl+n", "new_conversation", "New", id="new-conversation"),
        Binding("ctrl+r", "reload_kb", "Reload KB", id="reload-kb"),
        Binding("ctrl+l", "switch_adapter", "Adapter", id="switch-adapter"),
        Binding("ctrl+b", "switch_backend", "Backend", id="switch-backend"),
        Binding("ctrl+o", "open_history", "History", id="open-history"),
        Binding("ctrl+g", "insights", "Insights", id="insights", show=False),
        Binding("ctrl+y", "copy_answer", "Copy", id="copy-answer", show=False),
        Binding("ctrl+t", "feedback_up", "Rate good 👍", id="feedback-up", show=False),
        Binding("ctrl+x", "feedback_down", "Rate bad 👎", id="feedback-down", show=False),
        Binding("f2", "edit_answer", "Edit + propose", id="edit-answer", show=False),
        Binding("f3", "send_suggestion", "Send suggestion", id="send-suggestion", show=False),
        Binding("f4", "review_proposals", "Review", id="review-proposals", show=False),
        Binding("ctrl+q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, settings: Settings, session_factory: Callable[[Settings], Session] | None = None) -> None:
        super().__init__()
        self.settings = settings
        self._session_factory = session_factory
        self.session: Session | None = None
        """The session once it has started (questions go to it); None until then."""
        self._new_session: Session | None = None
        self._shown_at_start = False
        self._seen: tuple[Any, ...] | None = None  # (generation, adapter, model) last shown
        self._ticket: _Ticket | None = None  # the question being answered, as the screen sees it
        self._answer_lock = threading.Lock()  # one answer at a time, in order (held by its worker thread)
        self._dropped: set[str] = set()  # answers cancelled on screen whose workers may still be ending
        self._streaming: MessageView | None = None
        self._selected: MessageView | None = None
        self._status_note = "starting…"
        self._start_error: str | None = None
        self._builder_pid: int | None = None  # the background adapter build this app follows
        self._build_owner = False  # this app started it (only its parent pauses it on quitting)
        self._build_resumes = 0
        self._build_line = ""
        self._counter = 0
        if settings.tui.keymap:
            self.set_keymap(dict(settings.tui.keymap))

    # -- layout ------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="main"):
            with Vertical(id="chat-column"):
                yield ConversationView(id="conversation")
                yield PromptInput(id="prompt", soft_wrap=True, show_line_numbers=False, compact=True)
            with Vertical(id="side"):
                yield SourcesPanel(id="sources")
                yield LatencyMeter(id="latency")
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(PromptInput).focus()
        self.refresh_status()
        self.set_interval(1.0, self.refresh_status)
        for warning in self.settings.warnings:
            self.notify(strip_control(warning), title="settings", severity="warning", timeout=15)
        self._shown_at_start = False
        try:  # shown at once, before the model loads (an embedded history is a local file; a server's waits)
            preview = self._make_session().preview()
            if preview:
                self.show_conversation(preview)
                self._shown_at_start = True
        except Exception:  # noqa: BLE001, S110 - a broken history file must not stop the app; the session says why
            pass
        self.start_session()

    def _make_session(self) -> Session:
        """The session object (cheap: nothing loads until ``start``), made once. Its history can be
        read before it has started (the preview, the history browser, a rating)."""
        if self._new_session is None:
            if self._session_factory is not None:
                self._new_session = self._session_factory(self.settings)
            else:
                from supportdesk.session import SupportSession

                self._new_session = SupportSession(self.settings)
        return self._new_session

    def on_unmount(self) -> None:
        if self._ticket is not None:  # a question still waiting (for the first index, say) is given up
            self._ticket.cancel()
        if self._builder_pid is not None and self._build_owner:
            from supportdesk.training.background import pause_build

            # Resumes at the next start, or at once in another app still open on this data dir.
            pause_build(self.settings.data_dir, self._builder_pid, wait_s=5.0)
        if self.session is not None:
            self.session.close()  # flushes history writes that waited for a lock (or saves them aside)

    # -- start-up worker ---------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="session", exit_on_error=False)
    def start_session(self) -> None:
        try:
            session = self._make_session()
            session.on_status_change = lambda: self.post_message(StatusChanged())
            session.start(lambda text: self.post_message(SessionProgress(text)), index_in_background=True)
            messages = session.resume_latest()
            self.session = session
            self.post_message(SessionReady(messages))
        except Exception as exc:  # noqa: BLE001 - shown, not thrown
            self.post_message(SessionFailed(f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)))

    def on_session_progress(self, message: SessionProgress) -> None:
        self._status_note = message.text
        self.refresh_status()
        error = self.session.index_error if self.session is not None else None
        if message.text == "index build failed" and error:
            self.notify(error, title="knowledge base not indexed", severity="error", timeout=30)

    def on_session_ready(self, message: SessionReady) -> None:
        self._status_note = "ready"
        self.refresh_status()
        if message.messages and not self._shown_at_start and self._streaming is None:
            self.show_conversation(message.messages)
        self.start_sample_adapter()
        problem = self.session.history_problem if self.session is not None else None
        if problem and self.session is not None:
            self.notify(strip_control(problem), title="history not saved", severity="warning", timeout=30)
            if not self.session.can_move_history:
                return  # a database server: nothing here to move aside; the notice says what happened
            self.push_screen(
                ConfirmScreen("The conversation history cannot be read",
                              f"{strip_control(problem)}\n\nMove the broken file aside (it is renamed, not deleted) "
                              "and start a new history? This session's messages are copied into it.",
                              yes="move it aside and start a new history", no="keep chatting without saving"),
                self._history_choice,
            )

    def _history_choice(self, move: bool | None) -> None:
        if not move or self.session is None:
            return
        try:
            moved = self.session.move_history_aside()
        except Exception as exc:  # noqa: BLE001 - shown, not thrown
            self.notify(f"could not move the history aside: {exc}", severity="error", timeout=15)
            return
        self.notify(f"broken history moved to {moved}; new history started", timeout=10)

    def on_status_changed(self, _: StatusChanged) -> None:
        self.refresh_status()

    def on_session_failed(self, message: SessionFailed) -> None:
        self._status_note = "not ready"
        self._start_error = message.error
        self.refresh_status()
        self.notify(f"could not start: {message.error}", title="start-up failed", severity="error", timeout=30)

    # -- the sample adapter, built in the background on the first run -----------------------
    def _builds_here(self) -> bool:
        """An embedded session builds (and follows) the sample adapter; a team server's client never does."""
        tui = self.settings.tui
        return (tui.build_sample_adapter and self.settings.model.backend == "embedded"
                and self._new_session is not None and self._new_session.can_train)

    def start_sample_adapter(self) -> None:
        """No adapter yet: start the background build (chat goes on with the bare base model), or
        follow the one another app on this data dir runs."""
        from supportdesk.models import list_adapters
        from supportdesk.training.background import read_status, running_builder

        if not self._builds_here():
            return
        running = running_builder(self.settings.data_dir)
        if running is not None:
            self._follow(running)
            self.notify("another supportdesk on this data dir is building the brand-voice adapter: its progress "
                        "shows here", title="first run", timeout=8)
            return
        status = read_status(self.settings.data_dir)
        if list_adapters(self.settings.adapters_dir) and not (status and status.state in ("paused", "evaluating")):
            return
        from supportdesk.brand import load_brand

        brand = load_brand(self.settings)
        if brand.transcripts is None or not brand.transcripts.is_file():  # nothing of this brand's to learn from
            return
        if self._start_build():
            self.notify("building the brand-voice adapter in the background; answering with the base model "
                        "meanwhile", title="first run", timeout=8)

    def _start_build(self) -> bool:
        """Start (or join) the builder; runs on the app's main thread, which the builder's tie follows."""
        from supportdesk.training.background import start_sample_build

        try:
            pid = start_sample_build(self.settings.data_dir, threads=self.settings.tui.background_threads,
                                     kb_dir=self.settings.kb_dir)
        except OSError as exc:
            self.notify(f"could not start the sample adapter build: {exc}", severity="warning", timeout=10)
            return False
        if pid is None:
            return False
        self._follow(pid)
        return True

    def _follow(self, pid: int) -> None:
        from supportdesk.training.background import is_child

        self._builder_pid = pid
        self._build_owner = is_child(pid)

    def _watch_build(self) -> None:
        """Follow the background build; switch its adapter in once it has passed evaluation. A
        build that stops unfinished while this app is open (the app running it quit) is resumed here."""
        if self._builder_pid is None:
            self._build_line = ""
            return
        from supportdesk.training.background import ACTIVE_STATES, pid_alive, read_status

        status = read_status(self.settings.data_dir)
        if status is None:
            return
        if status.pid != self._builder_pid and status.running:  # another app resumed it meanwhile
            self._follow(status.pid)  # type: ignore[arg-type]
        self._build_line = status.line()
        if status.state == "done" or not pid_alive(self._builder_pid):
            self._builder_pid = None
            if status.state == "done" and self.session is not None:
                self.notify(f"adapter {status.name} passed its evaluation ({status.message}); switching it in",
                            title="brand voice ready", timeout=10)
                from supportdesk.models import read_active

                active = read_active(self.settings.data_dir)
                if active:
                    self.switch_worker(None, active)
            elif status.state in ("failed", "rejected"):
                self.notify(status.line(), title="sample adapter", severity="warning", timeout=15)
            elif status.state == "paused" or status.state in ACTIVE_STATES:
                self._resume_build(status)
            self._build_line = "" if status.state == "done" else self._build_line

    def _resume_build(self, status: Any) -> None:
        if self._build_resumes >= MAX_BUILD_RESUMES:
            self._build_line = f"adapter {status.name}: stopped at step {status.step}/{status.total} (resumes next start)"
            return
        self._build_resumes += 1
        if self._start_build():
            self._build_line = f"building adapter {status.name}: resuming here from step {status.step}…"
            self.notify(f"the adapter build stopped at step {status.step}/{status.total} (the app running it quit); "
                        "it goes on here from its checkpoint", title="sample adapter", timeout=8)

    def refresh_status(self) -> None:
        self._watch_build()
        try:
            status_widget = self.query_one("#status", Static)
        except NoMatches:  # a timer or a worker message arriving while the app shuts down
            return
        if self.session is None:
            status_widget.update(Text(f" {self._status_note}", style="italic"))
            return
        s = self.session.status()
        when = time.strftime("%H:%M", time.localtime(s.reloaded_at)) if s.reloaded_at else "never"
        if self.session.indexing:  # the first index, behind the chat
            note = self.session.index_note()
        else:
            note = "reloading KB…" if s.reloading else self._status_note
        self._announce_changes(s)
        status_widget.update(Text.assemble(
            (f" {s.backend}", "bold"), f" · {s.model}", " · adapter ", (s.adapter or "none", "bold"),
            f" · KB {s.chunks} chunks, loaded {when}", (f" · {note}" if note and note != "ready" else ""),
            (f" · {s.queued} waiting for the model" if s.queued else ""),
            (f" · {self._build_line}" if self._build_line else "", "italic"),
            (f" · {s.connection}" if s.connection else "", "bold red"),
        ))

    def _speaker(self) -> str:
        """The brand profile's assistant name, shown above each answer."""
        session = self.session if self.session is not None else self._new_session  # the preview comes first
        try:
            return session.status().assistant if session is not None else "Assistant"
        except Exception:  # noqa: BLE001 - a label is never worth a failed message (a server not reached yet)
            return "Assistant"

    def _announce_changes(self, s: Any) -> None:
        """A new KB generation or adapter (this app's doing, or, on a team server, anyone's) is told."""
        seen = (s.generation, s.adapter, s.model)
        before, self._seen = self._seen, seen
        if before is None or before == seen:
            return
        if s.generation != before[0] and before[0] is not None and s.generation is not None:
            by = self.session.reloaded_by if self.session is not None else None  # a team server names who reloaded
            self.notify(f"knowledge base now at generation {s.generation} ({s.chunks} chunks)"
                        + (f", reloaded by {by}" if by else ""), title="KB updated")
        if (s.adapter, s.model) != before[1:]:
            self.notify(f"answers now come from {s.model}, adapter {s.adapter or 'none'}", title="model changed")

    # -- asking ----------------------------------------------------------------------------
    @on(PromptInput.Submitted)
    def send(self, event: PromptInput.Submitted) -> None:
        text = clean_question(event.text)  # zero-width and other format characters alone are empty
        if not text:
            return
        if self.session is None:
            if self._start_error:
                self.notify(f"not sent: supportdesk could not start ({self._start_error})", severity="error", timeout=15)
            else:
                self.notify("still starting up: your message was not sent", severity="warning")
            return
        if self._ticket is not None:
            self.notify("an answer is still being written (Esc cancels it)", severity="warning")
            return
        conversation = self.query_one(ConversationView)
        conversation.add(MessageView("user", text))
        self._counter += 1
        view = conversation.add(MessageView("assistant", "", id=f"answer-{self._counter}", speaker=self._speaker()))
        view.set_note(self._index_wait_note() if self.session.indexing else "thinking…")
        self._streaming = view
        view.stream = None
        self._ticket = _Ticket(view.id or "")
        self.answer_worker(text, self._ticket)

    def _index_wait_note(self) -> str:
        assert self.session is not None
        return f"{self.session.index_note()} · your question is answered when the index is in (Esc cancels)"

    @work(thread=True, group="answer", exit_on_error=False)
    def answer_worker(self, text: str, ticket: _Ticket) -> None:
        """One answer. A cancelled one is let go by the UI at once (Esc); this thread ends on its own
        (a model busy before its first token cannot be interrupted) and still stores what it wrote.
        The lock keeps answers in order: the next question waits for it, saying so."""
        from supportdesk.models import BackendError
        from supportdesk.training.background import held

        widget_id = ticket.widget_id
        session = self.session
        assert session is not None
        if not self._answer_lock.acquire(blocking=False):
            self.post_message(AnswerWaiting(widget_id, 0, "waiting for the cancelled answer to stop…"))
            self._answer_lock.acquire()
        streamed = False
        try:
            if ticket.cancelled.is_set() or not self._wait_for_index(session, ticket):
                return
            with held(self._builder_pid):  # the background adapter build waits while we write
                answer = session.ask(text)
                answer.on_wait = lambda ahead: self.post_message(AnswerWaiting(widget_id, ahead))
                ticket.answer = answer
                if ticket.cancelled.is_set():
                    answer.cancel()
                for piece in answer:
                    streamed = True
                    self.post_message(AnswerChunk(widget_id, piece))
            outcome = answer.outcome
            assert outcome is not None  # set (and stored) when the text is done
            self.post_message(AnswerDone(widget_id, outcome.result, outcome.message_id))
        except (BackendError, IndexNotReady) as exc:
            self.post_message(AnswerFailed(widget_id, str(exc), text, streamed))
        except Exception as exc:  # noqa: BLE001 - shown, not thrown
            self.post_message(AnswerFailed(widget_id, f"{type(exc).__name__}: {exc}", text, streamed))
        finally:
            self._answer_lock.release()

    def _wait_for_index(self, session: Session, ticket: _Ticket) -> bool:
        """The first index is still being built: the question waits for it (the answer area says how
        far it is), or is refused with the reason when the build failed. False: cancelled meanwhile."""
        if not session.indexing:
            return True
        while session.indexing:
            self.post_message(AnswerWaiting(ticket.widget_id, 0, self._index_wait_note()))
            if ticket.cancelled.wait(0.5):
                return False
        missing = session.index_missing()
        if missing:
            raise IndexNotReady(f"not answered: {missing}")
        return True

    def on_answer_waiting(self, message: AnswerWaiting) -> None:
        view = self._view(message.widget_id)
        if view is None or message.widget_id in self._dropped:
            return
        if message.note:
            view.set_note(message.note)
            return
        ahead = message.ahead
        view.set_note(f"waiting for the model: {ahead} question{'s' if ahead != 1 else ''} ahead")

    async def on_answer_chunk(self, message: AnswerChunk) -> None:
        view = self._view(message.widget_id)
        if view is None or message.widget_id in self._dropped:
            return
        if view.stream is None:
            view.set_note("")
            view.stream = view.markdown.get_stream(view.markdown)
        await view.stream.write(message.text)
        self._follow_conversation()

    def _follow_conversation(self) -> None:
        """Keep the end of the conversation in sight while an answer grows (unless the agent scrolled up)."""
        try:
            self.query_one(ConversationView).follow()
        except NoMatches:
            pass

    def _finish_ticket(self, widget_id: str) -> None:
        if self._ticket is not None and self._ticket.widget_id == widget_id:
            self._ticket = None

    async def on_answer_done(self, message: AnswerDone) -> None:
        self._finish_ticket(message.widget_id)
        view = self._view(message.widget_id)
        if view is None:
            return
        dropped = message.widget_id in self._dropped
        if view.stream is not None:
            await view.stream.stop()
        result = message.result
        view.data = {"kind": result.kind, "reason": result.decision.get("reason"), "citations": citations_to_json(result),
                     "timings": result.timings, "handoff_reason": result.handoff_reason,
                     "clarify_reason": result.clarify_reason, "message_id": message.message_id,
                     "decline_reason": result.decline_reason, "voice_note": voice_note(result),
                     "answerability": (result.answerability or {}).get("reason"),
                     "composed": result.composed, "claims_removed": result.claims_removed,
                     "suggestions": result.suggestions, "question": result.question,
                     "approved_citation": result.approved_citation}
        view.message_id = message.message_id
        view.text = result.answer
        await view.markdown.update(result.answer if not result.cancelled else result.streamed + "\n\n*(cancelled)*")
        view.set_kind(result.kind, result.decision.get("reason"))
        if dropped:  # cancelled on screen earlier: now stored, and rateable; the screen moved on
            view.set_note("cancelled")
            return
        notes = []
        if result.composed == "extracted":
            notes.append("facts quoted from the sources")
        if result.fallback == "extractive":
            notes.append("model draft replaced by quoted sources (failed the claim check)")
        elif result.claims_removed:
            notes.append(f"{len(result.claims_removed)} sentence(s) dropped by the claim check")
        if result.fallback == "approved-reply":
            notes.append("model draft replaced by an approved reply (voice check)")
        if result.markers_invalid:
            notes.append(f"{result.markers_invalid} invalid citation marker(s) removed")
        notes += approved_notes(result, self._binding_keys())
        if result.injection_removed:
            notes.append(f"ignored {len(result.injection_removed)} instruction-like line(s) in sources")
        pending = self.session.pending_writes if self.session is not None else 0
        if pending:
            notes.append("not saved yet: the history is locked")
            self.notify(f"the history file is locked by another program: {pending} write(s) wait and are saved "
                        "when the lock clears", title="history busy", severity="warning", timeout=10)
        view.set_note(" · ".join(notes))
        self._follow_conversation()
        try:
            self.query_one(LatencyMeter).record(result.timings.get("total_ms"))
        except NoMatches:
            return
        self.select(view)
        self._streaming = None

    async def on_answer_failed(self, message: AnswerFailed) -> None:
        self._finish_ticket(message.widget_id)
        if message.widget_id in self._dropped:
            return  # cancelled on screen already: its late failure changes nothing there
        view = self._view(message.widget_id)
        if view is not None:
            if view.stream is not None:
                await view.stream.stop()
            view.set_kind("error")
            view.set_note(message.error)
        self._streaming = None
        prompt = self.query_one(PromptInput)
        if message.question and not message.streamed and not prompt.text.strip():
            prompt.text = message.question  # nothing was answered: the question waits to be sent again
            prompt.move_cursor(prompt.document.end)
        self.notify(message.error, title="answer failed", severity="error", timeout=15)

    def _view(self, widget_id: str) -> MessageView | None:
        try:
            return self.query_one(f"#{widget_id}", MessageView)
        except NoMatches:  # the conversation was replaced meanwhile
            return None

    # -- selection: the side panels follow the selected answer -------------------------------
    @on(MessageView.Selected)
    def on_selected(self, event: MessageView.Selected) -> None:
        if event.view.role == "assistant":
            self.select(event.view)

    def select(self, view: MessageView) -> None:
        if self._selected is not None:
            self._selected.remove_class("selected")
        self._selected = view
        view.add_class("selected")
        try:
            self.query_one(SourcesPanel).show(view.data)
            self.query_one(LatencyMeter).show(view.data.get("timings"))
        except NoMatches:  # called after refresh while the app shuts down
            pass

    @on(SourcesPanel.Open)
    def open_chunk(self, event: SourcesPanel.Open) -> None:
        self.push_screen(ChunkScreen(event.citation))

    def show_conversation(self, messages: list[Any]) -> None:
        conversation = self.query_one(ConversationView)
        conversation.remove_children()
        last = None
        for m in messages:
            data = {"kind": m.kind, "reason": m.reason, "citations": m.citations, "timings": m.timings,
                    "feedback": m.feedback, "message_id": m.id}
            view = conversation.add(MessageView(m.role, m.content, data=data, speaker=self._speaker()))
            if m.role == "assistant":
                last = view
                self.query_one(LatencyMeter).record(m.timings.get("total_ms"))
        if last is not None:
            self.call_after_refresh(self.select, last)
        else:
            self.query_one(SourcesPanel).show(None)
            self.query_one(LatencyMeter).show(None)

    # -- actions ---------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Esc cancels only while an answer is being written; otherwise it reaches the screen."""
        if action == "cancel_answer":
            return self._ticket is not None and self.screen is self.screen_stack[0]
        return True

    async def action_cancel_answer(self) -> None:
        """At once: the screen lets the answer go; the worker stops the model and stores what it wrote."""
        ticket, self._ticket = self._ticket, None
        if ticket is None:
            return
        ticket.cancel()
        self._dropped.add(ticket.widget_id)
        view = self._view(ticket.widget_id)
        if view is not None:
            if view.stream is not None:
                await view.stream.stop()
            shown = view.markdown.source
            await view.markdown.update((shown + "\n\n" if shown else "") + "*(cancelled)*")
            view.set_note("cancelled")
        self._streaming = None
        self.notify("answer cancelled")

    def action_help(self) -> None:
        rows = []
        for binding_id, (key, description) in sorted(self._binding_keys().items()):
            rows.append((key, description, binding_id))
        rows.append((self.COMMAND_PALETTE_BINDING, "command palette", ""))
        self.push_screen(HelpScreen(rows))

    @on(ConversationView.Typed)
    def typed_in_conversation(self, event: ConversationView.Typed) -> None:
        """Typing while a message has focus: the key goes to the prompt, and so does the focus."""
        prompt = self.query_one(PromptInput)
        prompt.focus()
        prompt.insert(event.character)

    def _binding_keys(self) -> dict[str, tuple[str, str]]:
        out = {}
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            key = self._keymap.get(binding.id or "", binding.key) if binding.id else binding.key
            out[binding.id or binding.action] = (key, binding.description)
        return out

    def action_new_conversation(self) -> None:
        if self.session is None:
            self.notify("still starting up", severity="warning")
            return
        self.session.new_conversation()
        self.show_conversation([])
        self.notify("new conversation")

    def action_open_history(self) -> None:
        session = self.session or self._new_session  # before start-up ends: browsed, not opened
        if session is None:
            return

        def chosen(conversation_id: int | None) -> None:
            if conversation_id:
                try:
                    messages = (self.session.open_conversation(conversation_id) if self.session
                                else session.messages(conversation_id))
                except HistoryError as exc:
                    self.notify(str(exc), title="history", severity="error", timeout=15)
                    return
                self.show_conversation(messages)

        try:
            conversations = session.conversations()
        except HistoryError as exc:
            self.notify(str(exc), title="history", severity="error", timeout=15)
            return
        self.push_screen(HistoryScreen(conversations), chosen)

    def action_insights(self) -> None:
        """The insights screen (per-day figures, top gaps) over this session's history or the team server."""
        if self.session is None:
            self.notify("still starting up", severity="warning")
            return
        from supportdesk.tui.screens.insights import InsightsScreen

        session = self.session
        mine = session.role == "agent"  # a team server shows an agent their own answers only
        self.push_screen(InsightsScreen(session.insights, "Insights — your answers" if mine else "Insights"))

    def action_reload_kb(self) -> None:
        if self.session is None:
            self.notify("still starting up", severity="warning")
            return
        self.notify("reloading the knowledge base; chat keeps working meanwhile")
        self.reload_worker()

    @work(thread=True, exclusive=True, group="reload", exit_on_error=False)
    def reload_worker(self) -> None:
        from supportdesk.kb.index import ReloadInProgress

        try:
            report = self.session.reload_kb(lambda p: self.post_message(ReloadProgress(f"reload: {p.stage} {p.done}/{p.total}")))
        except ReloadInProgress as exc:
            self.post_message(ReloadProgress(str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - a server's refusal (403: not an admin) or a lost connection: shown
            self.post_message(ReloadFailed(str(exc) or type(exc).__name__))
            return
        self.post_message(ReloadDone(report))

    def on_reload_failed(self, message: ReloadFailed) -> None:
        self._status_note = "ready"
        self.refresh_status()
        self.notify(message.error, title="reload failed: previous index still serving", severity="error", timeout=20)

    def on_reload_progress(self, message: ReloadProgress) -> None:
        self._status_note = message.text
        self.refresh_status()

    def on_reload_done(self, message: ReloadDone) -> None:
        report = message.report
        self._status_note = "ready"
        self._seen = None  # this app's own reload: told below, in full
        self.refresh_status()
        if report.ok:
            skipped = f", {len(report.skipped)} skipped" if report.skipped else ""
            self.notify(f"KB reloaded: {len(report.added)} added, {len(report.changed)} changed, "
                        f"{len(report.removed)} removed{skipped} · {report.chunks_total} chunks")
            for item in report.skipped[:5]:
                self.notify(str(item), severity="warning", timeout=10)
        else:
            self.notify(report.error or "reload failed", title="reload failed: previous index still serving",
                        severity="error", timeout=20)

    def action_switch_adapter(self) -> None:
        if self.session is None:
            return
        names = self.session.adapters()
        options = [("none", "none (bare base model)")] + [(n, n) for n in names]
        current = self.session.status().adapter or "none"
        self.push_screen(PickerScreen("Brand-voice adapter", options, current),
                         lambda choice: choice and self.switch_worker(None, choice))

    def action_switch_backend(self) -> None:
        if self.session is None:
            return
        options = [("embedded", "embedded (llama.cpp, in-process)"),
                   ("ollama", f"ollama ({self.settings.model.ollama_host})")]
        self.push_screen(PickerScreen("Backend", options, self.session.status().backend),
                         lambda choice: choice and self.switch_worker(choice, None))

    @work(thread=True, exclusive=True, group="switch", exit_on_error=False)
    def switch_worker(self, backend: str | None, adapter: str | None) -> None:
        from supportdesk.models import BackendError

        self.post_message(SessionProgress("switching model…"))
        try:
            self.session.switch_model(backend, adapter)
            self.post_message(ModelSwitched())
        except BackendError as exc:
            self.post_message(ModelSwitched(str(exc)))
        except Exception as exc:  # noqa: BLE001
            self.post_message(ModelSwitched(f"{type(exc).__name__}: {exc}"))

    def on_model_switched(self, message: ModelSwitched) -> None:
        self._status_note = "ready"
        self._seen = None  # this app's own switch: told below
        self.refresh_status()
        if message.error:
            self.notify(message.error, title="switch failed: previous model still in use", severity="error", timeout=15)
        else:
            status = self.session.status()
            self.notify(f"now answering with {status.backend}:{status.model}, adapter {status.adapter or 'none'}")

    def action_copy_answer(self) -> None:
        if self._selected is None or not self._selected.text:
            self.notify("select an answer first", severity="warning")
            return
        self.copy_to_clipboard(self._selected.text)
        self.notify("answer copied")

    def _rate(self, value: int) -> None:
        view = self._selected
        if view is None or view.message_id is None:
            self.notify("select a finished answer first", severity="warning")
            return
        session = self.session or self._new_session
        if session is None:
            return
        new = 0 if view.feedback == value else value
        try:
            session.feedback(view.message_id, new)
        except HistoryError as exc:
            self.notify(str(exc), title="rating not saved", severity="error", timeout=15)
            return
        view.feedback = new
        view.data["feedback"] = new

    def action_feedback_up(self) -> None:
        self._rate(1)

    # -- approved answers (issue 28; screens/approved.py) ----------------------------------
    def action_edit_answer(self) -> None:
        view = self._selected
        if view is None or view.message_id is None or self.session is None:
            self.notify("select a finished answer first", severity="warning")
            return
        message_id = view.message_id

        def propose(text: str | None) -> None:
            if text:
                self._propose(message_id, text)

        self.push_screen(EditAnswerScreen(view.data.get("question") or "", view.text), propose)

    @work(thread=True, exit_on_error=False, group="approved")
    def _propose(self, message_id: int, text: str) -> None:
        try:
            proposal = self.session.approved.propose(message_id, text)
        except Exception as exc:  # noqa: BLE001 - shown, never thrown
            self.call_from_thread(self.notify, str(exc), title="not proposed", severity="error", timeout=10)
            return
        self.call_from_thread(self.notify, f"proposal #{proposal} waits for a trainer's review")

    def action_send_suggestion(self) -> None:
        view = self._selected
        suggestions = view.data.get("suggestions") if view is not None else None
        if not suggestions or self.session is None:
            self.notify("the selected answer has no approved answer suggested", severity="warning")
            return
        best = suggestions[0]
        conversation = self.query_one(ConversationView)
        self._counter += 1
        sent = conversation.add(MessageView("assistant", best["text"], id=f"answer-{self._counter}",
                                            speaker=self._speaker(),
                                            data={"kind": "approved", "reason": f"approved answer #{best['answer_id']} "
                                                  "sent by the agent", "citations": [], "timings": {}}))
        sent.text = best["text"]
        self.call_after_refresh(self.select, sent)
        self._accept_suggestion(best["answer_id"], view.data.get("question") or "", best["text"])

    @work(thread=True, exit_on_error=False, group="approved")
    def _accept_suggestion(self, answer_id: int, question: str, text: str) -> None:
        try:
            self.session.approved.accept_suggestion(answer_id, question)
            self.session.add_sent_answer(text, f"approved answer #{answer_id} sent by the agent")
        except Exception as exc:  # noqa: BLE001 - shown, never thrown
            self.call_from_thread(self.notify, str(exc), title="suggestion not learned", severity="error", timeout=10)
            return
        self.call_from_thread(self.notify, f"sent approved answer #{answer_id}; this wording is learned")

    def action_review_proposals(self) -> None:
        if self.session is None:
            self.notify("still starting up", severity="warning")
            return
        self.push_screen(ReviewScreen(self.session.approved))

    def action_feedback_down(self) -> None:
        self._rate(-1)


def run(settings: Settings, session_factory: Callable[[Settings], Session] | None = None) -> None:
    """The app on the embedded session, or on a team server's (``supportdesk.client``)."""
    SupportDeskApp(settings, session_factory).run()
