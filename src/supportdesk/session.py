"""A support session: the KB, the model, the pipeline and the history, wired once.

The TUI is a thin shell over this object (and the CLI uses the same pieces), so every
feature the agent has on screen is reachable without Textual. Slow steps (loading the
embedder and the model, building a missing index) are explicit methods the caller runs in
a worker; nothing here blocks at construction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from supportdesk.answers import Answer, AnswerPipeline, Turn
from supportdesk.answers.approved import SessionApproved, approved_service
from supportdesk.answers.pipeline import AnswerResult, citations_to_json
from supportdesk.brand import load_brand
from supportdesk.history import Conversation, HistoryError, HistoryStore, StoredMessage, move_aside, open_history
from supportdesk.kb.index import KBStats, KnowledgeBase, Progress, ReloadReport
from supportdesk.kb.search import search_to_json
from supportdesk.models import BackendError, ChatBackend, ModelMissing, create_backend, list_adapters
from supportdesk.models.adapters import write_active
from supportdesk.session_protocol import AskResult, SessionStatus
from supportdesk.settings import Settings

__all__ = ["AskResult", "SessionAnswer", "SessionStatus", "SupportSession", "check_answers"]

_INDEX_STAGES = {"scan": (0, 2), "load": (2, 10), "embed": (10, 95), "save": (95, 99), "milvus": (95, 99),
                 "done": (100, 100)}
"""Where each stage of a first index build lies on its way to 100 % (embedding is most of it)."""


def check_answers(backend: ChatBackend) -> None:
    """A model server (Ollama, OpenAI-compatible) must answer, and serve the model, before it
    replaces the one serving; raises BackendError saying what is wrong. The embedded model is
    checked by loading it."""
    if backend.name == "embedded":
        return
    try:
        names = [info.name for info in backend.list_models()]
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(f"the {backend.name} server did not answer as a model server "
                           f"({type(exc).__name__}: {exc})") from exc
    wanted = backend.model_name
    if names and wanted not in names and f"{wanted}:latest" not in names:
        shown = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
        raise ModelMissing(f"the {backend.name} server does not serve '{wanted}' (it serves: {shown}): set "
                           f"model.{backend.name}_model, or push the adapter with 'supportdesk adapter push NAME "
                           f"--to {backend.name}'")


class SessionAnswer:
    """An answer of the session's one ask pass: iterate for its text. When the text is done the
    answer is stored (a cancelled one too, as cancelled) and ``outcome`` says where; an answer
    asked after given turns is stored nowhere."""

    outcome: AskResult | None

    def __init__(self, session: SupportSession, answer: Answer, conversation_id: int | None,
                 question_id: int | None, asked_by: str | None) -> None:
        self._session = session
        self._answer = answer
        self.conversation_id = conversation_id
        self.question_id = question_id
        """The stored question's id (None: asked after given turns, not stored)."""
        self._asked_by = asked_by
        self.outcome: AskResult | None = None
        self.done = False

    @property
    def result(self) -> AnswerResult:
        return self._answer.result

    @property
    def on_wait(self) -> Callable[[int], None] | None:
        return self._answer.on_wait  # type: ignore[no-any-return]

    @on_wait.setter
    def on_wait(self, callback: Callable[[int], None] | None) -> None:
        self._answer.on_wait = callback

    def cancel(self) -> None:
        self._answer.cancel()

    def run(self, on_text: Callable[[str], None] | None = None) -> AnswerResult:
        for piece in self:
            if on_text is not None:
                on_text(piece)
        return self.result

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._answer
        finally:
            self.done = True
        message_id = None
        if self.question_id is not None:
            assert self.conversation_id is not None
            message_id = self._session._store_answer(self.result, self.conversation_id, self._asked_by)
        self.outcome = AskResult(self.result, message_id, self.conversation_id)


