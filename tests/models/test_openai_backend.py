"""The 'openai' backend against a real OpenAI-compatible server: llama.cpp's own
(llama-cpp-python[server]), same SmolLM2 GGUF, with and without a LoRA, on a loopback port."""

from __future__ import annotations

import json
import threading
import time

import pytest
from conftest import SAMPLE_KB
from fixtures.llama_server import LlamaServer, free_port, model_entries
from typer.testing import CliRunner

from supportdesk.cli import app
from supportdesk.models import BackendError, BackendUnavailable, ChatMessage, GenerationOptions, ModelMissing
from supportdesk.models.embedded import EmbeddedBackend, default_gguf_path
from supportdesk.models.openai_backend import OpenAIBackend

pytestmark = pytest.mark.slow
BASE = "smollm2-135m-instruct"
MESSAGES = [ChatMessage("system", "You are Kestrel Care, the support team of Kestrel Networks."),
            ChatMessage("user", "How do I return a router?")]
GREEDY = GenerationOptions(max_tokens=16, temperature=0.0)
SECRET = "sk-test-do-not-print-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory, random_adapter):
    srv = LlamaServer(tmp_path_factory.mktemp("llama-server"),
                      model_entries(default_gguf_path(), BASE, {"random": random_adapter.gguf})).start()
    yield srv
    srv.stop()


def test_streams_and_matches_embedded_greedy_output_with_and_without_the_adapter(server, random_adapter):
    for adapter in (None, random_adapter):
        remote = OpenAIBackend(server.url, BASE, adapter=adapter.name if adapter else None)
        generation = remote.generate(MESSAGES, GREEDY)
        pieces = list(generation)
        local = EmbeddedBackend(adapter=adapter).generate(MESSAGES, GREEDY).run()
        assert "".join(pieces) == local and len(pieces) > 3  # same GGUF, same LoRA, same tokens
        stats = generation.stats
        assert stats.backend == "openai" and stats.adapter == (adapter.name if adapter else None)
        assert stats.ttft_ms is not None and stats.tokens_per_s and stats.finish_reason == "length"
    assert {m.name for m in OpenAIBackend(server.url, BASE).list_models()} == {BASE, "random"}


def test_cancel_stops_the_stream_and_frees_the_server(server):
    backend = OpenAIBackend(server.url, BASE)
    generation = backend.generate(MESSAGES, GenerationOptions(max_tokens=200, temperature=0.0))
    got = []
    for piece in generation:
        got.append(piece)
        if len(got) == 3:
            generation.cancel()
    assert generation.stats.finish_reason == "cancelled" and len(got) == 3
    started = time.perf_counter()
    assert backend.generate(MESSAGES, GenerationOptions(max_tokens=4, temperature=0.0)).run()
    assert time.perf_counter() - started < 10


def test_errors_name_what_to_do(server):
    started = time.perf_counter()
    with pytest.raises(BackendUnavailable, match="no OpenAI-compatible server is answering"):
        OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", BASE).generate(MESSAGES, GREEDY).run()
    assert time.perf_counter() - started < 1.5
    with pytest.raises(ModelMissing, match=r"does not serve the adapter 'ghost'.*adapter push ghost --to openai"):
        OpenAIBackend(server.url, BASE, adapter="ghost").generate(MESSAGES, GREEDY).run()


def test_wrong_key_is_401_and_the_key_is_never_shown(tmp_path, random_adapter):
    srv = LlamaServer(tmp_path, model_entries(default_gguf_path(), BASE, {}), api_key=SECRET).start()
    try:
        with pytest.raises(BackendError, match="refused the API key \\(401\\)") as info:
            OpenAIBackend(srv.url, BASE, api_key="sk-wrong-key").generate(MESSAGES, GREEDY).run()
        assert "sk-wrong-key" not in str(info.value)
        assert OpenAIBackend(srv.url, BASE, api_key=SECRET).generate(MESSAGES, GREEDY).run()
    finally:
        srv.stop()


