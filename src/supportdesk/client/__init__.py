"""What the TUI and the CLI talk to: the embedded ``SupportSession`` (default) or, with
``--server URL`` / ``SUPPORTDESK_SERVER``, a ``RemoteSession`` to a team server. Both meet the
``Session`` protocol (``supportdesk.session_protocol``: the same methods, the same result
types, capability properties where they differ), so neither front end branches on which it is.
"""

from __future__ import annotations

from collections.abc import Callable

from supportdesk.session_protocol import Session
from supportdesk.settings import Settings


def session_factory(server: str | None, token: str | None) -> Callable[[Settings], Session] | None:
    """The TUI's session factory: None keeps the embedded session."""
    if not server:
        return None

    def make(settings: Settings) -> Session:
        from supportdesk.client.remote import RemoteSession

        return RemoteSession(settings, server, token)

    return make
