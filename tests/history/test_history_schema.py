"""The history's schema on SQLAlchemy Core + Alembic (issue 29 item 5), with no change seen.

A version-4 database of either engine made by supportdesk before Alembic (``tests/data/history``,
made with that code by ``make_fixtures.py``) opens, is stamped at the baseline revision in place
and reads back exactly what the old code read; older versions take the same steps; the tables the
revisions build are ``schema``'s and what the old code built; a newer schema is refused. The
PostgreSQL cases run on a throw-away cluster (``tests/fixtures/postgres_server.py``).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Identity, create_engine

from supportdesk.history import SCHEMA_VERSION, HistoryError, HistoryStore
from supportdesk.history.migrate import migrate
from supportdesk.history.revisions import VERSION_TABLE, revision_id
from supportdesk.history.schema import MIGRATIONS, metadata

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "history"
ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]  # slow: starts a PostgreSQL cluster


@pytest.fixture
def database(request, tmp_path):
    """``database(engine, sql=None)``: a new, empty database of that engine (a SQLite path or a
    PostgreSQL URL), with ``sql`` run in it first (a pg_dump: its psql meta-commands dropped)."""
    def make(engine: str, sql: str | None = None) -> str:
        if engine == "sqlite":
            path = tmp_path / f"h-{uuid.uuid4().hex[:8]}.sqlite3"
            with sqlite3.connect(path) as db:
                db.executescript(sql or "")
            return str(path)
        postgres = request.getfixturevalue("postgres")
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = postgres.url.rsplit("/", 1)[0] + "/" + name
        if sql:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("\n".join(line for line in sql.splitlines() if not line.startswith("\\")))
        return url

    return make


def _v4(engine: str, database, tmp_path: Path) -> tuple[str, dict]:
    """A version-4 history made by the code before Alembic, and what that code read back from it."""
    expected = json.loads((FIXTURES / f"v4-{engine}.expected.json").read_text())
    if engine == "sqlite":
        path = tmp_path / "history.sqlite3"
        shutil.copyfile(FIXTURES / "v4.sqlite3", path)
        return str(path), expected
    return database(engine, (FIXTURES / "v4-postgresql.sql").read_text()), expected


def _markers(location: str) -> tuple[str | None, int]:
    """Alembic's revision and the number in the old place (user_version / schema_version), read raw."""
    if not location.startswith("postgresql://"):
        with sqlite3.connect(location) as db:
            has = db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (VERSION_TABLE,)).fetchone()
            revision = db.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()[0] if has else None
            return revision, db.execute("PRAGMA user_version").fetchone()[0]
    with psycopg.connect(location) as conn:
        has = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (VERSION_TABLE,)).fetchone()[0]
        revision = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()[0] if has else None
        return revision, conn.execute("SELECT version FROM schema_version").fetchone()[0]


def _raw(location: str, sql: str) -> None:
    if location.startswith("postgresql://"):
        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute(sql)
    else:
        with sqlite3.connect(location) as db:
            db.executescript(sql)


