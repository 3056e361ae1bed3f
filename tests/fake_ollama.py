"""A tiny stand-in for an Ollama server on 127.0.0.1, speaking its real HTTP protocol.

The real ``ollama`` client talks to it, so request building, NDJSON stream parsing and
error mapping are exercised without the server binary (which cannot be installed here).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class FakeOllama:
    def __init__(self, pieces=("Hello", " from", " Kestrel", " Care!"), delay: float = 0.0) -> None:
        self.pieces = list(pieces)
        self.delay = delay
        self.requests: list[dict] = []
        self.models = ["supportdesk-voice:latest"]
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _json(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/api/tags":
                    self._json(200, {"models": [{"name": m, "model": m, "size": 98_000_000} for m in fake.models]})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, **body})
                if self.path != "/api/chat":
                    self._json(404, {"error": "not found"})
                    return
                if body["model"] not in [m.split(":")[0] for m in fake.models] + fake.models:
                    self._json(404, {"error": f"model '{body['model']}' not found"})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.end_headers()
                try:
                    for piece in fake.pieces:
                        line = {"model": body["model"], "created_at": "2026-11-22T00:00:00Z",
                                "message": {"role": "assistant", "content": piece}, "done": False}
                        self.wfile.write((json.dumps(line) + "\n").encode())
                        self.wfile.flush()
                        time.sleep(fake.delay)
                    final = {"model": body["model"], "created_at": "2026-11-22T00:00:01Z",
                             "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
                             "total_duration": 250_000_000, "load_duration": 20_000_000,
                             "prompt_eval_count": 31, "prompt_eval_duration": 40_000_000,
                             "eval_count": len(fake.pieces), "eval_duration": 50_000_000}
                    self.wfile.write((json.dumps(final) + "\n").encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
