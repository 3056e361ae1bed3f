"""The team server's HTTP API (FastAPI): described by its OpenAPI schema at /openapi.json.

Streams (an answer, a reload, the status feed) are server-sent events; every other call is
JSON. Every route names the least role it needs; errors are ``{"detail": "..."}`` with a
message the TUI and the CLI show as is.
"""

# No "from __future__ import annotations": FastAPI reads the role dependencies (local aliases) at runtime.

import asyncio
import dataclasses
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from supportdesk import __version__
from supportdesk.history import HistoryError
from supportdesk.sanitize import clean_question
from supportdesk.server.core import CoreError, ServerCore
from supportdesk.server.tokens import ROLES, Identity, Role, TokenError, role_allows
from supportdesk.wire import conversation_to_json, message_to_json, report_to_json

API = "/v1"


class HistoryTurn(BaseModel):
    role: Literal["user", "assistant"]
    text: str


class AskRequest(BaseModel):
    question: str = Field(description="The customer's message.")
    conversation_id: int | None = Field(None, description="Continue this conversation; none starts a new one.")
    history: list[HistoryTurn] | None = Field(
        None, max_length=100,
        description="Answer as if after these turns (an evaluation: 'ask --conversations'). Nothing is stored; "
        "not with conversation_id.",
    )


class FeedbackRequest(BaseModel):
    value: int = Field(ge=-1, le=1, description="1 good, -1 bad, 0 clears.")


class ModelRequest(BaseModel):
    adapter: str | None = Field(None, description="Adapter name under adapters/, or 'none' for the bare base model.")
    backend: str | None = Field(None, description="embedded | ollama | openai (default: the one serving).")
    force: bool = Field(False, description="Activate an adapter that is unevaluated or worse than the base or the "
                                           "active one (refused with 409 otherwise).")


class TokenRequest(BaseModel):
    name: str
    role: str = Field(description="agent | trainer | admin")
    expires_days: float | None = None


def _event(name: str, data: dict[str, Any]) -> dict[str, str]:
    return {"event": name, "data": json.dumps(data, ensure_ascii=False)}


def _queue_events(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Queue[tuple[str, dict[str, Any]]],
                                                               Callable[[str, dict[str, Any]], None]]:
    """A queue of events and the thread-safe ``emit(name, data)`` that fills it."""
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    def emit(name: str, data: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (name, data))

    return queue, emit


async def _stream_queue(queue: asyncio.Queue[tuple[str, dict[str, Any]]], last: tuple[str, ...],
                        on_close: Callable[[], None] = lambda: None) -> AsyncIterator[dict[str, str]]:
    """Stream the queue's events until one named in ``last``; ``on_close`` when the client left before."""
    finished = False
    try:
        while True:
            name, data = await queue.get()
            yield _event(name, data)
            if name in last:
                finished = True
                return
    finally:
        if not finished:
            on_close()


