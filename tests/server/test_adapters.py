"""The model served to everyone: switched by a trainer through the quality gate, never to a backend
that does not answer."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from conftest import ScriptedBackend, grounded_reply
from fixtures.team_server import running

from supportdesk.client.remote import RemoteSession, ServerError
from supportdesk.server.core import ServerCore


def test_a_backend_that_does_not_answer_is_not_switched_to(light_team):
    """POST /v1/model with a backend that has nothing at its URL: an error status and sentence, and the
    previous model keeps serving (before, 200 and every ask failed until someone switched back)."""
    from fixtures.fake_ollama import FakeOllama

    core = light_team.core
    trainer = {"Authorization": f"Bearer {light_team.tokens['tia']}"}
    agent = {"Authorization": f"Bearer {light_team.tokens['alice']}"}
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    model = core.settings.model.model_copy(update={"openai_base_url": f"http://127.0.0.1:{dead}/v1",
                                                   "ollama_host": f"http://127.0.0.1:{dead}"})
    core.settings = core.session.settings = core.settings.model_copy(update={"model": model})
    before = httpx.get(f"{light_team.url}/v1/status", headers=agent).json()
    for backend in ("openai", "ollama"):
        refused = httpx.post(f"{light_team.url}/v1/model", headers=trainer, json={"backend": backend}, timeout=30)
        assert refused.status_code == 503, refused.text
        assert "previous model keeps serving" in refused.json()["detail"]
        assert f"127.0.0.1:{dead}" in refused.json()["detail"]  # where it looked
        now = httpx.get(f"{light_team.url}/v1/status", headers=agent).json()
        assert (now["backend"], now["model"]) == (before["backend"], before["model"])
    asked = RemoteSession(light_team.settings, light_team.url, light_team.tokens["alice"])
    answer = asked.ask("How do I return a router?")
    assert list(answer) and not answer.result.cancelled  # still answered by the model that was serving
    asked.close()
    # A server that answers but does not serve the model: refused too, naming what it serves.
    with FakeOllama() as fake:
        model = core.settings.model.model_copy(update={"ollama_host": fake.host, "ollama_model": "ghost"})
        core.settings = core.session.settings = core.settings.model_copy(update={"model": model})
        missing = httpx.post(f"{light_team.url}/v1/model", headers=trainer, json={"backend": "ollama"}, timeout=30)
        assert missing.status_code == 503 and "does not serve 'ghost'" in missing.json()["detail"]
        assert "supportdesk-voice:latest" in missing.json()["detail"]
        # ... and one that answers with the model: switched, for everyone.
        model = core.settings.model.model_copy(update={"ollama_model": "supportdesk-voice"})
        core.settings = core.session.settings = core.settings.model_copy(update={"model": model})
        switched = httpx.post(f"{light_team.url}/v1/model", headers=trainer, json={"backend": "ollama"}, timeout=30)
        assert switched.status_code == 200 and switched.json()["backend"] == "ollama"


def test_a_trainer_activating_an_adapter_for_everyone_passes_the_quality_gate(sample_index, tmp_path):
    base, kb = sample_index
    adapters = tmp_path / "adapters"
    for name, metrics in (("fresh", None), ("worse", {"base_perplexity": 10.0, "adapter_perplexity": 12.0}),
                          ("better", {"base_perplexity": 10.0, "adapter_perplexity": 4.0})):
        (adapters / name).mkdir(parents=True)
        (adapters / name / "adapter.gguf").write_bytes(b"GGUF")
        (adapters / name / "manifest.json").write_text(json.dumps({"name": name, **({"metrics": metrics} if metrics else {})}))
    settings = base.model_copy(update={"data_dir": tmp_path / "server-data", "adapters_dir": adapters})
    core = ServerCore(settings, backend=ScriptedBackend(grounded_reply), kb=kb)
    core.start()
    switched: list[tuple] = []
    core.session.switch_model = lambda backend=None, adapter=None: switched.append((backend, adapter))
    trainer = core.tokens.create("tia", "trainer")
    with running(core) as url:
        tia = RemoteSession(settings, url, trainer)
        with pytest.raises(ServerError, match="has not been evaluated") as refused:
            tia.switch_model(adapter="fresh")
        assert refused.value.status == 409 and "force" in str(refused.value)
        with pytest.raises(ServerError, match="worse than the base model"):
            tia.switch_model(adapter="worse")
        assert switched == []  # refused before anything was loaded: the current model keeps serving
        tia.switch_model(adapter="better")
        tia.switch_model(adapter="worse", force=True)
        with pytest.raises(ServerError, match="no adapter named"):
            tia.switch_model(adapter="missing")
        tia.close()
    core.close()
    assert switched == [(None, "better"), (None, "worse")]
