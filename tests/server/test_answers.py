"""Answers: streamed in arrival order through one model, cancelled or abandoned without holding it,
refused with a clear status (too large, empty, a third stream on one token)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from conftest import grounded_reply, wait_until

from supportdesk.client.remote import RemoteSession, ServerError


def test_a_third_concurrent_stream_is_refused_before_it_opens_and_stores_nothing(light_team):
    """Three asks at once on one token (limit 2): one is a real HTTP 429 (not a 200 stream with an error
    inside), and no empty conversation is left in the history."""
    core = light_team.core
    core.session.backend.inner.reply = "word " * 200
    core.session.backend.inner.delay = 0.05
    entered = []
    all_in = threading.Event()
    new_conversation = core.new_conversation

    def slow_new_conversation(who):  # holds every ask here until all three arrive (or 1.5 s pass)
        entered.append(who.name)
        if len(entered) == 3:
            all_in.set()
        all_in.wait(1.5)
        return new_conversation(who)

    core.new_conversation = slow_new_conversation
    headers = {"Authorization": f"Bearer {light_team.tokens['alice']}"}
    statuses: list[int] = []
    firsts: list[str] = []
    opened = threading.Barrier(3, timeout=10)

    def ask(i):
        with httpx.Client(base_url=light_team.url, headers=headers, timeout=30) as client:
            opened.wait()
            with client.stream("POST", "/v1/ask", json={"question": f"tell me a long story {i}"}) as response:
                statuses.append(response.status_code)
                for line in response.iter_lines():
                    if line.startswith("event:") and line != "event: ping":
                        firsts.append(line)
                        break

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses) == [200, 200, 429]
    assert firsts == ["event: answer", "event: answer"]  # the two accepted streams start with their answer id
    assert wait_until(lambda: not core._runs, timeout=20)
    stored = core.session.history.conversations(limit=100, owner="alice")
    assert len(stored) == 2 and all(core.session.history.messages(c.id) for c in stored)


def test_one_model_serves_in_arrival_order_and_search_does_notwait_until(team):
    team.model.delay = 0.05
    agents = [team.client(name) for name in ("alice", "bob", "tia")]
    waits: dict[int, list[int]] = {0: [], 1: [], 2: []}
    results = {}

    def ask(i):
        answer = agents[i].ask("How many days do I have to return a router?")
        answer.on_wait = waits[i].append
        list(answer)
        results[i] = answer

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.15)
    assert wait_until(lambda: team.core.queue.running == 1)
    searched = agents[0].search("warranty")  # answered while the model is busy
    assert searched["hits"] and any(t.is_alive() for t in threads)
    for t in threads:
        t.join(30)
    assert sorted(results) == [0, 1, 2]
    assert all(r.result.kind == "grounded" and not r.result.cancelled for r in results.values())
    assert max(max(w, default=0) for w in waits.values()) >= 1  # someone was told a question was ahead
    queued = [r.result.timings["queue_ms"] for r in results.values()]
    assert max(queued) > 100  # waited for another answer: one at a time
    assert team.core.queue.running == 0 and team.core.queue.waiting == 0


def test_cancel_and_a_vanished_client_free_the_model(team):
    team.model.reply = "word " * 200
    team.model.delay = 0.05
    alice = team.client("alice")
    answer = alice.ask("tell me a long story")
    got = []
    for piece in answer:
        got.append(piece)
        if len(got) == 3:
            answer.cancel()
    assert answer.result.cancelled and len(got) < 100
    stored = alice.history.messages(alice.conversation_id)[-1]
    assert stored.content.endswith("…(cancelled)")
    # A client that disconnects mid-answer: the server stops writing and frees the model.
    with (httpx.Client(base_url=team.url, headers={"Authorization": f"Bearer {team.tokens['bob']}"}) as raw,
          raw.stream("POST", "/v1/ask", json={"question": "another long story"}) as response):
        for line in response.iter_lines():
            if line.startswith("event: text"):
                break
    assert wait_until(lambda: not team.core._runs and team.core.queue.running == 0, timeout=10)
    bob_history = team.core.session.history.conversations(owner="bob")
    last = team.core.session.history.messages(bob_history[0].id)[-1]
    assert last.role == "assistant" and last.content.endswith("…(cancelled)")
    team.model.reply = grounded_reply
    again = alice.ask("thanks!")
    assert list(again) and not again.result.cancelled


def test_bad_requests_get_clear_answers(team):
    headers = {"Authorization": f"Bearer {team.tokens['alice']}"}
    url = team.url
    huge = httpx.post(f"{url}/v1/ask", headers=headers, json={"question": "x" * 5000})
    assert huge.status_code == 413 and "limit is 4000" in huge.json()["detail"]
    body = httpx.post(f"{url}/v1/ask", headers=headers, content=b"{" + b" " * 70_000 + b"}",
                      params={}, timeout=10)
    assert body.status_code == 413 and "KiB limit" in body.json()["detail"]
    empty = httpx.post(f"{url}/v1/ask", headers=headers, json={"question": " \x00 "})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    malformed = httpx.post(f"{url}/v1/ask", headers={**headers, "content-type": "application/json"}, content=b"{nope")
    assert malformed.status_code == 422
    alice = team.client("alice")
    with pytest.raises(ServerError, match="question"):  # the field is named
        alice._call("POST", "/v1/ask", json={"text": "hi"})
    with pytest.raises(ServerError, match="no conversation 999"):
        alice._call("GET", "/v1/conversations/999")
    # One token, many streams: the third is refused while two are in progress.
    team.model.reply = "word " * 200
    team.model.delay = 0.05
    answers = [alice.ask("tell me a long story"), alice.ask("tell me another long story")]
    readers = [threading.Thread(target=lambda a=a: list(a)) for a in answers]
    for reader in readers:
        reader.start()
    assert wait_until(lambda: len(team.core._runs) == 2)
    with pytest.raises(ServerError, match="limit 2") as too_many:
        list(alice.ask("three"))
    assert too_many.value.status == 429
    assert team.client("bob").search("warranty")["hits"]  # another agent is not limited by alice's streams
    for answer in answers:
        answer.cancel()
    for reader in readers:
        reader.join(10)
    assert all(a.result.cancelled for a in answers)


def test_the_server_answers_with_the_embedded_sessions_ask_pass(light_team, monkeypatch):
    """One answer path: the team server runs ``SupportSession.ask`` (storage included), not a copy of it."""
    from supportdesk.session import SupportSession

    calls = []
    original = SupportSession.ask

    def spy(self, message, history=None, **kwargs):
        calls.append((message, kwargs.get("asked_by"), kwargs.get("conversation_id")))
        return original(self, message, history, **kwargs)

    monkeypatch.setattr(SupportSession, "ask", spy)
    alice = RemoteSession(light_team.settings, light_team.url, light_team.tokens["alice"])
    answer = alice.ask("How do I return a router?")
    answer.run()
    assert answer.outcome is not None
    assert calls == [("How do I return a router?", "alice", answer.outcome.conversation_id)]
    stored = light_team.core.session.history.messages(answer.outcome.conversation_id)
    assert [(m.role, m.asked_by) for m in stored] == [("user", "alice"), ("assistant", "alice")]
    assert stored[-1].id == answer.outcome.message_id and stored[-1].content == answer.result.answer
    alice.close()
