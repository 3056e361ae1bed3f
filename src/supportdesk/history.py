"""Conversation history in SQLite under the data dir, with versioned schema upgrades.

Every message keeps what an auditor needs: the route and its reason, the citations, the
timings, the model figures and the agent's 👍/👎. ``export`` writes conversations in the
JSONL chat format that ``supportdesk adapter prepare`` reads, so rated-good answers become
training data for the next adapter.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supportdesk.private import private_dir, private_file, write_private_text

# Each entry upgrades the schema by one version; never edit a released step, add one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        content TEXT NOT NULL,
        created_at REAL NOT NULL,
        kind TEXT,
        reason TEXT,
        citations TEXT NOT NULL DEFAULT '[]',
        timings TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
    """,
    """
    ALTER TABLE messages ADD COLUMN feedback INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN model TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE messages ADD COLUMN abstained INTEGER NOT NULL DEFAULT 0;
    """,
    # The team server (supportdesk serve): who owns a conversation, which agent asked, and the
    # role tokens (only their SHA-256 is stored; the token itself is printed once).
    """
    ALTER TABLE conversations ADD COLUMN owner TEXT;
    ALTER TABLE messages ADD COLUMN asked_by TEXT;
    CREATE INDEX conversations_by_owner ON conversations(owner, updated_at);
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('agent', 'trainer', 'admin')),
        token_hash TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        expires_at REAL,
        revoked_at REAL,
        last_used_at REAL
    );
    CREATE UNIQUE INDEX tokens_active_name ON tokens(name) WHERE revoked_at IS NULL;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


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


class HistoryError(RuntimeError):
    """The history file is damaged or unusable; the message names it and what to do."""


def _is_locked(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


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


@dataclass
class _PendingWrite:
    """A write that met a locked database: kept in order, retried, never dropped."""

    kind: str  # "conversation" | "message" | "feedback"
    placeholder: int
    values: dict[str, Any]


class HistoryStore:
    """Thread-safe: one connection, serialised by a lock (workers write, the UI reads).

    Writes that find the database locked by another program (a backup tool, a second
    supportdesk, an open ``sqlite3`` shell) are queued in memory in order, with placeholder
    (negative) ids, and retried every second until they go through; ``pending`` says how many
    wait. A damaged file raises ``HistoryError`` naming it, from opening and from every read.
    """

    busy_timeout_s = 2.0
    retry_every_s = 1.0

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        memory = str(path) == ":memory:"
        if not memory:
            private_dir(self.path.parent)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            private_file(self.path)
        self._lock = threading.RLock()
        self._pending: list[_PendingWrite] = []
        self._resolved: dict[int, int] = {}  # placeholder id -> real row id
        self._next_placeholder = -1
        self._retry: threading.Timer | None = None
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                       timeout=self.busy_timeout_s)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA foreign_keys = ON")
            if not memory:
                self._db.execute("PRAGMA journal_mode = WAL")
                check = self._db.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            self.upgraded_from = self._upgrade()
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(Exception):
                self._db.close()
            raise self._damaged(exc) from exc

    def _damaged(self, exc: sqlite3.Error) -> HistoryError:
        return HistoryError(
            f"the history file {self.path} is damaged or not a supportdesk history ({exc}); "
            "move it aside with 'supportdesk history move-aside' (nothing is deleted) and a new one starts"
        )

    def _upgrade(self) -> int:
        """Apply missing migrations in one transaction each; returns the version found."""
        with self._lock:
            found = self._db.execute("PRAGMA user_version").fetchone()[0]
            if found > SCHEMA_VERSION:
                raise HistoryError(
                    f"{self.path} has schema version {found}, newer than this supportdesk ({SCHEMA_VERSION}): "
                    "upgrade supportdesk, or point data_dir elsewhere"
                )
            for version in range(found, SCHEMA_VERSION):
                self._db.execute("BEGIN")
                try:
                    self._db.executescript("BEGIN;" + MIGRATIONS[version] + f"PRAGMA user_version = {version + 1};COMMIT;")
                except Exception:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
        return found

    @property
    def version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @property
    def pending(self) -> int:
        """Writes waiting for a lock to clear."""
        with self._lock:
            return len(self._pending)

    def close(self) -> Path | None:
        """Flush what waits (a few seconds' grace); anything still locked out is saved beside the
        database as JSON lines, never dropped. Returns that file, if one was written."""
        with self._lock:
            if self._retry is not None:
                self._retry.cancel()
            deadline = time.monotonic() + 5.0
            while self._pending and time.monotonic() < deadline and not self._flush():
                time.sleep(0.2)
            leftover = None
            if self._pending and str(self.path) != ":memory:":
                leftover = self.path.with_name(f"history-unsaved-{time.strftime('%Y%m%dT%H%M%S')}.jsonl")
                write_private_text(leftover, "".join(
                    json.dumps({"kind": p.kind, "id": p.placeholder, **p.values}, ensure_ascii=False) + "\n"
                    for p in self._pending))
            self._db.close()
            return leftover

    # -- writing ---------------------------------------------------------------------
    def _queue(self, kind: str, values: dict[str, Any]) -> int:
        placeholder = self._next_placeholder
        self._next_placeholder -= 1
        self._pending.append(_PendingWrite(kind, placeholder, values))
        self._schedule_retry()
        return placeholder

    def _schedule_retry(self) -> None:
        if self._retry is None or not self._retry.is_alive():
            self._retry = threading.Timer(self.retry_every_s, self._retry_flush)
            self._retry.daemon = True
            self._retry.start()

    def _retry_flush(self) -> None:
        with self._lock:
            self._retry = None
            if self._pending and not self._flush():
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
            except sqlite3.Error as exc:
                if _is_locked(exc):
                    return False
                raise self._damaged(exc) from exc
            self._resolved[item.placeholder] = real
            self._pending.pop(0)
        return True

    def _real(self, row_id: int) -> int:
        return self._resolved.get(row_id, row_id)

    def _apply(self, kind: str, v: dict[str, Any]) -> int:
        if kind == "conversation":
            cursor = self._db.execute(
                "INSERT INTO conversations (title, created_at, updated_at, owner) VALUES (?, ?, ?, ?)",
                (v["title"], v["at"], v["at"], v.get("owner")))
            return int(cursor.lastrowid)
        if kind == "feedback":
            self._db.execute("UPDATE messages SET feedback = ? WHERE id = ? AND role = 'assistant'",
                             (v["value"], self._real(v["message_id"])))
            return 0
        conversation_id = self._real(v["conversation_id"])
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cursor = self._db.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at, kind, reason, citations, timings,"
                " model, abstained, asked_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, v["role"], v["content"], v["at"], v["kind"], v["reason"], json.dumps(v["citations"]),
                 json.dumps(v["timings"]), json.dumps(v["model"]), int(v["abstained"]), v.get("asked_by")),
            )
            self._db.execute(
                "UPDATE conversations SET updated_at = ?, title = CASE WHEN title = '' AND ? = 'user' THEN ? ELSE title END"
                " WHERE id = ?",
                (v["at"], v["role"], v["content"][:80], conversation_id),
            )
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return int(cursor.lastrowid)

    def _write(self, kind: str, values: dict[str, Any]) -> int:
        with self._lock:
            if self._pending and not self._flush():  # keep the order: nothing overtakes a queued write
                return self._queue(kind, values)
            try:
                return self._apply(kind, values)
            except sqlite3.Error as exc:
                if _is_locked(exc):
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
        """The new message's id; negative while it waits for a locked database (see ``pending``)."""
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
    def _read(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            if _is_locked(exc):
                return []  # a reader locked out sees what is in memory; nothing is lost
            raise self._damaged(exc) from exc

    def conversations(self, limit: int = 100, owner: str | None = None) -> list[Conversation]:
        """Newest first; with ``owner``, only that agent's conversations (a team server's agents)."""
        where, params = ("WHERE c.owner = ?", (owner,)) if owner is not None else ("", ())
        with self._lock:
            rows = self._read(
                "SELECT c.*, COUNT(m.id) AS n FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id"
                f" {where} GROUP BY c.id ORDER BY c.updated_at DESC, c.id DESC LIMIT ?",
                (*params, limit),
            )
            found = [Conversation(r["id"], r["title"] or "", r["created_at"], r["updated_at"], r["n"], r["owner"])
                     for r in rows]
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
            rows = self._read("SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS n"
                              " FROM conversations c WHERE c.id = ?", (self._real(conversation_id),))
        if not rows:
            return None
        r = rows[0]
        return Conversation(conversation_id, r["title"] or "", r["created_at"], r["updated_at"], r["n"], r["owner"])

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        with self._lock:
            real = self._real(conversation_id)
            rows = self._read("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (real,)) if real > 0 else []
            out = [self._message(r) for r in rows]
            for p in self._pending:
                if p.kind == "message" and self._real(p.values["conversation_id"]) == real:
                    v = p.values
                    out.append(StoredMessage(p.placeholder, conversation_id, v["role"], v["content"], v["at"], v["kind"],
                                             v["reason"], v["citations"], v["timings"], 0, v["model"], v["abstained"],
                                             v.get("asked_by")))
        return out

    def latest_conversation(self, owner: str | None = None) -> int | None:
        found = self.conversations(limit=1, owner=owner)
        return found[0].id if found else None

    @staticmethod
    def _message(row: sqlite3.Row) -> StoredMessage:
        return StoredMessage(
            id=row["id"], conversation_id=row["conversation_id"], role=row["role"], content=row["content"] or "",
            created_at=row["created_at"], kind=row["kind"], reason=row["reason"],
            citations=_loads(row["citations"], []), timings=_loads(row["timings"], {}),
            feedback=row["feedback"] or 0, model=_loads(row["model"], {}), abstained=bool(row["abstained"]),
            asked_by=row["asked_by"],
        )

    # -- the team server's role tokens (hashes only) ---------------------------------------
    def token_rows(self, include_revoked: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._read("SELECT * FROM tokens" + ("" if include_revoked else " WHERE revoked_at IS NULL")
                              + " ORDER BY id", ())
        return [dict(r) for r in rows]

    def add_token(self, name: str, role: str, token_hash: str, expires_at: float | None) -> None:
        """Raises ValueError when an active token already has that name."""
        with self._lock:
            try:
                self._db.execute("INSERT INTO tokens (name, role, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                                 (name, role, token_hash, time.time(), expires_at))
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"a token named {name!r} already exists: revoke it first, or pick another name") from exc

    def token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        with self._lock:
            rows = self._read("SELECT * FROM tokens WHERE token_hash = ?", (token_hash,))
        return dict(rows[0]) if rows else None

    def touch_token(self, token_id: int) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):  # a locked file only delays 'last used'
            self._db.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (time.time(), token_id))

    def revoke_token(self, name: str) -> bool:
        with self._lock:
            cursor = self._db.execute("UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                                      (time.time(), name))
        return cursor.rowcount > 0

    def export(self, rated_good_only: bool = False) -> Iterator[dict[str, Any]]:
        """JSONL chat records ({"messages": [...], "metadata": {...}}) for ``adapter prepare``.

        With ``rated_good_only``, each 👍 answer becomes one record: the conversation up to and
        including that answer. Handed-off answers are never exported as training data.
        """
        for conversation in sorted(self.conversations(limit=1_000_000), key=lambda c: c.id):
            messages = self.messages(conversation.id)
            turns: list[dict[str, str]] = []
            for message in messages:
                turns.append({"role": message.role, "content": message.content})
                if rated_good_only and message.role == "assistant" and message.feedback > 0 and not message.abstained:
                    yield {"messages": list(turns), "metadata": {"conversation": conversation.id, "message": message.id,
                                                                 "route": message.kind, "source": "supportdesk-history"}}
            if not rated_good_only and turns:
                yield {"messages": turns, "metadata": {"conversation": conversation.id, "source": "supportdesk-history"}}
