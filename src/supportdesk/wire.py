"""JSON shapes shared by the team server and its clients: one place turns the core's objects
into JSON and back, so a remote answer, report or message is the same object the embedded
session returns, and the TUI and the CLI show it the same way."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from supportdesk.answers.pipeline import AnswerResult, Citation
from supportdesk.history import Conversation, StoredMessage
from supportdesk.kb.files import Skipped
from supportdesk.kb.index import KBStats, ReloadReport
from supportdesk.session_protocol import SessionStatus

if TYPE_CHECKING:
    from supportdesk.kb.search import SearchResult


def result_from_json(data: dict[str, Any]) -> AnswerResult:
    fields = {f.name for f in dataclasses.fields(AnswerResult)}
    values = {k: v for k, v in data.items() if k in fields}
    values["citations"] = [Citation(**c) for c in data.get("citations", [])]
    values["other_hits"] = [Citation(**c) for c in data.get("other_hits", [])]
    return AnswerResult(**values)


def citation_to_json(citation: Citation) -> dict[str, Any]:
    return dataclasses.asdict(citation)


def citations_to_json(result: AnswerResult) -> list[dict[str, Any]]:
    """An answer's sources as one list, the way the history stores them and the sources panel shows
    them: the ones shown to the model with their numbers, then the other hits numbered 0."""
    return [citation_to_json(c) for c in result.citations] + \
        [dict(citation_to_json(c), number=0) for c in result.other_hits]


def search_to_json(query: str, result: SearchResult) -> dict[str, Any]:
    """A search: the same JSON from ``kb search --json``, the team server and ``Session.search``."""
    return {"query": query, "hits": [dict(hit.to_json(), rank=i) for i, hit in enumerate(result.hits, start=1)],
            "timings_ms": result.timings.as_dict()}


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
