"""The SQLite history: versioned upgrades, feedback, export."""

from __future__ import annotations

import sqlite3

import pytest

from supportdesk.history import SCHEMA_VERSION, HistoryStore
from supportdesk.history.schema import SQLITE as MIGRATIONS


def test_upgrade_from_version_1_keeps_data(tmp_path):
    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    db.execute("INSERT INTO conversations (title, created_at, updated_at) VALUES ('old', 1, 1)")
    db.execute("INSERT INTO messages (conversation_id, role, content, created_at) VALUES (1, 'user', 'hi', 1)")
    db.commit()
    db.close()
    store = HistoryStore(path)
    assert store.upgraded_from == 1 and store.version == SCHEMA_VERSION
    [message] = store.messages(1)
    assert message.content == "hi" and message.feedback == 0 and message.model == {}


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer than this supportdesk"):
        HistoryStore(path)


def test_feedback_and_export(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite3")
    cid = store.new_conversation()
    store.add_message(cid, "user", "Is the Talon sold in the UK?")
    answer = store.add_message(cid, "assistant", "No, only in the US and Canada [1].", kind="grounded",
                               citations=[{"number": 1, "source": "faq.md", "cited": True}], timings={"total_ms": 12.5})
    handoff = store.add_message(cid, "assistant", "I'll pass this on.", kind="handoff", abstained=True)
    store.set_feedback(answer, 1)
    store.set_feedback(handoff, 1)
    with pytest.raises(ValueError):
        store.set_feedback(answer, 5)
    assert store.conversations()[0].title == "Is the Talon sold in the UK?"
    stored = store.messages(cid)
    assert stored[1].citations[0]["source"] == "faq.md" and stored[1].timings["total_ms"] == 12.5
    good = list(store.export(rated_good_only=True))
    assert len(good) == 1 and good[0]["messages"][-1]["content"].startswith("No, only")
