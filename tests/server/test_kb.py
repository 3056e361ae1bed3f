"""The knowledge base through the server: a reload seen by every client, one admin's at a time."""

from __future__ import annotations

import threading

import pytest
from conftest import ScriptedBackend, wait_until
from fixtures.team_server import running

from supportdesk.client.remote import RemoteSession
from supportdesk.kb import KnowledgeBase
from supportdesk.kb.index import ReloadInProgress
from supportdesk.server.core import ServerCore


@pytest.mark.slow  # two real team servers
def test_reload_is_seen_by_every_client_and_two_admins_do_not_collide(settings_factory, small_kb, hash_embedder, tmp_path):
    settings = settings_factory(small_kb)
    kb = KnowledgeBase(settings, embedder=hash_embedder)
    core = ServerCore(settings, backend=ScriptedBackend("Our docs say so [1]."), kb=kb)
    core.start()
    admin = core.tokens.create("ada", "admin")
    other_admin = core.tokens.create("odo", "admin")
    agent = core.tokens.create("alice", "agent")
    with running(core) as url:
        watcher = RemoteSession(settings, url, agent)
        watcher.start()
        before = watcher.status()
        (small_kb / "new-policy.md").write_text("# Loyalty points\n\nEvery purchase earns ten loyalty points per dollar.\n")
        hash_embedder.gate = threading.Event()
        ada, odo = RemoteSession(settings, url, admin), RemoteSession(settings, url, other_admin)
        found = {}
        steps = []
        first = threading.Thread(target=lambda: found.setdefault("report", ada.reload_kb(steps.append)))
        first.start()
        assert hash_embedder.entered.wait(10)
        assert wait_until(lambda: watcher.status().reloading)
        with pytest.raises(ReloadInProgress, match="started by ada"):
            odo.reload_kb()
        # An answer asked during the reload is answered (from the old generation).
        during = watcher.ask("How do I return a router?")
        assert list(during) and during.result.kind in ("grounded", "handoff", "voice")
        hash_embedder.gate.set()
        first.join(30)
        report = found["report"]
        assert report.ok and report.added == ["new-policy.md"] and steps
        assert wait_until(lambda: watcher.status().generation == report.generation, timeout=1.5)
        assert watcher.status().chunks > before.chunks
        for session in (watcher, ada, odo):
            session.close()
    core.close()
