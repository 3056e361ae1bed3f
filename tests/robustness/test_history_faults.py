"""The conversation history when its file is damaged, locked or private: messages, not
tracebacks; the chat works without it; nothing is lost."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from conftest import ScriptedBackend
from fixtures.outcome import no_traceback
from typer.testing import CliRunner

from supportdesk.cli import app
from supportdesk.history import HistoryStore


def _filled(path: Path, conversations: int = 30) -> None:
    store = HistoryStore(path)
    for i in range(conversations):
        cid = store.new_conversation()
        store.add_message(cid, "user", f"question {i} " + "x" * 400)
        store.add_message(cid, "assistant", f"answer {i} " + "y" * 400, kind="grounded",
                          citations=[{"number": 1, "source": "faq.md", "heading": "Returns", "cited": True}])
    store.close()


def _damage(path: Path) -> None:
    """Overwrite the middle of the file, where the message pages are, as a bad disk sector would."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.seek(size // 2)
        handle.write(os.urandom(4096))


def _history(tmp_path: Path, *args: str):
    return CliRunner().invoke(app, ["--data-dir", str(tmp_path / "data"), "history", *args])


def test_damaged_page_is_a_message_from_list_show_and_export(tmp_path):
    """Defect 12 (first half): only opening was guarded."""
    path = tmp_path / "data" / "history.sqlite3"
    _filled(path)
    _damage(path)
    for args in (["list"], ["show", "3"], ["export"]):
        result = _history(tmp_path, *args)
        assert result.exit_code == 1, (args, result.output)
        assert "is damaged" in result.stderr and "history move-aside" in result.stderr
        no_traceback(result)
    moved = _history(tmp_path, "move-aside")
    assert moved.exit_code == 0 and "broken-" in moved.stdout
    assert _history(tmp_path, "list").exit_code == 0  # a new, empty history
    assert list((tmp_path / "data").glob("history.sqlite3.broken-*"))  # nothing deleted


def test_a_damaged_history_is_one_line_with_the_details_in_a_log(tmp_path):
    """Issue 30 item 12: SQLite's integrity report (82 lines) was printed whole inside the message."""
    path = tmp_path / "data" / "history.sqlite3"
    _filled(path, conversations=120)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = path.stat().st_size // 4096
    with path.open("r+b") as handle:  # many b-tree pages claim cells they do not have: a long report
        for page in range(2, pages, 3):
            handle.seek(page * 4096)
            handle.write(b"\x0d\x00\x00\x00\x05\xff\xff")
    with sqlite3.connect(path) as db:
        assert len("\n".join(r[0] for r in db.execute("PRAGMA quick_check")).splitlines()) > 20
    result = _history(tmp_path, "list")
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    log = tmp_path / "data" / "history-problems.log"
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and "is damaged" in lines[0] and "integrity check found" in lines[0]
    assert f"details in {log}" in lines[0] and "history move-aside" in lines[0]
    no_traceback(result)
    report = log.read_text(encoding="utf-8")
    assert str(path) in report and len(report.splitlines()) > 20
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_invalid_json_in_stored_columns_reads_as_empty(tmp_path):
    """Defect 12 (second half)."""
    path = tmp_path / "data" / "history.sqlite3"
    _filled(path, conversations=1)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE messages SET citations = '{not json', timings = '[1,', model = 'null'")
    shown = _history(tmp_path, "show", "1")
    assert shown.exit_code == 0, shown.output
    assert "answer 0" in shown.stdout
    exported = _history(tmp_path, "export")
    assert exported.exit_code == 0 and len(exported.stdout.splitlines()) == 1


def test_private_files_are_private(tmp_path, settings_factory, small_kb, hash_embedder):
    """Weak spot: conversations, the index and datasets were world-readable under umask 022."""
    from supportdesk.kb import KnowledgeBase
    from supportdesk.training.prepare import prepare, write_dataset

    old = os.umask(0o022)
    try:
        settings = settings_factory(small_kb)
        store = HistoryStore(settings.data_dir / "history.sqlite3")
        store.add_message(store.new_conversation(), "user", "my address is 1 Main St")
        store.close()
        assert KnowledgeBase(settings, embedder=hash_embedder).reload().ok
        write_dataset(prepare([Path(__file__).parents[1] / "data" / "transcripts.csv"]),
                      settings.data_dir / "datasets" / "d")
    finally:
        os.umask(old)
    loose = []
    for root, dirs, files in os.walk(settings.data_dir):
        for name in dirs + files:
            path = Path(root) / name
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                loose.append(f"{path} {oct(mode)}")
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    assert loose == []


