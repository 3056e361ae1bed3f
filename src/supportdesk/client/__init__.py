"""What the TUI and the CLI talk to: the embedded ``SupportSession`` (default) or, with
``--server URL`` / ``SUPPORTDESK_SERVER``, a ``RemoteSession`` to a team server. Both have
the same methods and return the same objects, so neither front end branches on which it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supportdesk.settings import Settings


def session_factory(server: str | None, token: str | None) -> Callable[[Settings], Any] | None:
    """The TUI's session factory: None keeps the embedded session."""
    if not server:
        return None

    def make(settings: Settings) -> Any:
        from supportdesk.client.remote import RemoteSession

        return RemoteSession(settings, server, token)

    return make
