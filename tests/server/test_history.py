"""History through the server: each agent's own conversations, ratings, the trainer's export."""

from __future__ import annotations

import pytest

from supportdesk.client.remote import ServerError


def test_answers_stream_with_sources_and_history_records_the_agent(team):
    alice, bob, tia = team.client("alice"), team.client("bob"), team.client("tia")
    alice.start()
    assert alice.you == {"name": "alice", "role": "agent"}
    answer = alice.ask("How many days do I have to return a router?")
    pieces = list(answer)
    result = answer.result
    assert len(pieces) > 3 and result.kind == "grounded" and result.citations
    assert any(c.cited for c in result.citations) and "45 days" in result.answer
    assert result.timings["total_ms"] > 0 and "queue_ms" in result.timings
    assert answer.outcome is not None and answer.outcome.message_id == answer.message_id > 0
    assert answer.outcome.result is result and answer.outcome.conversation_id == alice.conversation_id
    follow = alice.ask("thanks!")
    list(follow)
    assert follow.result.kind == "voice"
    conversation = alice.conversation_id
    messages = alice.history.messages(conversation)
    assert [(m.role, m.asked_by) for m in messages] == [("user", "alice"), ("assistant", "alice")] * 2
    assert messages[1].citations and messages[1].kind == "grounded"
    # 👍 from the agent; another agent neither sees nor rates it; a trainer exports it.
    alice.feedback(answer.message_id, 1)
    assert [c.id for c in bob.history.conversations()] == []
    with pytest.raises(ServerError, match="belongs to another agent"):
        bob.history.messages(conversation)
    with pytest.raises(ServerError, match="belongs to another agent"):
        bob.feedback(answer.message_id, -1)
    exported = list(tia.history.export(rated_good_only=True))
    assert len(exported) == 1 and exported[0]["messages"][-1]["content"] == result.answer
    with pytest.raises(ServerError, match="trainer role"):
        list(alice.history.export())
