"""The support core a team server owns: one KB, one model (behind a FIFO queue), one router,
one history, shared by every connected agent.

Each question is answered on its own thread (``AnswerRun``): search and routing run at once;
only writing the answer waits for the model (``queue.QueuedBackend``). Events go to the
asker through ``emit`` as they happen: its place in the queue, the route and sources, the
text, the final checked answer. A cancelled or vanished asker's generation stops and frees
the model; what was written so far is stored as cancelled, so nothing asked is lost.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from supportdesk.answers.pipeline import EmptyQuestion
from supportdesk.history import Conversation, HistoryError, StoredMessage
from supportdesk.kb.index import KnowledgeBase, Progress, ReloadInProgress, ReloadReport
from supportdesk.models import BackendError, ChatBackend
from supportdesk.server.queue import GenerationQueue, QueuedBackend, Ticket, use_ticket
from supportdesk.server.tokens import Identity, TokenStore, role_allows
from supportdesk.session import SupportSession
from supportdesk.settings import Settings
from supportdesk.wire import status_to_json

if TYPE_CHECKING:
    from supportdesk.kb.index import KBStats
    from supportdesk.kb.search import Mode, SearchResult

Emit = Callable[[str, dict[str, Any]], None]


class CoreError(Exception):
    """A request the core refuses; ``status`` is the HTTP status the server answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AnswerRun:
    """One question being answered for one agent."""

    def __init__(self, core: ServerCore, who: Identity, conversation_id: int | None, question: str, emit: Emit,
                 history: list[Any] | None = None) -> None:
        self.id = secrets.token_hex(8)
        self.history = history
        """Turns given by the asker (an evaluation): answered after them, and nothing is stored."""
        self.core = core
        self.who = who
        self.conversation_id = conversation_id
        self.question = question
        self._emit = emit
        self.ticket = Ticket(on_position=self._queued)
        self.answer: Any = None
        self._route_sent = False
        self.finished = threading.Event()

    def _queued(self, ahead: int) -> None:
        self._send_route()
        self._emit("queued", {"ahead": ahead})

    def _send_route(self) -> None:
        """The route, its reason and the sources, as soon as they are decided (before any text)."""
        if self._route_sent or self.answer is None or not self.answer.result.decision:
            return
        self._route_sent = True
        data = self.answer.result.to_json()
        self._emit("route", {k: data[k] for k in ("kind", "route", "decision", "query", "follow_up", "citations",
                                                   "other_hits", "answerability")})

    def cancel(self) -> None:
        self.ticket.cancel()
        if self.answer is not None:
            self.answer.cancel()

    def run(self) -> None:
        use_ticket(self.ticket)
        try:
            # The embedded session's own ask pass: the same turns, pipeline and storage as the TUI's.
            answer = self.core.session.ask(self.question, self.history, conversation_id=self.conversation_id,
                                           asked_by=self.who.name)
            self.answer = answer
            if self.ticket.cancelled.is_set():
                answer.cancel()
            if answer.question_id is not None:
                self._emit("question", {"question_id": answer.question_id, "conversation_id": self.conversation_id})
            for piece in answer:
                self._send_route()
                self._emit("text", {"text": piece})
            self._send_route()
            assert answer.outcome is not None
            self._emit("done", {"message_id": answer.outcome.message_id, "conversation_id": self.conversation_id,
                                "result": answer.outcome.result.to_json()})
        except EmptyQuestion as exc:
            self._emit("error", {"message": str(exc), "status": 422})
        except (BackendError, HistoryError) as exc:
            self._emit("error", {"message": str(exc), "status": 503})
        except Exception as exc:  # noqa: BLE001 - the asker is told; the server keeps serving
            self._emit("error", {"message": f"{type(exc).__name__}: {exc}", "status": 500})
        finally:
            use_ticket(None)
            self.core._finished(self)
            self.finished.set()


