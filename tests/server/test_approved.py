"""Approved answers through the team server (issue 28): agents propose and accept suggestions;
trainers review, import and remove; a question matching an approved one is answered with it, with
no model call, cited with who approved it and when, its hit counted."""

from __future__ import annotations

import time

import pytest

from supportdesk.client.remote import ServerError
from supportdesk.history.approved import ImportRow

QUESTION = "Can I return my Kestrel router after 30 days?"
REWRITE = "Yes: returns are accepted within 45 days of delivery, started from the Roost app."


def _ask(session, question):
    session.conversation_id = None
    answer = session.ask(question)
    answer.run()
    return answer


def test_agents_propose_trainers_approve_and_the_next_question_is_served_without_the_model(team):
    alice, bob, tia = team.client("alice"), team.client("bob"), team.client("tia")
    draft = _ask(alice, QUESTION)
    assert draft.result.kind != "approved" and draft.message_id is not None
    cited = [c.source for c in draft.result.citations if c.cited]

    with pytest.raises(ServerError, match="belongs to another agent"):
        bob.approved.propose(draft.message_id, "Nope.")
    proposal = alice.approved.propose(draft.message_id, REWRITE)
    with pytest.raises(ServerError, match="needs the trainer role") as refused:
        alice.approved.accept(proposal)
    assert refused.value.status == 403
    with pytest.raises(ServerError, match="needs the trainer role"):
        alice.approved.proposals()

    [pending] = tia.approved.proposals()
    assert (pending.id, pending.question, pending.draft, pending.proposed_by) == (
        proposal, QUESTION, draft.result.answer, "alice")
    answer_id = tia.approved.accept(proposal, REWRITE + " Refunds take 5 days.")
    stored = tia.approved.get(answer_id)
    assert stored.approved_by == "tia" and stored.created_by == "alice"
    assert [s["source"] for s in stored.sources] == cited  # the sources its draft cited

    prompts = len(team.model.prompts)
    served = _ask(bob, "can I return my kestrel router after 30 days")
    result = served.result
    assert result.kind == "approved" and result.approved_id == answer_id
    assert result.answer == REWRITE + " Refunds take 5 days."
    assert result.approved_citation == f"approved answer #{answer_id} · tia · {time.strftime('%Y-%m-%d')}"
    assert [c.source for c in result.citations] == cited
    assert len(team.model.prompts) == prompts  # no model call
    assert tia.approved.get(answer_id).hits == 1
    stored_answer = bob.history.messages(bob.conversation_id)[-1]
    assert stored_answer.kind == "approved"

    # A wording an agent accepted the suggestion for is learned; only trainers remove and import.
    assert bob.approved.accept_suggestion(answer_id, "refund window for the router?") is True
    assert "refund window for the router?" in [q.question for q in tia.approved.get(answer_id).questions]
    # The answer the agent sent (TUI F3) is stored in their conversation on the server, as locally.
    sent_id = bob.add_sent_answer(REWRITE, f"approved answer #{answer_id} sent by the agent")
    last = bob.history.messages(bob.conversation_id)[-1]
    assert sent_id is not None and (last.id, last.kind, last.content) == (sent_id, "approved", REWRITE)
    alice.conversation_id = bob.conversation_id
    with pytest.raises(ServerError, match="belongs to another agent"):
        alice.add_sent_answer("Not mine.", "")
    with pytest.raises(ServerError, match="needs the trainer role"):
        alice.approved.remove(answer_id)
    with pytest.raises(ServerError, match="needs the trainer role"):
        alice.approved.import_rows([ImportRow("Q?", "A.")])
    made = tia.approved.import_rows([ImportRow("Do you ship to Canada?", "Yes, in 5 to 8 days.", "ship-ca")])
    assert made[0][1] is True and tia.approved.import_rows([ImportRow("Ship to Canada?", "Yes.", "ship-ca")]) == [
        (made[0][0], False)]
    assert tia.approved.remove(answer_id) is True and tia.approved.remove(answer_id) is False
    assert _ask(bob, "can I return my kestrel router after 30 days").result.kind != "approved"
