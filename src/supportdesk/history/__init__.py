"""Conversation history: where every question, answer, citation, timing and rating is kept.

``HistoryStore`` works the same on SQLite (a file in the data dir, the embedded default) and
on PostgreSQL (``history.url``): the tables are defined once (``schema``, SQLAlchemy Core) and
each schema version is an Alembic revision (``migrations/versions``, applied by ``revisions``
when a store opens); ``migrate`` copies one store into another.
"""

from __future__ import annotations

from supportdesk.history.engines import HistoryError
from supportdesk.history.schema import SCHEMA_VERSION
from supportdesk.history.store import Conversation, HistoryStore, StoredMessage, move_aside

__all__ = ["SCHEMA_VERSION", "Conversation", "HistoryError", "HistoryStore", "StoredMessage", "move_aside",
           "open_history"]


def open_history(settings) -> HistoryStore:
    """The store ``settings`` name: ``history.url``, or the SQLite file in the data dir."""
    return HistoryStore(settings.history_location, pool_size=settings.history.pool_size,
                        connect_timeout_s=settings.history.connect_timeout_s, spill_dir=settings.data_dir)
