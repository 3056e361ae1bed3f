"""Answers: a question asked (its answer streamed as server-sent events), an answer cancelled."""

# No "from __future__ import annotations": FastAPI reads the models and dependencies at runtime.

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse

from supportdesk.sanitize import clean_question
from supportdesk.server.deps import Agent, CoreDep, SettingsDep
from supportdesk.server.sse import queue_events, stream_queue

router = APIRouter(tags=["answers"])


class HistoryTurn(BaseModel):
    role: Literal["user", "assistant"]
    text: str


class AskRequest(BaseModel):
    question: str = Field(description="The customer's message.")
    conversation_id: int | None = Field(None, description="Continue this conversation; none starts a new one.")
    history: list[HistoryTurn] | None = Field(
        None, max_length=100,
        description="Answer as if after these turns (an evaluation: 'ask --conversations'). Nothing is stored; "
        "not with conversation_id.",
    )


@router.post("/ask")
async def ask(body: AskRequest, who: Agent, core: CoreDep, settings: SettingsDep) -> EventSourceResponse:
    """Events: answer (its id, for cancel), question, queued (questions ahead), route (decision,
    sources), text (pieces), done (the checked answer, citations, timings, message id) or error."""
    limit = settings.serve.max_message_chars
    if len(body.question) > limit:
        raise HTTPException(413, f"the question is {len(body.question)} characters: the limit is {limit}")
    question = clean_question(body.question)
    if not question:
        raise HTTPException(422, "the question is empty: type a message to ask")
    turns = None
    if body.history is not None:
        if body.conversation_id is not None:
            raise HTTPException(422, "give either conversation_id or history, not both")
        if sum(len(t.text) for t in body.history) > limit * 10:
            raise HTTPException(413, f"the history is over {limit * 10} characters")
        from supportdesk.answers.pipeline import Turn

        turns = [Turn(t.role, clean_question(t.text)) for t in body.history]
    # Refusals (unknown conversation, too many streams: 429) are plain HTTP errors, answered before the
    # stream opens and before anything is stored; the run is counted from here on.
    queue, emit = queue_events(asyncio.get_running_loop())
    run = await asyncio.to_thread(core.begin, who, body.conversation_id, question, emit, history=turns)
    # The client went away: stop writing, free the model (what was written is stored, cancelled).
    return EventSourceResponse(stream_queue(queue, ("done", "error"), run.cancel), ping=10)


@router.post("/answers/{answer_id}/cancel")
def cancel(answer_id: str, who: Agent, core: CoreDep) -> dict[str, Any]:
    return {"cancelled": core.cancel(who, answer_id)}
