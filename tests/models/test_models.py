"""Both backends behind one interface: streaming, stats, cancellation, adapters, every error."""

from __future__ import annotations

import json
import os
import socket
import time

import numpy as np
import pytest
from fixtures.fake_ollama import FakeOllama
from typer.testing import CliRunner

from supportdesk.cli import app
from supportdesk.models import (
    BackendUnavailable,
    ChatMessage,
    GenerationOptions,
    ModelMissing,
    create_backend,
)
from supportdesk.models.adapters import AdapterInfo, write_active
from supportdesk.models.embedded import EmbeddedBackend
from supportdesk.models.ollama_backend import OllamaBackend, request_options
from supportdesk.training.gguf_lora import write_gguf_lora

MESSAGES = [
    ChatMessage("system", "You are Kestrel Care, the support team of Kestrel Networks."),
    ChatMessage("user", "How do I return a router?"),
]
GREEDY = GenerationOptions(max_tokens=12, temperature=0.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- embedded backend (real SmolLM2-135M, few tokens) -------------------------------------


@pytest.mark.slow
def test_embedded_streams_with_stats():
    backend = EmbeddedBackend()
    generation = backend.generate(MESSAGES, GREEDY)
    pieces = list(generation)
    stats = generation.stats
    assert len(pieces) >= 5 and "".join(pieces) == generation.text
    assert stats.tokens == len(pieces) and stats.finish_reason == "length"
    assert stats.ttft_ms is not None and 0 < stats.ttft_ms <= stats.total_ms
    assert stats.tokens_per_s and stats.tokens_per_s > 0
    assert stats.prompt_tokens and stats.prompt_tokens > 20
    assert stats.backend == "embedded" and stats.model.endswith(".gguf")


@pytest.mark.slow
def test_embedded_greedy_is_deterministic_and_reuses_prefix():
    backend = EmbeddedBackend()
    first = backend.generate(MESSAGES, GREEDY).run()
    again = backend.generate(MESSAGES, GREEDY)
    assert again.run() == first
    other = backend.generate([MESSAGES[0], ChatMessage("user", "Thanks a lot!")], GREEDY)
    other.run()
    # The system prompt's tokens were already in llama.cpp's KV cache.
    assert other.stats.prompt_cached_tokens and other.stats.prompt_cached_tokens >= 15
    assert other.stats.load_ms == 0.0


@pytest.mark.slow
def test_embedded_cancel_mid_stream():
    generation = EmbeddedBackend().generate(MESSAGES, GenerationOptions(max_tokens=200, temperature=0.0))
    seen = []
    for piece in generation:
        seen.append(piece)
        if len(seen) == 3:
            generation.cancel()
    assert generation.stats.finish_reason == "cancelled"
    assert len(seen) == 3 and generation.stats.tokens <= 4


@pytest.mark.slow
def test_adapter_changes_greedy_output(random_adapter):
    base = EmbeddedBackend().generate(MESSAGES, GREEDY).run()
    adapted_backend = EmbeddedBackend(adapter=random_adapter)
    adapted = adapted_backend.generate(MESSAGES, GREEDY)
    assert adapted.run() != base
    assert adapted.stats.adapter == "random" and adapted_backend.adapter_name == "random"


@pytest.mark.slow
def test_settings_pick_the_active_adapter(settings_factory, tmp_path, random_adapter):
    settings = settings_factory(tmp_path, adapters_dir=random_adapter.path.parent)
    assert create_backend(settings).adapter_name is None
    write_active(settings.data_dir, "random")
    assert create_backend(settings).adapter_name == "random"
    assert create_backend(settings, adapter="none").adapter_name is None
    with pytest.raises(ModelMissing, match="no adapter 'ghost'.*available: random"):
        create_backend(settings, adapter="ghost")


def test_embedded_errors_are_clear(tmp_path):
    with pytest.raises(ModelMissing, match="model file not found"):
        EmbeddedBackend(gguf_path=tmp_path / "nope.gguf").generate(MESSAGES, GREEDY).run()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "adapter.gguf").write_bytes(b"GGUF but not really")
    with pytest.raises(ModelMissing, match="could not load the adapter"):
        EmbeddedBackend(adapter=AdapterInfo("bad", bad)).generate(MESSAGES, GREEDY).run()


