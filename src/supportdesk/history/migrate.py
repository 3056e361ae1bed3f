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

from sqlalchemy import func, select, update

from supportdesk.history.schema import approved_answers, approved_questions, conversations, messages, proposals, tokens
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
    approved_copied: int = 0
    """Approved answers new in the target (each with its questions; hits brought up to date)."""
    proposals_copied: int = 0
    in_source: Counts = field(default_factory=Counts)
    in_target: Counts = field(default_factory=Counts)
    """What the target holds that came from this source (after the run)."""

    @property
    def verified(self) -> bool:
        return self.in_source == self.in_target


def _counts(store: HistoryStore, origin_like: str | None = None) -> Counts:
    """What ``store`` holds; with ``origin_like``, only the rows copied from one source."""
    found = select(func.count().label("n")).select_from(conversations)
    rows = select(messages.c.citations, messages.c.feedback)
    if origin_like is not None:
        found = found.where(conversations.c.origin.like(origin_like, escape="\\"))
        rows = rows.where(messages.c.origin.like(origin_like, escape="\\"))
    n = store._read(found)[0]["n"]
    stored = store._read(rows)
    return Counts(int(n), len(stored), sum(len(_loads(r["citations"], [])) for r in stored),
                  sum(1 for r in stored if r["feedback"]))


def migrate(source: HistoryStore, target: HistoryStore,
            progress: Callable[[int, int], None] = lambda done, total: None) -> MigrationReport:
    if source.store_id == target.store_id:
        raise ValueError(f"{target.where} is the history being copied: give another database")
    report = MigrationReport(source.where, target.where)
    prefix = f"{source.store_id}:"
    c, m = conversations.c, messages.c
    copied = source._read(select(conversations).order_by(c.id))
    for done, conversation in enumerate(copied, start=1):
        source_messages = source._read(select(messages).where(m.conversation_id == conversation["id"]).order_by(m.id))
        with target._engine.transaction() as tx:
            origin = f"{prefix}{conversation['id']}"
            found = tx.execute(select(c.id, c.updated_at).where(c.origin == origin))
            if found:
                target_id = found[0]["id"]
                if conversation["updated_at"] > found[0]["updated_at"]:
                    tx.update(update(conversations).where(c.id == target_id)
                              .values(updated_at=conversation["updated_at"], title=conversation["title"]))
            else:
                target_id = tx.insert(conversations, {
                    "title": conversation["title"], "created_at": conversation["created_at"],
                    "updated_at": conversation["updated_at"], "owner": conversation["owner"], "origin": origin})
                report.copied.conversations += 1
            have = {r["origin"]: r for r in tx.execute(
                select(m.id, m.origin, m.feedback).where(m.conversation_id == target_id, m.origin.is_not(None)))}
            for message in source_messages:
                m_origin = f"{prefix}m{message['id']}"
                if m_origin in have:
                    if have[m_origin]["feedback"] != message["feedback"]:
                        tx.update(update(messages).where(m.id == have[m_origin]["id"])
                                  .values(feedback=message["feedback"]))
                        report.ratings_updated += 1
                    continue
                citations = _loads(message["citations"], [])
                tx.insert(messages, {
                    "conversation_id": target_id, "role": message["role"], "content": message["content"],
                    "created_at": message["created_at"], "kind": message["kind"], "reason": message["reason"],
                    "citations": json.dumps(citations), "timings": json.dumps(_loads(message["timings"], {})),
                    "feedback": message["feedback"] or 0, "model": json.dumps(_loads(message["model"], {})),
                    "abstained": int(message["abstained"] or 0), "asked_by": message["asked_by"], "origin": m_origin})
                report.copied.messages += 1
                report.copied.citations += len(citations)
                report.copied.ratings += 1 if message["feedback"] else 0
        progress(done, len(copied))
    for t in source._read(select(tokens).order_by(tokens.c.id)):
        with target._engine.transaction() as tx:
            added = tx.insert(tokens, {key: t[key] for key in ("name", "role", "token_hash", "created_at", "expires_at",
                                                               "revoked_at", "last_used_at")}, on_conflict=())
            report.tokens_copied += added is not None
    _copy_approved(source, target, prefix, report)
    report.in_source = _counts(source)
    report.in_target = _counts(target, prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    return report


def _copy_approved(source: HistoryStore, target: HistoryStore, prefix: str, report: MigrationReport) -> None:
    """Approved answers with their questions, then proposals, each keeping its origin (copied once);
    an answer whose imported id the target already has joins that answer (its questions are added)."""
    a, q, p = approved_answers.c, approved_questions.c, proposals.c
    copied: dict[int, int] = {}
    for answer in source._read(select(approved_answers).order_by(a.id)):
        wordings = source._read(select(approved_questions).where(q.answer_id == answer["id"]).order_by(q.id))
        with target._engine.transaction() as tx:
            origin = f"{prefix}a{answer['id']}"
            found = tx.execute(select(a.id).where(a.origin == origin))
            if not found and answer["key"] is not None:
                found = tx.execute(select(a.id).where(a.key == answer["key"]))
            if found:
                target_id = found[0]["id"]
                tx.update(update(approved_answers).where(a.id == target_id, a.hits < answer["hits"])
                          .values(hits=answer["hits"], last_hit=answer["last_hit"]))
            else:
                target_id = tx.insert(approved_answers, {
                    k: answer[k] for k in ("key", "answer", "sources", "created_by", "created_at", "approved_by",
                                           "approved_at", "updated_at", "hits", "last_hit")} | {"origin": origin})
                report.approved_copied += 1
            for wording in wordings:
                tx.insert(approved_questions, {k: wording[k] for k in ("question", "origin", "created_by", "created_at")}
                          | {"answer_id": target_id}, on_conflict=["answer_id", "question"])
            copied[answer["id"]] = target_id
    for proposal in source._read(select(proposals).order_by(p.id)):
        with target._engine.transaction() as tx:
            origin = f"{prefix}p{proposal['id']}"
            if tx.execute(select(p.id).where(p.origin == origin)):
                continue
            message = tx.execute(select(messages.c.id).where(messages.c.origin == f"{prefix}m{proposal['message_id']}"))
            tx.insert(proposals, {k: proposal[k] for k in ("question", "draft", "proposed", "sources", "proposed_by",
                                                           "proposed_at", "status", "reviewed_by", "reviewed_at")}
                      | {"origin": origin, "answer_id": copied.get(proposal["answer_id"]),
                         "message_id": message[0]["id"] if message else None})
            report.proposals_copied += 1
