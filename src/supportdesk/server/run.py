"""Start the team server: load the core once, then serve the API with uvicorn."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn

from supportdesk.server.app import create_app
from supportdesk.server.core import ServerCore
from supportdesk.settings import Settings


class ServeSettingsError(ValueError):
    """A ``serve.*`` setting that cannot work; the message names the setting and the file."""


def check_tls(settings: Settings) -> bool:
    """Check ``serve.ssl_certfile`` / ``serve.ssl_keyfile`` before anything is loaded; True when
    the server will speak HTTPS. The certificate file may hold its key too (then the key file
    may be left out); a key without a certificate is refused (it would serve plain HTTP)."""
    cert, key = settings.serve.ssl_certfile, settings.serve.ssl_keyfile
    if cert is None and key is None:
        return False
    if cert is None:
        raise ServeSettingsError(f"serve.ssl_keyfile is set ({key}) but serve.ssl_certfile is not: set both for "
                                 "HTTPS, or neither")
    for name, path in (("serve.ssl_certfile", cert), ("serve.ssl_keyfile", key)):
        if path is None:
            continue
        if not Path(path).is_file():
            what = "is a folder, not a file" if Path(path).is_dir() else "no such file"
            raise ServeSettingsError(f"{name} {path}: {what}")
        try:
            Path(path).open("rb").close()
        except OSError as exc:
            raise ServeSettingsError(f"{name} {path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        ssl.create_default_context(cafile=str(cert))
    except (ssl.SSLError, ValueError) as exc:
        raise ServeSettingsError(f"serve.ssl_certfile {cert}: not a PEM certificate ({_reason(exc)})") from exc
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A password callback, so an encrypted key fails here instead of prompting on the terminal.
        context.load_cert_chain(str(cert), str(key) if key else None, password=lambda: b"")
    except (ssl.SSLError, ValueError) as exc:
        if key is None:
            raise ServeSettingsError(f"serve.ssl_certfile {cert} holds no private key and serve.ssl_keyfile is not "
                                     f"set: set serve.ssl_keyfile to the key's PEM file ({_reason(exc)})") from exc
        raise ServeSettingsError(f"serve.ssl_keyfile {key}: not the unencrypted PEM private key of serve.ssl_certfile "
                                 f"{cert} ({_reason(exc)})") from exc
    return True


def _reason(exc: Exception) -> str:
    """OpenSSL's short reason (``NO_CERTIFICATE_OR_CRL_FOUND``), or the message; one line."""
    return str(getattr(exc, "reason", None) or exc).replace("\n", " ")


def make_server(core: ServerCore, host: str, port: int, log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for the core (TLS when ``serve.ssl_certfile`` and ``ssl_keyfile`` are set)."""
    serve = core.settings.serve
    config = uvicorn.Config(
        create_app(core), host=host, port=port, log_level=log_level, access_log=False,
        ssl_certfile=str(serve.ssl_certfile) if serve.ssl_certfile else None,
        ssl_keyfile=str(serve.ssl_keyfile) if serve.ssl_keyfile else None,
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


def bound_url(server: uvicorn.Server, scheme: str = "http") -> str:
    """The address the server listens on (the real port when it was asked for port 0)."""
    sock = server.servers[0].sockets[0]
    host, port = sock.getsockname()[:2]
    return f"{scheme}://{host}:{port}"


def serve(settings: Settings, host: str, port: int, say: Callable[[str], None] = print) -> None:
    started = time.perf_counter()
    check_tls(settings)  # before the models and the KB load: a bad file is told in a second, not after
    core = ServerCore(settings)
    if not settings.serve.replica_name:  # as the cluster view names it
        import socket

        core.replica = f"{socket.gethostname()}:{port}"
    core.start(lambda text: say(f"  {text}"))
    server = make_server(core, host, port)
    scheme = "https" if settings.serve.ssl_certfile else "http"
    original_startup = server.startup

    async def startup(sockets=None) -> None:
        await original_startup(sockets)
        status = core.status()
        say(f"supportdesk server ready at {bound_url(server, scheme)} in {time.perf_counter() - started:.1f} s: "
            f"{status['backend']}:{status['model']}, adapter {status['adapter'] or 'none'}, "
            f"KB {status['chunks']} chunks, {core.queue.slots} answer(s) at a time")

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run()
    finally:
        core.close()
