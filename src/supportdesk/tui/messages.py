"""Typed messages that workers post to the app (thread-safe), as harlequin does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass
class SessionProgress(Message):
    text: str


@dataclass
class SessionReady(Message):
    messages: list[Any] | None = None
    """The conversation resumed at start (None: nothing to show)."""


@dataclass
class StatusChanged(Message):
    """The session's status changed (a team server's feed: reload, adapter, connection)."""


@dataclass
class SessionFailed(Message):
    error: str


@dataclass
class AnswerStarted(Message):
    widget_id: str


@dataclass
class AnswerChunk(Message):
    widget_id: str
    text: str


@dataclass
class AnswerDone(Message):
    widget_id: str
    result: Any
    message_id: int


@dataclass
class AnswerWaiting(Message):
    widget_id: str
    ahead: int
    note: str = ""
    """What the answer waits for, when it is not the model's queue (the first index, a cancelled answer)."""


@dataclass
class AnswerFailed(Message):
    widget_id: str
    error: str
    question: str = ""
    streamed: bool = False


@dataclass
class ReloadProgress(Message):
    text: str


@dataclass
class ReloadDone(Message):
    report: Any


@dataclass
class ReloadFailed(Message):
    error: str


@dataclass
class ModelSwitched(Message):
    error: str | None = None