@pytest.mark.slow
def test_embedded_context_overflow_is_reported():
    backend = EmbeddedBackend(context_tokens=64)
    with pytest.raises(ModelMissing, match="exceeds the 64-token context"):
        backend.generate([ChatMessage("user", "word " * 200)], GREEDY).run()


@pytest.mark.slow
def test_langchain_chat_model_invoke_and_stream():
    from langchain_core.messages import HumanMessage, SystemMessage

    from supportdesk.models.langchain_chat import SupportdeskChatModel

    model = SupportdeskChatModel(backend=EmbeddedBackend(), options=GREEDY)
    reply = model.invoke([SystemMessage("Be brief."), HumanMessage("Hi")])
    assert reply.content and reply.response_metadata["stats"]["tokens"] > 0
    chunks = list(model.stream([HumanMessage("Hi")]))
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert "".join(c.content for c in chunks) and usage and usage[-1]["output_tokens"] > 0


# -- Ollama backend against a protocol-faithful fake server ------------------------------


def test_ollama_request_and_stream_parsing():
    with FakeOllama() as server:
        backend = OllamaBackend(server.host, "supportdesk-voice", context_tokens=4096)
        generation = backend.generate(MESSAGES, GenerationOptions(max_tokens=7, temperature=0.0, seed=3, stop=("##",)))
        assert list(generation) == ["Hello", " from", " Kestrel", " Care!"]
        request = server.requests[-1]
        assert request["model"] == "supportdesk-voice" and request["stream"] is True
        assert request["messages"][0] == {"role": "system", "content": MESSAGES[0].content}
        assert request["options"] == {
            "num_predict": 7, "temperature": 0.0, "top_p": 0.9, "top_k": 40, "repeat_penalty": 1.1,
            "num_ctx": 4096, "seed": 3, "stop": ["##"],
        }
        stats = generation.stats
        assert stats.tokens == 4 and stats.prompt_tokens == 31 and stats.load_ms == 20.0
        assert stats.tokens_per_s == pytest.approx(80.0)  # eval_count / eval_duration
        assert stats.backend_figures["eval_duration_ms"] == 50.0
        assert stats.backend_figures["prompt_eval_duration_ms"] == 40.0
        assert [m.name for m in backend.list_models()] == ["supportdesk-voice:latest"]


def test_ollama_cancel_mid_stream():
    with FakeOllama(pieces=[f"w{i} " for i in range(50)], delay=0.02) as server:
        generation = OllamaBackend(server.host, "supportdesk-voice").generate(MESSAGES, GREEDY)
        seen = []
        started = time.perf_counter()
        for piece in generation:
            seen.append(piece)
            if len(seen) == 2:
                generation.cancel()
        assert generation.stats.finish_reason == "cancelled" and len(seen) == 2
        assert time.perf_counter() - started < 0.5


def test_ollama_missing_model_names_the_command():
    with FakeOllama() as server:
        generation = OllamaBackend(server.host, "ghost").generate(MESSAGES, GREEDY)
        with pytest.raises(ModelMissing, match="no model 'ghost'.*supportdesk adapter push"):
            generation.run()


def test_ollama_down_fails_fast_for_chat_and_list():
    host = f"http://127.0.0.1:{free_port()}"
    backend = OllamaBackend(host, "supportdesk-voice")
    started = time.perf_counter()
    with pytest.raises(BackendUnavailable, match=f"not answering at {host}"):
        backend.generate(MESSAGES, GREEDY).run()
    with pytest.raises(BackendUnavailable, match="ollama serve"):
        backend.list_models()
    assert time.perf_counter() - started < 1.0
    assert backend.ping() is False


