"""The SQLite history: versioned upgrades, feedback, export."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from supportdesk.history import SCHEMA_VERSION, HistoryStore

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "history"


def test_upgrade_from_version_1_keeps_data(tmp_path):
    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path)
    db.executescript((FIXTURES / "v1-sqlite.sql").read_text())  # version 1 as supportdesk made it
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
    assert [g["messages"][-1]["content"] for g in good] == ["No, only in the US and Canada [1].", "I'll pass this on."]
    assert good[1]["metadata"]["route"] == "handoff"


def test_rated_good_export_holds_only_what_a_person_approved(tmp_path):
    """Issue 30 item 5: an unrated reply (a base model's "Perch to Perch…") came out as an agent
    turn of the next 👍 answer's record, and a 👍 hand-off was left out. Read back as
    'adapter prepare' reads it: every agent turn it would learn was rated 👍."""
    import json

    from typer.testing import CliRunner

    from supportdesk.cli import app
    from supportdesk.training.prepare import load_split

    data = tmp_path / "data"
    store = HistoryStore(data / "history.sqlite3")
    cid = store.new_conversation()
    store.add_message(cid, "user", "How do I pair a new Perch?")
    store.add_message(cid, "assistant", "Perch to Perch, mesh to mesh, the roost is yours!", kind="voice")  # unrated
    store.add_message(cid, "user", "and how long does it take?")
    good = store.add_message(cid, "assistant", "Pairing takes about two minutes [1].", kind="grounded")
    store.add_message(cid, "user", "Is the Talon sold in Peru?")
    handoff = store.add_message(cid, "assistant", "I'll pass your question to a colleague.", kind="handoff",
                                abstained=True)
    store.add_message(cid, "user", "thanks")
    bad = store.add_message(cid, "assistant", "No worries mate!!!", kind="voice")
    store.set_feedback(good, 1)
    store.set_feedback(handoff, 1)
    store.set_feedback(bad, -1)
    store.close()

    runner = CliRunner()
    exported = tmp_path / "good.jsonl"
    result = runner.invoke(app, ["--data-dir", str(data), "history", "export", "--rated-good", "-o", str(exported)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    assert [r["metadata"]["route"] for r in records] == ["grounded", "handoff"]
    approved = {"Pairing takes about two minutes [1].", "I'll pass your question to a colleague."}
    for record in records:
        agent = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
        assert set(agent) <= approved, agent
    assert records[0]["messages"][:2] == [{"role": "user", "content": "How do I pair a new Perch?"},
                                          {"role": "user", "content": "and how long does it take?"}]

    prepared = runner.invoke(app, ["--data-dir", str(data), "adapter", "prepare", str(exported), "--out",
                                   str(tmp_path / "ds"), "--eval-fraction", "0.05"])
    assert prepared.exit_code == 0, prepared.output
    learned = [m["content"] for split in ("train", "eval") for conv in load_split(tmp_path / "ds" / f"{split}.jsonl")
               for m in conv if m["role"] == "assistant"]
    assert learned and set(learned) <= approved and "Perch to Perch" not in " ".join(learned)


def test_history_show_prints_each_answers_route_and_reason(tmp_path):
    """Issue 30 item 18: '[cyan][grounded][/]' was read as a Rich style, so no route was shown."""
    from typer.testing import CliRunner

    from supportdesk.cli import app

    store = HistoryStore(tmp_path / "data" / "history.sqlite3")
    cid = store.new_conversation()
    store.add_message(cid, "user", "How long is the warranty?")
    good = store.add_message(cid, "assistant", "Two years [1].", kind="grounded", reason="close to the docs",
                             citations=[{"number": 1, "source": "faq.md", "heading": "Warranty", "cited": True}])
    store.add_message(cid, "user", "hi")
    store.add_message(cid, "assistant", "Hello!", kind="voice", reason="chit-chat")
    store.add_message(cid, "user", "Is the Talon sold in Peru?")
    store.add_message(cid, "assistant", "I'll pass this on.", kind="handoff", abstained=True)
    store.set_feedback(good, 1)
    store.close()
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path / "data"), "history", "show", str(cid)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "[grounded] 👍 Two years [1]." in lines and "   why: close to the docs" in lines
    assert "[voice] Hello!" in lines and "[handoff] I'll pass this on." in lines
    assert "   [1] faq.md — Warranty" in lines
