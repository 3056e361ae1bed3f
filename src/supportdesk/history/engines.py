"""The two databases a history lives in, behind the few operations the store needs.

SQLite (the embedded default): one file in the data dir, one connection serialised by a lock,
WAL. PostgreSQL (``history.url = "postgresql://…"``): psycopg 3 with a connection pool, so
several team-server replicas share one history; every write is its own transaction.

Statements are SQLAlchemy Core on the tables of ``schema``, written once for both; SQLAlchemy
runs them on the connection this module opens (SQLite) or lends from psycopg's pool
(PostgreSQL). Errors come out as the driver's own (SQLAlchemy's wrapper removed), and
``transient`` says whether one will pass by itself (a locked SQLite file, an unreachable
PostgreSQL): the store then keeps the write in memory and retries it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Executable, Table, bindparam, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.pool import NullPool, StaticPool

from supportdesk.history import revisions
from supportdesk.history.errors import HistoryError
from supportdesk.private import private_dir, private_file
from supportdesk.settings import redact_url

__all__ = ["Engine", "HistoryError", "IntegrityCheckFailed", "PostgresEngine", "SQLiteEngine", "Tx", "open_engine"]


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
    """Statements take their values as bound parameters (``bindparam``) in ``params``: a statement
    built once is compiled once (see ``store``'s module-level statements)."""

    def execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...
    def insert(self, table: Table, values: Mapping[str, Any], *, on_conflict: Sequence[str] | None = None) -> int | None:
        """The new row's id. ``on_conflict``: the columns of a unique index (``()``: any) whose
        conflicting row is kept instead, and then None is returned."""
    def update(self, statement: Executable, params: Mapping[str, Any] | None = None) -> int:
        """The number of rows the statement changed."""


class Engine(Protocol):
    dialect: str
    location: str
    """What to call the store in messages: a file path, or a URL without its password."""
    errors: tuple[type[BaseException], ...]

    def transient(self, exc: BaseException) -> bool: ...
    def ping(self) -> bool: ...
    def stale(self, exc: BaseException) -> bool: ...
    def integrity(self, exc: BaseException) -> bool: ...
    def read(self, statement: Executable, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...
    def transaction(self) -> contextlib.AbstractContextManager[Tx]: ...
    def version(self) -> int: ...
    def upgrade(self) -> int: ...
    def close(self) -> None: ...


def _driver_error(exc: sa_exc.DBAPIError) -> BaseException:
    """SQLAlchemy wraps the driver's exceptions; the store decides on the driver's own (locked,
    unreachable, a duplicate) and quotes their text to people, so the wrapper comes off."""
    return exc.orig if isinstance(exc.orig, BaseException) else exc


@contextlib.contextmanager
def _driver_errors() -> Iterator[None]:
    try:
        yield
    except sa_exc.DBAPIError as exc:
        raise _driver_error(exc) from None


_INSERTS: dict[tuple[str, str, tuple[str, ...], tuple[str, ...] | None], Executable] = {}
"""Each INSERT built once per dialect, table, columns and conflict target (with bound parameters):
SQLAlchemy then finds it compiled in its cache instead of building and keying a new one per write."""


class _Tx:
    """Core statements on one SQLAlchemy connection, inside the engine's transaction."""

    def __init__(self, conn: Connection, insert: Any) -> None:
        self._conn = conn
        self._insert = insert  # the dialect's INSERT, the one with ON CONFLICT

    def execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        try:
            result = self._conn.execute(statement, params)
            if not result.returns_rows:
                return []
            names = list(result.keys())
            return [dict(zip(names, row, strict=True)) for row in result]  # 10x dict(RowMapping)
        except sa_exc.DBAPIError as exc:
            raise _driver_error(exc) from None

    def insert(self, table: Table, values: Mapping[str, Any], *, on_conflict: Sequence[str] | None = None) -> int | None:
        key = (self._conn.dialect.name, table.name, tuple(values), None if on_conflict is None else tuple(on_conflict))
        statement = _INSERTS.get(key)
        if statement is None:
            built = self._insert(table).values({name: bindparam(name) for name in values})
            if on_conflict is not None:
                built = built.on_conflict_do_nothing(index_elements=list(on_conflict) or None)
            statement = _INSERTS.setdefault(key, built.returning(table.c.id))
        try:
            new_id = self._conn.execute(statement, values).scalar()
        except sa_exc.DBAPIError as exc:
            raise _driver_error(exc) from None
        return int(new_id) if new_id is not None else None

    def update(self, statement: Executable, params: Mapping[str, Any] | None = None) -> int:
        try:
            return int(self._conn.execute(statement, params).rowcount)
        except sa_exc.DBAPIError as exc:
            raise _driver_error(exc) from None


# -- SQLite ---------------------------------------------------------------------------------
def _is_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


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
        # sqlite3 in autocommit mode (isolation_level=None): transactions are begun here, as
        # BEGIN IMMEDIATE (the write lock at once, so a writer never fails half-way for a lock).
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=busy_timeout_s)
        try:
            self._db.execute("PRAGMA foreign_keys = ON")
            if not memory:
                self._db.execute("PRAGMA journal_mode = WAL")
                check = [row[0] for row in self._db.execute("PRAGMA quick_check").fetchall()]
                if check != ["ok"]:
                    raise IntegrityCheckFailed(check)
            # SQLAlchemy runs the statements on this very connection (one, behind the lock). The
            # transactions are the driver's: SQLAlchemy's BEGIN and COMMIT would only wrap them.
            self._sa = create_engine("sqlite://", creator=lambda: self._db, poolclass=StaticPool)
            with _driver_errors():
                self._conn = self._sa.connect()
            self._tx = _Tx(self._conn, sqlite_dialect.insert)
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

    def read(self, statement: Executable, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return self._tx.execute(statement, params)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """BEGIN IMMEDIATE: the write lock at once, so a writer never fails half-way for a lock."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._tx
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _legacy(self) -> int:
        return int(self._conn.exec_driver_sql("PRAGMA user_version").scalar_one())

    def version(self) -> int:
        with self._lock, _driver_errors():
            return revisions.version_of(revisions.current_revision(self._conn))

    def upgrade(self) -> int:
        """Bring the file to this code's schema (``revisions``); returns the version found."""
        with self._lock, _driver_errors():
            legacy = self._legacy()
            if revisions.up_to_date(revisions.current_revision(self._conn), legacy):
                return legacy
            with self.transaction():  # the write lock, held while the version is read again
                return revisions.upgrade(self._conn, self.location, self._legacy(),
                                         lambda n: self._conn.exec_driver_sql(f"PRAGMA user_version = {int(n)}"))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            self._sa.dispose()
            self._db.close()


# -- PostgreSQL -----------------------------------------------------------------------------
_ADVISORY_LOCK = 7020261205
"""Replicas starting together take turns to upgrade the schema."""


def _one_notice_logger(dbapi_connection: Any, _record: Any) -> None:
    """SQLAlchemy's psycopg dialect adds a notice logger to each connection it is given: through
    NullPool that is every borrow of a pooled connection, so the same connection would collect
    one more per write. Keep none (notices are not shown anyway)."""
    with contextlib.suppress(ValueError):
        dbapi_connection.remove_notice_handler(_sqlalchemy_notice_logger)


def _sqlalchemy_notice_logger_of() -> Any:
    from sqlalchemy.dialects.postgresql import psycopg as sa_psycopg

    return getattr(sa_psycopg, "_log_notices", None)


_sqlalchemy_notice_logger = _sqlalchemy_notice_logger_of()


class PostgresEngine:
    """A pool of psycopg connections; each operation borrows one, in its own transaction.

    The pool is psycopg's (``psycopg_pool``); SQLAlchemy borrows from it through ``NullPool``
    (``close_returns``: closing gives the connection back), as both projects document."""

    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int = 10, connect_timeout_s: float = 5.0) -> None:
        try:
            import psycopg
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
        kwargs = {"connect_timeout": timeout, "application_name": "supportdesk"}
        try:  # one direct connection first: its error says why (refused, no such database, auth)
            psycopg.connect(url, **kwargs).close()
        except psycopg.Error as exc:
            raise HistoryError(f"cannot reach the history database {self.location}: {_first_line(exc)}") from exc
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, kwargs=kwargs, timeout=connect_timeout_s,
                                    open=False, name="supportdesk-history",
                                    reconnect_timeout=0, close_returns=True)
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout as exc:
            self._pool.close()
            raise HistoryError(f"cannot reach the history database {self.location}: {_first_line(exc)}") from exc
        self._sa = create_engine("postgresql+psycopg://", creator=self._pool.getconn, poolclass=NullPool)
        if _sqlalchemy_notice_logger is not None:
            event.listen(self._sa, "connect", _one_notice_logger)

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

    def _read(self, statement: Executable, params: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        with _driver_errors(), self._sa.connect() as conn:
            rows = _Tx(conn, pg_dialect.insert).execute(statement, params)
            # COMMIT, not the ROLLBACK SQLAlchemy would send when the connection goes back: psycopg
            # forgets the connection's prepared statements at a ROLLBACK (reads: 230 -> 720 us).
            conn.commit()
            return rows

    def read(self, statement: Executable, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        try:
            return self._read(statement, params)
        except self.errors as exc:
            if not self.stale(exc):
                raise
        return self._read(statement, params)

    @contextlib.contextmanager
    def _begin(self) -> Iterator[Connection]:
        with _driver_errors(), self._sa.begin() as conn:  # commits at the end, rolls back on an exception
            yield conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._begin() as conn:
            yield _Tx(conn, pg_dialect.insert)

    @staticmethod
    def _legacy(conn: Connection) -> int:
        if conn.exec_driver_sql("SELECT to_regclass('schema_version') IS NULL").scalar_one():
            return 0
        return int(conn.exec_driver_sql("SELECT version FROM schema_version").scalar_one())

    def version(self) -> int:
        with _driver_errors(), self._sa.connect() as conn:
            return revisions.version_of(revisions.current_revision(conn))

    def upgrade(self) -> int:
        """Bring the database to this code's schema (``revisions``), in one transaction; replicas
        starting together take turns (an advisory lock). Returns the version found."""
        with _driver_errors(), self._sa.connect() as conn:
            legacy = self._legacy(conn)
            if revisions.up_to_date(revisions.current_revision(conn), legacy):
                return legacy
            conn.rollback()
        with self._begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            conn.exec_driver_sql("INSERT INTO schema_version SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM schema_version)")
            return revisions.upgrade(conn, self.location, self._legacy(conn),
                                     lambda n: conn.execute(text("UPDATE schema_version SET version = :n"), {"n": n}))

    def close(self) -> None:
        self._sa.dispose()
        self._pool.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def open_engine(location: str, pool_size: int = 10, connect_timeout_s: float = 5.0,
                busy_timeout_s: float = 2.0) -> Engine:
    if location.startswith(("postgresql://", "postgres://")):
        return PostgresEngine(location, pool_size, connect_timeout_s)
    return SQLiteEngine(location, busy_timeout_s)
