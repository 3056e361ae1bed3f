"""Knowledge gaps: the questions the bot could not answer, grouped by meaning and ranked.

Which questions count (from the history): hand-offs (not the ones a customer asked for: a person,
a complaint, a data request), declines of what looks like a product question (another company's
product, or a message with the product's own terms), answers rated 👎, grounded answers the bot
abstained on, and answers an agent rewrote (when the history keeps rewrites). Or any list of
questions (``supportdesk gaps --questions FILE``).

They are embedded with the KB's embedder, grouped (``clustering.group``: no threshold picked by
hand) and ranked by size, then by how recent the newest one is. Each gap has representative
questions (the members nearest its centre), the KB sections closest to them with their scores
(why retrieval did not answer) and, when agents rewrote answers, what they answered instead.
``draft_page`` turns a gap into a Markdown page for an admin to complete and add to the KB.

Nothing here imports Textual or the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from supportdesk.insights.clustering import group, prepare
from supportdesk.insights.records import Turn

REPRESENTATIVES = 3
CLOSEST = 3
_PERSON_HANDOFF = re.compile(r"policy: (ask_human|complaint|privacy)\b")
_PRODUCT_DECLINE = re.compile(r"policy: other_company\b|cues: (?!none)")


@dataclass
class GapQuestion:
    text: str
    ref: int
    """The input line number (a file of questions) or the answer's message id (the history)."""
    at: float = 0.0
    why: str = "question"
    """handoff, decline, thumbs-down, abstained, rewritten, or question (a file)."""
    answered_instead: str | None = None
    agent: str | None = None
    approved: str | None = None
    """The approved answer an agent's rewrite became (a trainer accepted it), if it did."""


@dataclass
class Gap:
    gap: int
    size: int
    label: str
    members: list[int]
    questions: list[str]
    representatives: list[str]
    closest: list[dict[str, Any]] = field(default_factory=list)
    answered_instead: list[str] = field(default_factory=list)
    why: dict[str, int] = field(default_factory=dict)
    latest: float = 0.0
    rewrites: list[tuple[str, str]] = field(default_factory=list)
    """(question, what an agent answered instead) for the members an agent rewrote (the approved text if any)."""
    approved: list[tuple[str, str]] = field(default_factory=list)
    """(question, approved answer) for the members whose rewrite a trainer approved."""

    def to_json(self) -> dict[str, Any]:
        return {"gap": self.gap, "size": self.size, "label": self.label, "members": self.members,
                "representatives": self.representatives, "closest": self.closest,
                "answered_instead": self.answered_instead, "why": self.why,
                "latest": round(self.latest, 3) if self.latest else None, "questions": self.questions,
                "rewrites": [list(pair) for pair in self.rewrites],
                "approved": [list(pair) for pair in self.approved]}


def why_a_gap(turn: Turn) -> str | None:
    """Why this answer marks a gap in the docs (None: it does not)."""
    if turn.rewrite and turn.rewrite.strip() != turn.answer.strip():
        return "rewritten"
    if turn.feedback < 0:
        return "thumbs-down"
    reason = turn.reason or ""
    if turn.kind == "handoff":
        return None if _PERSON_HANDOFF.search(reason) else "handoff"
    if turn.kind == "decline":
        return "decline" if _PRODUCT_DECLINE.search(reason) else None
    if turn.kind == "grounded" and turn.abstained:
        return "abstained"
    return None


def gap_questions(turns: Sequence[Turn]) -> list[GapQuestion]:
    found = []
    for turn in turns:
        why = why_a_gap(turn)
        if why is not None and turn.question.strip():
            found.append(GapQuestion(turn.question, turn.message_id, turn.at, why,
                                     turn.rewrite if why == "rewritten" else None, turn.agent,
                                     turn.extra.get("approved") if why == "rewritten" else None))
    return found


def read_questions(path: Any) -> list[GapQuestion]:
    """One question per line (blank lines skipped; ``ref`` is the 1-based line number)."""
    from pathlib import Path

    text = Path(path).read_text(encoding="utf-8")
    return [GapQuestion(line.strip(), number) for number, line in enumerate(text.splitlines(), 1) if line.strip()]


Embed = Callable[[list[str]], list[list[float]]]
Search = Callable[[str], list[dict[str, Any]]]


