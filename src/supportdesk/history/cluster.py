"""What team-server replicas share in their PostgreSQL history database (``kb.cluster.ClusterState``).

The tables (``schema.kb_generations``, ``cluster_state``, ``cluster_replicas``) hold the current KB
generation and its files, the active adapter and each replica's heartbeat. The reload lock is a
session advisory lock on a connection of its own: PostgreSQL frees it when that connection ends,
so a replica killed mid-reload leaves the lock free (and the current generation unchanged).
Changes are announced with ``NOTIFY`` on one channel; a replica ``LISTEN``s on a connection of
its own and reads the state again on each notification and every tick.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert

from supportdesk.history.engines import PostgresEngine
from supportdesk.history.schema import cluster_replicas, cluster_state, kb_generations

log = logging.getLogger(__name__)

CHANNEL = "supportdesk_cluster"
RELOAD_LOCK = 0x5D4B_0001
"""The advisory lock key of a KB reload (the schema upgrade uses another)."""
KEEP_GENERATIONS = 3


class PostgresCluster:
    def __init__(self, url: str, replica: str, connect_timeout_s: float = 5.0) -> None:
        self.url = url
        self.replica = replica
        self.engine = PostgresEngine(url, pool_size=3, connect_timeout_s=connect_timeout_s)
        self._timeout = max(1, round(connect_timeout_s))
        self._lock_conn: Any = None
        self._started = time.time()

    def _connect(self, purpose: str) -> Any:
        import psycopg

        return psycopg.connect(self.url, autocommit=True, connect_timeout=self._timeout,
                               application_name=f"supportdesk {purpose} {self.replica}"[:63])

    # -- the reload lock ---------------------------------------------------------------------
    def try_lock(self, by: str) -> str | None:
        conn = self._connect("reload")
        try:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (RELOAD_LOCK,)).fetchone()[0]
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return self.holder() or "another replica"
        self._lock_conn = conn
        self.set("reloading", by, by)
        return None

    def unlock(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is None:
            return
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (RELOAD_LOCK,))
        finally:
            conn.close()  # frees the lock in any case

    def holder(self) -> str | None:
        rows = self.engine.read(text("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                     "AND classid = 0 AND objid = :key AND objsubid = 1"), {"key": RELOAD_LOCK})
        if not rows or not rows[0]["n"]:
            return None
        found = self.get("reloading")
        return found[0] if found and found[0] else "another replica"

    # -- shared facts ------------------------------------------------------------------------
    def get(self, key: str) -> tuple[str, str | None, float] | None:
        rows = self.engine.read(select(cluster_state).where(cluster_state.c.key == key))
        return (rows[0]["value"], rows[0]["updated_by"], float(rows[0]["updated_at"])) if rows else None

    @staticmethod
    def _upsert(tx: Any, key: str, value: str, by: str | None) -> None:
        statement = insert(cluster_state).values(key=key, value=value, updated_at=time.time(), updated_by=by)
        tx.execute(statement.on_conflict_do_update(index_elements=["key"], set_={
            "value": statement.excluded.value, "updated_at": statement.excluded.updated_at,
            "updated_by": statement.excluded.updated_by}))

    @staticmethod
    def _notify(tx: Any, payload: dict[str, Any]) -> None:
        tx.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": json.dumps(payload)})

    def set(self, key: str, value: str, by: str | None, notify: dict[str, Any] | None = None) -> None:
        with self.engine.transaction() as tx:
            self._upsert(tx, key, value, by)
            if notify is not None:
                self._notify(tx, notify)

    def cluster_id(self) -> str:
        with self.engine.transaction() as tx:
            tx.execute(insert(cluster_state).values(key="cluster_id", value=uuid.uuid4().hex, updated_at=time.time(),
                                                    updated_by=self.replica).on_conflict_do_nothing())
        found = self.get("cluster_id")
        assert found is not None
        return found[0]

    # -- generations -------------------------------------------------------------------------
    def fetch(self, generation: str) -> dict[str, Any] | None:
        rows = self.engine.read(select(kb_generations).where(kb_generations.c.generation == generation))
        return rows[0] if rows else None

    def publish(self, row: dict[str, Any], by: str | None) -> None:
        with self.engine.transaction() as tx:
            tx.execute(insert(kb_generations).values(created_at=time.time(), **row).on_conflict_do_nothing())
            self._upsert(tx, "kb_generation", row["generation"], by)
            keep = select(kb_generations.c.generation).order_by(kb_generations.c.created_at.desc()) \
                .limit(KEEP_GENERATIONS).scalar_subquery()
            tx.execute(delete(kb_generations).where(kb_generations.c.generation.not_in(keep)))
            self._notify(tx, {"kind": "kb", "generation": row["generation"], "by": by, "replica": self.replica})

    # -- replicas ----------------------------------------------------------------------------
    def heartbeat(self, generation: str | None, adapter: str | None, embedded: int, note: str | None) -> None:
        values = {"replica": self.replica, "started_at": self._started, "heartbeat_at": time.time(),
                  "generation": generation, "adapter": adapter, "embedded": embedded, "note": note}
        statement = insert(cluster_replicas).values(**values)
        with self.engine.transaction() as tx:
            tx.execute(statement.on_conflict_do_update(index_elements=["replica"], set_={
                k: getattr(statement.excluded, k) for k in values if k != "replica"}))

    def replicas(self) -> list[dict[str, Any]]:
        return self.engine.read(select(cluster_replicas).order_by(cluster_replicas.c.replica))

    def leave(self) -> None:
        with self.engine.transaction() as tx:
            tx.execute(delete(cluster_replicas).where(cluster_replicas.c.replica == self.replica))

    # -- following ---------------------------------------------------------------------------
    def watch(self, on_event: Callable[[dict[str, Any] | None], None], stop: threading.Event,
              tick_s: float) -> None:
        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = self._connect("listen")
                    conn.execute(f"LISTEN {CHANNEL}")
                    on_event({"kind": "connected"})  # read everything again: a change may have been missed
                for notice in conn.notifies(timeout=tick_s):
                    try:
                        payload = json.loads(notice.payload)
                    except ValueError:
                        payload = {"kind": "unknown"}
                    on_event(payload if isinstance(payload, dict) else {"kind": "unknown"})
                    if stop.is_set():
                        break
                on_event(None)
            except Exception as exc:  # noqa: BLE001 - the database is away: serve on, try again
                log.warning("cluster: listening for changes failed: %s", exc)
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001, S110 - already broken
                        pass
                conn = None
                stop.wait(1.0)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self.unlock()
        self.engine.close()
