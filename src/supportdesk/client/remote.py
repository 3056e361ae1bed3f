"""A team server's client with the embedded session's interface (see ``supportdesk.session``).

The TUI and the CLI call the same methods whether they run the core in-process or talk to
``supportdesk serve`` (the ``Session`` protocol, ``supportdesk.session_protocol``): ``ask``
returns an answer to iterate for text whose ``outcome`` is the same ``AskResult``;
``reload_kb`` returns the same ``ReloadReport``, ``kb_stats`` the same ``KBStats``. The status line is
fed by the server's event stream (a reload or an adapter switch shows within a second); when
the server goes away, ``status().connection`` says so and the stream reconnects with backoff.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from httpx_sse import EventSource

from supportdesk.answers.pipeline import AnswerResult
from supportdesk.history import Conversation, HistoryError, StoredMessage
from supportdesk.kb.index import KBStats, Progress, ReloadInProgress, ReloadReport
from supportdesk.models.base import BackendError, BackendUnavailable
from supportdesk.session_protocol import AskResult, SessionStatus
from supportdesk.settings import Settings, redact_url
from supportdesk.wire import (
    conversation_from_json,
    message_from_json,
    report_from_json,
    result_from_json,
    stats_from_json,
    status_from_json,
)

if TYPE_CHECKING:
    from supportdesk.answers.conversation import Turn

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0  # the server pings every 10 s on a stream
BACKOFF_S = (1.0, 2.0, 4.0, 8.0)
PROBE_EVERY_S = 1.0
"""While waiting to reconnect, a cheap unauthenticated ``/health`` probe this often: a server that
is back is reconnected to at once instead of at the end of the wait."""


class ServerError(BackendError):
    """The server refused or failed a request; the message is the server's own."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ServerUnreachable(BackendUnavailable):
    """No answer from the server (down, restarting, wrong URL)."""


