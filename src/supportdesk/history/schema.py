"""The history's tables, defined once (SQLAlchemy Core) for SQLite and PostgreSQL.

These are the tables as they are now; how a database gets there is the Alembic revisions in
``migrations/versions``, one per schema version, the same on both engines. To add a table or a
column: add it here and write the next revision (``migrations/versions/000N_*.py``); a test
checks on both engines that the revisions build exactly these tables.

Ids are SQLite's rowid integers and PostgreSQL's ``BIGINT`` identity columns; times are
seconds since the epoch (``REAL`` / ``DOUBLE PRECISION``); citations, timings and model figures
are JSON text (a damaged value reads as empty, see ``store._loads``).
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import (
    REAL,
    BigInteger,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    text,
)

ID = BigInteger().with_variant(Integer(), "sqlite")
"""A row id: SQLite's ``INTEGER PRIMARY KEY`` (the rowid), PostgreSQL's ``BIGINT`` identity."""
TIME = Double().with_variant(REAL(), "sqlite")
"""Seconds since the epoch."""

metadata = MetaData()

conversations = Table(
    "conversations", metadata,
    Column("id", ID, Identity(), primary_key=True),
    Column("title", Text, nullable=False, server_default=""),
    Column("created_at", TIME, nullable=False),
    Column("updated_at", TIME, nullable=False),
    # The team server (supportdesk serve): the agent who owns it (a token's name); None locally.
    Column("owner", Text),
    # Copies between stores (history migrate): "<source store id>:<source row id>", unique, so a
    # second copy finds what the first made.
    Column("origin", Text),
    # A random key per write, unique, so a write retried after a connection dropped at commit
    # (did it land?) is never stored twice.
    Column("write_key", Text),
    Index("conversations_by_owner", "owner", "updated_at"),
    Index("conversations_by_origin", "origin", unique=True),
    Index("conversations_by_write_key", "write_key", unique=True),
)

messages = Table(
    "messages", metadata,
    Column("id", ID, Identity(), primary_key=True),
    Column("conversation_id", ID, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("role", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("created_at", TIME, nullable=False),
    Column("kind", Text),  # the route: grounded, voice, handoff, …
    Column("reason", Text),
    Column("citations", Text, nullable=False, server_default="[]"),
    Column("timings", Text, nullable=False, server_default="{}"),
    Column("feedback", Integer, nullable=False, server_default=text("0")),  # -1, 0, 1: the agent's 👎/👍
    Column("model", Text, nullable=False, server_default="{}"),
    Column("abstained", Integer, nullable=False, server_default=text("0")),
    Column("asked_by", Text),  # the agent whose question this is or answers (team server)
    Column("origin", Text),
    Column("write_key", Text),
    CheckConstraint("role IN ('user', 'assistant')"),
    Index("messages_by_conversation", "conversation_id", "id"),
    Index("messages_by_origin", "origin", unique=True),
    Index("messages_by_write_key", "write_key", unique=True),
)

# The team server's role tokens: only their SHA-256 is stored (the token is printed once).
tokens = Table(
    "tokens", metadata,
    Column("id", ID, Identity(), primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("created_at", TIME, nullable=False),
    Column("expires_at", TIME),
    Column("revoked_at", TIME),
    Column("last_used_at", TIME),
    CheckConstraint("role IN ('agent', 'trainer', 'admin')"),
    Index("tokens_active_name", "name", unique=True, sqlite_where=text("revoked_at IS NULL"),
          postgresql_where=text("revoked_at IS NULL")),
)

# The store's own facts: 'store_id' (random, made with the store) names it in copied rows' origins.
store_meta = Table(
    "store_meta", metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

# Team-server replicas sharing this database (supportdesk serve, kb/cluster.py): one knowledge-base
# generation for all of them. Each generation a replica built, whole (zlib of the FAISS index and of
# the chunks as JSON lines), so another replica adopts it without embedding anything.
kb_generations = Table(
    "kb_generations", metadata,
    Column("generation", Text, primary_key=True),
    Column("created_at", TIME, nullable=False),
    Column("built_by", Text),  # who reloaded (a token's name)
    Column("replica", Text),  # the replica that built it
    Column("chunks", Integer, nullable=False),
    Column("manifest", Text, nullable=False),  # JSON
    Column("vectors", LargeBinary, nullable=False),
    Column("texts", LargeBinary, nullable=False),
)

# Facts the replicas agree on: 'kb_generation' (the current one), 'adapter' (the active one,
# '' for none), 'cluster_id'; each with who set it and when.
cluster_state = Table(
    "cluster_state", metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", TIME, nullable=False),
    Column("updated_by", Text),
)

# Each replica's heartbeat: what it serves now (a replica silent for long is shown as gone).
cluster_replicas = Table(
    "cluster_replicas", metadata,
    Column("replica", Text, primary_key=True),
    Column("started_at", TIME, nullable=False),
    Column("heartbeat_at", TIME, nullable=False),
    Column("generation", Text),
    Column("adapter", Text),
    Column("embedded", Integer, nullable=False, server_default=text("0")),
    Column("note", Text),
)

# Approved answers (issue 28): curated answers served before the model when a question matches one of
# theirs. ``key``: an imported entry's own id (a second import of the same file updates, never doubles);
# ``sources``: the citations the draft it came from carried (JSON); ``hits``/``last_hit``: how often served.
approved_answers = Table(
    "approved_answers", metadata,
    Column("id", ID, Identity(), primary_key=True),
    Column("key", Text),
    Column("answer", Text, nullable=False),
    Column("sources", Text, nullable=False, server_default="[]"),
    Column("created_by", Text),
    Column("created_at", TIME, nullable=False),
    Column("approved_by", Text),
    Column("approved_at", TIME),
    Column("updated_at", TIME, nullable=False),
    Column("hits", Integer, nullable=False, server_default=text("0")),
    Column("last_hit", TIME),
    Column("origin", Text),  # copies between stores (history migrate), as for conversations
    Index("approved_answers_by_key", "key", unique=True),
    Index("approved_answers_by_origin", "origin", unique=True),
)

# The questions an approved answer answers: imported, from the proposal it came from, or a wording an
# agent accepted its suggestion for (the set learns its paraphrases).
approved_questions = Table(
    "approved_questions", metadata,
    Column("id", ID, Identity(), primary_key=True),
    Column("answer_id", ID, ForeignKey("approved_answers.id", ondelete="CASCADE"), nullable=False),
    Column("question", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("created_by", Text),
    Column("created_at", TIME, nullable=False),
    CheckConstraint("origin IN ('import', 'proposal', 'suggestion-accepted')"),
    Index("approved_questions_by_answer", "answer_id", "question", unique=True),
)

# An agent's rewrite of a draft, waiting for a trainer (accepted: it became approved answer ``answer_id``).
proposals = Table(
    "proposals", metadata,
    Column("id", ID, Identity(), primary_key=True),
    Column("question", Text, nullable=False),
    Column("draft", Text, nullable=False, server_default=""),
    Column("proposed", Text, nullable=False),
    Column("sources", Text, nullable=False, server_default="[]"),
    Column("message_id", ID),
    Column("proposed_by", Text),
    Column("proposed_at", TIME, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("reviewed_by", Text),
    Column("reviewed_at", TIME),
    Column("answer_id", ID),
    Column("origin", Text),
    CheckConstraint("status IN ('pending', 'accepted', 'rejected')"),
    Index("proposals_by_status", "status", "id"),
    Index("proposals_by_origin", "origin", unique=True),
)

MIGRATIONS = Path(__file__).with_name("migrations")
"""The Alembic environment: ``env.py`` and ``versions/`` (revision ``000N`` makes schema version N)."""


def _head() -> int:
    numbers = [int(m.group(1)) for p in (MIGRATIONS / "versions").glob("*.py")
               if (m := re.match(r"(\d{4})_", p.name))]
    return max(numbers, default=0)


SCHEMA_VERSION = _head()
"""The newest schema version this code knows: the number of its last revision."""
