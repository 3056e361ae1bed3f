"""The embedded session and a team server's client meet one ``Session`` protocol: the same
members, the same parameters, the same result types. A drift on either side fails here."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest

from supportdesk.answers.conversation import Turn
from supportdesk.answers.pipeline import AnswerResult
from supportdesk.client.remote import RemoteAnswer, RemoteSession
from supportdesk.history import Conversation, StoredMessage
from supportdesk.kb.index import KBStats, Progress, ReloadReport
from supportdesk.session import SessionAnswer, SupportSession
from supportdesk.session_protocol import AnswerStream, AskResult, Session, SessionStatus
from supportdesk.settings import Settings

NAMES: dict[str, Any] = {
    "Turn": Turn, "AnswerResult": AnswerResult, "Conversation": Conversation, "StoredMessage": StoredMessage,
    "KBStats": KBStats, "Progress": Progress, "ReloadReport": ReloadReport, "Settings": Settings,
    "SessionStatus": SessionStatus, "AskResult": AskResult, "AnswerStream": AnswerStream, "Session": Session,
    "SessionAnswer": SessionAnswer, "RemoteAnswer": RemoteAnswer,
}
"""What the annotations name (several only under TYPE_CHECKING in their modules)."""


def _hints(obj: Any) -> dict[str, Any]:
    return typing.get_type_hints(obj, globalns=dict(vars(inspect.getmodule(obj))), localns=NAMES)


def _members(protocol: type) -> dict[str, Any]:
    """The protocol's members: its methods and properties, and its annotated attributes (None)."""
    found: dict[str, Any] = {name: None for name in protocol.__annotations__}
    for name, value in vars(protocol).items():
        if (not name.startswith("_") or name == "__iter__") and (callable(value) or isinstance(value, property)):
            found[name] = value
    return found


def _is_protocol(tp: Any) -> bool:
    return isinstance(tp, type) and getattr(tp, "_is_protocol", False)


def drift(cls: type, protocol: type, instance: Any = None) -> list[str]:
    """Where ``cls`` does not meet ``protocol``: missing members, other parameters, other result types."""
    problems: list[str] = []
    for name, member in _members(protocol).items():
        where = f"{cls.__name__}.{name}"
        if member is None:  # an attribute: on the class, declared by it, or set on an instance
            declared = any(name in getattr(c, "__annotations__", {}) for c in cls.__mro__)
            if not hasattr(cls, name) and not declared and (instance is None or not hasattr(instance, name)):
                problems.append(f"{where}: missing")
            continue
        mine = inspect.getattr_static(cls, name, None)
        if mine is None and not (instance is not None and hasattr(instance, name)):
            problems.append(f"{where}: missing")
            continue
        if isinstance(member, property):
            if isinstance(mine, property):
                wanted, got = _hints(member.fget).get("return"), _hints(mine.fget).get("return")
                if wanted != got:
                    problems.append(f"{where}: returns {got}, the protocol says {wanted}")
            elif callable(mine):
                problems.append(f"{where}: a method where the protocol has a property")
            continue
        if not inspect.isfunction(mine):
            problems.append(f"{where}: not a method")
            continue
        problems += _signature_drift(where, member, mine)
    return problems


def _signature_drift(where: str, wanted_fn: Any, got_fn: Any) -> list[str]:
    problems = []
    wanted, got = inspect.signature(wanted_fn), inspect.signature(got_fn)
    wanted_hints, got_hints = _hints(wanted_fn), _hints(got_fn)
    for param in list(wanted.parameters.values())[1:]:
        other = got.parameters.get(param.name)
        if other is None:
            problems.append(f"{where}: no parameter {param.name!r}")
            continue
        if other.kind != param.kind:
            problems.append(f"{where}: {param.name!r} is {other.kind.description}, not {param.kind.description}")
        if (param.default is inspect.Parameter.empty) != (other.default is inspect.Parameter.empty):
            problems.append(f"{where}: {param.name!r} default differs")
        elif param.default not in (inspect.Parameter.empty, Ellipsis) and other.default != param.default:
            problems.append(f"{where}: {param.name!r} defaults to {other.default!r}, not {param.default!r}")
        if wanted_hints.get(param.name) != got_hints.get(param.name):
            problems.append(f"{where}: {param.name!r} is {got_hints.get(param.name)}, "
                            f"not {wanted_hints.get(param.name)}")
    for extra in list(got.parameters.values())[1:]:
        if extra.name not in wanted.parameters and extra.default is inspect.Parameter.empty \
                and extra.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            problems.append(f"{where}: extra parameter {extra.name!r} without a default")
    wanted_return, got_return = wanted_hints.get("return"), got_hints.get("return")
    if _is_protocol(wanted_return) and isinstance(got_return, type):
        problems += drift(got_return, wanted_return)  # a stream of this side: it meets that protocol itself
    elif wanted_return != got_return:
        problems.append(f"{where}: returns {got_return}, the protocol says {wanted_return}")
    return problems


@pytest.fixture
def sessions(settings_factory, small_kb):
    settings = settings_factory(small_kb)
    embedded = SupportSession(settings)
    remote = RemoteSession(settings, "http://127.0.0.1:9", None)  # nothing is sent before start()
    yield embedded, remote
    embedded.close()
    remote.close()


def test_both_sessions_meet_the_protocol_with_the_same_signatures_and_result_types(sessions):
    embedded, remote = sessions
    assert drift(SupportSession, Session, embedded) == []
    assert drift(RemoteSession, Session, remote) == []
    assert isinstance(embedded, Session) and isinstance(remote, Session)
    assert drift(SessionAnswer, AnswerStream) == [] and drift(RemoteAnswer, AnswerStream) == []
    assert (embedded.is_remote, embedded.can_train) == (False, True)
    assert (remote.is_remote, remote.can_train, remote.can_move_history) == (True, False, False)


def test_a_drifted_session_is_caught(sessions):
    """The check can fail: the shapes this project had before the protocol are each reported."""

    class OldRemote(RemoteSession):
        def ask(self, message: str, history: list[Any] | None = None) -> tuple[RemoteAnswer, None]:  # type: ignore[override]
            raise NotImplementedError

        def switch_model(self, backend: str | None = None, adapter: str | None = None,  # type: ignore[override]
                         force: bool = False) -> dict[str, Any]:
            raise NotImplementedError

    class OldEmbedded(SupportSession):
        search = None  # type: ignore[assignment]  # it had none

        def feedback(self, message_id: int) -> None:  # type: ignore[override]
            raise NotImplementedError

    old_remote = drift(OldRemote, Session)
    assert any(p.startswith("OldRemote.ask: 'history'") for p in old_remote)
    assert any(p.startswith("OldRemote.ask: returns") for p in old_remote)
    assert any(p.startswith("OldRemote.switch_model: returns") for p in old_remote)
    old_embedded = drift(OldEmbedded, Session)
    assert "OldEmbedded.search: missing" in old_embedded or "OldEmbedded.search: not a method" in old_embedded
    assert "OldEmbedded.feedback: no parameter 'value'" in old_embedded
