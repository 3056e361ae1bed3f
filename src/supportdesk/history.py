"""Conversation history in SQLite under the data dir, with versioned schema upgrades.

Every message keeps what an auditor needs: the route and its reason, the citations, the
timings, the model figures and the agent's 👍/👎. ``export`` writes conversations in the
JSONL chat format that ``supportdesk adapter prepare`` reads, so rated-good answers become
training data for the next adapter.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass
class Conversation:
    id: int
    title: str
    created_at: float
    updated_at: float
    message_count: int = 0


class HistoryStore:
    """Thread-safe: one connection, serialised by a lock (workers write, the UI reads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA journal_mode = WAL")
        self.upgraded_from = self._upgrade()

    def _upgrade(self) -> int:
        """Apply missing migrations in one transaction each; returns the version found."""
        with self._lock:
            found = self._db.execute("PRAGMA user_version").fetchone()[0]
            if found > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has schema version {found}, newer than this supportdesk ({SCHEMA_VERSION})"
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

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing ---------------------------------------------------------------------
    def new_conversation(self, title: str = "") -> int:
        now = time.time()
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO conversations (title, created_at, updated_at) VALUES (?, ?, ?)", (title[:120], now, now)
            )
            return int(cursor.lastrowid)

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
    ) -> int:
        now = time.time()
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at, kind, reason, citations, timings,"
                " model, abstained) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, now, kind, reason, json.dumps(citations or []),
                 json.dumps(timings or {}), json.dumps(model or {}), int(abstained)),
            )
            self._db.execute(
                "UPDATE conversations SET updated_at = ?, title = CASE WHEN title = '' AND ? = 'user' THEN ? ELSE title END"
                " WHERE id = ?",
                (now, role, content[:80], conversation_id),
            )
            return int(cursor.lastrowid)

    def set_feedback(self, message_id: int, value: int) -> None:
        if value not in (-1, 0, 1):
            raise ValueError("feedback is -1, 0 or 1")
        with self._lock:
            self._db.execute("UPDATE messages SET feedback = ? WHERE id = ? AND role = 'assistant'", (value, message_id))

    # -- reading ---------------------------------------------------------------------
    def conversations(self, limit: int = 100) -> list[Conversation]:
        with self._lock:
            rows = self._db.execute(
                "SELECT c.*, COUNT(m.id) AS n FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id"
                " GROUP BY c.id ORDER BY c.updated_at DESC, c.id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [Conversation(r["id"], r["title"], r["created_at"], r["updated_at"], r["n"]) for r in rows]

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
            ).fetchall()
        return [self._message(r) for r in rows]

    def latest_conversation(self) -> int | None:
        found = self.conversations(limit=1)
        return found[0].id if found else None

    @staticmethod
    def _message(row: sqlite3.Row) -> StoredMessage:
        return StoredMessage(
            id=row["id"], conversation_id=row["conversation_id"], role=row["role"], content=row["content"],
            created_at=row["created_at"], kind=row["kind"], reason=row["reason"],
            citations=json.loads(row["citations"]), timings=json.loads(row["timings"]),
            feedback=row["feedback"], model=json.loads(row["model"]), abstained=bool(row["abstained"]),
        )

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
