"""The two databases a history lives in, behind the few operations the store needs.

SQLite (the embedded default): one file in the data dir, one connection serialised by a lock,
WAL. PostgreSQL (``history.url = "postgresql://…"``): psycopg 3 with a connection pool, so
several team-server replicas share one history; every write is its own transaction.

SQL is written once, with ``?`` placeholders; the PostgreSQL engine turns them into ``%s``.
``transient`` says whether an error will pass by itself (a locked SQLite file, an unreachable
PostgreSQL): the store then keeps the write in memory and retries it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from supportdesk.history import schema
from supportdesk.private import private_dir, private_file
from supportdesk.settings import redact_url


class HistoryError(RuntimeError):
    """The history is damaged, unreachable or unusable; the message names it and what to do."""


class IntegrityCheckFailed(sqlite3.DatabaseError):
    """SQLite's ``quick_check`` found problems: one line for people; ``details``, the whole report
    (it can run to a hundred lines), for the log."""

    def __init__(self, rows: list[Any]) -> None:
        self.details = "\n".join(str(row) for row in rows)
        problems = [line.strip() for line in self.details.splitlines()
                    if line.strip() and not line.startswith("*** in database")]
        count = len(problems)
        first = problems[0] if problems else self.details.strip()
        super().__init__(f"integrity check found {count} problem{'s' if count != 1 else ''}, first: {first}")


class Tx(Protocol):
    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]: ...
    def insert(self, sql: str, params: tuple[Any, ...] = ()) -> int | None:
        """The new row's id; None when ``ON CONFLICT DO NOTHING`` kept the existing row."""
    def update(self, sql: str, params: tuple[Any, ...] = ()) -> int: ...


class Engine(Protocol):
    dialect: str
    location: str
    """What to call the store in messages: a file path, or a URL without its password."""
    errors: tuple[type[BaseException], ...]

    def transient(self, exc: BaseException) -> bool: ...
    def ping(self) -> bool: ...
    def stale(self, exc: BaseException) -> bool: ...
    def integrity(self, exc: BaseException) -> bool: ...
    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]: ...
    def transaction(self) -> contextlib.AbstractContextManager[Tx]: ...
    def version(self) -> int: ...
    def upgrade(self) -> int: ...
    def close(self) -> None: ...


def _too_new(location: str, found: int) -> HistoryError:
    return HistoryError(
        f"{location} has schema version {found}, newer than this supportdesk's {schema.SCHEMA_VERSION}: "
        "upgrade supportdesk, or point the history elsewhere"
    )


# -- SQLite ---------------------------------------------------------------------------------
def _is_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class _SQLiteTx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute(sql, params).fetchall()]

    def insert(self, sql: str, params: tuple[Any, ...] = ()) -> int | None:
        cursor = self._db.execute(sql, params)
        return int(cursor.lastrowid) if cursor.rowcount != 0 else None

    def update(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        return int(self._db.execute(sql, params).rowcount)


class SQLiteEngine:
    dialect = "sqlite"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(self, path: Path | str, busy_timeout_s: float = 2.0) -> None:
        self.path = Path(path)
        self.location = str(path)
        memory = str(path) == ":memory:"
        if not memory:
            private_dir(self.path.parent)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            private_file(self.path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=busy_timeout_s)
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA foreign_keys = ON")
            if not memory:
                self._db.execute("PRAGMA journal_mode = WAL")
                check = [row[0] for row in self._db.execute("PRAGMA quick_check").fetchall()]
                if check != ["ok"]:
                    raise IntegrityCheckFailed(check)
        except BaseException:
            with contextlib.suppress(Exception):
                self._db.close()
            raise

    def transient(self, exc: BaseException) -> bool:
        return _is_locked(exc)

    def stale(self, exc: BaseException) -> bool:
        return False

    def ping(self) -> bool:
        return True  # a file: whether it is still locked shows when the write is tried

    def integrity(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, params).fetchall()]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteTx(self._db)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def upgrade(self) -> int:
        """Apply missing steps in one transaction each; returns the version found."""
        with self._lock:
            found = self.version()
            if found > schema.SCHEMA_VERSION:
                raise _too_new(self.location, found)
            for version in range(found, schema.SCHEMA_VERSION):
                try:
                    self._db.executescript("BEGIN;" + schema.SQLITE[version] + f"PRAGMA user_version = {version + 1};COMMIT;")
                except Exception:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
        return found

    def close(self) -> None:
        with self._lock:
            self._db.close()


