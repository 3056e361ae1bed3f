"""Copy one history into another (SQLite → PostgreSQL, typically), idempotently, and verify.

Every copied conversation and message keeps its origin, ``<source store id>:<source row id>``
(unique in the target), so a second run copies only what is new, never twice. Each
conversation is copied in one transaction: an interrupted run leaves whole conversations
only, and the next run finishes the job. Ratings changed since the last run are updated.
Tokens (hashes) are copied unless the target already has that token or an active one of the
same name. The counts of both sides are compared at the end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from supportdesk.history.store import HistoryStore, _loads


@dataclass
class Counts:
    conversations: int = 0
    messages: int = 0
    citations: int = 0
    ratings: int = 0


@dataclass
class MigrationReport:
    source: str
    target: str
    copied: Counts = field(default_factory=Counts)
    ratings_updated: int = 0
    tokens_copied: int = 0
    in_source: Counts = field(default_factory=Counts)
    in_target: Counts = field(default_factory=Counts)
    """What the target holds that came from this source (after the run)."""

    @property
    def verified(self) -> bool:
        return self.in_source == self.in_target


def _counts(store: HistoryStore, where: str = "", params: tuple = ()) -> Counts:
    conversations = store._read(f"SELECT COUNT(*) AS n FROM conversations c {where}", params)[0]["n"]
    message_where = where.replace("c.origin", "m.origin")
    rows = store._read(f"SELECT m.citations, m.feedback FROM messages m {message_where}", params)
    return Counts(int(conversations), len(rows), sum(len(_loads(r["citations"], [])) for r in rows),
                  sum(1 for r in rows if r["feedback"]))


def migrate(source: HistoryStore, target: HistoryStore,
            progress: Callable[[int, int], None] = lambda done, total: None) -> MigrationReport:
    if source.store_id == target.store_id:
        raise ValueError(f"{target.where} is the history being copied: give another database")
    report = MigrationReport(source.where, target.where)
    prefix = f"{source.store_id}:"
    conversations = source._read("SELECT * FROM conversations ORDER BY id", ())
    for done, c in enumerate(conversations, start=1):
        messages = source._read("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (c["id"],))
        with target._engine.transaction() as tx:
            origin = f"{prefix}{c['id']}"
            found = tx.execute("SELECT id, updated_at FROM conversations WHERE origin = ?", (origin,))
            if found:
                target_id = found[0]["id"]
                if c["updated_at"] > found[0]["updated_at"]:
                    tx.update("UPDATE conversations SET updated_at = ?, title = ? WHERE id = ?",
                              (c["updated_at"], c["title"], target_id))
            else:
                target_id = tx.insert(
                    "INSERT INTO conversations (title, created_at, updated_at, owner, origin) VALUES (?, ?, ?, ?, ?)",
                    (c["title"], c["created_at"], c["updated_at"], c["owner"], origin))
                report.copied.conversations += 1
            have = {r["origin"]: r for r in tx.execute(
                "SELECT id, origin, feedback FROM messages WHERE conversation_id = ? AND origin IS NOT NULL",
                (target_id,))}
            for m in messages:
                m_origin = f"{prefix}m{m['id']}"
                if m_origin in have:
                    if have[m_origin]["feedback"] != m["feedback"]:
                        tx.update("UPDATE messages SET feedback = ? WHERE id = ?", (m["feedback"], have[m_origin]["id"]))
                        report.ratings_updated += 1
                    continue
                tx.insert(
                    "INSERT INTO messages (conversation_id, role, content, created_at, kind, reason, citations, timings,"
                    " feedback, model, abstained, asked_by, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (target_id, m["role"], m["content"], m["created_at"], m["kind"], m["reason"],
                     json.dumps(_loads(m["citations"], [])), json.dumps(_loads(m["timings"], {})), m["feedback"] or 0,
                     json.dumps(_loads(m["model"], {})), int(m["abstained"] or 0), m["asked_by"], m_origin))
                report.copied.messages += 1
                report.copied.citations += len(_loads(m["citations"], []))
                report.copied.ratings += 1 if m["feedback"] else 0
        progress(done, len(conversations))
    for t in source._read("SELECT * FROM tokens ORDER BY id", ()):
        with target._engine.transaction() as tx:
            added = tx.update(
                "INSERT INTO tokens (name, role, token_hash, created_at, expires_at, revoked_at, last_used_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (t["name"], t["role"], t["token_hash"], t["created_at"], t["expires_at"], t["revoked_at"],
                 t["last_used_at"]))
            report.tokens_copied += added
    report.in_source = _counts(source)
    like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    report.in_target = _counts(target, "WHERE c.origin LIKE ? ESCAPE '\\'", (like,))
    return report