def test_a_locked_database_never_loses_a_message(tmp_path):
    """Weak spot: 'database is locked' was shown as the answer; now writes wait, in order."""
    path = tmp_path / "data" / "history.sqlite3"
    store = HistoryStore(path)
    store.busy_timeout_s = 0.05
    store._engine._db.execute("PRAGMA busy_timeout = 50")
    first = store.new_conversation()
    store.add_message(first, "user", "before the lock")

    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # a backup tool, an open sqlite3 shell
    cid = store.new_conversation()
    q = store.add_message(cid, "user", "asked while locked")
    a = store.add_message(cid, "assistant", "answered while locked", kind="voice")
    store.set_feedback(a, 1)
    assert cid < 0 and q < 0 and a < 0 and store.pending == 4
    assert [m.content for m in store.messages(cid)] == ["asked while locked", "answered while locked"]
    other.execute("COMMIT")
    other.close()

    assert store.flush() and store.pending == 0
    store.close()
    fresh = HistoryStore(path)
    latest = fresh.latest_conversation()
    messages = fresh.messages(latest)
    assert [m.content for m in messages] == ["asked while locked", "answered while locked"]
    assert messages[1].feedback == 1
    assert len(fresh.conversations()) == 2
    fresh.close()


def test_writes_still_locked_at_exit_are_saved_beside_the_database(tmp_path):
    path = tmp_path / "data" / "history.sqlite3"
    store = HistoryStore(path)
    store._engine._db.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    store.add_message(store.new_conversation(), "user", "keep me")
    leftover = store.close()
    other.execute("ROLLBACK")
    other.close()
    assert leftover is not None and "keep me" in leftover.read_text()
    assert stat.S_IMODE(leftover.stat().st_mode) == 0o600


@pytest.fixture
def tui_factory(settings_factory, small_kb, hash_embedder):
    from supportdesk.kb import KnowledgeBase
    from supportdesk.session import SupportSession
    from supportdesk.tui.app import SupportDeskApp

    settings = settings_factory(small_kb)
    kb = KnowledgeBase(settings, embedder=hash_embedder)
    assert kb.reload().ok

    def make():
        return SupportDeskApp(settings, session_factory=lambda s: SupportSession(
            s, backend=ScriptedBackend("Happy to help with that!"), kb=kb))

    return settings, make


async def _ready(pilot, app):
    for _ in range(200):
        await pilot.pause(0.05)
        if app.session is not None or app._start_error:
            return
    raise AssertionError(app._status_note)


async def _answered(pilot, app):
    for _ in range(200):
        await pilot.pause(0.05)
        if app._ticket is None and app._streaming is None:
            return app.query_one("#conversation").answers()[-1]
    raise AssertionError("no answer")


async def test_tui_chats_with_a_broken_history_and_offers_to_move_it(tui_factory):
    """Defect 13: every message said 'still starting up' forever."""
    from supportdesk.tui.screens.modals import ConfirmScreen

    settings, make = tui_factory
    path = settings.data_dir / "history.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a database" * 500)
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await _ready(pilot, app)
        assert app.session is not None and app.session.history_problem
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # keep chatting without saving
        app.query_one("#prompt").insert("hello there")
        await pilot.press("enter")
        answer = await _answered(pilot, app)
        assert "Happy to help" in answer.text
        app.action_open_history()
        await pilot.pause(0.1)
        await pilot.press("escape")
        # now accept the offer: the broken file is renamed and this session's messages move over
        app.push_screen(ConfirmScreen("t", "b"), app._history_choice)
        await pilot.press("y")
        await pilot.pause(0.2)
        assert app.session.history_problem is None
    assert list(path.parent.glob("history.sqlite3.broken-*"))
    store = HistoryStore(path)
    contents = [m.content for c in store.conversations() for m in store.messages(c.id)]
    assert "hello there" in contents
    store.close()


async def test_tui_answers_while_the_history_is_locked(tui_factory):
    settings, make = tui_factory
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await _ready(pilot, app)
        app.session.history._engine._db.execute("PRAGMA busy_timeout = 50")
        other = sqlite3.connect(settings.data_dir / "history.sqlite3", isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        app.query_one("#prompt").insert("are you there?")
        await pilot.press("enter")
        answer = await _answered(pilot, app)
        assert "Happy to help" in answer.text and "history is locked" in answer._note
        assert app.session.history.pending >= 2
        other.execute("COMMIT")
        other.close()
        assert app.session.history.flush()
    store = HistoryStore(settings.data_dir / "history.sqlite3")
    contents = [m.content for c in store.conversations() for m in store.messages(c.id)]
    assert contents.count("are you there?") == 1 and contents.count("Happy to help with that!") == 1
    store.close()

