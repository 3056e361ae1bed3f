"""What the TUI and the CLI talk to: one ``Session`` protocol, met by the embedded
``SupportSession`` (``supportdesk.session``) and a team server's ``RemoteSession``
(``supportdesk.client.remote``), and the one result type each call returns on both sides.

Where the two differ in what they can do, a capability property says so (``is_remote``,
``can_train``, ``can_move_history``) instead of the front ends probing attributes.
``tests/test_session_protocol.py`` checks that both classes keep every member with the same
parameters and result types: a drift fails there, not on an agent's screen.

Headless: no Textual, no CLI; the core's types are only named here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from supportdesk.answers.conversation import Turn
    from supportdesk.answers.pipeline import AnswerResult
    from supportdesk.history import Conversation, StoredMessage
    from supportdesk.kb.index import KBStats, Progress, ReloadReport
    from supportdesk.settings import Settings


@dataclass
class SessionStatus:
    backend: str
    model: str
    adapter: str | None
    chunks: int
    generation: str | None
    reloaded_at: float | None
    reloading: bool
    connection: str | None = None
    """A team server's client: why the server cannot be reached right now (None when it can)."""
    queued: int = 0
    """Questions waiting for the model (a team server's queue)."""
    assistant: str = "Assistant"
    """The brand profile's assistant name: the label answers are shown under."""


@dataclass(frozen=True)
class AskResult:
    """A finished answer, the same on both sides: the checked answer with its route, citations
    and timings (``result``), and where it is stored (``message_id`` None: asked after given
    turns, stored nowhere)."""

    result: AnswerResult
    message_id: int | None
    conversation_id: int | None


@runtime_checkable
class AnswerStream(Protocol):
    """An answer being written: iterate for its text; ``outcome`` is set when iteration ends
    (the answer is stored by then, a cancelled one too)."""

    result: AnswerResult
    """The answer so far: route and sources as soon as they are decided, complete at the end."""
    on_wait: Callable[[int], None] | None
    """Told the number of questions ahead while the answer waits for the model (a team server's queue)."""
    outcome: AskResult | None

    def __iter__(self) -> Iterator[str]: ...

    def cancel(self) -> None: ...

    def run(self, on_text: Callable[[str], None] | None = None) -> AnswerResult: ...


@runtime_checkable
class Session(Protocol):
    """One agent's support session, in this process or through a team server."""

    settings: Settings
    conversation_id: int | None
    on_status_change: Callable[[], None] | None
    """Called (from any thread) when the status changed on its own: a team server's feed."""
    history_problem: str | None
    """Why this session's conversations are not saved (kept in memory only); None when they are."""
    approved: Any
    """Approved answers: propose, review, accept (``answers.approved.SessionApproved``'s methods)."""

    # -- capabilities ------------------------------------------------------------------------
    @property
    def is_remote(self) -> bool:
        """Talks to a team server: nothing is built or stored on this machine."""
        ...

    @property
    def can_train(self) -> bool:
        """May build the sample brand-voice adapter in the background on this machine."""
        ...

    @property
    def can_move_history(self) -> bool:
        """A broken history is a local file that can be moved aside (``move_history_aside``)."""
        ...

    @property
    def role(self) -> str | None:
        """The caller's role on a team server (agent, trainer, admin); None in this process (everything)."""
        ...

    # -- start-up and status -----------------------------------------------------------------
    def start(self, progress: Callable[[str], None] = ..., build_missing_index: bool = True,
              index_in_background: bool = False) -> None: ...

    def status(self) -> SessionStatus: ...

    @property
    def indexing(self) -> bool:
        """The first index is being built behind the chat: questions wait for it."""
        ...

    @property
    def index_error(self) -> str | None: ...

    @property
    def reloaded_by(self) -> str | None:
        """Who made the serving KB generation (a team server names them; None here)."""
        ...

    def index_note(self) -> str: ...

    def index_missing(self) -> str | None: ...

    # -- conversations ------------------------------------------------------------------------
    def new_conversation(self) -> int: ...

    def open_conversation(self, conversation_id: int) -> list[StoredMessage]: ...

    def preview(self) -> list[StoredMessage]: ...

    def resume_latest(self) -> list[StoredMessage]: ...

    def conversations(self, limit: int = 100, everyone: bool = False) -> list[Conversation]: ...

    def messages(self, conversation_id: int) -> list[StoredMessage]: ...

    @property
    def pending_writes(self) -> int:
        """History writes waiting for a locked or unreachable database (never on a server's client)."""
        ...

    def move_history_aside(self) -> str: ...

    # -- answers -------------------------------------------------------------------------------
    def ask(self, message: str, history: list[Turn] | None = None) -> AnswerStream: ...

    def feedback(self, message_id: int, value: int) -> None: ...

    def add_sent_answer(self, text: str, reason: str) -> int | None:
        """An approved answer the agent sent as is, kept in the current conversation; None when it
        is not stored (through a team server, or with no conversation yet)."""
        ...

    # -- knowledge base and model --------------------------------------------------------------
    def search(self, query: str, k: int | None = None, mode: str | None = None) -> dict[str, Any]: ...

    def kb_stats(self) -> KBStats: ...

    def insights(self, since: float | None = None, agent: str | None = None, top_gaps: int = 5) -> dict[str, Any]: ...

    def gaps(self, since: float | None = None, agent: str | None = None,
             top: int | None = None) -> list[dict[str, Any]]: ...

    def reload_kb(self, progress: Callable[[Progress], None] | None = None) -> ReloadReport: ...

    def adapters(self) -> list[str]: ...

    def switch_model(self, backend: str | None = None, adapter: str | None = None) -> SessionStatus: ...

    def close(self) -> str | None: ...