def _read_back(store: HistoryStore) -> dict:
    """Read as make_fixtures.py read with the old code."""
    conversations = sorted(store.conversations(limit=1000), key=lambda c: c.id)
    return json.loads(json.dumps({
        "store_id": store.store_id,
        "conversations": [vars(c) for c in conversations],
        "messages": {str(c.id): [vars(m) for m in store.messages(c.id)] for c in conversations},
        "tokens": store.token_rows(include_revoked=True),
        "export": list(store.export(rated_good_only=True)),
    }))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_v4_history_made_before_alembic_is_upgraded_in_place_with_its_data(engine, database, tmp_path):
    location, expected = _v4(engine, database, tmp_path)
    assert _markers(location) == (None, 4)
    store = HistoryStore(location)
    assert (store.upgraded_from, store.version) == (4, SCHEMA_VERSION)
    assert _markers(location) == (revision_id(SCHEMA_VERSION), SCHEMA_VERSION)  # stamped at the baseline, then upgraded
    assert _read_back(store) == expected
    # New rows continue the old ids; a write retried (its commit's answer lost) lands once.
    cid = store.new_conversation(owner="dora")
    assert cid == max(c["id"] for c in expected["conversations"]) + 1
    values = {"conversation_id": cid, "role": "user", "content": "retried", "at": time.time(), "kind": None,
              "reason": None, "citations": [], "timings": {}, "model": {}, "abstained": False, "key": "k-once"}
    assert store._apply("message", dict(values)) == store._apply("message", dict(values))
    assert [m.content for m in store.messages(cid)] == ["retried"]
    # Copies keep their origins: a second copy from the same source adds nothing.
    source = HistoryStore(":memory:")
    source.add_message(source.new_conversation(owner="erin"), "user", "copied once")
    assert migrate(source, store).copied.messages == 1 and migrate(source, store).copied.messages == 0
    with pytest.raises(ValueError, match="already exists"):
        store.add_token("ada", "agent", "hash-other", None)  # an active token's name, from the old tokens
    store.close()
    if engine == "sqlite":  # in place: the same file, nothing beside it but SQLite's own
        assert sorted(p.name for p in tmp_path.iterdir()) in (["history.sqlite3"],
                                                              ["history.sqlite3", "history.sqlite3-shm",
                                                               "history.sqlite3-wal"])
    again = HistoryStore(location)
    assert again.upgraded_from == SCHEMA_VERSION and _markers(location) == (revision_id(SCHEMA_VERSION), SCHEMA_VERSION)
    assert [vars(m) for m in again.messages(1)] == expected["messages"]["1"]
    again.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_version_1_history_takes_the_same_steps(engine, database):
    location = database(engine, (FIXTURES / f"v1-{engine}.sql").read_text())
    _raw(location, "INSERT INTO conversations (title, created_at, updated_at) VALUES ('old', 1, 2);"
                   "INSERT INTO messages (conversation_id, role, content, created_at, citations)"
                   " VALUES (1, 'user', 'hi', 1.5, '[{\"source\": \"faq.md\"}]');")
    store = HistoryStore(location)
    assert (store.upgraded_from, store.version) == (1, SCHEMA_VERSION)
    assert _markers(location) == (revision_id(SCHEMA_VERSION), SCHEMA_VERSION)
    [message] = store.messages(1)
    assert (message.content, message.created_at, message.citations) == ("hi", 1.5, [{"source": "faq.md"}])
    assert (message.feedback, message.model, message.abstained, message.asked_by) == (0, {}, False, None)
    assert re.fullmatch(r"[0-9a-f]{32}", store.store_id)
    store.close()