def _thread_events(request: Request, work: Callable[[Callable[[str, dict[str, Any]], None]], None],
                   last: tuple[str, ...], on_close: Callable[[], None] = lambda: None) -> AsyncIterator[dict[str, str]]:
    """Run ``work(emit)`` on a thread; stream what it emits until an event named in ``last``."""
    queue, emit = _queue_events(asyncio.get_running_loop())

    async def stream() -> AsyncIterator[dict[str, str]]:
        threading.Thread(target=work, args=(emit,), daemon=True).start()
        async for event in _stream_queue(queue, last, on_close):
            yield event

    return stream()


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a request body grows past the limit (FastAPI answers 413)."""


class GuardedBodies:
    """Pure ASGI middleware in front of every route: a request to the API (``/v1/...``) is
    authenticated from its headers before a byte of its body is read (no token, a bad one:
    401 at once), and a body is counted as it arrives (chunked too, with or without
    Content-Length): past ``limit`` bytes it is refused with 413 without reading the rest.
    Both refusals close the connection, so the server reads nothing more of that body.
    """

    def __init__(self, app: ASGIApp, limit: int, authenticate: Callable[[str], Identity]) -> None:
        self.app = app
        self.limit = limit
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if scope["path"].startswith(f"{API}/"):
            try:
                who = await asyncio.to_thread(self.authenticate, headers.get("authorization", ""))
            except HTTPException as exc:
                await self._refuse(send, exc.status_code, exc.detail, exc.headers)
                return
            except HistoryError as exc:
                await self._refuse(send, 503, str(exc))
                return
            scope.setdefault("state", {})["identity"] = who
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.limit:
            await self._refuse(send, 413, self._too_large(f"request body of {int(length)} bytes"))
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(413, self._too_large(f"request body of more than {self.limit} bytes"),
                                       headers={"Connection": "close"})
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:  # read outside FastAPI's body parsing (a route reading the request itself)
            if started:
                raise
            await self._refuse(send, 413, exc.detail)

    def _too_large(self, what: str) -> str:
        return f"{what} is over the server's {self.limit // 1024} KiB limit (serve.max_body_kb)"

    @staticmethod
    async def _refuse(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        """Answer now, without reading the body, and close the connection (the rest is never read)."""
        body = json.dumps({"detail": detail}, ensure_ascii=False).encode()
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close"), *extra]})
        await send({"type": "http.response.body", "body": body})


def create_app(core: ServerCore) -> FastAPI:
    settings = core.settings
    app = FastAPI(title="supportdesk", version=__version__,
                  description="One supportdesk for a support team: ask, search, reload, adapters, history.")

    @app.exception_handler(CoreError)
    async def core_error(_: Request, exc: CoreError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(HistoryError)
    async def history_error(_: Request, exc: HistoryError) -> JSONResponse:
        """A history database that is unreachable or refuses: 503 with its message, the server keeps serving."""
        return JSONResponse({"detail": str(exc)}, status_code=503)

    def authenticate(header: str) -> Identity:
        """The caller named by an ``Authorization: Bearer`` header; 401 with the reason otherwise."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "no token: set SUPPORTDESK_TOKEN or pass --token (an admin creates one with "
                                     "'supportdesk serve token create --role agent --name NAME')",
                                headers={"WWW-Authenticate": "Bearer"})
        who = core.tokens.verify(token)
        if who is None:
            why = "expired" if core.tokens.expired(token) else "not recognised (revoked or mistyped)"
            raise HTTPException(401, f"token {why}: ask an admin for a new one", headers={"WWW-Authenticate": "Bearer"})
        return who

    # Before any route: the caller is known before the body is read, and the body is counted as it comes.
    app.add_middleware(GuardedBodies, limit=settings.serve.max_body_kb * 1024, authenticate=authenticate)

    def identity(request: Request) -> Identity:
        who = getattr(request.state, "identity", None)  # set by GuardedBodies for every API path
        return who if isinstance(who, Identity) else authenticate(request.headers.get("authorization", ""))

    def need(role: Role) -> Callable[[Identity], Identity]:
        what = {"agent": "asking", "trainer": "managing adapters and exporting the history",
                "admin": "reloading the knowledge base and managing tokens"}[role]

        def check(who: Annotated[Identity, Depends(identity)]) -> Identity:
            if not role_allows(who.role, role):
                raise HTTPException(403, f"{who.name} is {'an' if who.role[0] in 'aeiou' else 'a'} {who.role}: "
                                         f"{what} needs the {role} role")
            return who

        return check

    Agent = Annotated[Identity, Depends(need("agent"))]
    Trainer = Annotated[Identity, Depends(need("trainer"))]
    Admin = Annotated[Identity, Depends(need("admin"))]

    # -- status ----------------------------------------------------------------------------
    @app.get("/health", tags=["status"])
    def health() -> dict[str, Any]:
        """No token needed: for load balancers and the client's reconnect."""
        return {"ok": True, "version": __version__}

    @app.get(f"{API}/status", tags=["status"])
    def status(who: Agent) -> dict[str, Any]:
        return {**core.status(), "you": {"name": who.name, "role": who.role}}

    @app.get(f"{API}/events", tags=["status"])
    async def events(request: Request, who: Agent) -> EventSourceResponse:
        """The status (KB generation, adapter, queue), sent whenever it changes."""

        async def feed() -> AsyncIterator[dict[str, str]]:
            last = None
            while not core.stopping.is_set() and not await request.is_disconnected():
                now = await asyncio.to_thread(core.status)
                if now != last:
                    last = now
                    yield _event("status", now)
                await asyncio.sleep(0.25)

        return EventSourceResponse(feed(), ping=10)

    # -- asking ----------------------------------------------------------------------------
    @app.post(f"{API}/ask", tags=["answers"])
    async def ask(body: AskRequest, who: Agent) -> EventSourceResponse:
        """Events: answer (its id, for cancel), question, queued (questions ahead), route (decision,
        sources), text (pieces), done (the checked answer, citations, timings, message id) or error."""
        limit = settings.serve.max_message_chars
        if len(body.question) > limit:
            raise HTTPException(413, f"the question is {len(body.question)} characters: the limit is {limit}")
        question = clean_question(body.question)
        if not question:
            raise HTTPException(422, "the question is empty: type a message to ask")
        turns = None
        if body.history is not None:
            if body.conversation_id is not None:
                raise HTTPException(422, "give either conversation_id or history, not both")
            if sum(len(t.text) for t in body.history) > limit * 10:
                raise HTTPException(413, f"the history is over {limit * 10} characters")
            from supportdesk.answers.pipeline import Turn

            turns = [Turn(t.role, clean_question(t.text)) for t in body.history]
        # Refusals (unknown conversation, too many streams: 429) are plain HTTP errors, answered before the
        # stream opens and before anything is stored; the run is counted from here on.
        queue, emit = _queue_events(asyncio.get_running_loop())
        run = await asyncio.to_thread(core.begin, who, body.conversation_id, question, emit, history=turns)
        # The client went away: stop writing, free the model (what was written is stored, cancelled).
        return EventSourceResponse(_stream_queue(queue, ("done", "error"), run.cancel), ping=10)

    @app.post(f"{API}/answers/{{answer_id}}/cancel", tags=["answers"])
    def cancel(answer_id: str, who: Agent) -> dict[str, Any]:
        return {"cancelled": core.cancel(who, answer_id)}

    # -- knowledge base ----------------------------------------------------------------------
    @app.get(f"{API}/kb/search", tags=["kb"])
    def search(who: Agent, q: Annotated[str, Query(min_length=1, max_length=4000)],
               k: Annotated[int | None, Query(ge=1, le=100)] = None,
               mode: Annotated[str | None, Query(pattern="^(hybrid|dense|bm25)$")] = None) -> dict[str, Any]:
        """The same JSON as ``supportdesk kb search --json``; never waits behind the model."""
        query = clean_question(q)
        if not query:
            raise HTTPException(422, "the query is empty: give words to search for")
        result = core.session.kb.search(query, k=k, mode=mode)  # type: ignore[arg-type]
        return {"query": query, "hits": [dict(hit.to_json(), rank=i) for i, hit in enumerate(result.hits, start=1)],
                "timings_ms": result.timings.as_dict()}

    @app.get(f"{API}/kb/stats", tags=["kb"])
    def kb_stats(who: Agent) -> dict[str, Any]:
        """The same JSON as ``supportdesk kb stats --json``."""
        return dataclasses.asdict(core.session.kb.stats())

    @app.post(f"{API}/kb/reload", tags=["kb"])
    async def reload(request: Request, who: Admin) -> EventSourceResponse:
        """Events: progress (stage, done, total), then done (the report) or error. Answers in
        flight finish on the old generation; questions asked after it use the new one."""
        if core.reloading_by is not None or core.session.kb.reloading:
            raise HTTPException(409, f"a reload started by {core.reloading_by or 'another process'} is running: "
                                     "its result shows on every status line when it is done")

        def work(emit: Callable[[str, dict[str, Any]], None]) -> None:
            try:
                report = core.reload(who, lambda p: emit("progress", {"stage": p.stage, "done": p.done,
                                                                      "total": p.total, "detail": p.detail}))
            except CoreError as exc:
                emit("error", {"message": str(exc), "status": exc.status})
                return
            except Exception as exc:  # noqa: BLE001 - told to the admin; the old generation keeps serving
                emit("error", {"message": f"{type(exc).__name__}: {exc}", "status": 500})
                return
            emit("done", report_to_json(report))

        return EventSourceResponse(_thread_events(request, work, ("done", "error")), ping=10)

    # -- adapters ----------------------------------------------------------------------------
    @app.get(f"{API}/adapters", tags=["adapters"])
    def adapters(who: Agent) -> dict[str, Any]:
        status = core.session.status()
        return {"adapters": core.session.adapters(), "active": status.adapter, "backend": status.backend}

    @app.post(f"{API}/model", tags=["adapters"])
    def switch_model(body: ModelRequest, who: Trainer) -> dict[str, Any]:
        """Activate an adapter (or another backend) for everyone; the previous one serves until it is loaded."""
        return core.switch_model(body.backend, body.adapter, force=body.force)

    # -- history ---------------------------------------------------------------------------
    @app.get(f"{API}/conversations", tags=["history"])
    def conversations(who: Agent, limit: Annotated[int, Query(ge=1, le=100_000)] = 30,
                      everyone: bool = False) -> list[dict[str, Any]]:
        """The caller's conversations; ``everyone`` (trainer, admin): the whole team's."""
        if everyone and not role_allows(who.role, "trainer"):
            raise HTTPException(403, f"{who.name} is an agent: the whole team's history needs the trainer role")
        owner = None if everyone else who.name
        return [conversation_to_json(c) for c in core.session.history.conversations(limit, owner=owner)]

    @app.post(f"{API}/conversations", tags=["history"])
    def new_conversation(who: Agent) -> dict[str, Any]:
        return {"conversation_id": core.new_conversation(who)}

    @app.get(f"{API}/conversations/{{conversation_id}}", tags=["history"])
    def messages(conversation_id: int, who: Agent) -> dict[str, Any]:
        conversation = core.conversation_for(who, conversation_id)
        return {"conversation": conversation_to_json(conversation),
                "messages": [message_to_json(m) for m in core.session.history.messages(conversation_id)]}

    @app.post(f"{API}/messages/{{message_id}}/feedback", tags=["history"])
    def feedback(message_id: int, body: FeedbackRequest, who: Agent) -> dict[str, Any]:
        history = core.session.history
        rows = history._read("SELECT conversation_id FROM messages WHERE id = ? AND role = 'assistant'", (message_id,))
        if not rows:
            raise HTTPException(404, f"no answer with id {message_id}")
        core.conversation_for(who, int(rows[0]["conversation_id"]))
        history.set_feedback(message_id, body.value)
        return {"message_id": message_id, "feedback": body.value}

    @app.get(f"{API}/history/export", tags=["history"])
    def export(who: Trainer, rated_good_only: bool = False) -> StreamingResponse:
        """JSONL chat records for ``supportdesk adapter prepare``."""
        records = list(core.session.history.export(rated_good_only=rated_good_only))
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        return StreamingResponse(iter([body]), media_type="application/x-ndjson")

    # -- tokens ----------------------------------------------------------------------------
    @app.get(f"{API}/tokens", tags=["tokens"])
    def tokens(who: Admin) -> list[dict[str, Any]]:
        return core.tokens.list()

    @app.post(f"{API}/tokens", tags=["tokens"])
    def create_token(body: TokenRequest, who: Admin) -> dict[str, Any]:
        """The token is in this reply only; the server keeps its hash."""
        try:
            token = core.tokens.create(body.name, body.role, body.expires_days)
        except TokenError as exc:
            raise HTTPException(422, str(exc)) from exc
        return {"name": body.name, "role": body.role, "token": token}

    @app.delete(f"{API}/tokens/{{name}}", tags=["tokens"])
    def revoke_token(name: str, who: Admin) -> dict[str, Any]:
        if not core.tokens.revoke(name):
            raise HTTPException(404, f"no active token named {name!r}")
        return {"revoked": name}

    app.state.core = core
    app.state.roles = ROLES
    return app
