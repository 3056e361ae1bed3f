"""Approved answers (issue 28): agents propose rewrites and accept suggestions; trainers review,
import and remove. Who did what is the caller's token name."""

# No "from __future__ import annotations": FastAPI reads the models and dependencies at runtime.

from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from supportdesk.answers.approved import SessionApproved
from supportdesk.history.approved import ApprovedError, ImportRow
from supportdesk.server.core import ServerCore
from supportdesk.server.deps import Agent, CoreDep, Trainer
from supportdesk.server.tokens import Identity

router = APIRouter(tags=["approved"])


class ProposeRequest(BaseModel):
    text: str = Field(min_length=1, description="The agent's answer.")
    message_id: int | None = Field(None, description="The stored answer it rewrites (its question, draft and sources).")
    question: str | None = Field(None, description="Without message_id: the question it answers.")


class QuestionRequest(BaseModel):
    question: str = Field(min_length=1)


class AcceptRequest(BaseModel):
    text: str | None = Field(None, description="The answer as the trainer edited it (default: as proposed).")


class ImportItem(BaseModel):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    id: str | None = None
    sources: list[dict[str, Any]] = Field(default_factory=list)
    questions: list[str] = Field(default_factory=list)


class ImportRequest(BaseModel):
    rows: list[ImportItem] = Field(min_length=1, max_length=100_000)


def _approved(core: ServerCore, who: Identity) -> SessionApproved:
    return SessionApproved(core.session.history, by=who.name)


def _refused(exc: ApprovedError) -> HTTPException:
    return HTTPException(404 if str(exc).startswith("no ") else 409, str(exc))


@router.get("/approved")
def list_answers(who: Agent, core: CoreDep) -> list[dict[str, Any]]:
    return [a.to_json() for a in _approved(core, who).all()]


@router.get("/approved/{answer_id}")
def show(answer_id: int, who: Agent, core: CoreDep) -> dict[str, Any]:
    found = _approved(core, who).get(answer_id)
    if found is None:
        raise HTTPException(404, f"no approved answer #{answer_id}")
    return found.to_json()


@router.delete("/approved/{answer_id}")
def remove(answer_id: int, who: Trainer, core: CoreDep) -> dict[str, Any]:
    if not _approved(core, who).remove(answer_id):
        raise HTTPException(404, f"no approved answer #{answer_id}")
    return {"removed": answer_id}


@router.post("/approved/import")
def import_rows(body: ImportRequest, who: Trainer, core: CoreDep) -> dict[str, Any]:
    rows = [ImportRow(r.question, r.answer, r.id, r.sources, r.questions) for r in body.rows]
    done = _approved(core, who).import_rows(rows)
    return {"rows": [{"id": i, "created": c} for i, c in done], "created": sum(c for _, c in done),
            "updated": sum(not c for _, c in done)}


@router.post("/approved/{answer_id}/questions")
def accept_suggestion(answer_id: int, body: QuestionRequest, who: Agent, core: CoreDep) -> dict[str, Any]:
    """The agent sent this approved answer for ``question``: the wording is learned."""
    try:
        return {"added": _approved(core, who).accept_suggestion(answer_id, body.question)}
    except ApprovedError as exc:
        raise _refused(exc) from exc


@router.post("/proposals")
def propose(body: ProposeRequest, who: Agent, core: CoreDep) -> dict[str, Any]:
    approved = _approved(core, who)
    try:
        if body.message_id is not None:
            conversation_id = core.session.history.answer_conversation(body.message_id)
            if conversation_id is None:
                raise HTTPException(404, f"no answer with id {body.message_id}")
            core.conversation_for(who, conversation_id)  # an agent proposes for their own conversations
            return {"proposal_id": approved.propose(body.message_id, body.text)}
        if not body.question:
            raise HTTPException(422, "give message_id or question")
        return {"proposal_id": approved.propose_text(body.question, body.text)}
    except ApprovedError as exc:
        raise _refused(exc) from exc


@router.get("/proposals")
def proposals(who: Trainer, core: CoreDep,
              status: Literal["pending", "accepted", "rejected", "all"] = "pending") -> list[dict[str, Any]]:
    return [p.to_json() for p in _approved(core, who).proposals(None if status == "all" else status)]


@router.post("/proposals/{proposal_id}/accept")
def accept(proposal_id: int, body: AcceptRequest, who: Trainer, core: CoreDep) -> dict[str, Any]:
    try:
        return {"answer_id": _approved(core, who).accept(proposal_id, body.text)}
    except ApprovedError as exc:
        raise _refused(exc) from exc


@router.post("/proposals/{proposal_id}/reject")
def reject(proposal_id: int, who: Trainer, core: CoreDep) -> dict[str, Any]:
    try:
        _approved(core, who).reject(proposal_id)
    except ApprovedError as exc:
        raise _refused(exc) from exc
    return {"rejected": proposal_id}
