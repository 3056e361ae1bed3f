"""Approved answers in the history database (issue 28): the answers, their questions, the proposals.

``ApprovedAnswers`` works on a ``HistoryStore``'s engine, the same on SQLite and PostgreSQL.
Every write is one transaction: an import of a hundred rows lands whole or not at all, an
accepted proposal becomes its answer and is marked accepted together.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, select, update

from supportdesk.history.schema import approved_answers, approved_questions, proposals

if TYPE_CHECKING:
    from supportdesk.history.store import HistoryStore

ORIGINS = ("import", "proposal", "suggestion-accepted")


@dataclass
class ApprovedQuestion:
    id: int
    question: str
    origin: str
    created_by: str | None = None
    created_at: float = 0.0


@dataclass
class ApprovedAnswer:
    id: int
    answer: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    created_by: str | None = None
    created_at: float = 0.0
    approved_by: str | None = None
    approved_at: float | None = None
    hits: int = 0
    last_hit: float | None = None
    key: str | None = None
    """The id an imported entry had in its file (a second import of it updates this answer)."""
    questions: list[ApprovedQuestion] = field(default_factory=list)

    def citation(self) -> str:
        """How an answer served from it is cited: 'approved answer #12 · alice · 2026-12-07'."""
        when = time.strftime("%Y-%m-%d", time.localtime(self.approved_at or self.created_at))
        return f"approved answer #{self.id} · {self.approved_by or self.created_by or 'unknown'} · {when}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "answer": self.answer, "sources": self.sources,
                "created_by": self.created_by, "created_at": self.created_at, "approved_by": self.approved_by,
                "approved_at": self.approved_at, "hits": self.hits, "last_hit": self.last_hit,
                "questions": [q.__dict__ for q in self.questions]}


@dataclass
class Proposal:
    id: int
    question: str
    draft: str
    proposed: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    message_id: int | None = None
    proposed_by: str | None = None
    proposed_at: float = 0.0
    status: str = "pending"
    reviewed_by: str | None = None
    reviewed_at: float | None = None
    answer_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ImportRow:
    """One entry of an import file (already checked: see ``answers.importing``)."""

    question: str
    answer: str
    key: str | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    """More wordings of the same question (rows of a file that share an id)."""


class ApprovedError(ValueError):
    """A request about approved answers that cannot be done (unknown id, already reviewed); one line."""


_a, _q, _p = approved_answers.c, approved_questions.c, proposals.c
_ANSWERS = select(approved_answers).order_by(_a.id)
_QUESTIONS = select(approved_questions).order_by(_q.answer_id, _q.id)
_ANSWER = select(approved_answers).where(_a.id == bindparam("answer_id"))
_QUESTIONS_OF = select(approved_questions).where(_q.answer_id == bindparam("answer_id")).order_by(_q.id)
_BY_KEY = select(_a.id).where(_a.key == bindparam("k"))
_HIT = update(approved_answers).where(_a.id == bindparam("answer_id")) \
    .values(hits=_a.hits + 1, last_hit=bindparam("at"))
_SIGNATURE = select(select(func.count()).select_from(approved_answers).scalar_subquery().label("answers"),
                    select(func.max(_a.id)).scalar_subquery().label("last_answer"),
                    select(func.max(_a.updated_at)).scalar_subquery().label("updated"),
                    select(func.count()).select_from(approved_questions).scalar_subquery().label("questions"),
                    select(func.max(_q.id)).scalar_subquery().label("last_question"))
_PROPOSAL = select(proposals).where(_p.id == bindparam("proposal_id"))


def _loads(text: Any) -> list[dict[str, Any]]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return []
    return value if isinstance(value, list) else []


class ApprovedAnswers:
    """The approved answers of one history store (``HistoryStore.approved``)."""

    def __init__(self, store: HistoryStore) -> None:
        self._store = store

    # -- reading -------------------------------------------------------------------------
    def _answer(self, row: dict[str, Any], questions: list[dict[str, Any]]) -> ApprovedAnswer:
        return ApprovedAnswer(
            id=int(row["id"]), answer=row["answer"], sources=_loads(row["sources"]), created_by=row["created_by"],
            created_at=row["created_at"], approved_by=row["approved_by"], approved_at=row["approved_at"],
            hits=int(row["hits"] or 0), last_hit=row["last_hit"], key=row["key"],
            questions=[ApprovedQuestion(int(q["id"]), q["question"], q["origin"], q["created_by"], q["created_at"])
                       for q in questions])

    def all(self) -> list[ApprovedAnswer]:
        """Every approved answer with its questions, oldest first."""
        questions: dict[int, list[dict[str, Any]]] = {}
        for q in self._store._read(_QUESTIONS):
            questions.setdefault(int(q["answer_id"]), []).append(q)
        return [self._answer(r, questions.get(int(r["id"]), [])) for r in self._store._read(_ANSWERS)]

    def get(self, answer_id: int) -> ApprovedAnswer | None:
        rows = self._store._read(_ANSWER, {"answer_id": answer_id})
        if not rows:
            return None
        return self._answer(rows[0], self._store._read(_QUESTIONS_OF, {"answer_id": answer_id}))

    def signature(self) -> tuple[Any, ...]:
        """Changes whenever an answer or a question is added, edited or removed (a matcher rebuilds then)."""
        rows = self._store._read(_SIGNATURE)
        return tuple(rows[0].values()) if rows else ()

    # -- writing ---------------------------------------------------------------------------
    def _tx(self):
        return self._store._engine.transaction()

    def _fail(self, exc: BaseException) -> BaseException:
        return self._store._damaged(exc)

    @staticmethod
    def _insert_answer(tx: Any, answer: str, sources: list[dict[str, Any]], by: str | None,
                       approved_by: str | None, key: str | None = None, created_by: str | None = None) -> int:
        now = time.time()
        new_id = tx.insert(approved_answers, {
            "key": key, "answer": answer, "sources": json.dumps(sources, ensure_ascii=False),
            "created_by": created_by or by, "created_at": now, "approved_by": approved_by, "approved_at": now,
            "updated_at": now})
        assert new_id is not None
        return new_id

    @staticmethod
    def _insert_question(tx: Any, answer_id: int, question: str, origin: str, by: str | None) -> bool:
        """False when the answer already has this very wording."""
        return tx.insert(approved_questions, {"answer_id": answer_id, "question": question, "origin": origin,
                                              "created_by": by, "created_at": time.time()},
                         on_conflict=["answer_id", "question"]) is not None

    def add(self, question: str, answer: str, *, by: str | None, sources: list[dict[str, Any]] | None = None,
            key: str | None = None, origin: str = "import") -> int:
        """A new approved answer with one question (approved by ``by``); returns its id."""
        return self.import_rows([ImportRow(question, answer, key, sources or [])], by=by, origin=origin)[0][0]

    def import_rows(self, rows: list[ImportRow], *, by: str | None,
                    origin: str = "import") -> list[tuple[int, bool]]:
        """All rows in one transaction: (answer id, created?) per row. A row whose ``key`` an answer
        already has (or ``#N``: approved answer N) updates that answer's text and sources and adds its
        questions."""
        out: list[tuple[int, bool]] = []
        try:
            with self._tx() as tx:
                for row in rows:
                    found = tx.execute(_BY_KEY, {"k": row.key}) if row.key else []
                    own = row.key is not None and row.key.startswith("#") and row.key[1:].isdigit()
                    if not found and own:  # '#12': approved answer 12 as 'answers export' names one without an id
                        found = tx.execute(select(_a.id).where(_a.id == int(row.key[1:])))
                    if found:
                        answer_id = int(found[0]["id"])
                        tx.update(update(approved_answers).where(_a.id == answer_id).values(
                            answer=row.answer, sources=json.dumps(row.sources, ensure_ascii=False),
                            approved_by=by, approved_at=time.time(), updated_at=time.time()))
                        created = False
                    else:
                        answer_id = self._insert_answer(tx, row.answer, row.sources, by, by, None if own else row.key)
                        created = True
                    for wording in [row.question, *row.questions]:
                        self._insert_question(tx, answer_id, wording, origin, by)
                    out.append((answer_id, created))
        except self._store._engine.errors as exc:
            raise self._fail(exc) from exc
        return out

    def remove(self, answer_id: int) -> bool:
        try:
            with self._tx() as tx:
                return tx.update(delete(approved_answers).where(_a.id == answer_id)) > 0
        except self._store._engine.errors as exc:
            raise self._fail(exc) from exc

    def add_question(self, answer_id: int, question: str, origin: str = "suggestion-accepted",
                     by: str | None = None) -> bool:
        """Another wording of an answer's question; False when it already has it. ApprovedError for an
        unknown answer."""
        if origin not in ORIGINS:
            raise ValueError(f"origin is one of {', '.join(ORIGINS)}")
        try:
            with self._tx() as tx:
                if not tx.execute(select(_a.id).where(_a.id == answer_id)):
                    raise ApprovedError(f"no approved answer #{answer_id}")
                added = self._insert_question(tx, answer_id, question, origin, by)
                if added:
                    tx.update(update(approved_answers).where(_a.id == answer_id).values(updated_at=time.time()))
                return added
        except self._store._engine.errors as exc:
            raise self._fail(exc) from exc

    def record_hit(self, answer_id: int) -> None:
        """One more question answered with it (a lost count is not worth failing an answer for)."""
        try:
            with self._tx() as tx:
                tx.update(_HIT, {"answer_id": answer_id, "at": time.time()})
        except self._store._engine.errors:
            pass

    # -- proposals ---------------------------------------------------------------------------
    def propose(self, question: str, proposed: str, *, draft: str = "", by: str | None = None,
                message_id: int | None = None, sources: list[dict[str, Any]] | None = None) -> int:
        question, proposed = question.strip(), proposed.strip()
        if not question or not proposed:
            raise ApprovedError("a proposal needs the question and the proposed answer")
        try:
            with self._tx() as tx:
                new_id = tx.insert(proposals, {
                    "question": question, "draft": draft, "proposed": proposed,
                    "sources": json.dumps(sources or [], ensure_ascii=False), "message_id": message_id,
                    "proposed_by": by, "proposed_at": time.time(), "status": "pending"})
        except self._store._engine.errors as exc:
            raise self._fail(exc) from exc
        assert new_id is not None
        return new_id

    @staticmethod
    def _proposal(row: dict[str, Any]) -> Proposal:
        return Proposal(int(row["id"]), row["question"], row["draft"], row["proposed"], _loads(row["sources"]),
                        row["message_id"], row["proposed_by"], row["proposed_at"], row["status"], row["reviewed_by"],
                        row["reviewed_at"], row["answer_id"])

    def proposals(self, status: str | None = "pending") -> list[Proposal]:
        statement = select(proposals).order_by(_p.id)
        if status is not None:
            statement = statement.where(_p.status == status)
        return [self._proposal(r) for r in self._store._read(statement)]

    def proposal(self, proposal_id: int) -> Proposal | None:
        rows = self._store._read(_PROPOSAL, {"proposal_id": proposal_id})
        return self._proposal(rows[0]) if rows else None

    def _pending(self, tx: Any, proposal_id: int) -> Proposal:
        rows = tx.execute(_PROPOSAL, {"proposal_id": proposal_id})
        if not rows:
            raise ApprovedError(f"no proposal #{proposal_id}")
        found = self._proposal(rows[0])
        if found.status != "pending":
            raise ApprovedError(f"proposal #{proposal_id} was already {found.status} by {found.reviewed_by or 'someone'}")
        return found

    def accept(self, proposal_id: int, *, by: str | None, text: str | None = None) -> int:
        """The proposal (its text, or ``text`` when the trainer edited it) becomes an approved answer
        with the proposal's question and the sources its draft cited; returns the answer's id."""
        try:
            with self._tx() as tx:
                found = self._pending(tx, proposal_id)
                answer = (text if text is not None else found.proposed).strip()
                if not answer:
                    raise ApprovedError("the approved answer is empty")
                answer_id = self._insert_answer(tx, answer, found.sources, by, by, created_by=found.proposed_by)
                self._insert_question(tx, answer_id, found.question, "proposal", found.proposed_by)
                tx.update(update(proposals).where(_p.id == proposal_id).values(
                    status="accepted", reviewed_by=by, reviewed_at=time.time(), answer_id=answer_id))
                return answer_id
        except self._store._engine.errors as exc:
            raise self._fail(exc) from exc

    def reject(self, proposal_id: int, *, by: str | None) -> None:
        try:
            with self._tx() as tx:
                self._pending(tx, proposal_id)
                tx.update(update(proposals).where(_p.id == proposal_id).values(
                    status="rejected", reviewed_by=by, reviewed_at=time.time()))
        except self._store._engine.errors as exc:
            raise self._fail(exc) from exc
