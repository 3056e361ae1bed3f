"""supportdesk's terminal app: a thin Textual shell over ``SupportSession``.

Long work (loading models, answering, reloading the KB, switching the model) runs in
``@work(thread=True)`` workers that post typed messages back; the event loop only renders.
Every failure becomes a notification and a usable screen, never a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.command import Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Footer, Header, Static

from supportdesk.history import HistoryError, HistoryStore
from supportdesk.sanitize import strip_control
from supportdesk.settings import Settings
from supportdesk.tui.messages import (
    AnswerChunk,
    AnswerDone,
    AnswerFailed,
    AnswerWaiting,
    ModelSwitched,
    ReloadDone,
    ReloadProgress,
    SessionFailed,
    SessionProgress,
    SessionReady,
    StatusChanged,
)
from supportdesk.tui.screens.modals import ChunkScreen, ConfirmScreen, HelpScreen, HistoryScreen, PickerScreen
from supportdesk.tui.widgets.conversation import ConversationView, MessageView
from supportdesk.tui.widgets.latency import LatencyMeter
from supportdesk.tui.widgets.prompt_input import PromptInput
from supportdesk.tui.widgets.sources import SourcesPanel, voice_note

COMMANDS: list[tuple[str, str, str]] = [
    ("New conversation", "new_conversation", "Start a fresh conversation"),
    ("Reload knowledge base", "reload_kb", "Re-index changed documents; chat keeps working"),
    ("Switch adapter", "switch_adapter", "Choose the brand-voice LoRA adapter"),
    ("Switch backend", "switch_backend", "Embedded llama.cpp or Ollama"),
    ("Copy answer", "copy_answer", "Copy the selected answer to the clipboard"),
    ("Good answer 👍", "feedback_up", "Rate the selected answer"),
    ("Bad answer 👎", "feedback_down", "Rate the selected answer"),
    ("Open conversation…", "open_history", "Browse and reopen past conversations"),
    ("Help: keys", "help", "Show every key"),
]


class SupportCommands(Provider):
    """The command palette: every app command, searchable."""

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, action, help_text in COMMANDS:
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), self._runner(action), help=help_text)

    def _runner(self, action: str) -> Callable[[], Any]:
        async def run() -> None:
            await self.app.run_action(action)

        return run


class SupportDeskApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "supportdesk"
    COMMANDS = App.COMMANDS | {SupportCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel_answer", "Cancel", id="cancel-answer", priority=True),
        Binding("f1", "help", "Help", id="help"),
        Binding("ctrl+n", "new_conversation", "New", id="new-conversation"),
        Binding("ctrl+r", "reload_kb", "Reload KB", id="reload-kb"),
        Binding("ctrl+l", "switch_adapter", "Adapter", id="switch-adapter"),
        Binding("ctrl+b", "switch_backend", "Backend", id="switch-backend"),
        Binding("ctrl+o", "open_history", "History", id="open-history"),
        Binding("ctrl+y", "copy_answer", "Copy", id="copy-answer", show=False),
        Binding("ctrl+t", "feedback_up", "Rate good 👍", id="feedback-up", show=False),
        Binding("ctrl+x", "feedback_down", "Rate bad 👎", id="feedback-down", show=False),
        Binding("ctrl+q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, settings: Settings, session_factory: Callable[[Settings], Any] | None = None) -> None:
        super().__init__()
        self.settings = settings
        self._session_factory = session_factory
        self.session: Any = None
        self._new_session: Any = None
        self._shown_at_start = False
        self._seen: tuple[Any, ...] | None = None  # (generation, adapter, model) last shown
        self.history_store: HistoryStore | None = None
        self._answer: Any = None
        self._streaming: MessageView | None = None
        self._selected: MessageView | None = None
        self._status_note = "starting…"
        self._start_error: str | None = None
        self._builder_pid: int | None = None  # the background adapter build this app started
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

    def _make_session(self) -> Any:
        """The session object (cheap: nothing loads until ``start``), made once."""
        if self._new_session is None:
            if self._session_factory is not None:
                self._new_session = self._session_factory(self.settings)
            else:
                from supportdesk.session import SupportSession

                self._new_session = SupportSession(self.settings)
            self.history_store = getattr(self._new_session, "history", None)
        return self._new_session

    def on_unmount(self) -> None:
        if self._builder_pid is not None:
            from supportdesk.training.background import pause_build

            pause_build(self.settings.data_dir, self._builder_pid, wait_s=5.0)  # resumes at the next start
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
        error = getattr(self.session, "index_error", None)
        if message.text == "index build failed" and error:
            self.notify(error, title="knowledge base not indexed", severity="error", timeout=30)

    def on_session_ready(self, message: SessionReady) -> None:
        self._status_note = "ready"
        self.refresh_status()
        if message.messages and not self._shown_at_start and self._streaming is None:
            self.show_conversation(message.messages)
        self.start_sample_adapter()
        problem = getattr(self.session, "history_problem", None)
        if problem:
            self.notify(strip_control(problem), title="history not saved", severity="warning", timeout=30)
            if getattr(self.session, "history_path", None) is None:
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
        self.history_store = self.session.history
        self.notify(f"broken history moved to {moved}; new history started", timeout=10)

    def on_status_changed(self, _: StatusChanged) -> None:
        self.refresh_status()

    def on_session_failed(self, message: SessionFailed) -> None:
        self._status_note = "not ready"
        self._start_error = message.error
        self.refresh_status()
        self.notify(f"could not start: {message.error}", title="start-up failed", severity="error", timeout=30)

    # -- the sample adapter, built in the background on the first run -----------------------
    def start_sample_adapter(self) -> None:
        """No adapter yet: start the background build (chat goes on with the bare base model)."""
        from supportdesk.models import list_adapters
        from supportdesk.training.background import read_status, start_sample_build

        tui = self.settings.tui
        if not tui.build_sample_adapter or self.settings.model.backend != "embedded":
            return
        status = read_status(self.settings.data_dir)
        if list_adapters(self.settings.adapters_dir) and not (status and status.state in ("paused", "evaluating")):
            return
        from supportdesk.brand import load_brand

        brand = load_brand(self.settings)
        if brand.transcripts is None or not brand.transcripts.is_file():  # nothing of this brand's to learn from
            return
        try:
            self._builder_pid = start_sample_build(self.settings.data_dir, threads=tui.background_threads,
                                                   kb_dir=self.settings.kb_dir)
        except OSError as exc:
            self.notify(f"could not start the sample adapter build: {exc}", severity="warning", timeout=10)
            return
        self.notify("building the brand-voice adapter in the background; answering with the base model meanwhile",
                    title="first run", timeout=8)

    def _watch_build(self) -> None:
        """Follow the background build; switch its adapter in once it has passed evaluation."""
        if self._builder_pid is None:
            self._build_line = ""
            return
        from supportdesk.training.background import pid_alive, read_status

        status = read_status(self.settings.data_dir)
        if status is None:
            return
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
            self._build_line = "" if status.state == "done" else self._build_line

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
            self.notify(f"knowledge base now at generation {s.generation} ({s.chunks} chunks)", title="KB updated")
        if (s.adapter, s.model) != before[1:]:
            self.notify(f"answers now come from {s.model}, adapter {s.adapter or 'none'}", title="model changed")

    # -- asking ----------------------------------------------------------------------------
    @on(PromptInput.Submitted)
    def send(self, event: PromptInput.Submitted) -> None:
        text = strip_control(event.text).strip()
        if not text:
            return
        if self.session is None:
            if self._start_error:
                self.notify(f"not sent: supportdesk could not start ({self._start_error})", severity="error", timeout=15)
            else:
                self.notify("still starting up: your message was not sent", severity="warning")
            return
        if self._answer is not None:
            self.notify("an answer is still being written (Esc cancels it)", severity="warning")
            return
        conversation = self.query_one(ConversationView)
        conversation.add(MessageView("user", text))
        self._counter += 1
        view = conversation.add(MessageView("assistant", "", id=f"answer-{self._counter}", speaker=self._speaker()))
        view.set_note("thinking…")
        self._streaming = view
        view.stream = None
        self.answer_worker(text, view.id or "")

    @work(thread=True, exclusive=True, group="answer", exit_on_error=False)
    def answer_worker(self, text: str, widget_id: str) -> None:
        from supportdesk.models import BackendError
        from supportdesk.training.background import held

        streamed = False
        try:
            with held(self._builder_pid):  # the background adapter build waits while we write
                answer, _ = self.session.ask(text)
                answer.on_wait = lambda ahead: self.post_message(AnswerWaiting(widget_id, ahead))
                self._answer = answer
                for piece in answer:
                    streamed = True
                    self.post_message(AnswerChunk(widget_id, piece))
            message_id = self.session.record_answer(answer)
            self.post_message(AnswerDone(widget_id, answer.result, message_id))
        except BackendError as exc:
            self.post_message(AnswerFailed(widget_id, str(exc), text, streamed))
        except Exception as exc:  # noqa: BLE001 - shown, not thrown
            self.post_message(AnswerFailed(widget_id, f"{type(exc).__name__}: {exc}", text, streamed))
        finally:
            self._answer = None

    def on_answer_waiting(self, message: AnswerWaiting) -> None:
        view = self._view(message.widget_id)
        if view is not None:
            ahead = message.ahead
            view.set_note(f"waiting for the model: {ahead} question{'s' if ahead != 1 else ''} ahead")

    async def on_answer_chunk(self, message: AnswerChunk) -> None:
        view = self._view(message.widget_id)
        if view is None:
            return
        if view.stream is None:
            view.set_note("")
            view.stream = view.markdown.get_stream(view.markdown)
        await view.stream.write(message.text)

    async def on_answer_done(self, message: AnswerDone) -> None:
        view = self._view(message.widget_id)
        if view is None:
            return
        if view.stream is not None:
            await view.stream.stop()
        result = message.result
        data = result.to_json()
        citations = data["citations"] + [dict(c, number=0) for c in data["other_hits"]]
        view.data = {"kind": result.kind, "reason": data["decision"].get("reason"), "citations": citations,
                     "timings": result.timings, "handoff_reason": result.handoff_reason,
                     "clarify_reason": result.clarify_reason, "message_id": message.message_id,
                     "decline_reason": result.decline_reason, "voice_note": voice_note(result),
                     "answerability": (result.answerability or {}).get("reason"),
                     "composed": result.composed, "claims_removed": result.claims_removed}
        view.message_id = message.message_id
        view.text = result.answer
        await view.markdown.update(result.answer if not result.cancelled else result.streamed + "\n\n*(cancelled)*")
        view.set_kind(result.kind, data["decision"].get("reason"))
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
        if result.injection_removed:
            notes.append(f"ignored {len(result.injection_removed)} instruction-like line(s) in sources")
        pending = self.session.history.pending if self.session is not None else 0
        if pending:
            notes.append("not saved yet: the history is locked")
            self.notify(f"the history file is locked by another program: {pending} write(s) wait and are saved "
                        "when the lock clears", title="history busy", severity="warning", timeout=10)
        view.set_note(" · ".join(notes))
        try:
            self.query_one(LatencyMeter).record(result.timings.get("total_ms"))
        except NoMatches:
            return
        self.select(view)
        self._streaming = None

    async def on_answer_failed(self, message: AnswerFailed) -> None:
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
            return self._answer is not None and self.screen is self.screen_stack[0]
        return True

    def action_cancel_answer(self) -> None:
        if self._answer is not None:
            self._answer.cancel()
            self.notify("answer cancelled")

    def action_help(self) -> None:
        rows = []
        for binding_id, (key, description) in sorted(self._binding_keys().items()):
            rows.append((key, description, binding_id))
        self.push_screen(HelpScreen(rows))

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
        store = self.session.history if self.session is not None else self.history_store
        if store is None:
            return

        def chosen(conversation_id: int | None) -> None:
            if conversation_id:
                try:
                    messages = (self.session.open_conversation(conversation_id) if self.session
                                else store.messages(conversation_id))
                except HistoryError as exc:
                    self.notify(str(exc), title="history", severity="error", timeout=15)
                    return
                self.show_conversation(messages)

        try:
            conversations = store.conversations()
        except HistoryError as exc:
            self.notify(str(exc), title="history", severity="error", timeout=15)
            return
        self.push_screen(HistoryScreen(conversations), chosen)

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
        self.post_message(ReloadDone(report))

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
        store = self.session.history if self.session is not None else self.history_store
        new = 0 if view.feedback == value else value
        try:
            store.set_feedback(view.message_id, new)
        except HistoryError as exc:
            self.notify(str(exc), title="rating not saved", severity="error", timeout=15)
            return
        view.feedback = new
        view.data["feedback"] = new

    def action_feedback_up(self) -> None:
        self._rate(1)

    def action_feedback_down(self) -> None:
        self._rate(-1)


def run(settings: Settings, session_factory: Callable[[Settings], Any] | None = None) -> None:
    """The app on the embedded session, or on a team server's (``supportdesk.client``)."""
    SupportDeskApp(settings, session_factory).run()
