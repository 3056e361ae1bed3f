"""GuardedBodies in front of every route: the caller authenticated before the body is read,
the body refused as soon as it passes serve.max_body_kb."""

from __future__ import annotations

import socket
import time

import httpx


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
