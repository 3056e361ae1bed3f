"""Conversation history: SQLite under the data dir, or a shared PostgreSQL, with one schema
(``schema``: the tables; Alembic revisions in ``migrations``) on both.

Every message keeps what an auditor needs: the route and its reason, the citations, the
timings, the model figures and the agent's 👍/👎. ``export`` writes conversations in the
JSONL chat format that ``supportdesk adapter prepare`` reads, so rated-good answers become
training data for the next adapter.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Executable, Table, bindparam, case, func, select, update

from supportdesk.history.approved import ApprovedAnswers
from supportdesk.history.engines import Engine, HistoryError, open_engine
from supportdesk.history.schema import conversations, messages, store_meta, tokens
from supportdesk.private import write_private_text


@dataclass
class StoredMessage:
    id: int
    conversation_id: int
    role: str
    content: str
    created_at: float
    kind: str | None = None
    reason: str | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    feedback: int = 0
    model: dict[str, Any] = field(default_factory=dict)
    abstained: bool = False
    asked_by: str | None = None
    """The agent whose question this is or answers (a team server's token name); None locally."""


@dataclass
class Conversation:
    id: int
    title: str
    created_at: float
    updated_at: float
    message_count: int = 0
    owner: str | None = None


PROBLEM_LOG = "history-problems.log"
"""Where, in the data dir, the long details of a damaged history are written."""


def _loads(text: Any, default: Any) -> Any:
    """A stored JSON column; a damaged value reads as empty instead of failing the whole read."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return default
    return value if isinstance(value, type(default)) else default


def move_aside(path: Path) -> Path:
    """Rename a broken history file (and its WAL/SHM) out of the way; returns the new name."""
    target = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target


# The store's statements, built once with bound parameters (SQLAlchemy compiles each once; in an
# UPDATE a parameter may not be named as a column).
_c, _m, _t = conversations.c, messages.c, tokens.c
_STORE_ID = select(store_meta.c.value).where(store_meta.c.key == "store_id")
_LANDED = {table.name: select(table.c.id).where(table.c.write_key == bindparam("key"))
           for table in (conversations, messages)}
"""The row an earlier try of a write made (its write key)."""
_RATE = update(messages).where(_m.id == bindparam("message_id"), _m.role == "assistant") \
    .values(feedback=bindparam("value"))
_TOUCH_CONVERSATION = update(conversations).where(_c.id == bindparam("conversation_id")).values(
    updated_at=bindparam("at"), title=case((_c.title == "", bindparam("first_question")), else_=_c.title))
"""A new message moves its conversation up; the first question titles it."""
_CONVERSATIONS = (select(_c.id, _c.title, _c.created_at, _c.updated_at, _c.owner, func.count(_m.id).label("n"))
                  .select_from(conversations.outerjoin(messages, _m.conversation_id == _c.id))
                  .group_by(_c.id).order_by(_c.updated_at.desc(), _c.id.desc()).limit(bindparam("limit")))
_CONVERSATIONS_OF = _CONVERSATIONS.where(_c.owner == bindparam("owner"))
_CONVERSATION = select(_c.id, _c.title, _c.created_at, _c.updated_at, _c.owner,
                       select(func.count()).where(_m.conversation_id == _c.id).scalar_subquery().label("n")) \
    .where(_c.id == bindparam("conversation_id"))
_MESSAGES = select(messages).where(_m.conversation_id == bindparam("conversation_id")).order_by(_m.id)
_ANSWER_CONVERSATION = select(_m.conversation_id).where(_m.id == bindparam("message_id"), _m.role == "assistant")
_TOKENS = select(tokens).order_by(_t.id)
_ACTIVE_TOKENS = _TOKENS.where(_t.revoked_at.is_(None))
_TOKEN_BY_HASH = select(tokens).where(_t.token_hash == bindparam("token_hash"))
_TOUCH_TOKEN = update(tokens).where(_t.id == bindparam("token_id")).values(last_used_at=bindparam("at"))
_REVOKE_TOKEN = update(tokens).where(_t.name == bindparam("token_name"), _t.revoked_at.is_(None)) \
    .values(revoked_at=bindparam("at"))


@dataclass
class _PendingWrite:
    """A write that met a locked database: kept in order, retried, never dropped."""

    kind: str  # "conversation" | "message" | "feedback"
    placeholder: int
    values: dict[str, Any]


class HistoryStore:
    """Thread-safe; the same behaviour on SQLite and PostgreSQL (``location``: a path or a URL).

    Writes that cannot go through now (a SQLite file locked by another program; a PostgreSQL
    server that is unreachable) are queued in memory in order, with placeholder (negative) ids,
    and retried every second until they go through; ``pending`` says how many wait, and
    ``close`` saves any still waiting beside the data as JSON lines. A damaged store raises
    ``HistoryError`` naming it, from opening and from every read.
    """

    busy_timeout_s = 2.0
    retry_every_s = 1.0

    def __init__(self, location: Path | str, *, pool_size: int = 10, connect_timeout_s: float = 2.0,
                 spill_dir: Path | None = None) -> None:
        self.location = str(location)
        self._lock = threading.RLock()
        self._pending: list[_PendingWrite] = []
        self._resolved: dict[int, int] = {}  # placeholder id -> real row id
        self._next_placeholder = -1
        self._retry: threading.Timer | None = None
        self._closed = False
        self.last_problem: str | None = None
        """Why the last write had to wait (the database unreachable, the file locked); None once written."""
        self.spill_dir = spill_dir
        try:
            self._engine: Engine = open_engine(self.location, pool_size, connect_timeout_s, self.busy_timeout_s)
        except HistoryError:
            raise
        except Exception as exc:
            raise self._damaged(exc) from exc
        self.path = Path(self.location) if self._engine.dialect == "sqlite" else None
        """The SQLite file (None for PostgreSQL)."""
        self.spill_dir = spill_dir or (self.path.parent if self.path and self.location != ":memory:" else None)
        try:
            self.upgraded_from = self._engine.upgrade()
            self.store_id = str(self._engine.read(_STORE_ID)[0]["value"])
        except HistoryError:
            self._engine.close()
            raise
        except self._engine.errors as exc:
            with contextlib.suppress(Exception):
                self._engine.close()
            raise self._damaged(exc) from exc

    @property
    def dialect(self) -> str:
        return self._engine.dialect

    @property
    def approved(self) -> ApprovedAnswers:
        """The approved answers, their questions and the proposals (issue 28)."""
        return ApprovedAnswers(self)

    @property
    def where(self) -> str:
        """The store named for people: the file, or the URL without a password."""
        return self._engine.location

    def _damaged(self, exc: BaseException) -> HistoryError:
        if getattr(self, "_engine", None) is not None and self._engine.dialect != "sqlite":
            if self._engine.transient(exc):
                return HistoryError(f"the history database {self.where} is unreachable ({_first_line(exc)}); "
                                    "what is written meanwhile is kept and saved when it is back")
            return HistoryError(f"the history database {self.where} refused a request: {_first_line(exc)}")
        details = getattr(exc, "details", None) or (str(exc) if "\n" in str(exc).strip() else None)
        log = self._log_problem(details) if details else None
        return HistoryError(
            f"the history file {self.location} is damaged or not a supportdesk history ({_first_line(exc)}"
            f"{f'; details in {log}' if log else ''}); "
            "move it aside with 'supportdesk history move-aside' (nothing is deleted) and a new one starts"
        )

    def _log_problem(self, details: str) -> Path | None:
        """A long report (SQLite's integrity check) appended to ``history-problems.log`` in the data
        dir, so the message stays one line; None when it cannot be written."""
        folder = self.spill_dir or (Path(self.location).parent if self.location != ":memory:" else None)
        if folder is None:
            return None
        log = folder / PROBLEM_LOG
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {self.location}:\n{details.rstrip()}\n\n")
        except OSError:
            return None
        return log

    @property
    def version(self) -> int:
        return self._engine.version()

    @property
    def pending(self) -> int:
        """Writes waiting for the database (a lock to clear, a server to come back)."""
        with self._lock:
            return len(self._pending)

    def close(self) -> Path | None:
        """Flush what waits (a few seconds' grace); anything still kept out is saved beside the
        data as JSON lines, never dropped. Returns that file, if one was written."""
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            if self._retry is not None:
                self._retry.cancel()
            deadline = time.monotonic() + 5.0
            while self._pending and time.monotonic() < deadline and not self._flush():
                time.sleep(0.2)
            leftover = None
            if self._pending and self.spill_dir is not None:
                leftover = self.spill_dir / f"history-unsaved-{time.strftime('%Y%m%dT%H%M%S')}.jsonl"
                write_private_text(leftover, "".join(
                    json.dumps({"kind": p.kind, "id": p.placeholder, **p.values}, ensure_ascii=False) + "\n"
                    for p in self._pending))
            self._engine.close()
            return leftover

    # -- writing ---------------------------------------------------------------------
    def _queue(self, kind: str, values: dict[str, Any]) -> int:
        placeholder = self._next_placeholder
        self._next_placeholder -= 1
        self._pending.append(_PendingWrite(kind, placeholder, values))
        self._schedule_retry()
        return placeholder

    def _schedule_retry(self) -> None:
        if self._closed:
            return
        if self._retry is None or not self._retry.is_alive():
            self._retry = threading.Timer(self.retry_every_s, self._retry_flush)
            self._retry.daemon = True
            self._retry.start()

    def _retry_flush(self) -> None:
        if not self._engine.ping():  # outside the lock: a database that is still down blocks nobody
            with self._lock:
                self._retry = None
                self._schedule_retry()
            return
        with self._lock:
            self._retry = None
            try:
                done = self._flush()
            except HistoryError:
                done = False
            if self._pending and not done:
                self._schedule_retry()

    def flush(self) -> bool:
        """Write what waits now; True when nothing is left waiting."""
        with self._lock:
            return self._flush()

    def _flush(self) -> bool:
        while self._pending:
            item = self._pending[0]
            try:
                real = self._apply(item.kind, item.values)
            except self._engine.errors as exc:
                if self._engine.transient(exc):
                    self.last_problem = _first_line(exc)
                    return False
                raise self._damaged(exc) from exc
            self._resolved[item.placeholder] = real
            self._pending.pop(0)
        self.last_problem = None
        return True

    def _real(self, row_id: int) -> int:
        return self._resolved.get(row_id, row_id)

    def _apply(self, kind: str, v: dict[str, Any]) -> int:
        with self._engine.transaction() as tx:
            if kind == "conversation":
                new_id = tx.insert(conversations, {"title": v["title"], "created_at": v["at"], "updated_at": v["at"],
                                                   "owner": v.get("owner"), "write_key": v["key"]},
                                   on_conflict=["write_key"])
                return new_id if new_id is not None else self._landed(tx, conversations, v["key"])
            if kind == "feedback":
                tx.update(_RATE, {"value": v["value"], "message_id": self._real(v["message_id"])})
                return 0
            conversation_id = self._real(v["conversation_id"])
            row_id = tx.insert(messages, {
                "conversation_id": conversation_id, "role": v["role"], "content": v["content"], "created_at": v["at"],
                "kind": v["kind"], "reason": v["reason"], "citations": json.dumps(v["citations"]),
                "timings": json.dumps(v["timings"]), "model": json.dumps(v["model"]), "abstained": int(v["abstained"]),
                "asked_by": v.get("asked_by"), "write_key": v["key"],
            }, on_conflict=["write_key"])
            if row_id is None:  # an earlier try of this very write landed (its commit's answer was lost)
                return self._landed(tx, messages, v["key"])
            title = v["content"][:80] if v["role"] == "user" else ""  # a conversation is titled by its first question
            tx.update(_TOUCH_CONVERSATION, {"at": v["at"], "first_question": title, "conversation_id": conversation_id})
            return row_id

    @staticmethod
    def _landed(tx: Any, table: Table, key: str) -> int:
        return int(tx.execute(_LANDED[table.name], {"key": key})[0]["id"])

    def _write(self, kind: str, values: dict[str, Any]) -> int:
        values.setdefault("key", uuid.uuid4().hex)  # the same key on every retry of this write
        with self._lock:
            # Keep the order: nothing overtakes a queued write. A locked SQLite file is tried again at
            # once; a database server that was down is left to the retry timer (it pings first).
            if self._pending and (self.dialect != "sqlite" or not self._flush()):
                return self._queue(kind, values)
        try:  # outside the lock: PostgreSQL takes writers side by side (SQLite's engine serialises them)
            try:
                return self._apply(kind, values)
            except self._engine.errors as exc:
                if not self._engine.stale(exc):
                    raise
                return self._apply(kind, values)  # a connection dropped by a restarted server: once more
        except self._engine.errors as exc:
            if self._engine.transient(exc):
                with self._lock:
                    self.last_problem = _first_line(exc)
                    return self._queue(kind, values)
            raise self._damaged(exc) from exc

    def new_conversation(self, title: str = "", owner: str | None = None) -> int:
        return self._write("conversation", {"title": title[:120], "at": time.time(), "owner": owner})

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        *,
        kind: str | None = None,
        reason: str | None = None,
        citations: list[dict[str, Any]] | None = None,
        timings: dict[str, float] | None = None,
        model: dict[str, Any] | None = None,
        abstained: bool = False,
        asked_by: str | None = None,
    ) -> int:
        """The new message's id; negative while it waits for the database (see ``pending``)."""
        return self._write("message", {
            "conversation_id": conversation_id, "role": role, "content": content, "at": time.time(), "kind": kind,
            "reason": reason, "citations": citations or [], "timings": timings or {}, "model": model or {},
            "abstained": abstained, "asked_by": asked_by,
        })

    def set_feedback(self, message_id: int, value: int) -> None:
        if value not in (-1, 0, 1):
            raise ValueError("feedback is -1, 0 or 1")
        self._write("feedback", {"message_id": message_id, "value": value})

    # -- reading ---------------------------------------------------------------------
    def _read(self, statement: Executable, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        try:
            return self._engine.read(statement, params)
        except self._engine.errors as exc:
            if self._engine.transient(exc) and self._engine.dialect == "sqlite":
                return []  # a reader locked out sees what is in memory; nothing is lost
            raise self._damaged(exc) from exc

    def conversations(self, limit: int = 100, owner: str | None = None) -> list[Conversation]:
        """Newest first; with ``owner``, only that agent's conversations (a team server's agents)."""
        rows = self._read(_CONVERSATIONS, {"limit": limit}) if owner is None \
            else self._read(_CONVERSATIONS_OF, {"limit": limit, "owner": owner})
        found = [Conversation(r["id"], r["title"] or "", r["created_at"], r["updated_at"], r["n"], r["owner"])
                 for r in rows]
        with self._lock:
            waiting = [Conversation(p.placeholder, p.values["title"], p.values["at"], p.values["at"], 0,
                                    p.values.get("owner"))
                       for p in self._pending if p.kind == "conversation"
                       and (owner is None or p.values.get("owner") == owner)]
        return (waiting[::-1] + found)[:limit]

    def conversation(self, conversation_id: int) -> Conversation | None:
        """One conversation (its owner decides who may read it on a team server)."""
        with self._lock:
            for p in self._pending:
                if p.kind == "conversation" and p.placeholder == conversation_id:
                    return Conversation(p.placeholder, p.values["title"], p.values["at"], p.values["at"], 0,
                                        p.values.get("owner"))
            real = self._real(conversation_id)
        rows = self._read(_CONVERSATION, {"conversation_id": real})
        if not rows:
            return None
        r = rows[0]
        return Conversation(conversation_id, r["title"] or "", r["created_at"], r["updated_at"], r["n"], r["owner"])

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        with self._lock:
            real = self._real(conversation_id)
        rows = self._read(_MESSAGES, {"conversation_id": real}) if real > 0 else []
        out = [self._message(r) for r in rows]
        with self._lock:
            for p in self._pending:
                if p.kind == "message" and self._real(p.values["conversation_id"]) == real:
                    v = p.values
                    out.append(StoredMessage(p.placeholder, conversation_id, v["role"], v["content"], v["at"], v["kind"],
                                             v["reason"], v["citations"], v["timings"], 0, v["model"], v["abstained"],
                                             v.get("asked_by")))
        return out

    def answer_conversation(self, message_id: int) -> int | None:
        """The conversation of the stored answer ``message_id``; None for a question's id, an unknown id,
        or an answer still waiting for the database (its id is negative until it is written)."""
        rows = self._read(_ANSWER_CONVERSATION, {"message_id": message_id})
        return int(rows[0]["conversation_id"]) if rows else None

    def latest_conversation(self, owner: str | None = None) -> int | None:
        found = self.conversations(limit=1, owner=owner)
        return found[0].id if found else None

    @staticmethod
    def _message(row: dict[str, Any]) -> StoredMessage:
        return StoredMessage(
            id=row["id"], conversation_id=row["conversation_id"], role=row["role"], content=row["content"] or "",
            created_at=row["created_at"], kind=row["kind"], reason=row["reason"],
            citations=_loads(row["citations"], []), timings=_loads(row["timings"], {}),
            feedback=row["feedback"] or 0, model=_loads(row["model"], {}), abstained=bool(row["abstained"]),
            asked_by=row["asked_by"],
        )

    # -- the team server's role tokens (hashes only) ---------------------------------------
    def token_rows(self, include_revoked: bool = False) -> list[dict[str, Any]]:
        return self._read(_TOKENS if include_revoked else _ACTIVE_TOKENS)

    def add_token(self, name: str, role: str, token_hash: str, expires_at: float | None) -> None:
        """Raises ValueError when an active token already has that name."""
        try:
            with self._engine.transaction() as tx:
                tx.insert(tokens, {"name": name, "role": role, "token_hash": token_hash, "created_at": time.time(),
                                   "expires_at": expires_at})
        except self._engine.errors as exc:
            if self._engine.integrity(exc):
                raise ValueError(f"a token named {name!r} already exists: revoke it first, or pick another name") from exc
            raise self._damaged(exc) from exc

    def token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        rows = self._read(_TOKEN_BY_HASH, {"token_hash": token_hash})
        return rows[0] if rows else None

    def touch_token(self, token_id: int) -> None:
        with contextlib.suppress(*self._engine.errors), self._engine.transaction() as tx:  # only delays 'last used'
            tx.update(_TOUCH_TOKEN, {"at": time.time(), "token_id": token_id})

    def revoke_token(self, name: str) -> bool:
        try:
            with self._engine.transaction() as tx:
                return tx.update(_REVOKE_TOKEN, {"at": time.time(), "token_name": name}) > 0
        except self._engine.errors as exc:
            raise self._damaged(exc) from exc

    def export(self, rated_good_only: bool = False) -> Iterator[dict[str, Any]]:
        """JSONL chat records ({"messages": [...], "metadata": {...}}) for ``adapter prepare``.

        With ``rated_good_only`` (training data: only what a person approved), each approved answer
        becomes one record per question it answers, and each 👍 reply, a hand-off included, one record: the conversation up to and including that reply,
        where the customer's turns are kept as context but an earlier reply is an agent turn only
        if it was rated 👍 too (``adapter prepare`` learns every agent turn of a record).
        Without it, every conversation whole, as stored, each reply with its rating (``feedback``):
        ``adapter prepare`` learns only the replies rated 👍 from it.
        """
        for conversation in sorted(self.conversations(limit=1_000_000), key=lambda c: c.id):
            messages = self.messages(conversation.id)
            if not rated_good_only:
                if messages:  # each reply says how it was rated: 'adapter prepare' learns only the 👍 ones
                    yield {"messages": [{"role": m.role, "content": m.content}
                                        | ({"feedback": m.feedback} if m.role == "assistant" else {})
                                        for m in messages],
                           "metadata": {"conversation": conversation.id, "source": "supportdesk-history"}}
                continue
            turns: list[dict[str, str]] = []
            for message in messages:
                if message.role != "assistant":
                    turns.append({"role": message.role, "content": message.content})
                elif message.feedback > 0:
                    turns.append({"role": "assistant", "content": message.content})
                    yield {"messages": list(turns), "metadata": {"conversation": conversation.id, "message": message.id,
                                                                 "route": message.kind, "source": "supportdesk-history"}}
        if rated_good_only:  # approved answers: a trainer approved each, for every question it answers
            for answer in self.approved.all():
                for question in answer.questions:
                    yield {"messages": [{"role": "user", "content": question.question},
                                        {"role": "assistant", "content": answer.answer}],
                           "metadata": {"approved_id": answer.id, "route": "approved", "source": "supportdesk-approved"}}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