def test_request_options_omit_unset_values():
    options = request_options(GenerationOptions(seed=None), 2048)
    assert "seed" not in options and "stop" not in options and options["num_ctx"] == 2048


OLLAMA_HOST = os.environ.get("SUPPORTDESK_MODEL__OLLAMA_HOST", "http://127.0.0.1:11434")


def _real_ollama() -> bool:
    return OllamaBackend(OLLAMA_HOST, "x").ping()


@pytest.mark.ollama
@pytest.mark.skipif(not _real_ollama(), reason=f"no Ollama server answers at {OLLAMA_HOST}")
def test_real_ollama_server_chat():
    backend = OllamaBackend(OLLAMA_HOST, os.environ.get("SUPPORTDESK_MODEL__OLLAMA_MODEL", "supportdesk-voice"))
    generation = backend.generate(MESSAGES, GREEDY)
    assert generation.run() and generation.stats.tokens > 0


# -- CLI -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_models_chat_cli_json_and_errors(settings_factory, tmp_path):
    settings_factory(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["--data-dir", str(tmp_path / "d"), "models", "chat", "Hello!", "--max-tokens", "8",
                                 "--temperature", "0", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["reply"] and data["stats"]["tokens"] <= 8 and data["stats"]["backend"] == "embedded"

    down = runner.invoke(app, ["models", "chat", "hi", "--backend", "ollama"],
                         env={"SUPPORTDESK_MODEL__OLLAMA_HOST": f"http://127.0.0.1:{free_port()}"})
    assert down.exit_code == 1 and "Ollama is not answering" in down.stderr and "Traceback" not in down.output
    ghost = runner.invoke(app, ["models", "chat", "hi", "--adapter", "ghost"])
    assert ghost.exit_code == 1 and "no adapter 'ghost'" in ghost.stderr
    bad = runner.invoke(app, ["models", "chat", "hi", "--backend", "gpu"])
    assert bad.exit_code == 1 and "--backend must be" in bad.stderr

    listing = runner.invoke(app, ["models", "list", "--json"],
                            env={"SUPPORTDESK_MODEL__OLLAMA_HOST": f"http://127.0.0.1:{free_port()}"})
    rows = json.loads(listing.stdout)
    assert rows[0]["backend"] == "embedded" and rows[0]["available"]
    assert rows[1]["backend"] == "ollama" and not rows[1]["available"]


def test_adapter_for_another_model_is_refused(tmp_path):
    folder = tmp_path / "wrong"
    folder.mkdir()
    pairs = {"model.layers.0.self_attn.q_proj": (np.zeros((4, 1024), np.float32), np.zeros((1024, 4), np.float32))}
    write_gguf_lora(folder / "adapter.gguf", pairs, alpha=8, n_layers=30, n_head=16, n_head_kv=16)
    with pytest.raises(ModelMissing, match="do not fit the base tensor"):
        EmbeddedBackend(adapter=AdapterInfo("wrong", folder)).generate(MESSAGES, GREEDY).run()


@pytest.mark.slow
def test_citation_limit_constrains_markers():
    import re

    sources = "\n\n".join(f"[{i}] Fact number {i}: the Aerie has {i + 2} antennas." for i in range(1, 3))
    messages = [ChatMessage("system", "Cite sources like [1]. Use many citations."),
                ChatMessage("user", f"{sources}\n\nList every fact with its citation, then cite [7] and [12] too.")]
    backend = EmbeddedBackend()
    constrained = backend.generate(messages, GenerationOptions(max_tokens=80, temperature=0.0, citation_limit=2)).run()
    markers = [int(m) for m in re.findall(r"\[(\d+)", constrained)]
    assert all(1 <= m <= 2 for m in markers), constrained