def _structure(location: str) -> dict:
    """Every table's columns, keys, checks and indexes as the database reports them."""
    if location.startswith("postgresql://"):
        with psycopg.connect(location) as conn:
            return {
                "columns": conn.execute(
                    "SELECT table_name, ordinal_position, column_name, data_type, is_nullable, column_default,"
                    " is_identity, identity_generation FROM information_schema.columns WHERE table_schema = 'public'"
                    " ORDER BY 1, 2").fetchall(),
                "constraints": conn.execute(
                    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
                    " WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2").fetchall(),
                "indexes": conn.execute("SELECT tablename, indexname, indexdef FROM pg_indexes"
                                        " WHERE schemaname = 'public' ORDER BY 1, 2").fetchall(),
                "sequences": conn.execute("SELECT sequencename, data_type FROM pg_sequences ORDER BY 1").fetchall(),
            }
    with sqlite3.connect(location) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        found: dict = {}
        for table in tables:
            # A primary key is never null (SQLite's "INTEGER PRIMARY KEY" says notnull 0, "NOT NULL … PRIMARY KEY" 1).
            columns = [(name, kind, bool(notnull or pk), default, pk)
                       for _, name, kind, notnull, default, pk in db.execute(f"PRAGMA table_info({table})")]
            sql = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
            indexes = sorted((name, unique, origin, partial, tuple(r[2] for r in db.execute(f"PRAGMA index_info({name})")))
                             for _, name, unique, origin, partial in db.execute(f"PRAGMA index_list({table})"))
            found[table] = {
                "columns": columns, "indexes": indexes,
                "foreign_keys": [row[2:] for row in db.execute(f"PRAGMA foreign_key_list({table})")],
                "checks": sorted(re.findall(r"CHECK\s*\((.*?\))\)", sql)),
            }
        found["index_sql"] = sorted(re.sub(r"\s+", "", r[0]).lower() for r in
                                    db.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
        return found


def _same_default(context, inspected_column, metadata_column, inspected, metadata_default, rendered) -> bool | None:
    """On SQLite: no identity columns (the rowid is one), and SQLAlchemy reads the default ''
    back as ('') (the others quoted, where Alembic renders them bare)."""
    if isinstance(metadata_column.server_default, Identity):
        return False
    if inspected is not None and rendered is not None:
        return inspected.strip("()'") != rendered.strip("'")
    return None


def _differences(location: str) -> list:
    """Alembic's comparison of the database with ``schema.metadata``, types and defaults included."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    url = location.replace("postgresql://", "postgresql+psycopg://") if location.startswith("postgresql://") \
        else f"sqlite:///{location}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True, "compare_server_default": _same_default if url.startswith("sqlite") else True,
                "include_name": lambda name, kind, parent: kind != "table" or name in metadata.tables})
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


@pytest.mark.parametrize("engine", ENGINES)
def test_the_revisions_build_the_tables_of_schema_and_of_the_old_code(engine, database, tmp_path):
    """``schema``'s tables are what the revisions build (Alembic compares them); what they build
    from nothing, from the old code's version 4 and from its version 1 is the same (as each
    engine describes itself). Alembic's comparison is not run on SQLite files the old code made:
    SQLAlchemy cannot read the ON DELETE of an inline REFERENCES there (SQLite can: compared in
    ``_structure``), and their ``store_meta.key TEXT PRIMARY KEY`` is nullable (SQLite's quirk)."""
    fresh = database(engine)
    old_v4, _ = _v4(engine, database, tmp_path)
    old_v1 = database(engine, (FIXTURES / f"v1-{engine}.sql").read_text())
    for location in (fresh, old_v4, old_v1):
        HistoryStore(location).close()
    for location in (fresh, old_v4, old_v1) if engine == "postgresql" else (fresh,):
        assert _differences(location) == [], location
    assert _structure(fresh) == _structure(old_v4) == _structure(old_v1)


def test_the_revisions_are_one_line_of_schema_versions():
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    assert script.get_heads() == [revision_id(SCHEMA_VERSION)]
    chain = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert chain == [revision_id(n) for n in range(1, SCHEMA_VERSION + 1)]
    for revision in script.walk_revisions():
        assert Path(revision.path).name.startswith(f"{revision.revision}_"), revision.path


@pytest.mark.parametrize("engine", ENGINES)
def test_a_schema_newer_than_the_code_is_refused_and_left_alone(engine, database):
    location = database(engine)
    HistoryStore(location).close()
    newer = SCHEMA_VERSION + 1
    set_legacy = f"PRAGMA user_version = {newer}" if engine == "sqlite" else f"UPDATE schema_version SET version = {newer}"
    _raw(location, f"UPDATE {VERSION_TABLE} SET version_num = '{revision_id(newer)}'; {set_legacy};")
    message = f"{location} has schema version {newer}, newer than this supportdesk's {SCHEMA_VERSION}: " \
              "upgrade supportdesk, or point the history elsewhere"
    with pytest.raises(HistoryError) as refused:
        HistoryStore(location)
    assert str(refused.value) == message
    assert _markers(location) == (revision_id(newer), newer)
    # A newer revision alone (the old number not moved) is refused the same way.
    _raw(location, f"UPDATE {VERSION_TABLE} SET version_num = '{revision_id(newer + 2)}';"
                   + (f"PRAGMA user_version = {SCHEMA_VERSION}" if engine == "sqlite"
                      else f"UPDATE schema_version SET version = {SCHEMA_VERSION}"))
    with pytest.raises(HistoryError, match=f"schema version {newer + 2}, newer than this supportdesk's"):
        HistoryStore(location)


@pytest.mark.slow  # a PostgreSQL cluster
def test_replicas_upgrading_one_postgresql_history_at_once_take_turns(database):
    location = database("postgresql", (FIXTURES / "v1-postgresql.sql").read_text())
    opened: list[HistoryStore] = []
    errors: list[str] = []
    start = threading.Barrier(3)

    def replica() -> None:
        start.wait()
        try:
            opened.append(HistoryStore(location, pool_size=2))
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=replica) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(opened) == 3
    assert len({store.store_id for store in opened}) == 1
    assert sorted(store.upgraded_from for store in opened) == [1, SCHEMA_VERSION, SCHEMA_VERSION]
    for store in opened:
        store.close()


