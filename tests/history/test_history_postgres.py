"""The history on PostgreSQL: a real throw-away cluster (initdb + pg_ctl on a free loopback
port, ``tests/fixtures/postgres_server.py``), the same store contract as SQLite, two replicas writing at
once, a database lost mid-session, migration from SQLite, and the team server on it.

The cluster must start: a machine without PostgreSQL fails these tests with the reason
(CI has PostgreSQL 15). ``SUPPORTDESK_TEST_SKIP_POSTGRES=1`` skips them on a laptop without it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import psycopg
import pytest
from conftest import ScriptedBackend, grounded_reply
from fixtures.postgres_server import free_port
from fixtures.team_server import running

from supportdesk.history import SCHEMA_VERSION, HistoryError, HistoryStore
from supportdesk.history.migrate import migrate


@pytest.fixture
def pg_url(postgres) -> str:
    """A fresh database in the running cluster, per test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])  # slow: starts a cluster
def store(request, tmp_path):
    location = str(tmp_path / "h.sqlite3") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    opened = HistoryStore(location)
    yield opened
    opened.close()


def test_the_same_store_on_sqlite_and_postgresql(store):
    assert store.version == SCHEMA_VERSION and store.upgraded_from == 0
    mine = store.new_conversation(owner="alice")
    theirs = store.new_conversation(owner="bob")
    asked = store.add_message(mine, "user", "Is the Talon sold in the UK?", asked_by="alice")
    answer = store.add_message(mine, "assistant", "No, only in the US and Canada [1].", kind="grounded",
                               citations=[{"number": 1, "source": "faq.md", "cited": True}],
                               timings={"total_ms": 12.5}, model={"backend": "embedded"}, asked_by="alice")
    store.add_message(theirs, "user", "hello", asked_by="bob")
    store.set_feedback(answer, 1)
    assert [c.id for c in store.conversations(owner="alice")] == [mine]
    [c] = store.conversations(owner="alice")
    assert (c.title, c.message_count, c.owner) == ("Is the Talon sold in the UK?", 2, "alice")
    assert store.conversation(mine).message_count == 2 and store.conversation(10_000) is None
    question, stored = store.messages(mine)
    assert (question.role, question.asked_by) == ("user", "alice")
    assert stored.citations[0]["source"] == "faq.md" and stored.timings == {"total_ms": 12.5}
    assert stored.feedback == 1 and stored.model == {"backend": "embedded"} and stored.kind == "grounded"
    assert [r["messages"][-1]["content"] for r in store.export(rated_good_only=True)] == [stored.content]
    assert store.latest_conversation() == theirs
    # The conversation of an answer (the server checks who may rate it); a question is not an answer.
    assert store.answer_conversation(answer) == mine
    assert store.answer_conversation(asked) is None and store.answer_conversation(10_000) is None
    # A write tried again after its commit's answer was lost (did it land?) is stored once.
    values = {"conversation_id": theirs, "role": "assistant", "content": "retried", "at": time.time(), "kind": "voice",
              "reason": None, "citations": [], "timings": {}, "model": {}, "abstained": False, "key": "k-1"}
    assert store._apply("message", dict(values)) == store._apply("message", dict(values))
    assert [m.content for m in store.messages(theirs)].count("retried") == 1
    # The server's role tokens live in the same store.
    store.add_token("ada", "admin", "hash-1", None)
    with pytest.raises(ValueError, match="already exists"):
        store.add_token("ada", "agent", "hash-2", None)
    assert store.token_by_hash("hash-1")["role"] == "admin"
    assert store.revoke_token("ada") and not store.revoke_token("ada")
    store.add_token("ada", "agent", "hash-2", None)  # the name is free again once revoked
    assert [t["token_hash"] for t in store.token_rows()] == ["hash-2"]


def test_a_schema_newer_than_the_code_is_refused(pg_url):
    HistoryStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 3,))
    with pytest.raises(HistoryError, match=f"schema version {SCHEMA_VERSION + 3}, newer than this supportdesk's "
                                           f"{SCHEMA_VERSION}"):
        HistoryStore(pg_url)


