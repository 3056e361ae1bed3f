"""JSON shapes shared by the team server and its clients: one place turns the core's objects
into JSON and back, so a remote answer, report or message is the same object the embedded
session returns, and the TUI and the CLI show it the same way."""

from __future__ import annotations

import dataclasses
from typing import Any

from supportdesk.answers.pipeline import AnswerResult, Citation, citation_to_json, citations_to_json
from supportdesk.history import Conversation, StoredMessage
from supportdesk.kb.files import Skipped
from supportdesk.kb.index import KBStats, ReloadReport
from supportdesk.kb.search import search_to_json
from supportdesk.session_protocol import SessionStatus

__all__ = ["citation_to_json", "citations_to_json", "search_to_json"]  # defined with their types, below the session


def result_from_json(data: dict[str, Any]) -> AnswerResult:
    fields = {f.name for f in dataclasses.fields(AnswerResult)}
    values = {k: v for k, v in data.items() if k in fields}
    values["citations"] = [Citation(**c) for c in data.get("citations", [])]
    values["other_hits"] = [Citation(**c) for c in data.get("other_hits", [])]
    return AnswerResult(**values)


def stats_to_json(stats: KBStats) -> dict[str, Any]:
    return dataclasses.asdict(stats)


def stats_from_json(data: dict[str, Any]) -> KBStats:
    fields = {f.name for f in dataclasses.fields(KBStats)}
    return KBStats(**{k: v for k, v in data.items() if k in fields})


def report_to_json(report: ReloadReport) -> dict[str, Any]:
    data = dataclasses.asdict(report)
    data["skipped"] = [{"rel": s.rel, "reason": s.reason} for s in report.skipped]
    return data


def report_from_json(data: dict[str, Any]) -> ReloadReport:
    fields = {f.name for f in dataclasses.fields(ReloadReport)}
    values = {k: v for k, v in data.items() if k in fields}
    values["skipped"] = [Skipped(s["rel"], s["reason"]) for s in data.get("skipped", [])]
    return ReloadReport(**values)


def message_to_json(message: StoredMessage) -> dict[str, Any]:
    return dataclasses.asdict(message)


def message_from_json(data: dict[str, Any]) -> StoredMessage:
    fields = {f.name for f in dataclasses.fields(StoredMessage)}
    return StoredMessage(**{k: v for k, v in data.items() if k in fields})


def conversation_to_json(conversation: Conversation) -> dict[str, Any]:
    return dataclasses.asdict(conversation)


def conversation_from_json(data: dict[str, Any]) -> Conversation:
    fields = {f.name for f in dataclasses.fields(Conversation)}
    return Conversation(**{k: v for k, v in data.items() if k in fields})


def status_to_json(status: SessionStatus) -> dict[str, Any]:
    return dataclasses.asdict(status)


def status_from_json(data: dict[str, Any]) -> SessionStatus:
    fields = {f.name for f in dataclasses.fields(SessionStatus)}
    return SessionStatus(**{k: v for k, v in data.items() if k in fields})
