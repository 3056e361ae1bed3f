"""A support session: the KB, the model, the pipeline and the history, wired once.

The TUI is a thin shell over this object (and the CLI uses the same pieces), so every
feature the agent has on screen is reachable without Textual. Slow steps (loading the
embedder and the model, building a missing index) are explicit methods the caller runs in
a worker; nothing here blocks at construction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supportdesk.answers import Answer, AnswerPipeline, Turn
from supportdesk.answers.approved import SessionApproved, approved_service
from supportdesk.brand import load_brand
from supportdesk.history import HistoryError, HistoryStore, StoredMessage, move_aside, open_history
from supportdesk.kb.index import KnowledgeBase, Progress, ReloadReport
from supportdesk.models import BackendError, ChatBackend, ModelMissing, create_backend, list_adapters
from supportdesk.models.adapters import write_active
from supportdesk.settings import Settings

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


@dataclass
class SessionStatus:
    backend: str
    model: str
    adapter: str | None
    chunks: int
    generation: str | None
    reloaded_at: float | None
    reloading: bool
    connection: str | None = None
    """A team server's client: why the server cannot be reached right now (None when it can)."""
    queued: int = 0
    """Questions waiting for the model (a team server's queue)."""
    assistant: str = "Assistant"
    """The brand profile's assistant name: the label answers are shown under."""


class SupportSession:
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
        self.on_status_change: Callable[[], None] | None = None  # a remote session's feed calls it; not used here
        self._lock = threading.Lock()
        self._first_index: threading.Event | None = None  # set when the first index, built behind the chat, is in
        self.index_progress: Progress | None = None

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
        if self.kb.snapshot() is not None and index_in_background and self.kb.embedder_mismatch():
            # Embedder or precision changed (a new default, another CPU): the old generation
            # serves while every chunk is re-embedded behind the chat.
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
        return self.conversation_id

    def open_conversation(self, conversation_id: int) -> list[StoredMessage]:
        self.conversation_id = conversation_id
        return self.history.messages(conversation_id)

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
        """
        conversation_id = self.conversation_id if conversation_id is None else conversation_id
        if conversation_id is None:
            return []
        return [Turn(m.role, m.content) for m in self.history.messages(conversation_id)]  # type: ignore[arg-type]

    def ask(self, message: str) -> tuple[Answer, int]:
        """Store the question and start the answer; call ``record_answer`` when it is done."""
        if self.conversation_id is None:
            self.new_conversation()
        assert self.conversation_id is not None
        history = self.turns()
        answer = self.pipeline.ask(message, history)  # an empty question is refused before anything is stored
        question_id = self.history.add_message(self.conversation_id, "user", answer.result.question)
        return answer, question_id

    def record_answer(self, answer: Answer, conversation_id: int | None = None, asked_by: str | None = None) -> int:
        result = answer.result
        conversation_id = self.conversation_id if conversation_id is None else conversation_id
        assert conversation_id is not None
        citations = [c.__dict__ for c in result.citations] + [dict(c.__dict__, number=0) for c in result.other_hits]
        content = result.answer if not result.cancelled else (result.streamed + " …(cancelled)")
        return self.history.add_message(
            conversation_id, "assistant", content or "(no answer)",
            kind=result.kind, reason=result.clarify_reason or result.decline_reason or result.decision.get("reason")
            or result.handoff_reason,
            citations=citations, timings=result.timings, model=result.model, abstained=result.abstained,
            asked_by=asked_by,
        )

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

    def switch_model(self, backend: str | None = None, adapter: str | None = None) -> ChatBackend:
        """Swap the model (loads it: run in a worker). The adapter choice is remembered as active."""
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
        return new

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

