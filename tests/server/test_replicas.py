"""Replicas that agree (issue 31): two real ``supportdesk serve`` processes on loopback sharing a
real PostgreSQL (history, tokens, the KB generation) and a real Milvus (milvus-lite) serve one
knowledge base. Real embedder (MiniLM) in each; the model is a fake Ollama server on loopback
that writes slowly, so answers are in flight while the generation changes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fixtures.fake_ollama import FakeOllama
from fixtures.milvus_server import MilvusServer, MilvusUnavailableForTests
from fixtures.postgres_server import PostgresServer, PostgresUnavailable

from supportdesk.client.remote import RemoteSession, ServerError
from supportdesk.kb.index import ReloadInProgress
from supportdesk.settings import Settings

pytestmark = pytest.mark.slow  # real `supportdesk serve` processes, PostgreSQL, Milvus

SAMPLE_KB = Path(__file__).resolve().parents[2] / "kb"
SNOWBIRD = ("# Snowbird programme\n\nThe Snowbird programme lets customers who spend winters abroad pause their "
            "Kestrel Guardian plan for up to five months each year at no charge.\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Replica:
    def __init__(self, name: str, env: dict[str, str], root: Path) -> None:
        self.name = name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(env, SUPPORTDESK_DATA_DIR=str(root / f"data-{name}"), SUPPORTDESK_SERVE__REPLICA_NAME=name)
        self.log = root / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, seconds: float = 240) -> float:
        started = time.monotonic()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "supportdesk", "serve", "--port", str(self.port)],
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        while time.monotonic() - started < seconds:
            if self.process.poll() is not None:
                raise AssertionError(f"replica {self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"replica {self.name} not ready in {seconds} s: {self.log.read_text()[-3000:]}")

    def status(self, token: str) -> dict:
        return httpx.get(f"{self.url}/v1/status", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def servers():
    pg, milvus, model = PostgresServer(), MilvusServer(), FakeOllama(pieces=[f" word{i}" for i in range(40)],
                                                                     delay=0.05)
    try:
        pg.start()
        milvus.start()
    except (PostgresUnavailable, MilvusUnavailableForTests) as exc:
        pg.stop()
        milvus.stop()
        pytest.fail(f"the shared stores could not be started: {exc}", pytrace=False)
    with model:
        yield pg, milvus, model
    milvus.stop()
    pg.stop()


def _supportdesk(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "supportdesk", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1].strip()


def _found(client: RemoteSession, query: str, source: str) -> bool:
    return any(hit["source"] == source for hit in client.search(query, k=5)["hits"])


def test_two_replicas_serve_one_generation(servers, tmp_path):
    pg, milvus, model = servers
    kb = tmp_path / "kb"
    for rel in ["faq.md", "policies/returns-and-refunds.txt", "troubleshooting/no-internet.html"]:
        (kb / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE_KB / rel, kb / rel)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTDESK_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", SUPPORTDESK_KB_DIR=str(kb),
               SUPPORTDESK_DATA_DIR=str(tmp_path / "admin-data"),
               SUPPORTDESK_HISTORY__URL=pg.url, SUPPORTDESK_RETRIEVAL__STORE="milvus",
               SUPPORTDESK_RETRIEVAL__MILVUS_URI=milvus.uri, SUPPORTDESK_RETRIEVAL__MILVUS_COLLECTION="replicas",
               SUPPORTDESK_RETRIEVAL__SELF_CALIBRATE="false", SUPPORTDESK_MODEL__BACKEND="ollama",
               SUPPORTDESK_MODEL__OLLAMA_HOST=model.host, SUPPORTDESK_TUI__BUILD_SAMPLE_ADAPTER="false")
    ada = _supportdesk(env, "serve", "token", "create", "--name", "ada", "--role", "admin")
    bob = _supportdesk(env, "serve", "token", "create", "--name", "bob", "--role", "admin")
    alice = _supportdesk(env, "serve", "token", "create", "--name", "alice", "--role", "agent")
    a, b = Replica("A", env, tmp_path), Replica("B", env, tmp_path)
    settings = Settings(data_dir=tmp_path / "client", kb_dir=kb)
    clients: list[RemoteSession] = []

    def client(replica: Replica, token: str) -> RemoteSession:
        session = RemoteSession(settings, replica.url, token)
        clients.append(session)
        return session

    try:
        a_ready_s = a.start()
        b_ready_s = b.start()
        # B started on a store with a current generation: it adopted A's, embedding nothing.
        sa, sb = a.status(alice), b.status(alice)
        assert sb["generation"] == sa["generation"] is not None
        assert sa["embedded_texts"] > 0 and sb["embedded_texts"] == 0, (sa["embedded_texts"], sb["embedded_texts"])
        assert sb["cluster"]["current"] == sa["generation"]

        # Answers in flight on both replicas while a document is added and reloaded through A.
        results: list[str] = []
        failures: list[str] = []

        def ask(replica: Replica) -> None:
            try:
                answer = client(replica, alice).ask("How do I get a refund for a router I returned?")
                text = "".join(answer)
                results.append(text)
            except Exception as exc:  # noqa: BLE001 - counted
                failures.append(f"{type(exc).__name__}: {exc}")

        askers = [threading.Thread(target=ask, args=(r,)) for r in (a, b, a, b)]
        for t in askers:
            t.start()
        time.sleep(0.5)
        (kb / "policies" / "snowbird.md").write_text(SNOWBIRD, encoding="utf-8")
        on_b = client(b, alice)
        assert not _found(on_b, "Snowbird programme winters abroad", "policies/snowbird.md")
        report = client(a, ada).reload_kb()
        reloaded = time.monotonic()
        assert report.ok and report.added == ["policies/snowbird.md"], report.error
        while not _found(on_b, "Snowbird programme winters abroad", "policies/snowbird.md"):
            assert time.monotonic() - reloaded < 5, "B did not serve A's new generation within 5 s"
            time.sleep(0.05)
        seen_after_s = time.monotonic() - reloaded
        adopt_s = b.status(alice)["cluster"]["adopt_seconds"]
        for t in askers:
            t.join(60)
        assert failures == [] and len(results) == 4
        sb = b.status(alice)
        assert sb["generation"] == report.generation and sb["embedded_texts"] == 0  # B never embedded for it
        assert sb["reloaded_by"] == "ada on A"  # every replica's status feed names who reloaded, where
        deadline = time.monotonic() + 5  # the cluster view: both replicas' heartbeats name the new generation
        while sorted((cluster := b.status(alice)["cluster"])["serving"]) != ["A", "B"]:
            assert time.monotonic() < deadline, cluster
            time.sleep(0.1)
        assert cluster["current"] == report.generation and cluster["behind"] == []

        # Two reloads at once, one on each replica: one runs, the other is refused naming who.
        (kb / "policies" / "loyalty.md").write_text("# Loyalty points\n\nTen points per dollar spent.\n",
                                                    encoding="utf-8")
        barrier = threading.Barrier(2)
        outcomes: dict[str, object] = {}

        def reload(replica: Replica, token: str) -> None:
            session = client(replica, token)
            barrier.wait()
            try:
                outcomes[replica.name] = session.reload_kb()
            except (ReloadInProgress, ServerError) as exc:
                outcomes[replica.name] = exc

        both = [threading.Thread(target=reload, args=(a, ada)), threading.Thread(target=reload, args=(b, bob))]
        for t in both:
            t.start()
        for t in both:
            t.join(120)
        refused = [name for name, o in outcomes.items() if isinstance(o, Exception)]
        ran = [name for name, o in outcomes.items() if not isinstance(o, Exception)]
        assert len(refused) == 1 and len(ran) == 1, outcomes
        winner = {"A": "ada on A", "B": "bob on B"}[ran[0]]
        assert isinstance(outcomes[refused[0]], ReloadInProgress) and winner in str(outcomes[refused[0]])
        assert outcomes[ran[0]].ok  # type: ignore[union-attr]
        generation = outcomes[ran[0]].generation  # type: ignore[union-attr]
        deadline = time.monotonic() + 5
        while {a.status(alice)["generation"], b.status(alice)["generation"]} != {generation}:
            assert time.monotonic() < deadline
            time.sleep(0.1)

        # kill -9 of the replica that is reloading: the cluster stays on the previous generation, lock freed.
        (kb / "policies" / "gift-cards.md").write_text("# Gift cards\n\nGift cards never expire.\n", encoding="utf-8")
        killed = threading.Event()

        def kill_mid_reload(p) -> None:
            if p.stage in ("load", "embed") and not killed.is_set():
                killed.set()
                os.kill(b.process.pid, signal.SIGKILL)  # type: ignore[union-attr]

        try:
            client(b, bob).reload_kb(kill_mid_reload)
        except Exception:  # noqa: BLE001, S110 - the replica died under the stream
            pass
        assert killed.is_set()
        b.process.wait(10)  # type: ignore[union-attr]
        freed_at = time.monotonic()
        while a.status(alice)["reloading_by"] is not None:
            assert time.monotonic() - freed_at < 10, "the dead replica's reload lock was not released"
            time.sleep(0.1)
        sa = a.status(alice)
        assert sa["cluster"]["current"] == generation == sa["generation"]
        report = client(a, ada).reload_kb()  # the lock is free: A reloads
        assert report.ok and report.added == ["policies/gift-cards.md"], report.error
        print(f"\nreplicas: start -> ready A {a_ready_s:.1f} s (built), B {b_ready_s:.1f} s (adopted); B served A's reload after {seen_after_s:.2f} s (adopted in {adopt_s} s); 4 answers in flight, 0 failed; "
              f"B embedded 0; lock freed {time.monotonic() - freed_at:.1f} s after kill -9")
    finally:
        for session in clients:
            try:
                session.close()
            except Exception:  # noqa: BLE001, S110
                pass
        a.stop()
        b.stop()


def test_an_adapter_activated_on_one_replica_is_followed_by_the_others(settings_factory, small_kb, hash_embedder,
                                                                        tmp_path):
    """Two replicas (in this process, FAISS, hash embedder) on a real PostgreSQL: a trainer's activation on A
    is loaded by B from B's own adapters folder, or B's cluster view says it lacks it."""
    from supportdesk.kb import KnowledgeBase
    from supportdesk.server.core import ServerCore

    pg = PostgresServer()
    try:
        pg.start()
    except PostgresUnavailable as exc:
        pg.stop()
        pytest.fail(f"PostgreSQL could not be started: {exc}", pytrace=False)
    cores: list[ServerCore] = []
    try:
        with FakeOllama() as fake:
            fake.models += ["supportdesk-x:latest", "supportdesk-y:latest"]
            base = settings_factory(small_kb)
            for name, adapters in (("A", ("x", "y")), ("B", ("x",))):
                for adapter in adapters:
                    (tmp_path / f"adapters-{name}" / adapter).mkdir(parents=True)
                    (tmp_path / f"adapters-{name}" / adapter / "adapter.gguf").write_bytes(b"GGUF")
                settings = base.model_copy(update={
                    "data_dir": tmp_path / f"data-{name}", "adapters_dir": tmp_path / f"adapters-{name}",
                    "history": base.history.model_copy(update={"url": pg.url}),
                    "serve": base.serve.model_copy(update={"replica_name": name}),
                    "model": base.model.model_copy(update={"backend": "ollama", "ollama_host": fake.host})})
                core = ServerCore(settings, kb=KnowledgeBase(settings, embedder=hash_embedder))
                core.start()
                cores.append(core)
            a, b = cores
            assert b.status()["generation"] == a.status()["generation"]  # B adopted A's first build
            # The reload lock is the cluster's: held on A, B and a second admin on A are refused, naming who.
            from supportdesk.server.core import CoreError
            from supportdesk.server.tokens import Identity

            release = a.claim_reload(Identity("ada", "admin", 1))
            for core, who in ((b, Identity("bob", "admin", 2)), (a, Identity("cy", "admin", 3))):
                with pytest.raises(CoreError, match="a reload started by ada on A is running") as refused:
                    core.claim_reload(who)
                assert refused.value.status == 409
            release()
            b.claim_reload(Identity("bob", "admin", 2))()  # free again
            a.switch_model(None, "x", force=True, by="tia")
            deadline = time.monotonic() + 5
            while b.status()["model"] != "supportdesk-x":
                assert time.monotonic() < deadline, b.status()
                time.sleep(0.05)
            a.switch_model(None, "y", force=True, by="tia")
            deadline = time.monotonic() + 5
            while "adapter y (activated by tia on A) is not in this replica's" not in str(b.cluster.note):
                assert time.monotonic() < deadline, b.status()["cluster"]
                time.sleep(0.05)
            assert b.status()["model"] == "supportdesk-x"  # B keeps serving what it has
            deadline = time.monotonic() + 5
            while not any("is not in this replica's" in str(r["note"]) for r in a.status()["cluster"]["replicas"]):
                assert time.monotonic() < deadline, a.status()["cluster"]  # and A's view shows B's note
                time.sleep(0.1)
    finally:
        for core in cores:
            core.close()
        pg.stop()
