"""What the server's tests share: a team server over the sample KB (real embedder, scripted model)
and a light one over a small KB (hash embedder), each with role tokens, on a free loopback port."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from conftest import ScriptedBackend, grounded_reply
from fixtures.team_server import running

from supportdesk.client.remote import RemoteSession
from supportdesk.kb import KnowledgeBase
from supportdesk.server.core import ServerCore


@pytest.fixture
def team(sample_index, tmp_path):
    """A server over the sample KB with a scripted model; tokens for two agents, a trainer, an admin."""
    base, kb = sample_index
    settings = base.model_copy(update={"data_dir": tmp_path / "server-data"})
    model = ScriptedBackend(grounded_reply, delay=0.02)
    core = ServerCore(settings, backend=model, kb=kb)
    core.start()
    tokens = {name: core.tokens.create(name, role) for name, role in
              (("alice", "agent"), ("bob", "agent"), ("tia", "trainer"), ("ada", "admin"))}
    with running(core) as url:
        clients = []

        def client(name):
            session = RemoteSession(settings, url, tokens.get(name, name))
            clients.append(session)
            return session

        yield SimpleNamespace(url=url, core=core, tokens=tokens, client=client, settings=settings, model=model)
        for session in clients:
            session.close()
    core.close()


@pytest.fixture
def light_team(settings_factory, small_kb, hash_embedder):
    """A server over a small KB with the hash embedder (no real models): tokens for an agent, a trainer, an admin."""
    settings = settings_factory(small_kb)
    core = ServerCore(settings, backend=ScriptedBackend("Our docs say so [1].", delay=0.01),
                      kb=KnowledgeBase(settings, embedder=hash_embedder))
    core.start()
    tokens = {name: core.tokens.create(name, role) for name, role in
              (("alice", "agent"), ("tia", "trainer"), ("ada", "admin"))}
    with running(core) as url:
        yield SimpleNamespace(url=url, core=core, tokens=tokens, settings=settings)
    core.close()