class ServerCore:
    def __init__(self, settings: Settings, backend: ChatBackend | None = None, kb: KnowledgeBase | None = None) -> None:
        self.settings = settings
        slots = settings.serve.generation_slots or (1 if settings.model.backend == "embedded" else 4)
        self.queue = GenerationQueue(slots)
        self.session = SupportSession(settings, backend=backend, kb=kb,
                                      backend_wrapper=lambda b: QueuedBackend(b, self.queue))
        if self.session.history_problem:  # a team's history is never kept in memory only: refuse to start
            raise CoreError(500, f"cannot serve: {self.session.history_error or self.session.history_problem} — the "
                                 "server does not start without its history: fix or reach it (history.url), then "
                                 "start it again")
        self.tokens = TokenStore(self.session.history)
        self._lock = threading.Lock()
        self._runs: dict[str, AnswerRun] = {}
        self._reload_lock = threading.Lock()
        self.reloading_by: str | None = None
        self.reloaded_by: str | None = None  # who made the serving generation (the status feed names them)
        self._switch_lock = threading.Lock()
        self.started_at = time.time()
        self.stopping = threading.Event()
        """Set when the server shuts down: status feeds end so connections close at once."""
        self.replica = settings.serve.replica_name or f"{socket.gethostname()}-{os.getpid()}"
        self.cluster: Any = None
        """With the history on PostgreSQL, the replicas sharing it (server/cluster.py, kb/cluster.py)."""
        self.model_changed_by: str | None = None
        self._claim_lock = threading.Lock()
        self._claimed_by: str | None = None

    def start(self, progress: Callable[[str], None] = lambda s: None) -> None:
        """Load the embedder, the index (built if missing, or the cluster's), the model; warm the router."""
        from supportdesk.server import cluster

        self.cluster = cluster.attach(self, progress)
        self.session.start(progress, build_missing_index=True)
        if self.cluster is not None:
            self.cluster.follow()

    def close(self) -> None:
        self.stopping.set()
        if self.cluster is not None:
            self.cluster.close()
        for run in list(self._runs.values()):
            run.cancel()
        self.session.close()

    # -- status --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        status = self.session.status()
        status.queued = self.queue.waiting
        data = status_to_json(status)
        data["answering"] = self.queue.running
        data["reloading_by"] = self.reloading_by
        data["reloaded_by"] = self.reloaded_by
        data["index_error"] = self.session.index_error
        if self.cluster is not None:  # the whole cluster: a reload on any replica, who made what serves
            data["reloading_by"] = self.reloading_by or self.cluster.holder()
            data["reloaded_by"] = self.cluster.reloaded_by or self.reloaded_by
            data["cluster"] = self.cluster.view(ages=False)
        data["model_changed_by"] = self.model_changed_by
        from supportdesk.kb.build import embedded_texts

        data["embedded_texts"] = embedded_texts()
        return data

    # -- conversations -------------------------------------------------------------------
    def conversation_for(self, who: Identity, conversation_id: int) -> Conversation:
        """The conversation, if this identity may read it: an agent their own, a trainer or admin any."""
        found = self.session.history.conversation(conversation_id)
        if found is None:
            raise CoreError(404, f"no conversation {conversation_id}")
        if found.owner != who.name and not role_allows(who.role, "trainer"):
            raise CoreError(403, f"conversation {conversation_id} belongs to another agent")
        return found

    def new_conversation(self, who: Identity) -> int:
        return self.session.history.new_conversation(owner=who.name)

    def conversations(self, who: Identity, limit: int, everyone: bool = False) -> list[Conversation]:
        """The caller's conversations, newest first; ``everyone`` (trainer, admin): the whole team's."""
        if everyone and not role_allows(who.role, "trainer"):
            raise CoreError(403, f"{who.name} is an agent: the whole team's history needs the trainer role")
        return self.session.history.conversations(limit, owner=None if everyone else who.name)

    def messages(self, who: Identity, conversation_id: int) -> tuple[Conversation, list[StoredMessage]]:
        """A conversation this identity may read (``conversation_for``) and its messages."""
        conversation = self.conversation_for(who, conversation_id)
        return conversation, self.session.history.messages(conversation_id)

    def add_sent_answer(self, who: Identity, conversation_id: int, text: str, reason: str) -> int:
        """An answer the agent sent without asking (an approved answer offered as a suggestion), stored in
        their conversation as the embedded session stores it: kind 'approved', with why."""
        conversation = self.conversation_for(who, conversation_id)
        if conversation.owner != who.name:
            raise CoreError(403, f"conversation {conversation_id} belongs to another agent")
        return self.session.history.add_message(conversation_id, "assistant", text, kind="approved", reason=reason)

    def feedback(self, who: Identity, message_id: int, value: int) -> None:
        """Rate an answer (1, -1; 0 clears) in a conversation this identity may read."""
        history = self.session.history
        conversation_id = history.answer_conversation(message_id)
        if conversation_id is None:
            raise CoreError(404, f"no answer with id {message_id}")
        self.conversation_for(who, conversation_id)
        history.set_feedback(message_id, value)

    def export(self, rated_good_only: bool = False) -> list[dict[str, Any]]:
        """The history as JSONL chat records (``HistoryStore.export``), read whole."""
        return list(self.session.history.export(rated_good_only=rated_good_only))

    # -- answers -------------------------------------------------------------------------
    def begin(self, who: Identity, conversation_id: int | None, question: str, emit: Emit,
              history: list[Any] | None = None) -> AnswerRun:
        """Start answering on a thread; its first event is ``answer`` (the answer's id, its conversation).

        Refuses (CoreError) before anything is stored: an unknown or another agent's conversation,
        or a token with ``serve.streams_per_token`` answers already in progress (429); the count
        and the new run are one step under the lock, so concurrent asks cannot pass it together.
        With ``history`` (given turns), the answer is not stored and belongs to no conversation.
        """
        if history is not None:
            conversation_id = None
        elif conversation_id is not None:
            self.conversation_for(who, conversation_id)
        limit = self.settings.serve.streams_per_token
        with self._lock:
            mine = sum(1 for r in self._runs.values() if r.who.token_id == who.token_id)
            if mine >= limit:
                raise CoreError(429, f"{who.name} already has {mine} answer(s) in progress (limit {limit}): "
                                     "wait for one to finish or cancel it")
            run = AnswerRun(self, who, conversation_id, question, emit, history)
            self._runs[run.id] = run
        try:
            if history is None and conversation_id is None:
                run.conversation_id = self.new_conversation(who)
        except BaseException:
            self._finished(run)
            raise
        emit("answer", {"answer_id": run.id, "conversation_id": run.conversation_id})
        threading.Thread(target=run.run, name=f"answer-{run.id}", daemon=True).start()
        return run

    def _finished(self, run: AnswerRun) -> None:
        with self._lock:
            self._runs.pop(run.id, None)

    def cancel(self, who: Identity, answer_id: str) -> bool:
        with self._lock:
            run = self._runs.get(answer_id)
        if run is None:
            return False
        if run.who.token_id != who.token_id and not role_allows(who.role, "admin"):
            raise CoreError(403, "that answer was asked by another agent")
        run.cancel()
        return True

    # -- knowledge base ------------------------------------------------------------------
    def search(self, query: str, k: int | None = None, mode: Mode | None = None) -> SearchResult:
        """The KB's search (never waits behind the model)."""
        return self.session.kb.search(query, k=k, mode=mode)

    def kb_stats(self) -> KBStats:
        return self.session.kb.stats()

    def check_reload_free(self) -> None:
        """409 when a reload is running, this server's or another process's on the same KB (before a
        reload's stream opens)."""
        if self.reloading_by is not None or self.session.kb.reloading:
            raise CoreError(409, f"a reload started by {self.reloading_by or 'another process'} is running: "
                                 "its result shows on every status line when it is done")

    def claim_reload(self, who: Identity) -> Callable[[], None]:
        """``check_reload_free``, and with replicas the cluster's reload lock taken for ``who`` (409 naming
        who holds it), before a reload's stream opens; returns what gives it back after the reload."""
        self.check_reload_free()
        if self.cluster is None:
            return lambda: None
        from supportdesk.kb.cluster import ReloadHeld

        if not self._claim_lock.acquire(blocking=False):  # two admins on this replica at once
            raise CoreError(409, f"a reload started by {self._claimed_by or 'another admin'} on {self.replica} is "
                                 "running: its result shows on every status line when it is done")
        try:
            self.cluster.acquire(who.name)
        except ReloadHeld as exc:
            self._claim_lock.release()
            raise CoreError(409, str(exc)) from exc
        self._claimed_by = who.name
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                self.cluster.release()
                self._claimed_by = None
                self._claim_lock.release()
        return release

    def reload(self, who: Identity, progress: Callable[[Progress], None]) -> ReloadReport:
        """One reload at a time, server-wide: a second admin is told who is reloading."""
        if not self._reload_lock.acquire(blocking=False):
            raise CoreError(409, f"a reload started by {self.reloading_by or 'another admin'} is running: "
                                 "its result shows on every status line when it is done")
        try:
            self.reloading_by = who.name
            try:
                report = self.session.kb.reload(progress, by=who.name)
                if report.ok:
                    self.reloaded_by = who.name
                return report
            except ReloadInProgress as exc:
                raise CoreError(409, str(exc)) from exc
        finally:
            self.reloading_by = None
            self._reload_lock.release()

    # -- adapters --------------------------------------------------------------------------
    def adapters(self) -> dict[str, Any]:
        """The adapters on disk, the active one and the backend serving (``GET /v1/adapters``)."""
        status = self.session.status()
        return {"adapters": self.session.adapters(), "active": status.adapter, "backend": status.backend}

    def _check_activation(self, name: str) -> None:
        """The quality gate of 'adapter activate': evaluated, better than the base, not worse than the active one."""
        from supportdesk.models import find_adapter, read_active
        from supportdesk.models.base import ModelMissing
        from supportdesk.training.evaluate import ActivationRefused, check_activation

        try:
            candidate = find_adapter(self.settings.adapters_dir, name)
            active_name = read_active(self.settings.data_dir)
            active = None
            if active_name and active_name != name:
                try:
                    active = find_adapter(self.settings.adapters_dir, active_name)
                except ModelMissing:
                    active = None
            check_activation(candidate, active)
        except ModelMissing as exc:
            raise CoreError(404, str(exc)) from exc
        except ActivationRefused as exc:
            raise CoreError(409, f"{exc} (activate with force to serve it anyway; the current model keeps serving)") from exc

    def switch_model(self, backend: str | None, adapter: str | None, force: bool = False,
                     by: str | None = None) -> dict[str, Any]:
        if adapter not in (None, "none") and adapter not in self.session.adapters():
            raise CoreError(404, f"no adapter named {adapter!r} in {self.settings.adapters_dir}")
        if adapter not in (None, "none") and not force:
            self._check_activation(adapter)
        if not self._switch_lock.acquire(blocking=False):
            raise CoreError(409, "another model switch is in progress")
        try:
            self.session.switch_model(backend, adapter)
        except BackendError as exc:
            raise CoreError(503, f"{exc} (the previous model keeps serving)") from exc
        finally:
            self._switch_lock.release()
        self.model_changed_by = by
        if self.cluster is not None and adapter is not None:  # every replica follows
            self.cluster.set_adapter(None if adapter == "none" else adapter, by)
        return self.status()
