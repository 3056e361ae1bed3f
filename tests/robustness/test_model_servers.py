"""Model servers that misbehave: silent, stalled, not Ollama, or chatty with escape codes.
Each is a real HTTP server on a free loopback port, spoken to by the real ``ollama`` client."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fixtures.outcome import no_traceback
from typer.testing import CliRunner

from supportdesk.cli import app
from supportdesk.models import BackendError, BackendUnavailable, ChatMessage, GenerationOptions
from supportdesk.models.ollama_backend import OllamaBackend
from supportdesk.models.openai_backend import OpenAIBackend

MESSAGES = [ChatMessage("user", "hello")]
OPTIONS = GenerationOptions(max_tokens=8, temperature=0.0)


class SilentServer:
    """Accepts TCP connections and never says a byte (a wedged proxy, a paused VM)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.host = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.held.append(conn)
            except OSError:
                continue

    def close(self) -> None:
        self.stop.set()
        for conn in self.held:
            conn.close()
        self.sock.close()


class OddServer:
    """An HTTP server answering /api/chat and /api/tags in one of several wrong ways."""

    def __init__(self, mode: str) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, ctype: str, body: bytes, length: bool = True) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                if length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_GET(self):
                self._reply()

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._reply()

            def _reply(self):
                if server.mode == "models-then-html" and self.command == "GET":
                    body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "me"}]})
                    self._send(200, "application/json", body.encode())
                elif server.mode in ("html", "models-then-html"):
                    self._send(200, "text/html", b"<html><body><h1>Welcome to nginx!</h1></body></html>")
                elif server.mode == "stall":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-ndjson")
                    self.end_headers()
                    self.wfile.flush()
                    time.sleep(30)
                elif server.mode == "bad-line":
                    line = {"model": "m", "created_at": "2026-01-01T00:00:00Z",
                            "message": {"role": "assistant", "content": "Hi"}, "done": False}
                    self._send(200, "application/x-ndjson", (json.dumps(line) + "\n{not json\n").encode(), length=False)
                elif server.mode == "no-role":
                    line = {"model": "m", "created_at": "2026-01-01T00:00:00Z", "message": {"content": "Hi"}, "done": False}
                    self._send(200, "application/x-ndjson", (json.dumps(line) + "\n").encode(), length=False)
                elif server.mode == "escapes":
                    body = json.dumps({"error": "bad\x1b]0;owned\x07 thing\x1b[2J"}).encode()
                    self._send(500, "application/json", body)

        self.mode = mode
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _chat(host: str, read_timeout: float = 1.0) -> str:
    backend = OllamaBackend(host, "m", read_timeout=read_timeout)
    return "".join(backend.generate(MESSAGES, OPTIONS))


def test_host_that_accepts_and_never_answers_times_out_in_seconds():
    """Defect 8: was a 5-minute silent hang in models chat / ask / models list."""
    server = SilentServer()
    try:
        for call in (lambda: _chat(server.host), lambda: OllamaBackend(server.host, "m", read_timeout=1.0).list_models()):
            started = time.monotonic()
            with pytest.raises(BackendUnavailable, match=r"sent nothing for 1 s .*model.ollama_read_timeout"):
                call()
            assert time.monotonic() - started < 5
    finally:
        server.close()


def test_host_that_sends_headers_then_stalls_times_out():
    server = OddServer("stall")
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="sent nothing"):
            _chat(server.host)
        assert time.monotonic() - started < 5
    finally:
        server.close()


@pytest.mark.parametrize("mode", ["html", "bad-line", "no-role"])
def test_malformed_replies_are_one_clear_error(mode):
    """Defect 9: HTML 200, a non-JSON stream line, a chunk missing message.role."""
    server = OddServer(mode)
    try:
        with pytest.raises(BackendError, match="did not answer in Ollama's API"):
            _chat(server.host)
        if mode == "html":
            with pytest.raises(BackendError, match="did not answer in Ollama's API"):
                OllamaBackend(server.host, "m").list_models()
    finally:
        server.close()


def test_server_error_bodies_are_made_terminal_safe():
    server = OddServer("escapes")
    try:
        with pytest.raises(BackendError) as caught:
            _chat(server.host)
        assert "\x1b" not in str(caught.value) and "\x07" not in str(caught.value)
        assert "Ollama error 500" in str(caught.value)
    finally:
        server.close()


@pytest.mark.slow  # waits out read timeouts of real servers
def test_cli_models_commands_end_in_a_message(settings_factory, tmp_path, monkeypatch):
    server = SilentServer()
    html = OddServer("html")
    try:
        runner = CliRunner()
        monkeypatch.setenv("SUPPORTDESK_MODEL__OLLAMA_READ_TIMEOUT", "1")
        for host, expected in ((server.host, "sent nothing"), (html.host, "did not answer in Ollama's API")):
            monkeypatch.setenv("SUPPORTDESK_MODEL__OLLAMA_HOST", host)
            listed = runner.invoke(app, ["--data-dir", str(tmp_path / "data"), "models", "list", "--json"])
            assert listed.exit_code == 0, listed.output  # the listing goes on: the row says what is wrong
            row = next(r for r in json.loads(listed.stdout) if r["backend"] == "ollama")
            assert not row["available"] and expected in row["detail"]
            chat = runner.invoke(app, ["--data-dir", str(tmp_path / "data"), "models", "chat", "hi", "--backend", "ollama"])
            assert chat.exit_code == 1, chat.output
            assert expected in chat.stderr
            no_traceback(chat)
    finally:
        server.close()
        html.close()


@pytest.mark.parametrize("mode", ["html", "models-then-html"])
def test_openai_compatible_url_answering_html_is_one_clear_error(mode):
    """Issue 30 item 3: '200 text/html' (a web server's page) was an AttributeError traceback from
    list_models, and a chat stream of HTML an empty reply."""
    server = OddServer(mode)
    try:
        backend = OpenAIBackend(server.host + "/v1", "m", read_timeout=2.0)
        expected = rf"server at {server.host}/v1 does not answer in the OpenAI API: .*200 text/html.*nginx"
        if mode == "html":
            with pytest.raises(BackendError, match=expected):
                backend.list_models()
            assert not backend.ping()
        with pytest.raises(BackendError, match=expected):
            "".join(backend.generate(MESSAGES, OPTIONS))
    finally:
        server.close()


def test_cli_against_an_html_openai_url_prints_one_error_line(tmp_path, monkeypatch):
    server = OddServer("html")
    try:
        monkeypatch.setenv("SUPPORTDESK_MODEL__OPENAI_BASE_URL", server.host + "/v1")
        runner = CliRunner()
        base = ["--data-dir", str(tmp_path / "data")]
        listed = runner.invoke(app, [*base, "models", "list", "--json"])
        assert listed.exit_code == 0, listed.output
        row = next(r for r in json.loads(listed.stdout) if r["backend"] == "openai")
        assert not row["available"] and "200 text/html" in row["detail"]
        chat = runner.invoke(app, [*base, "models", "chat", "hi", "--backend", "openai"])
        assert chat.exit_code == 1, chat.output
        lines = [line for line in chat.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), chat.stderr
        assert f"{server.host}/v1/models" in chat.stderr and "text/html" in chat.stderr
        no_traceback(chat)
    finally:
        server.close()
