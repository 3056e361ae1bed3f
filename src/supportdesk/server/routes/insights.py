"""Insights and knowledge gaps: trainers and admins see the team's, an agent their own insights."""

# No "from __future__ import annotations": FastAPI reads the models and dependencies at runtime.

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from supportdesk.server.deps import Agent, CoreDep, Trainer
from supportdesk.server.tokens import role_allows

router = APIRouter(tags=["insights"])


def _since(text: str | None) -> float | None:
    from supportdesk.insights.records import parse_since

    try:
        return parse_since(text)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/insights")
def insights(who: Agent, core: CoreDep, since: str | None = None,
             top_gaps: Annotated[int, Query(ge=0, le=100)] = 5) -> dict[str, Any]:
    """Per-day figures and top gaps: the whole team's for a trainer or admin, an agent's own answers for an agent."""
    agent = None if role_allows(who.role, "trainer") else who.name
    return core.session.insights(_since(since), agent, top_gaps=top_gaps)


@router.get("/gaps")
def gaps(who: Trainer, core: CoreDep, since: str | None = None,
         top: Annotated[int | None, Query(ge=1, le=10_000)] = None) -> list[dict[str, Any]]:
    """The team's knowledge gaps, largest and most recent first."""
    return core.session.gaps(_since(since), top=top)
