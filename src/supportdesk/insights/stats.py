"""The insights: per day, what the bot did and how well (headless; the CLI, the TUI and the server show it).

Per day (UTC): questions answered, the route mix (voice / grounded / approved / clarify / decline /
hand-off), the hand-off rate, 👍 / 👎, the approved-answer hit rate (answers of kind ``approved``
over all), the edit ratio (how much agents changed the drafts they rewrote: 1 − difflib's
similarity, averaged; only where the history keeps rewrites), and latency p50 / p95 per stage
from each answer's stored timings (embed, search, route, policy, prompt, first token,
generation, total). Top gaps come from ``gaps.find_gaps`` when an embedder is given.

Nothing here imports Textual or the CLI.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np

from supportdesk.insights.records import Turn, read_turns

ROUTES = ("voice", "grounded", "approved", "clarify", "decline", "handoff")
STAGES = ("embed_ms", "search_ms", "route_ms", "policy_ms", "prompt_ms", "ttft_ms", "generation_ms", "total_ms")


def day_of(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d")


def edit_ratio(draft: str, sent: str) -> float:
    """0 = sent as drafted, 1 = nothing of the draft kept."""
    return round(1.0 - difflib.SequenceMatcher(None, draft, sent, autojunk=False).ratio(), 4)


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    p50, p95 = np.percentile(np.asarray(values, dtype=float), [50, 95])
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1), "n": len(values)}


def summarise(turns: Sequence[Turn]) -> dict[str, Any]:
    """The figures for one set of answers (a day, or the whole period)."""
    n = len(turns)
    routes = {route: 0 for route in ROUTES}
    for t in turns:
        key = t.kind or "unknown"
        routes[key] = routes.get(key, 0) + 1
    edits = [edit_ratio(t.answer, t.rewrite) for t in turns if t.rewrite]
    latency = {}
    for stage in STAGES:
        found = _percentiles([float(t.timings[stage]) for t in turns
                              if isinstance(t.timings.get(stage), int | float) and t.timings[stage] >= 0])
        if found:
            latency[stage] = found
    return {
        "questions": n,
        "routes": routes,
        "handoff_rate": round(routes["handoff"] / n, 4) if n else None,
        "thumbs_up": sum(1 for t in turns if t.feedback > 0),
        "thumbs_down": sum(1 for t in turns if t.feedback < 0),
        "approved_hit_rate": round(routes["approved"] / n, 4) if n else None,
        "rewritten": len(edits),
        "edit_ratio": round(sum(edits) / len(edits), 4) if edits else None,
        "latency_ms": latency,
    }


def per_day(turns: Sequence[Turn]) -> list[dict[str, Any]]:
    days: dict[str, list[Turn]] = {}
    for t in turns:
        days.setdefault(day_of(t.at), []).append(t)
    return [{"day": day, **summarise(found)} for day, found in sorted(days.items())]


def insights(store: Any, since: float | None = None, agent: str | None = None, embed: Any = None,
             search: Any = None, top_gaps: int = 5) -> dict[str, Any]:
    """The whole report: totals, per day, and (with ``embed``) the top gaps of the same answers."""
    turns = read_turns(store, since, agent)
    report: dict[str, Any] = {"since": since, "agent": agent, "total": summarise(turns), "days": per_day(turns),
                              "gaps": None}
    if embed is not None:
        from supportdesk.insights.gaps import find_gaps, gap_questions

        report["gaps"] = [g.to_json() for g in find_gaps(gap_questions(turns), embed, search, top=top_gaps)]
    return report
