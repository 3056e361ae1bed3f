"""Make the version-4 history fixtures with supportdesk's code from before Alembic.

    git archive 7ce8655 | tar -x -C /tmp/old     # the last commit with history/schema.py's SQL lists
    .venv/bin/python tests/data/history/make_fixtures.py /tmp/old/src

Writes, beside this script:
- ``v4.sqlite3``: a SQLite history at version 4 (user_version 4), made by that code;
- ``v4-postgresql.sql``: ``pg_dump --inserts`` of a PostgreSQL history at version 4 (the
  ``schema_version`` table), made by that code in a throw-away cluster;
- ``v4-*.expected.json``: what that code reads back from each (conversations, messages, tokens,
  the store id, the rated-good export), for the new code to read back the same.
- ``v1-sqlite.sql`` / ``v1-postgresql.sql``: that code's first schema step on each engine.

The data: an agent's conversation with a rated, cited answer; a local one with a 👎 hand-off;
tokens (one revoked, its name reused); a conversation copied in by ``history migrate``
(origins). Run only to remake the fixtures; the tests use the files.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def fill(store, migrate, HistoryStore) -> None:  # the old code's migrate and class, passed in
    alice = store.new_conversation(owner="alice")
    store.add_message(alice, "user", "How long is the warranty on the Talon?", asked_by="alice")
    answer = store.add_message(
        alice, "assistant", "Two years from delivery [1].", kind="grounded", reason="close to the docs",
        citations=[{"number": 1, "source": "faq.md", "heading": "Warranty", "cited": True, "score": 0.81}],
        timings={"retrieve_ms": 12.5, "total_ms": 840.0}, model={"backend": "embedded", "adapter": "brand-v2"},
        asked_by="alice")
    store.set_feedback(answer, 1)
    local = store.new_conversation()
    store.add_message(local, "user", "Is the Talon sold in Peru?")
    handoff = store.add_message(local, "assistant", "I'll pass your question to a colleague.", kind="handoff",
                                reason="not in the docs", abstained=True)
    store.set_feedback(handoff, -1)
    store.add_token("ada", "admin", "hash-ada", None)
    store.add_token("bob", "agent", "hash-bob-1", 1900000000.0)
    store.revoke_token("bob")
    store.add_token("bob", "agent", "hash-bob-2", None)
    source = HistoryStore(":memory:")
    copied = source.new_conversation(owner="carol")
    source.add_message(copied, "user", "Can I return a router after 30 days?", asked_by="carol")
    source.add_message(copied, "assistant", "Yes, within 45 days [1].", kind="grounded",
                       citations=[{"number": 1, "source": "returns.md", "cited": True}], asked_by="carol")
    assert migrate(source, store).verified
    source.close()


def read_back(store) -> dict:
    conversations = sorted(store.conversations(limit=1000), key=lambda c: c.id)
    return {
        "store_id": store.store_id,
        "conversations": [vars(c) for c in conversations],
        "messages": {str(c.id): [vars(m) for m in store.messages(c.id)] for c in conversations},
        "tokens": store.token_rows(include_revoked=True),
        "export": list(store.export(rated_good_only=True)),
    }


def main() -> None:
    old_src = Path(sys.argv[1]).resolve()
    sys.path.insert(0, str(old_src))
    sys.path.insert(0, str(HERE.parents[1]))  # tests/: fixtures.postgres_server
    from fixtures.postgres_server import PostgresServer

    from supportdesk.history import SCHEMA_VERSION, HistoryStore
    from supportdesk.history import schema as old_schema
    from supportdesk.history.migrate import migrate

    assert SCHEMA_VERSION == 4 and Path(old_schema.__file__).is_relative_to(old_src), old_schema.__file__
    (HERE / "v1-sqlite.sql").write_text(old_schema.SQLITE[0].strip() + "\nPRAGMA user_version = 1;\n")
    (HERE / "v1-postgresql.sql").write_text(
        old_schema.POSTGRESQL[0].strip() + "\nCREATE TABLE schema_version (version INTEGER NOT NULL);\n"
        "INSERT INTO schema_version VALUES (1);\n")

    path = HERE / "v4.sqlite3"
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    store = HistoryStore(path)
    fill(store, migrate, HistoryStore)
    expected = read_back(store)
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("PRAGMA journal_mode = DELETE")  # one file, nothing beside it
        assert db.execute("PRAGMA user_version").fetchone()[0] == 4
    (HERE / "v4-sqlite.expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")

    server = PostgresServer().start()
    try:
        store = HistoryStore(server.url)
        fill(store, migrate, HistoryStore)
        expected = read_back(store)
        store.close()
        dump = subprocess.run(
            [str(server.bindir / "pg_dump"), "--inserts", "--no-owner", "--no-privileges", "--no-comments",
             "-h", "127.0.0.1", "-p", str(server.port), "-U", server.user, server.database],
            capture_output=True, text=True, check=True).stdout
    finally:
        server.stop()
    (HERE / "v4-postgresql.sql").write_text(dump)
    (HERE / "v4-postgresql.expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