class SupportSession:
    """The embedded session (``supportdesk.session_protocol.Session``): everything in this process.

    A team server runs one too (``server.core``), so a question is answered by the same
    ``ask`` pass in the TUI, the CLI and for every agent of a team."""

    is_remote = False
    reloaded_by: str | None = None  # only a team server names who reloaded

    def __init__(self, settings: Settings, backend: ChatBackend | None = None, kb: KnowledgeBase | None = None,
                 backend_wrapper: Callable[[ChatBackend], ChatBackend] | None = None) -> None:
        self.settings = settings
        self.kb = kb or KnowledgeBase(settings)
        self._wrap = backend_wrapper or (lambda b: b)  # the team server puts its queue in front of the model
        self._backend = self._wrap(backend) if backend is not None else None
        self._pipeline: AnswerPipeline | None = None
        self.history_path = settings.data_dir / "history.sqlite3" if not settings.history.url \
            else (Path(settings.history_location) if settings.history.url.startswith("sqlite:///") else None)
        """The SQLite file, or None when the history is a database server (history.url)."""
        self.history_problem: str | None = None
        self.history_error: str | None = None
        """Why the history could not be opened (``history_problem`` without what the TUI does about it)."""
        self.index_error: str | None = None
        self.history = self._open_history()
        self.conversation_id: int | None = None
        self._turns: list[Turn] | None = None
        """The current conversation (``conversation_id``) as the pipeline reads it, kept as it grows:
        a question does not re-read the whole conversation from the database."""
        self.on_status_change: Callable[[], None] | None = None  # a remote session's feed calls it; not used here
        self._lock = threading.Lock()
        self._first_index: threading.Event | None = None  # set when the first index, built behind the chat, is in
        self.index_progress: Progress | None = None

    @property
    def can_train(self) -> bool:
        return True

    @property
    def can_move_history(self) -> bool:
        return self.history_path is not None

    @property
    def role(self) -> str | None:
        return None

    def _open_history(self) -> HistoryStore:
        """The history, or, when it is broken or unreachable, an in-memory one so the chat still works."""
        try:
            return open_history(self.settings)
        except (HistoryError, OSError) as exc:
            self.history_error = str(exc)
            self.history_problem = f"{exc} — this session's conversations are kept in memory only"
            return HistoryStore(":memory:")

    def move_history_aside(self) -> str:
        """Rename the broken file, start a new one, and copy this session's messages into it."""
        if self.history_path is None:
            raise HistoryError("the history is a database server (history.url), not a file: fix or reach it, "
                               "then restart; nothing of it was changed")
        moved = move_aside(self.history_path)
        fresh = HistoryStore(self.history_path)
        mapping: dict[int, int] = {}
        for conversation in sorted(self.history.conversations(limit=1_000_000), key=lambda c: c.id):
            mapping[conversation.id] = fresh.new_conversation(conversation.title)
            for m in self.history.messages(conversation.id):
                new_id = fresh.add_message(mapping[conversation.id], m.role, m.content, kind=m.kind, reason=m.reason,
                                           citations=m.citations, timings=m.timings, model=m.model,
                                           abstained=m.abstained)
                if m.feedback:
                    fresh.set_feedback(new_id, m.feedback)
        old, self.history = self.history, fresh
        old.close()
        if self.conversation_id is not None:
            self.conversation_id = mapping.get(self.conversation_id)
        self.history_problem = None
        return str(moved)

    # -- start-up (run in a worker) ------------------------------------------------------
    def start(self, progress: Callable[[str], None] = lambda s: None, build_missing_index: bool = True,
              index_in_background: bool = False) -> None:
        """Load the embedder, the index (building it if missing), the model; warm the router.

        With ``index_in_background`` a missing index is built by a thread while the session is
        already usable (the app's first run: the chat opens at once, grounded answers follow
        when the index is in); ``index_error`` says why if that build fails.
        """
        progress("loading the embedding model")
        self.kb.embedder_info  # noqa: B018
        progress("opening the knowledge base")
        if self.kb.snapshot() is not None and index_in_background and (
                self.kb.embedder_mismatch() or self.kb.format_mismatch()):
            # Embedder or precision changed (a new default, another CPU), or the ingest's text format:
            # the old generation serves while every file is read and embedded again behind the chat.
            threading.Thread(target=self._build_index, args=(progress,), name="re-embed-index", daemon=True).start()
        elif self.kb.snapshot() is None and build_missing_index:
            if index_in_background:
                self._first_index = threading.Event()
                threading.Thread(target=self._build_index, args=(progress,), name="first-index", daemon=True).start()
            else:
                progress("building the knowledge base index (first run)")
                report = self.kb.reload(lambda p: progress(f"indexing: {p.stage} {p.done}/{p.total}"))
                if not report.ok:
                    raise RuntimeError(report.error or "index build failed")
        progress("loading the answering model")
        backend = self.backend
        load = getattr(backend, "load", None)
        if callable(load):
            load()
        progress("warming up the router")
        self.pipeline.warm_up()
        progress("ready")

    def _build_index(self, progress: Callable[[str], None]) -> None:
        def step(p: Progress) -> None:
            self.index_progress = p
            progress(f"indexing the knowledge base: {p.stage} {p.done}/{p.total}")

        try:
            report = self.kb.reload(step)
            self.index_error = None if report.ok else (report.error or "index build failed")
        except Exception as exc:  # noqa: BLE001 - the questions waiting for it are told why
            self.index_error = f"{type(exc).__name__}: {exc}"
        finally:
            if self._first_index is not None:
                self._first_index.set()
        progress("ready" if self.index_error is None else "index build failed")

    @property
    def indexing(self) -> bool:
        """The first index is still being built (behind the chat): nothing can be looked up yet."""
        return self._first_index is not None and not self._first_index.is_set() and self.kb._snapshot is None

    def index_note(self) -> str:
        """ "indexing the knowledge base… 42%": how far the first index build is."""
        p = self.index_progress
        span = _INDEX_STAGES.get(p.stage) if p is not None else None
        if p is None or span is None:
            return "indexing the knowledge base…"
        low, high = span
        share = min(1.0, p.done / p.total) if p.total else 0.0
        return f"indexing the knowledge base… {round(low + (high - low) * share)}%"

    def index_missing(self) -> str | None:
        """Why nothing can be looked up, when the first index build ended without an index."""
        if self._first_index is None or not self._first_index.is_set() or self.kb._snapshot is not None:
            return None
        return f"the knowledge base could not be indexed ({self.index_error or 'index build failed'})"

    @property
    def backend(self) -> ChatBackend:
        if self._backend is None:
            self._backend = self._wrap(create_backend(self.settings))
        return self._backend

    @property
    def pipeline(self) -> AnswerPipeline:
        if self._pipeline is None:
            self._pipeline = AnswerPipeline(self.settings, self.kb, self.backend)
            self._pipeline.approved = approved_service(lambda: self.history.approved, self.kb, self.settings)
        return self._pipeline

    def status(self) -> SessionStatus:
        snapshot = self.kb._snapshot  # never triggers a load from the UI thread
        backend = self._backend
        return SessionStatus(
            backend=backend.name if backend else self.settings.model.backend,
            model=backend.model_name if backend else "loading…",
            adapter=backend.adapter_name if backend else None,
            chunks=snapshot.chunk_count if snapshot else 0,
            generation=snapshot.generation if snapshot else None,
            reloaded_at=snapshot.loaded_at if snapshot else None,
            reloading=self.kb.reloading,
            assistant=load_brand(self.settings).assistant_name,
        )

    # -- conversations ---------------------------------------------------------------------
    def new_conversation(self) -> int:
        self.conversation_id = self.history.new_conversation()
        self._turns = []
        return self.conversation_id

    def open_conversation(self, conversation_id: int) -> list[StoredMessage]:
        messages = self.history.messages(conversation_id)
        self.conversation_id = conversation_id
        self._turns = _turns(messages)
        return messages

    def conversations(self, limit: int = 100, everyone: bool = False) -> list[Conversation]:
        """Newest first (``everyone`` changes nothing here: every local conversation is this agent's)."""
        return self.history.conversations(limit)

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        return self.history.messages(conversation_id)

    @property
    def pending_writes(self) -> int:
        return self.history.pending

    def preview(self) -> list[StoredMessage]:
        """The latest conversation, read at once from the local history (before ``start``)."""
        latest = self.history.latest_conversation()
        return self.history.messages(latest) if latest is not None else []

    def resume_latest(self) -> list[StoredMessage]:
        latest = self.history.latest_conversation()
        if latest is None:
            self.new_conversation()
            return []
        return self.open_conversation(latest)

    def turns(self, conversation_id: int | None = None) -> list[Turn]:
        """The conversation as the pipeline reads it: who said what, nothing else.

        The same turns ``ask --conversations``, the evaluations and a server asked with a
        history build from text, so a follow-up ("and for the satellite?") is searched and answered
        the same way wherever the conversation comes from. (The cited headings of the last
        answer used to be added here only: they pulled the TUI's follow-ups to another document.)
        The current conversation comes from memory; another one (a team server's agents') is read.
        """
        conversation_id = self.conversation_id if conversation_id is None else conversation_id
        if conversation_id is None:
            return []
        if conversation_id == self.conversation_id and self._turns is not None:
            return list(self._turns)
        return _turns(self.history.messages(conversation_id))

    def ask(self, message: str, history: list[Turn] | None = None, *, conversation_id: int | None = None,
            asked_by: str | None = None) -> SessionAnswer:
        """The one ask pass, the embedded session's and a team server's (``server.core``).

        The question is answered after the conversation's turns (``conversation_id``, default the
        current one, started if there is none) and stored at once; the answer is stored when its
        text is done. With ``history`` (given turns: an evaluation, ``ask --conversations``) it is
        answered after them and nothing is stored. Every step before the model (the conversation
        policy, search, route, hand-off) runs inside the pipeline's answer (``AnswerPipeline._answer``,
        then ``plan``): a step added there runs for every front end and for the team server. An
        empty question raises EmptyQuestion before anything is stored.
        """
        if history is not None:
            answer = self.pipeline.ask(message, history)
            return SessionAnswer(self, answer, None, None, asked_by)
        if conversation_id is None:
            if self.conversation_id is None:
                self.new_conversation()
            conversation_id = self.conversation_id
        assert conversation_id is not None
        answer = self.pipeline.ask(message, self.turns(conversation_id))
        question = answer.result.question  # cleaned once, by the pipeline
        question_id = self.history.add_message(conversation_id, "user", question, asked_by=asked_by)
        self._remember(conversation_id, Turn("user", question))
        return SessionAnswer(self, answer, conversation_id, question_id, asked_by)

    def _store_answer(self, result: AnswerResult, conversation_id: int, asked_by: str | None) -> int:
        content = (result.answer if not result.cancelled else (result.streamed + " …(cancelled)")) or "(no answer)"
        message_id = self.history.add_message(
            conversation_id, "assistant", content,
            kind=result.kind, reason=result.clarify_reason or result.decline_reason or result.decision.get("reason")
            or result.handoff_reason,
            citations=citations_to_json(result), timings=result.timings, model=result.model,
            abstained=result.abstained, asked_by=asked_by,
        )
        self._remember(conversation_id, Turn("assistant", content))
        return message_id

    def add_sent_answer(self, text: str, reason: str) -> int | None:
        if self.conversation_id is None:
            return None
        message_id = self.history.add_message(self.conversation_id, "assistant", text, kind="approved", reason=reason)
        self._remember(self.conversation_id, Turn("assistant", text))
        return message_id

    def _remember(self, conversation_id: int, turn: Turn) -> None:
        if conversation_id == self.conversation_id and self._turns is not None:
            self._turns.append(turn)

    def feedback(self, message_id: int, value: int) -> None:
        self.history.set_feedback(message_id, value)

    @property
    def approved(self) -> SessionApproved:
        """Approved answers: propose a rewrite, accept a suggestion, review, import (issue 28)."""
        return SessionApproved(self.history)

    # -- commands ----------------------------------------------------------------------------
    def reload_kb(self, progress: Callable[[Progress], None] | None = None) -> ReloadReport:
        return self.kb.reload(progress)

    def adapters(self) -> list[str]:
        return [a.name for a in list_adapters(self.settings.adapters_dir)]

    def switch_model(self, backend: str | None = None, adapter: str | None = None) -> SessionStatus:
        """Swap the model (loads it: run in a worker). The adapter choice is remembered as active;
        returns the status with the new model."""
        new = self._wrap(create_backend(self.settings, backend or (self._backend.name if self._backend else None), adapter))
        load = getattr(new, "load", None)
        if callable(load):
            load()
        check_answers(new)
        with self._lock:
            self._backend = new
            if self._pipeline is not None:
                self._pipeline.backend = new
        if adapter is not None:
            write_active(self.settings.data_dir, None if adapter == "none" else adapter)
        return self.status()

    def search(self, query: str, k: int | None = None, mode: str | None = None) -> dict[str, Any]:
        """The KB's search, as JSON (``kb.search.search_to_json``): never waits behind the model."""
        return search_to_json(query, self.kb.search(query, k=k, mode=mode))  # type: ignore[arg-type]

    def kb_stats(self) -> KBStats:
        return self.kb.stats()

    def insights(self, since: float | None = None, agent: str | None = None, top_gaps: int = 5) -> dict[str, Any]:
        """Per-day figures and the top knowledge gaps of the history (``supportdesk.insights``)."""
        from supportdesk.insights.gaps import kb_search
        from supportdesk.insights.stats import insights

        return insights(self.history, since, agent, embed=self.kb.embedder.embed_documents,
                        search=kb_search(self.kb), top_gaps=top_gaps)

    def gaps(self, since: float | None = None, agent: str | None = None, top: int | None = None) -> list[dict[str, Any]]:
        """The knowledge gaps of the history, largest and most recent first."""
        from supportdesk.insights.gaps import find_gaps, gap_questions, kb_search
        from supportdesk.insights.records import read_turns

        found = find_gaps(gap_questions(read_turns(self.history, since, agent)), self.kb.embedder.embed_documents,
                          kb_search(self.kb), top=top)
        return [g.to_json() for g in found]

    def close(self) -> str | None:
        """Close the history; returns the file holding writes a lock kept out, if any."""
        leftover = self.history.close()
        return str(leftover) if leftover else None



def _turns(messages: list[StoredMessage]) -> list[Turn]:
    return [Turn(m.role, m.content) for m in messages]  # type: ignore[arg-type]
