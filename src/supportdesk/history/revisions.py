"""Bring a history database to this code's schema with Alembic, on either engine.

Revision ``000N`` (``migrations/versions``) makes schema version N. Before Alembic, the version
lived in SQLite's ``PRAGMA user_version`` and PostgreSQL's ``schema_version`` table (the
"legacy number"); it is still kept in step, set with each revision in its transaction, so an
older supportdesk opening a newer database refuses it as it always did, and a database made
before Alembic (no ``alembic_version`` table, legacy number N) is stamped at revision N and
upgraded from there.

The engine reads both numbers first (``up_to_date``: nothing to do, no lock taken, as before);
otherwise it takes its lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock) and
calls ``upgrade`` inside the one transaction the whole upgrade runs in: a failed upgrade leaves
the database as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Column, Connection, MetaData, String, Table, inspect, select

from supportdesk.history.errors import HistoryError
from supportdesk.history.schema import MIGRATIONS, SCHEMA_VERSION

VERSION_TABLE = "alembic_version"
_versions = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32), primary_key=True))
"""Alembic's own table, read here without importing Alembic (it is only needed to upgrade)."""

# Alembic says at INFO what it runs ("Running upgrade 0003 -> 0004"): not for the user's terminal.
logging.getLogger("alembic").addHandler(logging.NullHandler())


def revision_id(version: int) -> str:
    return f"{version:04d}"


def too_new(location: str, found: int | str) -> HistoryError:
    return HistoryError(
        f"{location} has schema version {found}, newer than this supportdesk's {SCHEMA_VERSION}: "
        "upgrade supportdesk, or point the history elsewhere"
    )


def current_revision(connection: Connection) -> str | None:
    """Alembic's revision of the database; None when it has no version table (new, or made before Alembic)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(select(_versions.c.version_num)).scalar()


def version_of(revision: str | None) -> int:
    """The schema version a revision makes (0 for none, -1 for a revision that is not a number)."""
    if revision is None:
        return 0
    try:
        return int(revision)
    except ValueError:
        return -1


def up_to_date(revision: str | None, legacy: int) -> bool:
    return revision == revision_id(SCHEMA_VERSION) and legacy == SCHEMA_VERSION


def upgrade(connection: Connection, location: str, legacy: int, set_legacy: Callable[[int], None]) -> int:
    """Upgrade to the newest revision; returns the version found. ``legacy``: the number in the
    old place; ``set_legacy`` writes it there."""
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    revision = current_revision(connection)
    if revision is not None:
        try:
            ScriptDirectory(str(MIGRATIONS)).get_revision(revision)
        except CommandError:  # a revision of a newer supportdesk
            raise too_new(location, version_of(revision) if version_of(revision) > 0 else repr(revision)) from None
    found = max(version_of(revision), legacy)
    if found > SCHEMA_VERSION:
        raise too_new(location, found)

    def step_done(*, heads, **_) -> None:
        [head] = heads
        set_legacy(version_of(head))

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.attributes.update(connection=connection, version_table=VERSION_TABLE, on_version_apply=[step_done])
    if revision is None and legacy:
        command.stamp(config, revision_id(legacy))  # made before Alembic, at that version
    command.upgrade(config, "head")
    if legacy != SCHEMA_VERSION:
        set_legacy(SCHEMA_VERSION)
    return found
