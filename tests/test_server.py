"""The team server: a real uvicorn server on a free loopback port, its API, roles, queue,
and its clients (RemoteSession, the CLI, the TUI)."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from types import SimpleNamespace

import httpx
import pytest
from conftest import ScriptedBackend
from team_server import running
from test_tui import grounded_reply

from supportdesk.client.remote import RemoteSession, ServerError, ServerUnreachable
from supportdesk.kb import KnowledgeBase
from supportdesk.kb.index import ReloadInProgress
from supportdesk.server.core import ServerCore


def _wait(predicate, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


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


def _raw_chunked_post(url: str, path: str, headers: dict[str, str], chunks: list[bytes]) -> str:
    """Send a chunked POST's headers and these chunks but never the body's end; what the server answers meanwhile."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": host, "Content-Type": "application/json",
                                                      "Transfer-Encoding": "chunked", **headers}.items())
        sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode())
        for chunk in chunks:
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        got = b""
        try:
            while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
                data = sock.recv(65536)
                if not data:
                    break
                got += data
        except TimeoutError:
            pass  # nothing more came: the server is still waiting for the body
        return got.decode("utf-8", "replace")


def test_bodies_are_refused_while_they_arrive(light_team):
    """No token: 401 before any of the body is read; with one, a body past serve.max_body_kb (chunked, no
    Content-Length) is refused with 413 as soon as the limit is passed, not after reading it whole."""
    url, token = light_team.url, light_team.tokens["alice"]
    # A body that never ends: the answers come anyway.
    unauthenticated = _raw_chunked_post(url, "/v1/ask", {}, [b'{"question": "' + b"x" * 1000])
    assert unauthenticated.startswith("HTTP/1.1 401") and "no token" in unauthenticated
    wrong = _raw_chunked_post(url, "/v1/kb/reload", {"Authorization": "Bearer sdk_nope"}, [b"{"])
    assert wrong.startswith("HTTP/1.1 401") and "not recognised" in wrong
    over = _raw_chunked_post(url, "/v1/ask", {"Authorization": f"Bearer {token}"}, [b" " * 16384] * 5)
    assert over.startswith("HTTP/1.1 413") and "64 KiB limit" in over
    # A large streamed body (40 MB offered): refused long before the client has sent it all.
    total = 40 * 1024 * 1024
    for headers, status in (({}, 401), ({"Authorization": f"Bearer {token}"}, 413)):
        sent = [0]

        def body(sent=sent):
            while sent[0] < total:
                sent[0] += 65536
                yield b" " * 65536

        started = time.monotonic()
        refused = httpx.post(f"{url}/v1/ask", content=body(), timeout=10,
                             headers={"Content-Type": "application/json", **headers})
        assert refused.status_code == status, refused.text
        assert sent[0] < total / 2 and time.monotonic() - started < 5
    # Within the limit, with a token: answered as before.
    ok = httpx.get(f"{url}/v1/status", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json()["you"]["name"] == "alice"


def test_token_expiry_is_bounded_and_a_bad_stored_one_does_not_break_the_list(light_team):
    from typer.testing import CliRunner

    from supportdesk.cli import app

    runner = CliRunner()
    data_dir = str(light_team.settings.data_dir)

    def cli(*args, server=None):
        env = {"COLUMNS": "200", "SUPPORTDESK_TOKEN": light_team.tokens["ada"]}
        return runner.invoke(app, [*(["--server", server] if server else ["--data-dir", data_dir]), *args], env=env)

    for days in ("inf", "nan", "1e308", "0", "-1", "3651"):
        for server in (None, light_team.url):  # on the server's machine, and through the API
            refused = cli("serve", "token", "create", "--name", "eve", "--expires-days", days, server=server)
            assert refused.exit_code == 1, (days, server, refused.output)
            assert "--expires-days" in refused.output and "3650" in refused.output
            assert isinstance(refused.exception, SystemExit)  # a clean exit, not a crash
    admin = {"Authorization": f"Bearer {light_team.tokens['ada']}"}
    for days in (1e308, 0, 3651):
        api = httpx.post(f"{light_team.url}/v1/tokens", headers=admin, json={"name": "eve", "role": "agent",
                                                                             "expires_days": days})
        assert api.status_code == 422 and "3650" in api.json()["detail"]
    made = cli("serve", "token", "create", "--name", "eve", "--expires-days", "30")
    assert made.exit_code == 0 and made.stdout.strip().startswith("sdk_")
    # A row written before expiries were bounded (infinity): listed as invalid, refused as expired.
    db = sqlite3.connect(light_team.settings.data_dir / "history.sqlite3")
    db.execute("UPDATE tokens SET expires_at = 9e999 WHERE name = 'eve'")
    db.commit()
    db.close()
    for server in (None, light_team.url):
        listed = cli("serve", "token", "list", server=server)
        assert listed.exit_code == 0, listed.output
        assert any("eve" in line and "invalid" in line for line in listed.stdout.splitlines()), listed.stdout
        assert "alice" in listed.stdout
    rows = httpx.get(f"{light_team.url}/v1/tokens", headers=admin).json()
    assert next(r for r in rows if r["name"] == "eve")["invalid"] is True
    late = httpx.get(f"{light_team.url}/v1/status", headers={"Authorization": f"Bearer {made.stdout.strip()}"})
    assert late.status_code == 401 and "expired" in late.json()["detail"]


def test_a_backend_that_does_not_answer_is_not_switched_to(light_team):
    """POST /v1/model with a backend that has nothing at its URL: an error status and sentence, and the
    previous model keeps serving (before, 200 and every ask failed until someone switched back)."""
    from fake_ollama import FakeOllama

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
    answer, _ = asked.ask("How do I return a router?")
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
    assert _wait(lambda: not core._runs, timeout=20)
    stored = core.session.history.conversations(limit=100, owner="alice")
    assert len(stored) == 2 and all(core.session.history.messages(c.id) for c in stored)


def test_tls_files_are_checked_before_anything_loads(cli, tmp_path, monkeypatch):
    """A missing or bad serve.ssl_certfile / ssl_keyfile: one line naming the setting and the file, at once
    (before, FileNotFoundError or 'SSLError: PEM lib' after the whole load)."""
    import shutil
    import subprocess

    import supportdesk.server.core as core_module

    def never(*args, **kwargs):
        raise RuntimeError("the core started loading")

    monkeypatch.setattr(core_module.ServerCore, "__init__", never)

    def serve(cert=None, key=None, host="127.0.0.1"):
        for name, value in (("CERTFILE", cert), ("KEYFILE", key)):
            if value is None:
                monkeypatch.delenv(f"SUPPORTDESK_SERVE__SSL_{name}", raising=False)
            else:
                monkeypatch.setenv(f"SUPPORTDESK_SERVE__SSL_{name}", str(value))
        result = cli("serve", "--host", host, "--port", "0")
        assert result.exit_code == 1 and "Traceback" not in result.output
        return [line for line in result.output.splitlines() if line.strip()]

    missing = tmp_path / "missing.pem"
    lines = serve(cert=missing, key=tmp_path / "key.pem")
    assert lines == [f"error: cannot serve: serve.ssl_certfile {missing}: no such file"]
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert "serve.ssl_certfile" in serve(cert=junk)[-1] and "not a PEM certificate" in serve(cert=junk)[-1]
    # Only the key: it would have served plain HTTP on 0.0.0.0 without a word.
    lines = serve(key=junk, host="0.0.0.0")
    assert len(lines) == 1 and "serve.ssl_keyfile" in lines[0] and "serve.ssl_certfile is not" in lines[0]
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: the certificate cases need it")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    lines = serve(cert=cert, host="0.0.0.0")  # a certificate without its key, and no key file
    assert len(lines) == 1 and f"serve.ssl_certfile {cert} holds no private key" in lines[0]
    assert "serve.ssl_keyfile is not set" in lines[0]
    lines = serve(cert=cert, key=junk)
    assert len(lines) == 1 and f"serve.ssl_keyfile {junk}: not the unencrypted PEM private key" in lines[0]
    # Both right: TLS, no clear-text warning; the core is what starts next.
    lines = serve(cert=cert, key=key, host="0.0.0.0")
    assert lines == ["error: cannot serve: the core started loading"]
    lines = serve(host="0.0.0.0")
    assert "without TLS" in lines[0] and lines[-1] == "error: cannot serve: the core started loading"


def test_a_server_url_with_a_password_is_never_printed_with_it(cli, settings_factory, small_kb, monkeypatch):
    """--server http://user:PASSWORD@host: the password is masked in every message, as history.url's is."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://agent:s3cret-pw@127.0.0.1:{port}"
    monkeypatch.setenv("SUPPORTDESK_TOKEN", "sdk_whatever")
    for args in (["kb", "stats"], ["ask", "hello"], ["history", "list"], ["adapter", "list"],
                 ["serve", "token", "list"], ["kb", "build"]):
        result = cli("--server", url, *args)
        assert result.exit_code == 1, (args, result.output)
        assert "s3cret" not in result.output and f"agent:***@127.0.0.1:{port}" in result.output, (args, result.output)
    said: list[str] = []
    session = RemoteSession(settings_factory(small_kb), url + "/", "sdk_whatever")
    with pytest.raises(ServerUnreachable) as caught:
        session.start(said.append)
    assert "s3cret" not in str(caught.value) and said == [f"connecting to http://agent:***@127.0.0.1:{port}"]
    with pytest.raises(ServerUnreachable) as caught:
        list(session.ask("hello")[0])
    assert "s3cret" not in str(caught.value) and "agent:***@" in str(caught.value)
    session.close()


def test_tokens_roles_and_their_messages(team):
    url = team.url
    assert httpx.get(f"{url}/health").json()["ok"]
    no_token = httpx.get(f"{url}/v1/status")
    assert no_token.status_code == 401 and "SUPPORTDESK_TOKEN" in no_token.json()["detail"]
    wrong = httpx.get(f"{url}/v1/status", headers={"Authorization": "Bearer sdk_nope"})
    assert wrong.status_code == 401 and "not recognised" in wrong.json()["detail"]
    alice = team.client("alice")
    with pytest.raises(ServerError) as refused:  # an agent may not reload
        alice.reload_kb()
    assert isinstance(refused.value, ServerError) and refused.value.status == 403
    assert "alice is an agent" in str(refused.value) and "admin role" in str(refused.value)
    with pytest.raises(ServerError, match="needs the trainer role"):
        alice.switch_model(adapter="none")
    # Only hashes are stored; the admin lists tokens without their values, and revokes at once.
    db = sqlite3.connect(team.settings.data_dir / "history.sqlite3")
    stored = " ".join(str(v) for row in db.execute("SELECT * FROM tokens") for v in row)
    assert all(token not in stored for token in team.tokens.values())
    ada = team.client("ada")
    listed = ada._call("GET", "/v1/tokens")
    assert {t["name"] for t in listed} == {"alice", "bob", "tia", "ada"} and "token" not in json.dumps(listed)
    created = ada._call("POST", "/v1/tokens", json={"name": "carol", "role": "agent"})
    assert team.core.tokens.verify(created["token"]).name == "carol"
    with pytest.raises(ServerError, match="already exists"):
        ada._call("POST", "/v1/tokens", json={"name": "carol", "role": "agent"})
    with pytest.raises(ServerError, match="unknown role"):
        ada._call("POST", "/v1/tokens", json={"name": "dave", "role": "root"})
    ada._call("DELETE", "/v1/tokens/carol")
    revoked = httpx.get(f"{url}/v1/status", headers={"Authorization": f"Bearer {created['token']}"})
    assert revoked.status_code == 401
    expired = team.core.tokens.create("eve", "agent", expires_days=1)
    db.execute("UPDATE tokens SET expires_at = 1 WHERE name = 'eve'")
    db.commit()
    late = httpx.get(f"{url}/v1/status", headers={"Authorization": f"Bearer {expired}"})
    assert late.status_code == 401 and "expired" in late.json()["detail"]


def test_answers_stream_with_sources_and_history_records_the_agent(team):
    alice, bob, tia = team.client("alice"), team.client("bob"), team.client("tia")
    alice.start()
    assert alice.you == {"name": "alice", "role": "agent"}
    answer, _ = alice.ask("How many days do I have to return a router?")
    pieces = list(answer)
    result = answer.result
    assert len(pieces) > 3 and result.kind == "grounded" and result.citations
    assert any(c.cited for c in result.citations) and "45 days" in result.answer
    assert result.timings["total_ms"] > 0 and "queue_ms" in result.timings
    assert alice.record_answer(answer) == answer.message_id > 0
    follow, _ = alice.ask("thanks!")
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


def test_one_model_serves_in_arrival_order_and_search_does_not_wait(team):
    team.model.delay = 0.05
    agents = [team.client(name) for name in ("alice", "bob", "tia")]
    waits: dict[int, list[int]] = {0: [], 1: [], 2: []}
    results = {}

    def ask(i):
        answer, _ = agents[i].ask("How many days do I have to return a router?")
        answer.on_wait = waits[i].append
        list(answer)
        results[i] = answer

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.15)
    assert _wait(lambda: team.core.queue.running == 1)
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
    answer, _ = alice.ask("tell me a long story")
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
    assert _wait(lambda: not team.core._runs and team.core.queue.running == 0, timeout=10)
    bob_history = team.core.session.history.conversations(owner="bob")
    last = team.core.session.history.messages(bob_history[0].id)[-1]
    assert last.role == "assistant" and last.content.endswith("…(cancelled)")
    team.model.reply = grounded_reply
    again, _ = alice.ask("thanks!")
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
    answers = [alice.ask("tell me a long story")[0], alice.ask("tell me another long story")[0]]
    readers = [threading.Thread(target=lambda a=a: list(a)) for a in answers]
    for reader in readers:
        reader.start()
    assert _wait(lambda: len(team.core._runs) == 2)
    with pytest.raises(ServerError, match="limit 2") as too_many:
        list(alice.ask("three")[0])
    assert too_many.value.status == 429
    assert team.client("bob").search("warranty")["hits"]  # another agent is not limited by alice's streams
    for answer in answers:
        answer.cancel()
    for reader in readers:
        reader.join(10)
    assert all(a.result.cancelled for a in answers)


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
        assert _wait(lambda: watcher.status().reloading)
        with pytest.raises(ReloadInProgress, match="started by ada"):
            odo.reload_kb()
        # An answer asked during the reload is answered (from the old generation).
        during, _ = watcher.ask("How do I return a router?")
        assert list(during) and during.result.kind in ("grounded", "handoff", "voice")
        hash_embedder.gate.set()
        first.join(30)
        report = found["report"]
        assert report.ok and report.added == ["new-policy.md"] and steps
        assert _wait(lambda: watcher.status().generation == report.generation, timeout=1.5)
        assert watcher.status().chunks > before.chunks
        for session in (watcher, ada, odo):
            session.close()
    core.close()


def test_a_client_that_loses_the_server_says_so_and_reconnects(sample_index, tmp_path):
    base, kb = sample_index
    settings = base.model_copy(update={"data_dir": tmp_path / "data"})
    core = ServerCore(settings, backend=ScriptedBackend(grounded_reply), kb=kb)
    core.start()
    token = core.tokens.create("alice", "agent")
    with running(core) as url:
        port = int(url.rsplit(":", 1)[1])
        client = RemoteSession(settings, url, token)
        client.start()
        answer, _ = client.ask("How many days do I have to return a router?")
        list(answer)
    # The server is gone: the status says so, asking fails with a clear message.
    assert _wait(lambda: "retrying in" in (client.status().connection or ""), timeout=5)
    with pytest.raises(ServerUnreachable, match="cannot reach the supportdesk server"):
        list(client.ask("hello?")[0])
    core.close()
    # Restarted on the same port with the same data: the history is all there, the feed returns.
    core = ServerCore(settings, backend=ScriptedBackend(grounded_reply), kb=kb)
    core.start()
    with running(core, port=port):
        assert _wait(lambda: client.status().connection is None, timeout=20)
        messages = client.history.messages(client.history.latest_conversation())
        assert [m.role for m in messages] == ["user", "assistant"]
    client.close()
    core.close()


async def test_the_tui_on_a_server_shows_the_same_panels(team):
    from test_tui import send

    from supportdesk.client import session_factory
    from supportdesk.tui.app import SupportDeskApp
    from supportdesk.tui.widgets.latency import LatencyMeter
    from supportdesk.tui.widgets.sources import SourceItem

    app = SupportDeskApp(team.settings, session_factory(team.url, team.tokens["alice"]))
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):
            await pilot.pause(0.05)
            if app.session is not None:
                break
        assert isinstance(app.session, RemoteSession)
        view = await send(pilot, app, "How many days do I have to return a router?")
        assert view.data["kind"] == "grounded" and "45 days" in view.text
        assert str(view.query_one("#badge").render()).strip() == "grounded"
        assert any(item.citation.get("cited") for item in app.query(SourceItem))
        assert app.query_one(LatencyMeter).recent and "queue_ms" in view.data["timings"]
        await pilot.press("ctrl+t")  # 👍 stored on the server
        await pilot.pause(0.3)
        stored = team.core.session.history.messages(app.session.conversation_id)
        assert stored[-1].feedback == 1 and stored[-1].asked_by == "alice"
        # A trainer switches the adapter elsewhere: this TUI's status line follows, no restart.
        before = str(app.query_one("#status").render())
        assert "adapter none" in before
        team.core.session.switch_model = lambda backend=None, adapter=None: None  # (no second model here)
        team.model.adapter_name = "voice-v2"
        for _ in range(40):
            await pilot.pause(0.05)
            if "voice-v2" in str(app.query_one("#status").render()):
                break
        assert "adapter voice-v2" in str(app.query_one("#status").render())
        # The server goes away: the question typed is kept in the prompt and the status says so.
        app.session.url = "http://127.0.0.1:9"
        app.session._http.base_url = "http://127.0.0.1:9"
        app.query_one("#prompt").insert("Is the Perch covered by the warranty?")
        await pilot.press("enter")
        for _ in range(100):
            await pilot.pause(0.05)
            if app.query_one("#prompt").text:
                break
        assert app.query_one("#prompt").text == "Is the Perch covered by the warranty?"
        assert any("cannot reach the supportdesk server" in n.message for n in app._notifications)


def test_cli_commands_go_through_the_server(team, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from supportdesk.cli import app

    runner = CliRunner()
    monkeypatch.setenv("SUPPORTDESK_SERVER", team.url)

    def cli(token, *args):
        return runner.invoke(app, list(args), env={"SUPPORTDESK_TOKEN": token, "COLUMNS": "200"})

    agent, trainer, admin = team.tokens["alice"], team.tokens["tia"], team.tokens["ada"]
    asked = cli(agent, "ask", "--json", "How many days do I have to return a router?")
    assert asked.exit_code == 0, asked.output
    row = json.loads(asked.stdout.strip().splitlines()[-1])
    assert row["route"] == "grounded" and row["citations"] and "timings" in row
    # A multi-turn set answered by the server: each line after its own history, one JSON line each,
    # and nothing of it stored in the history.
    stored_before = len(team.core.session.history.conversations(limit=1000))
    turns = tmp_path / "turns.jsonl"
    turns.write_text("\n".join(json.dumps(line) for line in [
        {"history": [], "question": "How many days do I have to return a router?"},
        {"history": [{"role": "user", "text": "How many days do I have to return a router?"},
                     {"role": "agent", "text": "45 days from delivery [1]."}], "question": "And for a Perch?"},
        {"history": [], "question": "   "},
    ]) + "\n")
    evaluated = cli(agent, "ask", "--conversations", str(turns), "--json")
    assert evaluated.exit_code == 0, evaluated.output
    rows = [json.loads(line) for line in evaluated.stdout.strip().splitlines()]
    assert len(rows) == 3 and rows[0]["route"] == "grounded" and rows[1]["route"] == "grounded"
    assert "error" in rows[2]
    assert len(team.core.session.history.conversations(limit=1000)) == stored_before
    both = httpx.post(f"{team.url}/v1/ask", json={"question": "hi", "conversation_id": 1, "history": []},
                      headers={"Authorization": f"Bearer {agent}"})
    assert both.status_code == 422 and "not both" in both.json()["detail"]
    found = cli(agent, "kb", "search", "--json", "warranty")
    assert found.exit_code == 0 and json.loads(found.stdout)["hits"][0]["source"]
    stats = cli(agent, "kb", "stats", "--json")
    assert stats.exit_code == 0 and json.loads(stats.stdout)["chunks"] > 0
    listed = cli(agent, "history", "list", "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout.splitlines()[0])["owner"] == "alice"
    assert cli(agent, "adapter", "list").exit_code == 0
    team_wide = cli(agent, "history", "list", "--everyone")
    assert team_wide.exit_code == 1 and "trainer" in team_wide.output
    team_wide = cli(trainer, "history", "list", "--everyone")
    assert team_wide.exit_code == 0 and "alice" in team_wide.stdout
    refused = cli(agent, "kb", "build")
    assert refused.exit_code == 1 and "needs the admin role" in refused.output
    assert cli(admin, "kb", "build", "--json").exit_code == 0
    exported = cli(trainer, "history", "export")
    assert exported.exit_code == 0 and json.loads(exported.stdout.splitlines()[0])["messages"]
    local = cli(agent, "kb", "calibrate")
    assert local.exit_code == 1 and "does not go through --server" in local.output
    token = cli(admin, "serve", "token", "create", "--name", "zed", "--role", "agent")
    assert token.exit_code == 0 and token.stdout.strip().startswith("sdk_")
    bad = cli("sdk_wrong", "kb", "stats")
    assert bad.exit_code == 1 and "token not recognised" in bad.output and "Traceback" not in bad.output
    down = runner.invoke(app, ["--server", "http://127.0.0.1:9", "kb", "stats"], env={"SUPPORTDESK_TOKEN": agent})
    assert down.exit_code == 1 and "cannot reach the supportdesk server" in down.output


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
