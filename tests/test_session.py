"""The embedded session's one ask pass: stored as it goes, the conversation kept in memory."""

from __future__ import annotations

from conftest import ScriptedBackend

from supportdesk.answers.conversation import Turn
from supportdesk.kb import KnowledgeBase
from supportdesk.session import SupportSession


def _session(settings_factory, small_kb, hash_embedder, backend):
    settings = settings_factory(small_kb)
    session = SupportSession(settings, backend=backend, kb=KnowledgeBase(settings, embedder=hash_embedder))
    session.start(build_missing_index=True)
    return session


def test_the_conversation_is_kept_in_memory_and_stored_as_it_grows(settings_factory, small_kb, hash_embedder,
                                                                   monkeypatch):
    backend = ScriptedBackend("Our docs say so [1].")
    session = _session(settings_factory, small_kb, hash_embedder, backend)
    first = session.ask("How do I return a router?")
    assert first.outcome is None and first.question_id is not None
    first.run()
    assert first.outcome is not None and first.outcome.message_id and first.outcome.message_id > 0
    assert first.outcome.conversation_id == session.conversation_id and first.outcome.result is first.result

    read = session.history.messages
    reads: list[int] = []
    monkeypatch.setattr(session.history, "messages", lambda cid: reads.append(cid) or read(cid))
    second = session.ask("and how long does that take?")
    second.run()
    assert reads == []  # the turns came from memory, not from re-reading the conversation
    stored = read(session.conversation_id)
    assert [(m.role, m.content) for m in stored] == [(t.role, t.content) for t in session.turns()]
    assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[-1].id == second.outcome.message_id
    assert second.result.follow_up  # read with the first question: the turns in memory reached the pipeline

    reopened = session.open_conversation(session.conversation_id)  # another conversation opened: read once
    assert reads == [session.conversation_id] and len(reopened) == 4
    session.close()


def test_an_answer_after_given_turns_is_stored_nowhere(settings_factory, small_kb, hash_embedder):
    session = _session(settings_factory, small_kb, hash_embedder, ScriptedBackend("Our docs say so [1]."))
    answer = session.ask("and how long does that take?", [Turn("user", "How do I return a router?"),
                                                          Turn("assistant", "Within 45 days.")])
    answer.run()
    assert answer.outcome is not None and answer.outcome.message_id is None and answer.outcome.conversation_id is None
    assert answer.result.follow_up and session.conversation_id is None
    assert session.conversations() == []
    session.close()
