"""Shared fixtures: temp data dirs, small KBs, and a deterministic embedder for logic tests.

Logic tests (incremental reload, atomic swap, integrity) use ``HashEmbeddings``: fast and
deterministic, injected through LangChain's ``Embeddings`` interface like any real model.
Quality tests use the real MiniLM model (``minilm`` fixture, loaded once per session).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from typer.testing import CliRunner

if TYPE_CHECKING:
    from supportdesk.tui.widgets.conversation import MessageView

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The app builds the sample adapter in a background process on a first run; tests that want
# that say so, the others must not leave trainers running.
os.environ["SUPPORTDESK_TUI__BUILD_SAMPLE_ADAPTER"] = "false"

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_KB = ROOT / "kb"
SHARED = ROOT.parent / "shared"

SLOW_FIXTURES = frozenset({
    "minilm", "sample_index",  # the real embedder
    "postgres", "milvus", "light_team",  # real servers (team: through sample_index)
    "app_with_builder", "tui_factory",  # the TUI
})
"""A test that uses one of these (directly or through another fixture) is marked ``slow``: ``pytest -m
"not slow"`` is the fast inner loop. Tests that do such work inline carry ``@pytest.mark.slow``."""


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


class HashEmbeddings(Embeddings):
    """Bag-of-words hashed into 256 dims, normalised. Counts every text it embeds."""

    dim = 256

    def __init__(self) -> None:
        self.embedded: list[str] = []
        self.fail_after: int | None = None
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def _vector(self, text: str) -> list[float]:
        vec = np.zeros(self.dim, dtype=np.float32)
        for token in re.findall(r"\w+", text.lower()):
            vec[int(hashlib.md5(token.encode()).hexdigest()[:8], 16) % self.dim] += 1.0
        norm = np.linalg.norm(vec)
        return (vec / norm if norm else vec).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        if self.fail_after is not None and len(self.embedded) + len(texts) > self.fail_after:
            raise RuntimeError("embedding model crashed (test)")
        self.embedded.extend(texts)
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


@pytest.fixture(scope="module")
def postgres():
    """A throw-away PostgreSQL cluster on a free loopback port (per test module); a fresh database
    in it per test is the test's own business."""
    from fixtures.postgres_server import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        if os.environ.get("SUPPORTDESK_TEST_SKIP_POSTGRES") == "1":
            pytest.skip(f"PostgreSQL not started: {exc}")
        pytest.fail(f"PostgreSQL could not be started for these tests: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def hash_embedder() -> HashEmbeddings:
    return HashEmbeddings()


@pytest.fixture
def settings_factory(tmp_path, monkeypatch):
    """Settings isolated from the developer's env, .env and TOML files."""
    from supportdesk.settings import Settings

    for key in list(os.environ):
        if key.startswith("SUPPORTDESK_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SUPPORTDESK_TUI__BUILD_SAMPLE_ADAPTER", "false")
    # Index tests count what is embedded; self-calibration (its own embeddings) is on only
    # where a test asks for it (tests/kb/test_calibration.py).
    monkeypatch.setenv("SUPPORTDESK_RETRIEVAL__SELF_CALIBRATE", "false")
    # ... and so are question-heading vectors (tests/kb/test_questions.py).
    monkeypatch.setenv("SUPPORTDESK_RETRIEVAL__QUESTION_WEIGHT", "0")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))

    def make(kb_dir: Path, **overrides) -> Settings:
        return Settings(data_dir=tmp_path / "data", kb_dir=kb_dir, **overrides)

    return make


@pytest.fixture
def small_kb(tmp_path) -> Path:
    """A copy of a few sample documents, one of each format, safe to edit."""
    kb = tmp_path / "kb"
    for rel in [
        "faq.md",
        "policies/returns-and-refunds.txt",
        "troubleshooting/no-internet.html",
        "manuals/aerie-ax3000-quick-start.pdf",
    ]:
        target = kb / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE_KB / rel, target)
    return kb


@pytest.fixture(scope="session")
def minilm():
    from supportdesk.kb.embeddings import MiniLMEmbeddings

    return MiniLMEmbeddings(batch_size=16, threads=2)


