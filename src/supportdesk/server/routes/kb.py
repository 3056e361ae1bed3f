"""The knowledge base: search and stats (any agent), a reload streamed as it runs (admin)."""

# No "from __future__ import annotations": FastAPI reads the dependencies' aliases at runtime.

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from sse_starlette import EventSourceResponse

from supportdesk.sanitize import clean_question
from supportdesk.server.core import CoreError, Emit
from supportdesk.server.deps import Admin, Agent, CoreDep
from supportdesk.server.sse import thread_events
from supportdesk.wire import report_to_json, search_to_json, stats_to_json

router = APIRouter(tags=["kb"])


@router.get("/kb/search")
def search(who: Agent, core: CoreDep, q: Annotated[str, Query(min_length=1, max_length=4000)],
           k: Annotated[int | None, Query(ge=1, le=100)] = None,
           mode: Annotated[str | None, Query(pattern="^(hybrid|dense|bm25)$")] = None) -> dict[str, Any]:
    """The same JSON as ``supportdesk kb search --json``; never waits behind the model."""
    query = clean_question(q)
    if not query:
        raise HTTPException(422, "the query is empty: give words to search for")
    return search_to_json(query, core.search(query, k=k, mode=mode))  # type: ignore[arg-type]


@router.get("/kb/stats")
def kb_stats(who: Agent, core: CoreDep) -> dict[str, Any]:
    """The same JSON as ``supportdesk kb stats --json``."""
    return stats_to_json(core.kb_stats())


@router.post("/kb/reload")
async def reload(who: Admin, core: CoreDep) -> EventSourceResponse:
    """Events: progress (stage, done, total), then done (the report) or error. Answers in
    flight finish on the old generation; questions asked after it use the new one."""
    release = core.claim_reload(who)  # 409 before the stream opens, on this replica or any other

    def work(emit: Emit) -> None:
        try:
            _reload(emit)
        finally:
            release()

    def _reload(emit: Emit) -> None:
        try:
            report = core.reload(who, lambda p: emit("progress", {"stage": p.stage, "done": p.done,
                                                                  "total": p.total, "detail": p.detail}))
        except CoreError as exc:
            emit("error", {"message": str(exc), "status": exc.status})
            return
        except Exception as exc:  # noqa: BLE001 - told to the admin; the old generation keeps serving
            emit("error", {"message": f"{type(exc).__name__}: {exc}", "status": 500})
            return
        emit("done", report_to_json(report))

    return EventSourceResponse(thread_events(work, ("done", "error")), ping=10)