# -- PostgreSQL -----------------------------------------------------------------------------
class _PostgresTx:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cursor = self._conn.execute(sql.replace("?", "%s"), params)
        return list(cursor.fetchall()) if cursor.description else []

    def insert(self, sql: str, params: tuple[Any, ...] = ()) -> int | None:
        row = self._conn.execute(sql.replace("?", "%s") + " RETURNING id", params).fetchone()
        return int(row["id"]) if row else None

    def update(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        return int(self._conn.execute(sql.replace("?", "%s"), params).rowcount)


class PostgresEngine:
    """A pool of psycopg connections; each operation borrows one, in its own transaction."""

    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int = 10, connect_timeout_s: float = 5.0) -> None:
        try:
            import psycopg
            from psycopg.rows import dict_row
            from psycopg_pool import ConnectionPool, PoolTimeout
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise HistoryError("history.url is a PostgreSQL URL but psycopg is not installed: "
                               "pip install 'psycopg[binary]' psycopg-pool") from exc
        # The pool reports each failed reconnection through logging; with no handler configured,
        # Python would print them on stderr, over the TUI. The store says what matters instead.
        logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())
        self.url = url
        self.location = redact_url(url)
        self.errors = (psycopg.Error, PoolTimeout)
        self._psycopg = psycopg
        self._pool_timeout = PoolTimeout
        timeout = max(1, round(connect_timeout_s))
        kwargs = {"row_factory": dict_row, "connect_timeout": timeout, "application_name": "supportdesk"}
        try:  # one direct connection first: its error says why (refused, no such database, auth)
            psycopg.connect(url, **kwargs).close()
        except psycopg.Error as exc:
            raise HistoryError(f"cannot reach the history database {self.location}: {_first_line(exc)}") from exc
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, kwargs=kwargs, timeout=connect_timeout_s,
                                    open=False, name="supportdesk-history",
                                    reconnect_timeout=0)
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout as exc:
            self._pool.close()
            raise HistoryError(f"cannot reach the history database {self.location}: {_first_line(exc)}") from exc

    def transient(self, exc: BaseException) -> bool:
        return isinstance(exc, (self._psycopg.OperationalError, self._psycopg.InterfaceError, self._pool_timeout))

    def ping(self) -> bool:
        """Whether the server answers now (within a second; a dropped pooled connection gets a second try)."""
        for _ in range(2):
            try:
                with self._pool.connection(timeout=1.0) as conn:
                    conn.execute("SELECT 1")
                return True
            except self.errors as exc:
                if not self.stale(exc):
                    return False
        return False

    def integrity(self, exc: BaseException) -> bool:
        return isinstance(exc, self._psycopg.IntegrityError)

    def stale(self, exc: BaseException) -> bool:
        """A pooled connection the server dropped (it restarted): worth one more try on a fresh one.
        Connections are not checked on every borrow (a round trip per write: p95 19 -> 15 ms
        measured with 20 writers); a dropped one fails at use, is discarded, and the call retried."""
        return isinstance(exc, (self._psycopg.OperationalError, self._psycopg.InterfaceError)) \
            and not isinstance(exc, self._pool_timeout)

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        try:
            with self._pool.connection() as conn:
                return _PostgresTx(conn).execute(sql, params)
        except self.errors as exc:
            if not self.stale(exc):
                raise
        with self._pool.connection() as conn:
            return _PostgresTx(conn).execute(sql, params)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._pool.connection() as conn:  # commits at the end, rolls back on an exception
            yield _PostgresTx(conn)

    def version(self) -> int:
        rows = self.read("SELECT to_regclass('schema_version') IS NOT NULL AS present")
        if not rows[0]["present"]:
            return 0
        return int(self.read("SELECT version FROM schema_version")[0]["version"])

    def upgrade(self) -> int:
        """Missing steps, each in one transaction; replicas starting together take turns (advisory lock)."""
        found_first: int | None = None
        with self._pool.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(7020261205)")
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                conn.execute("INSERT INTO schema_version SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM schema_version)")
                conn.commit()
                while True:
                    found = int(conn.execute("SELECT version FROM schema_version").fetchone()["version"])
                    if found_first is None:
                        found_first = found
                    if found > schema.SCHEMA_VERSION:
                        raise _too_new(self.location, found)
                    if found == schema.SCHEMA_VERSION:
                        break
                    with conn.transaction():
                        conn.execute(schema.POSTGRESQL[found])
                        conn.execute("UPDATE schema_version SET version = %s", (found + 1,))
            finally:
                conn.execute("SELECT pg_advisory_unlock(7020261205)")
                conn.commit()
        return found_first or 0

    def close(self) -> None:
        self._pool.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def open_engine(location: str, pool_size: int = 10, connect_timeout_s: float = 5.0,
                busy_timeout_s: float = 2.0) -> Engine:
    if location.startswith(("postgresql://", "postgres://")):
        return PostgresEngine(location, pool_size, connect_timeout_s)
    return SQLiteEngine(location, busy_timeout_s)