class ScriptedBackend:
    """A deterministic ChatBackend double: replies with a fixed text, records every prompt."""

    name = "scripted"
    model_name = "scripted-model"
    adapter_name = None

    def __init__(self, reply: str = "Thanks for asking! [1]", delay: float = 0.0) -> None:
        self.reply = reply
        self.delay = delay
        self.prompts: list[list] = []

    def generate(self, messages, options):
        import time as _time

        from supportdesk.models.base import Generation, GenerationStats

        self.prompts.append(list(messages))
        stats = GenerationStats(backend=self.name, model=self.model_name, prompt_tokens=sum(len(m.content) // 4 for m in messages))
        reply = self.reply(messages) if callable(self.reply) else self.reply

        def produce(gen):
            for word in re.findall(r"\S+\s*", reply)[: options.max_tokens]:
                if self.delay:
                    _time.sleep(self.delay)
                stats.tokens += 1
                yield word

        return Generation(produce, stats)

    def list_models(self):
        return []

    def count_tokens(self, text: str) -> int:
        return len(text) // 4


def grounded_reply(messages):
    """A reply for ScriptedBackend: cites two sources when the prompt has sources, thanks otherwise."""
    if "Sources" in messages[-1].content:
        return "You can return it within 45 days of delivery [1]. Start the return in Roost [2]."
    return "You're welcome! Happy surfing."


def wait_until(predicate, timeout=10.0, step=0.05) -> bool:
    """Whether ``predicate()`` came true within ``timeout`` seconds (asked every ``step``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


async def send(pilot, app, text: str) -> MessageView:
    """Type ``text`` in the TUI's prompt, send it, wait for the answer; its view."""
    app.query_one("#prompt").insert(text)
    await pilot.press("enter")
    for _ in range(400):
        await pilot.pause(0.05)
        if app._streaming is None and app._ticket is None:
            break
    await pilot.pause(0.1)
    return app.query_one("#conversation").answers()[-1]


@pytest.fixture
def scripted():
    return ScriptedBackend()


@pytest.fixture(scope="session")
def random_adapter(tmp_path_factory):
    """A real GGUF LoRA (random weights) for SmolLM2's q/v projections, written by our writer."""
    import json

    from supportdesk.models.adapters import AdapterInfo
    from supportdesk.training.gguf_lora import write_gguf_lora

    folder = tmp_path_factory.mktemp("adapters") / "random"
    folder.mkdir()
    rng = np.random.default_rng(0)
    pairs = {}
    for layer in range(30):
        for module, out in (("q_proj", 576), ("v_proj", 192)):
            pairs[f"model.layers.{layer}.self_attn.{module}"] = (
                (rng.standard_normal((8, 576)) * 0.05).astype(np.float32),
                (rng.standard_normal((out, 8)) * 0.05).astype(np.float32),
            )
    write_gguf_lora(folder / "adapter.gguf", pairs, alpha=16, n_layers=30, n_head=9, n_head_kv=3)
    (folder / "manifest.json").write_text(json.dumps({"name": "random", "description": "test adapter"}))
    return AdapterInfo("random", folder)


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory):
    """The whole sample KB indexed once with the real embedder: (settings, KnowledgeBase)."""
    from supportdesk.kb import KnowledgeBase
    from supportdesk.settings import Settings

    data = tmp_path_factory.mktemp("sample-data")
    settings = Settings(kb_dir=SAMPLE_KB, data_dir=data)
    kb = KnowledgeBase(settings)
    report = kb.reload()
    assert report.ok, report.error
    return settings, kb


# -- the hostile-input suite (tests/robustness) ----------------------------------------------


@pytest.fixture
def cli(settings_factory, small_kb, tmp_path, hash_embedder, monkeypatch):
    """``cli(*args)`` runs supportdesk against ``tmp_path/data`` and ``small_kb``; returns the result."""
    import supportdesk.kb.index as index_module
    from supportdesk.cli import app

    monkeypatch.setattr(index_module, "create_embedder", lambda *a, **k: hash_embedder)
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path / "data"), "--kb", str(small_kb)]

    def invoke(*args: str, input: str | bytes | None = None):
        return runner.invoke(app, [*base, *args], input=input, env={"COLUMNS": "200"})

    return invoke