def test_an_unreachable_database_is_named_without_its_password(tmp_path):
    url = f"postgresql://support:s3cret-pw@127.0.0.1:{free_port()}/history"
    started = time.monotonic()
    with pytest.raises(HistoryError) as caught:
        HistoryStore(url, connect_timeout_s=1)
    message = str(caught.value)
    assert "s3cret" not in message and "postgresql://support:***@127.0.0.1" in message
    assert "cannot reach the history database" in message and time.monotonic() - started < 10


def test_two_replicas_writing_at_once_lose_and_duplicate_nothing(pg_url):
    replicas = [HistoryStore(pg_url, pool_size=5), HistoryStore(pg_url, pool_size=5)]
    errors: list[str] = []

    def writer(store: HistoryStore, name: str) -> None:
        try:
            cid = store.new_conversation(owner=name)
            for i in range(25):
                store.add_message(cid, "user" if i % 2 == 0 else "assistant", f"{name} message {i}", asked_by=name)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(f"{name}: {exc}")

    threads = [threading.Thread(target=writer, args=(replicas[i % 2], f"agent{i}")) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    contents = [m.content for c in replicas[0].conversations(limit=100) for m in replicas[0].messages(c.id)]
    assert len(contents) == 250 and len(set(contents)) == 250
    for c in replicas[1].conversations(limit=100):  # in order within each conversation, whichever replica reads
        assert [m.content for m in replicas[1].messages(c.id)] == [f"{c.owner} message {i}" for i in range(25)]
    for store in replicas:
        store.close()


def test_a_database_lost_mid_session_keeps_the_answer_and_writes_it_when_back(postgres, pg_url):
    store = HistoryStore(pg_url, connect_timeout_s=1)
    cid = store.new_conversation()
    store.add_message(cid, "user", "How do I reset my Perch?")
    postgres.kill()
    try:
        answer = store.add_message(cid, "assistant", "Hold the button for 10 seconds [1].", kind="grounded")
        follow_up = store.add_message(cid, "user", "thanks")
        assert answer < 0 and follow_up < 0 and store.pending == 2  # kept in memory, in order
        assert store.last_problem  # why the writes wait (shown as "not saved yet")
        with pytest.raises(HistoryError, match="unreachable"):
            store.conversations()
    finally:
        postgres.restart()
    deadline = time.monotonic() + 15
    while store.pending and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.pending == 0
    assert [m.content for m in store.messages(cid)] == ["How do I reset my Perch?", "Hold the button for 10 seconds [1].",
                                                         "thanks"]
    store.close()


def test_migrate_copies_everything_once_and_verifies(pg_url, tmp_path, cli):
    source = HistoryStore(tmp_path / "data" / "history.sqlite3")
    for n in range(3):
        cid = source.new_conversation(owner=f"agent{n}")
        source.add_message(cid, "user", f"question {n}")
        answer = source.add_message(cid, "assistant", f"answer {n} [1][2]",
                                    citations=[{"number": 1, "source": "a.md"}, {"number": 2, "source": "b.md"}])
        if n:
            source.set_feedback(answer, 1 if n == 1 else -1)
    source.add_token("ada", "admin", "hash-ada", None)
    target = HistoryStore(pg_url)
    first = migrate(source, target)
    assert first.verified and first.copied.conversations == 3 and first.copied.messages == 6
    assert first.copied.citations == 6 and first.copied.ratings == 2 and first.tokens_copied == 1
    again = migrate(source, target)
    assert again.verified and again.copied == type(again.copied)() and again.tokens_copied == 0
    # New messages and a changed rating since: only those move.
    source.add_message(1, "user", "one more question")
    source.set_feedback(2, -1)
    third = migrate(source, target)
    assert third.copied.messages == 1 and third.ratings_updated == 1 and third.verified
    assert [m.content for m in target.messages(target.conversations(owner="agent0")[0].id)][-1] == "one more question"
    assert target.token_by_hash("hash-ada")["name"] == "ada"
    with pytest.raises(ValueError, match="is the history being copied"):
        migrate(target, target)
    source.close()
    target.close()
    # The command: the same copy, a table, the counts verified; then nothing more to copy.
    done = cli("history", "migrate", "--to", pg_url, "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.output.strip().splitlines()[-1])
    assert report["verified"] and report["copied"]["messages"] == 0 and report["in_target"]["messages"] == 7
    shown = cli("history", "migrate", "--to", pg_url)
    assert shown.exit_code == 0 and "verified" in shown.output
    bad = cli("history", "migrate", "--to", "mysql://x")
    assert bad.exit_code == 1 and "postgresql://" in bad.output


def test_cli_and_server_on_a_postgresql_history(pg_url, cli, sample_index, tmp_path, monkeypatch):
    monkeypatch.setenv("SUPPORTDESK_HISTORY__URL", pg_url)
    created = cli("serve", "token", "create", "--name", "alice", "--role", "agent")
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1].strip()
    listed = cli("history", "list", "--json")
    assert listed.exit_code == 0 and listed.output.strip() == ""
    moved = cli("history", "move-aside")
    assert moved.exit_code == 1 and "database server" in moved.output
    # The team server, its history on PostgreSQL: an answer stored there, with its agent.
    from supportdesk.client.remote import RemoteSession
    from supportdesk.server.core import ServerCore
    from supportdesk.settings import Settings

    base, kb = sample_index
    settings = base.model_copy(update={"data_dir": tmp_path / "server-data",
                                       "history": Settings().history.model_copy(update={"url": pg_url})})
    core = ServerCore(settings, backend=ScriptedBackend(grounded_reply), kb=kb)
    core.start()
    with running(core) as url:
        alice = RemoteSession(settings, url, token)
        answer = alice.ask("How many days do I have to return a router?")
        list(answer)
        assert answer.result.kind == "grounded" and answer.outcome.message_id > 0
        alice.close()
    core.close()
    assert kb.cluster is None  # a closed server leaves no cluster on the KB (its reloads went to a gone database)
    lines = cli("history", "list", "--json").output.strip().splitlines()
    [conversation] = [json.loads(line) for line in lines]
    assert conversation["owner"] == "alice" and conversation["message_count"] == 2
    shown = cli("history", "show", str(conversation["id"]))
    assert shown.exit_code == 0 and "45 days" in shown.output


def test_a_server_whose_history_database_is_down_refuses_to_start_and_says_why(sample_index, tmp_path):
    from supportdesk.server.core import CoreError, ServerCore
    from supportdesk.settings import Settings

    base, kb = sample_index
    url = f"postgresql://support:pw@127.0.0.1:{free_port()}/history"
    settings = base.model_copy(update={"data_dir": tmp_path / "server-data",
                                       "history": Settings().history.model_copy(update={"url": url,
                                                                                        "connect_timeout_s": 1})})
    with pytest.raises(CoreError, match=r"cannot serve: cannot reach the history database postgresql://support:\*\*\*@"):
        ServerCore(settings, backend=ScriptedBackend(grounded_reply), kb=kb)


def test_serve_refusing_an_unreachable_database_says_it_refuses(cli, monkeypatch):
    """It does not start, so it keeps nothing 'in memory only' (the TUI's wording, wrong here)."""
    monkeypatch.setenv("SUPPORTDESK_HISTORY__URL", f"postgresql://support:s3cret-pw@127.0.0.1:{free_port()}/history")
    monkeypatch.setenv("SUPPORTDESK_HISTORY__CONNECT_TIMEOUT_S", "1")
    refused = cli("serve", "--port", "0")
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    lines = [line for line in refused.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot serve: cannot reach the history database"), lines
    assert "in memory" not in lines[0] and "does not start without its history" in lines[0]
    assert "s3cret" not in lines[0] and "postgresql://support:***@127.0.0.1" in lines[0]


def test_config_never_shows_the_database_password(cli, monkeypatch):
    monkeypatch.setenv("SUPPORTDESK_HISTORY__URL", "postgresql://support:s3cret-pw@db.internal:5432/history")
    shown = cli("config", "--json")
    assert shown.exit_code == 0 and "s3cret" not in shown.output
    assert json.loads(shown.output)["history.url"]["value"] == "postgresql://support:***@db.internal:5432/history"
    monkeypatch.setenv("SUPPORTDESK_HISTORY__URL", "mysql://db/history")
    bad = cli("history", "list")
    assert bad.exit_code != 0 and "history.url" in bad.output
