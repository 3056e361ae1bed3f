"""History: conversations (an agent's own; a trainer's or admin's, the team's), ratings, the export."""

# No "from __future__ import annotations": FastAPI reads the models and dependencies at runtime.

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from supportdesk.server.deps import Agent, CoreDep, Trainer
from supportdesk.wire import conversation_to_json, message_to_json

router = APIRouter(tags=["history"])


class FeedbackRequest(BaseModel):
    value: int = Field(ge=-1, le=1, description="1 good, -1 bad, 0 clears.")


@router.get("/conversations")
def conversations(who: Agent, core: CoreDep, limit: Annotated[int, Query(ge=1, le=100_000)] = 30,
                  everyone: bool = False) -> list[dict[str, Any]]:
    """The caller's conversations; ``everyone`` (trainer, admin): the whole team's."""
    return [conversation_to_json(c) for c in core.conversations(who, limit, everyone)]


@router.post("/conversations")
def new_conversation(who: Agent, core: CoreDep) -> dict[str, Any]:
    return {"conversation_id": core.new_conversation(who)}


@router.get("/conversations/{conversation_id}")
def messages(conversation_id: int, who: Agent, core: CoreDep) -> dict[str, Any]:
    conversation, stored = core.messages(who, conversation_id)
    return {"conversation": conversation_to_json(conversation), "messages": [message_to_json(m) for m in stored]}


class SentAnswerRequest(BaseModel):
    text: str = Field(min_length=1, max_length=20_000, description="The answer the agent sent.")
    reason: str = Field("", max_length=500, description="Why it was sent ('approved answer #12 sent by the agent').")


@router.post("/conversations/{conversation_id}/sent")
def sent_answer(conversation_id: int, body: SentAnswerRequest, who: Agent, core: CoreDep) -> dict[str, Any]:
    """Store an answer the agent sent without asking (an approved answer offered as a suggestion)."""
    return {"message_id": core.add_sent_answer(who, conversation_id, body.text, body.reason)}


@router.post("/messages/{message_id}/feedback")
def feedback(message_id: int, body: FeedbackRequest, who: Agent, core: CoreDep) -> dict[str, Any]:
    core.feedback(who, message_id, body.value)
    return {"message_id": message_id, "feedback": body.value}


@router.get("/history/export")
def export(who: Trainer, core: CoreDep, rated_good_only: bool = False) -> StreamingResponse:
    """JSONL chat records for ``supportdesk adapter prepare``."""
    records = core.export(rated_good_only=rated_good_only)
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return StreamingResponse(iter([body]), media_type="application/x-ndjson")