def test_stream_cut_mid_answer_is_an_error_not_a_complete_answer(tmp_path):
    srv = LlamaServer(tmp_path, model_entries(default_gguf_path(), BASE, {})).start()
    generation = OpenAIBackend(srv.url, BASE).generate(MESSAGES, GenerationOptions(max_tokens=400, temperature=0.7))
    got: list[str] = []
    with pytest.raises(BackendError, match="cut off|not answering|refused"):
        for piece in generation:
            got.append(piece)
            if len(got) == 2:
                threading.Thread(target=srv.kill).start()
    assert generation.stats.finish_reason == "error" and got


def test_cli_chat_ask_models_and_config_through_the_server(server, sample_index, monkeypatch, random_adapter):
    monkeypatch.setenv("SUPPORTDESK_MODEL__OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("SUPPORTDESK_MODEL__OPENAI_API_KEY", SECRET)  # this server has no key: sent, ignored
    monkeypatch.setenv("SUPPORTDESK_ADAPTERS_DIR", str(random_adapter.path.parent))
    runner = CliRunner()
    base = ["--data-dir", str(sample_index[0].data_dir), "--kb", str(SAMPLE_KB)]
    chat = runner.invoke(app, [*base, "models", "chat", "hi", "--backend", "openai", "--adapter", "random",
                               "--max-tokens", "8", "--json"])
    assert chat.exit_code == 0, chat.output
    data = json.loads(chat.stdout)
    assert data["stats"]["backend"] == "openai" and data["stats"]["adapter"] == "random" and data["reply"]
    listing = json.loads(runner.invoke(app, [*base, "models", "list", "--json"]).stdout)
    assert {"backend": "openai", "name": "random", "detail": "served", "available": True} in listing
    asked = runner.invoke(app, [*base, "ask", "How many days do I have to return a router?", "--backend", "openai",
                                "--max-tokens", "24", "--json"])
    assert asked.exit_code == 0, asked.output
    answer = json.loads(asked.stdout.strip().splitlines()[-1])
    assert answer["route"] == "grounded" and answer["citations"] and answer["answer"]
    shown = runner.invoke(app, [*base, "config", "--json"]).stdout
    assert SECRET not in shown and "openai_api_key" in shown
    for output in (chat.output, asked.output):
        assert SECRET not in output


def test_adapter_push_to_openai(server, tmp_path, monkeypatch, random_adapter):
    monkeypatch.setenv("SUPPORTDESK_ADAPTERS_DIR", str(random_adapter.path.parent))
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path / "data")]
    monkeypatch.setenv("SUPPORTDESK_MODEL__OPENAI_BASE_URL", server.url)
    pushed = runner.invoke(app, [*base, "adapter", "push", "random", "--to", "openai"])
    assert pushed.exit_code == 0, pushed.output
    from supportdesk.models import read_active

    assert "active for supportdesk" in pushed.stdout and read_active(tmp_path / "data") == "random"
    config = json.loads((random_adapter.path / "llama-server.json").read_text())
    assert [m["model_alias"] for m in config["models"]] == [BASE, "random"]
    assert config["models"][1]["lora_path"] == str(random_adapter.gguf)
    # A server that does not serve it: the exact serve lines, and nothing activated.
    monkeypatch.setenv("SUPPORTDESK_MODEL__OPENAI_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    refused = runner.invoke(app, [*base, "adapter", "push", "random", "--to", "openai"])
    assert refused.exit_code == 1 and "--lora-modules random=" in refused.output and "llama-server.json" in refused.output


def test_api_key_in_a_settings_file_is_ignored_with_a_warning(settings_factory, tmp_path, monkeypatch):
    from supportdesk.settings import check_sources, load_settings

    (tmp_path / "supportdesk.toml").write_text(f'[model]\nopenai_api_key = "{SECRET}"\nopenai_model = "m"\n')
    monkeypatch.setenv("SUPPORTDESK_CONFIG", str(tmp_path / "supportdesk.toml"))
    settings = load_settings()
    assert settings.model.openai_api_key is None and settings.model.openai_model == "m"
    assert any("openai_api_key' is ignored in a settings file" in w for w in check_sources())
    monkeypatch.setenv("SUPPORTDESK_MODEL__OPENAI_API_KEY", SECRET)
    settings = load_settings()
    assert settings.model.openai_api_key.get_secret_value() == SECRET and SECRET not in repr(settings)
