"""The ASGI middleware in front of every route: the caller authenticated and the body counted
before a route reads a byte of it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from supportdesk.history import HistoryError
from supportdesk.server.deps import API
from supportdesk.server.tokens import Identity


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a request body grows past the limit (FastAPI answers 413)."""


class GuardedBodies:
    """Pure ASGI middleware in front of every route: a request to the API (``/v1/...``) is
    authenticated from its headers before a byte of its body is read (no token, a bad one:
    401 at once), and a body is counted as it arrives (chunked too, with or without
    Content-Length): past ``limit`` bytes it is refused with 413 without reading the rest.
    Both refusals close the connection, so the server reads nothing more of that body.
    """

    def __init__(self, app: ASGIApp, limit: int, authenticate: Callable[[str], Identity]) -> None:
        self.app = app
        self.limit = limit
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if scope["path"].startswith(f"{API}/"):
            try:
                who = await asyncio.to_thread(self.authenticate, headers.get("authorization", ""))
            except HTTPException as exc:
                await self._refuse(send, exc.status_code, exc.detail, exc.headers)
                return
            except HistoryError as exc:
                await self._refuse(send, 503, str(exc))
                return
            scope.setdefault("state", {})["identity"] = who
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.limit:
            await self._refuse(send, 413, self._too_large(f"request body of {int(length)} bytes"))
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(413, self._too_large(f"request body of more than {self.limit} bytes"),
                                       headers={"Connection": "close"})
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:  # read outside FastAPI's body parsing (a route reading the request itself)
            if started:
                raise
            await self._refuse(send, 413, exc.detail)

    def _too_large(self, what: str) -> str:
        return f"{what} is over the server's {self.limit // 1024} KiB limit (serve.max_body_kb)"

    @staticmethod
    async def _refuse(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        """Answer now, without reading the body, and close the connection (the rest is never read)."""
        body = json.dumps({"detail": detail}, ensure_ascii=False).encode()
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close"), *extra]})
        await send({"type": "http.response.body", "body": body})
