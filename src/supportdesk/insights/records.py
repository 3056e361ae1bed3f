"""What the insights and the gaps read from the history: each answer with the question before it.

One query over ``messages`` joined to ``conversations`` (both engines), newest answers last. The
rewrites agents proposed (issue 28 part 1: a ``proposals`` table, when the history has one) are
read alongside, so "answers agents rewrote", "what agents answered instead" and the edit ratio
appear as soon as that table exists; without it they are simply absent.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, select

from supportdesk.history import schema

DAY = 86400.0


@dataclass
class Turn:
    """One stored answer and the question it answered."""

    message_id: int
    conversation_id: int
    question: str
    answer: str
    kind: str | None
    reason: str | None
    feedback: int
    timings: dict[str, float]
    abstained: bool
    at: float
    agent: str | None
    rewrite: str | None = None
    """What an agent proposed instead of this answer (the proposals table), if anyone did."""
    extra: dict[str, Any] = field(default_factory=dict)


def parse_since(text: str | None) -> float | None:
    """``--since``: a date (YYYY-MM-DD, UTC midnight), an ISO time, or a number of days back ("7d")."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    days = re.fullmatch(r"(\d+)\s*d(ays?)?", text)
    if days:
        return dt.datetime.now(dt.UTC).timestamp() - int(days.group(1)) * DAY
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: give a date (2026-12-01), a time (2026-12-01T09:00) or days back (7d)") \
            from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _loads(text: Any, default: Any) -> Any:
    try:
        value = json.loads(text) if isinstance(text, str) else default
    except ValueError:
        return default
    return value if isinstance(value, type(default)) else default


def proposals_table() -> Any:
    """The agents' rewrites table, when this history's schema has one (issue 28 part 1)."""
    for name in ("proposals", "answer_proposals"):
        table = getattr(schema, name, None)
        if table is not None:  # a Table has no truth value
            return table
    return None


def read_turns(store: Any, since: float | None = None, agent: str | None = None) -> list[Turn]:
    """Every stored answer (after ``since``; only ``agent``'s when given) with its question, oldest first."""
    flush = getattr(store, "flush", None)
    if callable(flush):
        flush()
    m, c = schema.messages, schema.conversations
    query = select(m.c.id, m.c.conversation_id, m.c.role, m.c.content, m.c.created_at, m.c.kind, m.c.reason,
                   m.c.timings, m.c.feedback, m.c.abstained, m.c.asked_by, c.c.owner
                   ).join(c, c.c.id == m.c.conversation_id)
    conditions = []
    if agent is not None:
        conditions.append(c.c.owner == agent)
    if since is not None:
        # the question before the first answer may be older than since: read the conversations answered since
        conditions.append(m.c.conversation_id.in_(
            select(m.c.conversation_id).where(m.c.created_at >= since).scalar_subquery()))
    if conditions:
        query = query.where(and_(*conditions))
    rows = store._read(query.order_by(m.c.conversation_id, m.c.id))
    turns: list[Turn] = []
    question: dict[int, str] = {}
    for row in rows:
        if row["role"] == "user":
            question[row["conversation_id"]] = row["content"] or ""
            continue
        if since is not None and row["created_at"] < since:
            continue
        turns.append(Turn(
            message_id=row["id"], conversation_id=row["conversation_id"],
            question=question.get(row["conversation_id"], ""), answer=row["content"] or "", kind=row["kind"],
            reason=row["reason"], feedback=int(row["feedback"] or 0), timings=_loads(row["timings"], {}),
            abstained=bool(row["abstained"]), at=float(row["created_at"]), agent=row["asked_by"] or row["owner"]))
    _attach_rewrites(store, turns)
    turns.sort(key=lambda t: (t.at, t.message_id))
    return turns


def _attach_rewrites(store: Any, turns: list[Turn]) -> None:
    table = proposals_table()
    if table is None or not turns or "message_id" not in table.c:
        return
    text_column = next((table.c[name] for name in ("proposed", "answer", "text") if name in table.c), None)
    if text_column is None:
        return
    by_id = {t.message_id: t for t in turns}
    approved = getattr(schema, "approved_answers", None)
    query = select(table.c.message_id, text_column.label("proposed"))
    if approved is not None and "answer_id" in table.c:
        # an accepted proposal became an approved answer (a trainer may have edited it): that text wins
        query = query.add_columns(approved.c.answer.label("approved")).outerjoin(
            approved, approved.c.id == table.c.answer_id)
    try:
        rows = store._read(query.where(table.c.message_id.is_not(None)).order_by(table.c.id))
    except Exception:  # noqa: BLE001 - a history still at an older schema has no such table: no rewrites
        return
    for row in rows:
        turn = by_id.get(row["message_id"])
        if turn is not None and row["proposed"]:
            turn.rewrite = row["proposed"]
            if row.get("approved"):
                turn.extra["approved"] = row["approved"]