def kb_search(kb: Any, k: int = CLOSEST) -> Search | None:
    """The KB's closest sections for a question (None when the KB has no index)."""
    if kb is None or kb.snapshot() is None:
        return None

    def search(question: str) -> list[dict[str, Any]]:
        result = kb.search(question, k=k)
        return [{"source": h.chunk.source, "heading": h.chunk.heading or h.chunk.title or "",
                 "score": round(float(h.score), 4)} for h in result.hits[:k]]

    return search


def find_gaps(questions: Sequence[GapQuestion], embed: Embed, search: Search | None = None,
              top: int | None = None) -> list[Gap]:
    """Group ``questions`` by meaning; the gaps, largest and most recent first (``top``: only the first)."""
    if not questions:
        return []
    vectors = np.asarray(embed([q.text for q in questions]), dtype=np.float64)
    grouping = group(vectors)
    points, _ = prepare(vectors)
    gaps: list[Gap] = []
    for label in range(grouping.n_groups):
        idx = np.flatnonzero(grouping.labels == label)
        centre = points[idx].mean(axis=0)
        order = idx[np.argsort(-(points[idx] @ centre), kind="stable")]
        members = [questions[i] for i in order]
        why: dict[str, int] = {}
        for q in members:
            why[q.why] = why.get(q.why, 0) + 1
        instead = list(dict.fromkeys(q.answered_instead for q in members if q.answered_instead))
        gaps.append(Gap(0, len(idx), members[0].text, sorted(q.ref for q in members), [q.text for q in members],
                        _distinct([q.text for q in members])[:REPRESENTATIVES], answered_instead=instead,
                        why=why, latest=max(q.at for q in members),
                        rewrites=[(q.text, q.approved or q.answered_instead) for q in members
                                  if q.approved or q.answered_instead],
                        approved=[(q.text, q.approved) for q in members if q.approved]))
    gaps.sort(key=lambda g: (-g.size, -g.latest, g.members[0]))
    if top is not None:
        gaps = gaps[:top]
    for number, gap in enumerate(gaps, 1):
        gap.gap = number
        if search is not None:
            gap.closest = closest_sections(gap.representatives, search)
    return gaps


def _distinct(texts: Sequence[str]) -> list[str]:
    """The texts in order, without ones that differ from an earlier one only in case, spaces or punctuation."""
    seen: set[str] = set()
    kept = []
    for text in texts:
        key = re.sub(r"[\W_]+", "", text.casefold())
        if key not in seen:
            seen.add(key)
            kept.append(text)
    return kept


def closest_sections(representatives: Sequence[str], search: Search, k: int = CLOSEST) -> list[dict[str, Any]]:
    """The KB sections nearest the gap's representative questions (best score over them), best first."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for question in representatives:
        for hit in search(question):
            key = (hit["source"], hit["heading"])
            if key not in best or hit["score"] > best[key]["score"]:
                best[key] = dict(hit)
    return sorted(best.values(), key=lambda h: -h["score"])[:k]


def _comment(text: str) -> str:
    return " ".join(text.split()).replace("--", "—")


def draft_page(gap: Gap, approved: Sequence[tuple[str, str]] | None = None) -> str:
    """A KB page (Markdown) for an admin to complete: the approved answers (question, answer) that
    fall in this gap (default: the approved ones, else what agents answered instead) when there
    are any, else each representative question as a heading to fill in."""
    approved = list((gap.approved or gap.rewrites) if approved is None else approved)
    lines = [f"# {' '.join(gap.label.split()).rstrip('?')}", "",
             f"<!-- Draft from knowledge gap {gap.gap} ({gap.size} question(s)). Edit, then reload the KB. -->", ""]
    if approved:
        for question, answer in approved:
            lines += [f"## {' '.join(question.split())}", "", answer.strip(), ""]
    else:
        for question in gap.representatives:
            lines += [f"## {' '.join(question.split())}", "", "TODO: the answer.", ""]
        if gap.answered_instead:
            lines += ["<!-- What agents answered instead:", *(f"- {_comment(a)}" for a in gap.answered_instead), "-->", ""]
    others = [q for q in gap.questions if q not in gap.representatives]
    if others:
        lines += ["<!-- Also asked:", *(f"- {_comment(q)}" for q in dict.fromkeys(others)), "-->", ""]
    if gap.closest:
        lines += ["<!-- Closest sections today (why retrieval did not answer):",
                  *(f"- {_comment(c['source'])} — {_comment(c['heading'])} ({c['score']:.2f})" for c in gap.closest), "-->", ""]
    return "\n".join(lines).rstrip() + "\n"