def _detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, list):  # FastAPI's validation errors: name the field
        return "; ".join(f"{'.'.join(str(x) for x in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail)
    return str(detail or data)


class RemoteAnswer:
    """An answer streamed from the server: iterate for text; ``result`` is complete at the end,
    ``outcome`` (the answer as the server stored it) too."""

    result: AnswerResult
    on_wait: Callable[[int], None] | None
    outcome: AskResult | None

    def __init__(self, session: RemoteSession, question: str, conversation_id: int | None) -> None:
        self._session = session
        self._conversation_id = conversation_id
        self.history: list[dict[str, str]] | None = None
        self.result = AnswerResult(question=question, query=question)
        self.message_id: int | None = None
        self.outcome: AskResult | None = None
        self.answer_id: str | None = None
        self.on_wait: Callable[[int], None] | None = None
        """Called with the number of questions ahead while the answer waits for the model."""
        self._cancelled = False
        self.done = False

    def cancel(self) -> None:
        self._cancelled = True
        if self.answer_id is not None:  # the server stops writing and sends what it has, cancelled
            threading.Thread(target=self._session._quiet_post, args=(f"/v1/answers/{self.answer_id}/cancel",),
                             daemon=True).start()

    def run(self, on_text: Callable[[str], None] | None = None) -> AnswerResult:
        for piece in self:
            if on_text is not None:
                on_text(piece)
        return self.result

    def _apply(self, event: str, data: dict[str, Any]) -> str | None:
        result = self.result
        if event == "answer":
            self.answer_id = data["answer_id"]
            self._session.conversation_id = data["conversation_id"]
            if self._cancelled:
                self.cancel()
        elif event == "queued" and self.on_wait is not None:
            self.on_wait(int(data["ahead"]))
        elif event == "route":
            routed = result_from_json({**data, "question": result.question})
            result.kind, result.decision, result.query = routed.kind, routed.decision, routed.query
            result.citations, result.other_hits, result.follow_up = routed.citations, routed.other_hits, routed.follow_up
            result.answerability = routed.answerability
        elif event == "text":
            result.streamed += data["text"]
            return str(data["text"])
        elif event == "done":
            self.result = result_from_json(data["result"])
            self.message_id = data["message_id"]
            self.outcome = AskResult(self.result, self.message_id, data.get("conversation_id"))
        elif event == "error":
            raise ServerError(int(data.get("status", 500)), data["message"])
        return None

    def __iter__(self) -> Iterator[str]:
        session = self._session
        body: dict[str, Any] = {"question": self.result.question, "conversation_id": self._conversation_id}
        if self.history is not None:
            body["history"] = self.history
        pieces = 0
        try:
            with session._http.stream("POST", "/v1/ask", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ServerError(response.status_code, _detail(response))
                for sse in EventSource(response).iter_sse():
                    if not sse.event or sse.event == "ping" or not sse.data:
                        continue
                    piece = self._apply(sse.event, json.loads(sse.data))
                    if piece:
                        pieces += 1
                        yield piece
                    if sse.event == "done":
                        return
        except httpx.TransportError as exc:
            if pieces:
                raise ServerUnreachable(f"the connection to {session.shown_url} was lost mid-answer after {pieces} "
                                        "piece(s); the server keeps what was written") from exc
            raise session._unreachable(exc) from exc
        finally:
            self.done = True
        raise ServerUnreachable(f"the server at {session.shown_url} ended the answer without finishing it")


class RemoteHistory:
    """The conversation history as the TUI reads it (the server's, this agent's part)."""

    pending = 0  # writes never wait on this side: the server stores them

    def __init__(self, session: RemoteSession) -> None:
        self._session = session

    def conversations(self, limit: int = 100, everyone: bool = False) -> list[Conversation]:
        rows = self._session._call("GET", "/v1/conversations", params={"limit": limit, "everyone": everyone})
        return [conversation_from_json(r) for r in rows]

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        data = self._session._call("GET", f"/v1/conversations/{conversation_id}")
        return [message_from_json(m) for m in data["messages"]]

    def latest_conversation(self) -> int | None:
        found = self.conversations(limit=1)
        return found[0].id if found else None

    def set_feedback(self, message_id: int, value: int) -> None:
        self._session._call("POST", f"/v1/messages/{message_id}/feedback", json={"value": value})

    def export(self, rated_good_only: bool = False) -> Iterator[dict[str, Any]]:
        response = self._session._request("GET", "/v1/history/export", params={"rated_good_only": rated_good_only})
        for line in response.text.splitlines():
            if line.strip():
                yield json.loads(line)

    def close(self) -> None:
        return None


class RemoteTokens:
    """A team server's tokens (admin), with the local ``TokenStore``'s methods."""

    def __init__(self, session: RemoteSession) -> None:
        self._session = session

    def create(self, name: str, role: str = "agent", expires_days: float | None = None) -> str:
        data = self._session._call("POST", "/v1/tokens", json={"name": name, "role": role,
                                                                "expires_days": expires_days})
        return str(data["token"])

    def list(self) -> list[dict[str, Any]]:
        return list(self._session._call("GET", "/v1/tokens"))

    def revoke(self, name: str) -> bool:
        self._session._call("DELETE", f"/v1/tokens/{quote(name, safe='')}")
        return True  # an unknown name is refused by the server (its message says so)


class RemoteApproved:
    """Approved answers through the team server: the methods of ``answers.approved.SessionApproved``."""

    def __init__(self, session: RemoteSession) -> None:
        self._session = session

    def propose(self, message_id: int, text: str) -> int:
        return int(self._session._call("POST", "/v1/proposals", json={"message_id": message_id, "text": text})["proposal_id"])

    def propose_text(self, question: str, text: str, draft: str = "") -> int:
        return int(self._session._call("POST", "/v1/proposals", json={"question": question, "text": text})["proposal_id"])

    def accept_suggestion(self, answer_id: int, question: str) -> bool:
        return bool(self._session._call("POST", f"/v1/approved/{answer_id}/questions", json={"question": question})["added"])

    def proposals(self, status: str | None = "pending") -> list[Any]:
        from supportdesk.history.approved import Proposal

        rows = self._session._call("GET", "/v1/proposals", params={"status": status or "all"})
        return [Proposal(**row) for row in rows]

    def accept(self, proposal_id: int, text: str | None = None) -> int:
        return int(self._session._call("POST", f"/v1/proposals/{proposal_id}/accept", json={"text": text})["answer_id"])

    def reject(self, proposal_id: int) -> None:
        self._session._call("POST", f"/v1/proposals/{proposal_id}/reject")

    def all(self) -> list[Any]:
        return [_approved_from_json(row) for row in self._session._call("GET", "/v1/approved")]

    def get(self, answer_id: int) -> Any:
        try:
            return _approved_from_json(self._session._call("GET", f"/v1/approved/{answer_id}"))
        except ServerError as exc:
            if exc.status == 404:
                return None
            raise

    def remove(self, answer_id: int) -> bool:
        try:
            self._session._call("DELETE", f"/v1/approved/{answer_id}")
        except ServerError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def import_rows(self, rows: list[Any]) -> list[tuple[int, bool]]:
        body = {"rows": [{"question": r.question, "answer": r.answer, "id": r.key, "sources": r.sources,
                          "questions": r.questions} for r in rows]}
        data = self._session._call("POST", "/v1/approved/import", json=body)
        return [(int(r["id"]), bool(r["created"])) for r in data["rows"]]


def _approved_from_json(data: dict[str, Any]) -> Any:
    from supportdesk.history.approved import ApprovedAnswer, ApprovedQuestion

    values = dict(data)
    values["questions"] = [ApprovedQuestion(**q) for q in data.get("questions", [])]
    return ApprovedAnswer(**values)


class RemoteSession:
    """A team server's client (``supportdesk.session_protocol.Session``)."""

    is_remote = True
    """A team server's client: the app builds nothing locally (no sample adapter, no index)."""
    can_train = False
    can_move_history = False
    indexing = False
    """The server builds its own index before it serves: nothing waits for one here."""

    def __init__(self, settings: Settings, url: str, token: str | None) -> None:
        self.settings = settings
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, follow_redirects=False,
                                  timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
        self.history = RemoteHistory(self)
        self.tokens = RemoteTokens(self)
        self.approved = RemoteApproved(self)
        self.conversation_id: int | None = None
        self.history_problem: str | None = None
        self.you: dict[str, str] = {}
        self.on_status_change: Callable[[], None] | None = None
        self._status: SessionStatus | None = None
        self._extra: dict[str, Any] = {}
        self._connection: str | None = None
        self._retry_at: float | None = None  # monotonic time of the next reconnect, while the feed is down
        self._stop = threading.Event()
        self._events: threading.Thread | None = None
        self._feed: httpx.Response | None = None

    @property
    def shown_url(self) -> str:
        """The server's URL fit to print: a password in it is replaced by *** (as history.url's is)."""
        return redact_url(self.url)

    def masked(self, text: str) -> str:
        """``text`` with the URL's password, wherever it appears, replaced by ***."""
        from urllib.parse import urlsplit

        try:
            password = urlsplit(self.url).password
        except ValueError:
            password = None
        text = text.replace(self.url, self.shown_url)
        return text.replace(password, "***") if password else text

    # -- requests ------------------------------------------------------------------------
    def _unreachable(self, exc: Exception) -> ServerUnreachable:
        return ServerUnreachable(self.masked(f"cannot reach the supportdesk server at {self.shown_url} "
                                             f"({type(exc).__name__}: {exc}); is 'supportdesk serve' running there?"))

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise ServerError(response.status_code, _detail(response))
        return response

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _quiet_post(self, path: str) -> None:
        try:
            self._http.post(path)
        except httpx.HTTPError:
            pass  # the stream's own end says what happened

    def _stream(self, path: str, on_event: Callable[[str, dict[str, Any]], None], last: tuple[str, ...]) -> None:
        try:
            with self._http.stream("POST", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ServerError(response.status_code, _detail(response))
                for sse in EventSource(response).iter_sse():
                    if sse.event and sse.data:
                        on_event(sse.event, json.loads(sse.data))
                        if sse.event in last:
                            return
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        raise ServerUnreachable(f"the server at {self.shown_url} ended the stream early")

    # -- start-up and status ---------------------------------------------------------------
    def start(self, progress: Callable[[str], None] = lambda s: None, build_missing_index: bool = True,
              index_in_background: bool = False) -> None:
        progress(f"connecting to {self.shown_url}")
        self._take_status(self._call("GET", "/v1/status"))
        self._events = threading.Thread(target=self._follow_events, name="server-events", daemon=True)
        self._events.start()
        progress("ready")

    def _take_status(self, data: dict[str, Any]) -> None:
        self.you = data.pop("you", self.you) or self.you
        self._status = status_from_json(data)
        self._extra = data
        self._connection = None
        if self.on_status_change is not None:
            self.on_status_change()

    def _follow_events(self) -> None:
        """Keep the status current from the server's feed; reconnect with backoff when it drops."""
        failures = 0
        while not self._stop.is_set():
            try:
                with self._http.stream("GET", "/v1/events") as response:
                    self._feed = response
                    if response.status_code >= 400:
                        response.read()
                        raise ServerError(response.status_code, _detail(response))
                    for sse in EventSource(response).iter_sse():
                        if self._stop.is_set():
                            return
                        if sse.event == "status" and sse.data:
                            failures = 0
                            self._take_status(json.loads(sse.data))
            except Exception as exc:  # noqa: BLE001 - any failure of the feed: shown, retried
                if self._stop.is_set():
                    return
                delay = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
                failures += 1
                refused = isinstance(exc, ServerError)
                self._connection = str(exc) if refused else "server unreachable"
                self._retry_at = time.monotonic() + delay
                if self.on_status_change is not None:
                    self.on_status_change()
                self._wait_to_reconnect(probe=not refused)  # a refusal comes from a server that is up
                self._retry_at = None
            else:
                if not self._stop.is_set():
                    self._connection = "server closed the status feed — reconnecting"
                    self._stop.wait(BACKOFF_S[0])

    def _wait_to_reconnect(self, probe: bool) -> None:
        """Until ``_retry_at``; with ``probe``, cut short as soon as the server answers ``/health``."""
        while not self._stop.is_set() and self._retry_at is not None:
            left = self._retry_at - time.monotonic()
            if left <= 0 or self._stop.wait(min(PROBE_EVERY_S, left)):
                return
            if probe and self._server_answers():
                return

    def _server_answers(self) -> bool:
        try:
            return self._http.get("/health", timeout=httpx.Timeout(2.0, connect=1.0)).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def index_error(self) -> str | None:
        return self._extra.get("index_error")

    @property
    def reloaded_by(self) -> str | None:
        """Who started the reload that made the serving KB generation (the server's word)."""
        return self._extra.get("reloading_by") or self._extra.get("reloaded_by")

    @property
    def role(self) -> str | None:
        return self.you.get("role")

    def index_note(self) -> str:
        return ""

    def index_missing(self) -> str | None:
        return None

    def fetch_status(self) -> SessionStatus:
        """The server's status now (read once, without following its feed)."""
        self._take_status(self._call("GET", "/v1/status"))
        return self.status()

    def connection_line(self) -> str | None:
        """Why the server cannot be reached, counting down to the next try; None while connected."""
        why, retry_at = self._connection, self._retry_at
        if why is None or retry_at is None:
            return why
        left = math.ceil(retry_at - time.monotonic())
        return f"{why} — retrying in {left} s" if left > 0 else f"{why} — reconnecting…"

    def status(self) -> SessionStatus:
        base = self._status or SessionStatus("server", "connecting…", None, 0, None, None, False)
        return SessionStatus(**{**base.__dict__, "connection": self.connection_line()})

    # -- conversations -----------------------------------------------------------------------
    def new_conversation(self) -> int:
        self.conversation_id = int(self._call("POST", "/v1/conversations")["conversation_id"])
        return self.conversation_id

    def open_conversation(self, conversation_id: int) -> list[StoredMessage]:
        messages = self.history.messages(conversation_id)
        self.conversation_id = conversation_id
        return messages

    def preview(self) -> list[StoredMessage]:
        """Nothing before ``start``: the server's history is read by the start-up worker, not the UI."""
        return []

    def resume_latest(self) -> list[StoredMessage]:
        latest = self.history.latest_conversation()
        if latest is None:
            self.conversation_id = None  # the server starts one with the first question
            return []
        return self.open_conversation(latest)

    def conversations(self, limit: int = 100, everyone: bool = False) -> list[Conversation]:
        """This agent's conversations, newest first; ``everyone`` (trainer, admin): the whole team's."""
        return self.history.conversations(limit, everyone=everyone)

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        return self.history.messages(conversation_id)

    @property
    def pending_writes(self) -> int:
        return 0  # the server stores every write; nothing waits here

    def add_sent_answer(self, text: str, reason: str) -> int | None:
        """Stored in this agent's conversation on the server (the accepted wording is learned there by
        ``approved.accept_suggestion``)."""
        if self.conversation_id is None:
            return None
        data = self._call("POST", f"/v1/conversations/{self.conversation_id}/sent", json={"text": text, "reason": reason})
        return int(data["message_id"])

    def move_history_aside(self) -> str:
        raise HistoryError("the history is the team server's: there is no file here to move aside")

    def ask(self, message: str, history: list[Turn] | None = None) -> RemoteAnswer:
        """The server's answer; with ``history`` (turns), answered after them and stored nowhere."""
        from supportdesk.answers.pipeline import EmptyQuestion
        from supportdesk.sanitize import clean_question

        if not clean_question(message):
            raise EmptyQuestion("the question is empty: type a message to ask")
        answer = RemoteAnswer(self, message, None if history is not None else self.conversation_id)
        if history is not None:
            answer.history = [{"role": t.role, "text": t.content} for t in history]
        return answer

    def feedback(self, message_id: int, value: int) -> None:
        self.history.set_feedback(message_id, value)

    # -- commands ----------------------------------------------------------------------------
    def reload_kb(self, progress: Callable[[Progress], None] | None = None) -> ReloadReport:
        found: dict[str, Any] = {}

        def on_event(event: str, data: dict[str, Any]) -> None:
            if event == "progress" and progress is not None:
                progress(Progress(data["stage"], data["done"], data["total"], data.get("detail", "")))
            elif event == "done":
                found["report"] = report_from_json(data)
            elif event == "error":
                raise ServerError(int(data.get("status", 500)), data["message"])

        try:
            self._stream("/v1/kb/reload", on_event, ("done", "error"))
        except ServerError as exc:
            if exc.status == 409:
                raise ReloadInProgress(str(exc)) from exc
            raise
        return found["report"]

    def adapters(self) -> list[str]:
        return list(self._call("GET", "/v1/adapters")["adapters"])

    def switch_model(self, backend: str | None = None, adapter: str | None = None, force: bool = False) -> SessionStatus:
        data = self._call("POST", "/v1/model", json={"backend": backend, "adapter": adapter, "force": force})
        self._take_status(data)
        return self.status()

    def search(self, query: str, k: int | None = None, mode: str | None = None) -> dict[str, Any]:
        """The server's search, the same JSON as ``SupportSession.search`` (``wire.search_to_json``)."""
        params: dict[str, Any] = {"q": query}
        if k is not None:
            params["k"] = k
        if mode is not None:
            params["mode"] = mode
        return dict(self._call("GET", "/v1/kb/search", params=params))

    def insights(self, since: float | None = None, agent: str | None = None, top_gaps: int = 5) -> dict[str, Any]:
        """The server's insights: the team's (trainer, admin) or this agent's own; ``agent`` is the server's call."""
        params: dict[str, Any] = {"top_gaps": top_gaps}
        if since is not None:
            params["since"] = _iso(since)
        return dict(self._call("GET", "/v1/insights", params=params))

    def gaps(self, since: float | None = None, agent: str | None = None, top: int | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {}
        if since is not None:
            params["since"] = _iso(since)
        if top is not None:
            params["top"] = top
        return list(self._call("GET", "/v1/gaps", params=params))

    def kb_stats(self) -> KBStats:
        return stats_from_json(self._call("GET", "/v1/kb/stats"))

    def close(self) -> str | None:
        self._stop.set()
        if self._feed is not None:
            try:
                self._feed.close()  # ends the feed thread's read at once
            except Exception:  # noqa: BLE001, S110 - closing a stream another thread reads: best effort
                pass
        self._http.close()
        return None


def _iso(at: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat()