def test_an_up_to_date_sqlite_history_opens_while_another_program_holds_its_lock(tmp_path):
    """Opening takes no lock when there is nothing to upgrade (as before): writes wait instead."""
    path = tmp_path / "history.sqlite3"
    HistoryStore(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        store = HistoryStore(path)
        store._engine._db.execute("PRAGMA busy_timeout = 50")
        assert store.conversations() == [] and store.new_conversation() < 0 and store.pending == 1
    finally:
        other.execute("COMMIT")
        other.close()
    assert store.flush() and store.pending == 0
    store.close()


@pytest.mark.slow  # a PostgreSQL cluster
def test_borrowing_a_pooled_postgresql_connection_adds_nothing_to_it(database):
    """SQLAlchemy's psycopg dialect adds a notice logger to every connection it is handed; through
    NullPool over psycopg's pool that is every borrow: one more per write, for ever."""
    store = HistoryStore(database("postgresql"), pool_size=1)
    cid = store.new_conversation()
    for i in range(20):
        store.add_message(cid, "user", f"message {i}")
    with store._engine._pool.connection() as conn:
        assert len(conn._notice_handlers) <= 1
    store.close()


NEXT_REVISION = '''"""A table of a supportdesk newer than this one (a test's)."""

import sqlalchemy as sa
from alembic import op

revision = "{next}"
down_revision = "{head}"


def upgrade() -> None:
    op.create_table("probe_answers", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("text", sa.Text, nullable=False))
'''


@pytest.mark.parametrize("engine", ENGINES)
def test_the_next_revision_upgrades_a_v4_history_in_place_and_older_code_then_refuses_it(
        engine, database, tmp_path, monkeypatch):
    """What the next issue does (one Table, one revision), on a history made before Alembic."""
    from supportdesk.history import revisions

    location, expected = _v4(engine, database, tmp_path)
    newer = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, newer, ignore=shutil.ignore_patterns("__pycache__"))
    (newer / "versions" / f"{revision_id(SCHEMA_VERSION + 1)}_probe_answers.py").write_text(
        NEXT_REVISION.format(next=revision_id(SCHEMA_VERSION + 1), head=revision_id(SCHEMA_VERSION)))
    with monkeypatch.context() as newer_code:
        newer_code.setattr(revisions, "MIGRATIONS", newer)
        newer_code.setattr(revisions, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
        store = HistoryStore(location)
        assert (store.upgraded_from, store.version) == (4, SCHEMA_VERSION + 1)
        assert _read_back(store) == expected
        store.close()
    assert _markers(location) == (revision_id(SCHEMA_VERSION + 1), SCHEMA_VERSION + 1)
    _raw(location, "INSERT INTO probe_answers (id, text) VALUES (1, 'approved');")
    with pytest.raises(HistoryError, match=f"schema version {SCHEMA_VERSION + 1}, newer than this supportdesk's"):
        HistoryStore(location)
