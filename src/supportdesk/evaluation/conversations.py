"""Multi-turn evaluation (mtrag_dev): does each last turn get the right treatment?

Per task, the product's own pipeline plans the answer with the conversation's history (follow-up
reading, route, clarify, hand-off, sources); with ``generate`` the model writes it too, so the
gold passage can be checked among the *cited* sources. Scored separately for first turns and
later turns:

* answerable (ANSWERABLE and PARTIAL): answered (not handed off or clarified), grounded, gold
  passage among the top-5 retrieved documents, gold passage cited (``generate`` only);
* unanswerable: handed off;
* under-specified: clarified or handed off.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supportdesk.answers.conversation import Turn
from supportdesk.evaluation.datasets import Dataset, Question
from supportdesk.evaluation.retrieval import build_dataset_kb, rank_documents

ANSWERABLE = ("ANSWERABLE", "PARTIAL")


def turns(question: Question) -> list[Turn]:
    return [Turn("user" if h["role"] == "user" else "assistant", h["text"]) for h in question.history]


@dataclass
class TaskOutcome:
    qid: str
    answerability: str
    later_turn: bool
    kind: str
    follow_up: bool
    gold_top5: bool | None
    gold_cited: bool | None
    question: str
    query: str

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


@dataclass
class ConversationReport:
    outcomes: list[TaskOutcome] = field(default_factory=list)
    calibration: dict[str, Any] | None = None

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for label, pick in (("first turns", lambda o: not o.later_turn), ("later turns", lambda o: o.later_turn),
                            ("all turns", lambda o: True)):
            chosen = [o for o in self.outcomes if pick(o)]
            answerable = [o for o in chosen if o.answerability in ANSWERABLE]
            unanswerable = [o for o in chosen if o.answerability == "UNANSWERABLE"]
            unclear = [o for o in chosen if o.answerability == "UNDERSPECIFIED"]
            cited = [o.gold_cited for o in answerable if o.gold_cited is not None]
            out.append({
                "turns": label,
                "answerable": len(answerable),
                "answered": _share([o.kind in ("voice", "grounded") for o in answerable]),
                "grounded": _share([o.kind == "grounded" for o in answerable]),
                "gold_top5": _share([bool(o.gold_top5) for o in answerable]),
                "gold_cited": _share([bool(c) for c in cited]) if cited else None,
                "unanswerable": len(unanswerable),
                "handed_off": _share([o.kind == "handoff" for o in unanswerable]),
                "underspecified": len(unclear),
                "clarified_or_handed_off": _share([o.kind in ("clarify", "handoff") for o in unclear]),
            })
        return out


def evaluate_conversations(
    dataset: Dataset,
    backend: Any = None,
    generate: bool = False,
    max_tokens: int = 96,
    progress: Callable[[int, int], None] | None = None,
    **overrides: Any,
) -> ConversationReport:
    """Plan (and with ``generate`` answer) every task's last turn on a KB of the set's passages."""
    from supportdesk.answers import AnswerPipeline
    from supportdesk.models.base import GenerationOptions

    report = ConversationReport()
    with tempfile.TemporaryDirectory(prefix="supportdesk-eval-") as tmp:
        kb = build_dataset_kb(dataset, Path(tmp), **overrides)
        calibration = kb.calibration()
        report.calibration = calibration.to_json() if calibration else None
        pipeline = AnswerPipeline(kb.settings, kb, backend)
        depth = kb.settings.retrieval.candidates
        for done, q in enumerate(dataset.questions, start=1):
            history = turns(q)
            plan = pipeline.plan(q.text, history)
            gold_top5 = gold_cited = None
            if q.gold:
                ranked = rank_documents(kb.search(plan.query, k=depth).hits, dataset.files)[:5]
                gold_top5 = any(doc in q.gold for doc in ranked)
            kind = plan.kind
            if generate and backend is not None and q.answerability in ANSWERABLE and plan.kind == "grounded":
                result = pipeline.ask(q.text, history, GenerationOptions(max_tokens=max_tokens, temperature=0.0)).run()
                kind = result.kind
                cited_docs = {dataset.files.get(c.source) for c in result.citations if c.cited}
                gold_cited = bool(cited_docs & set(q.gold))
            report.outcomes.append(TaskOutcome(q.qid, q.answerability, q.turn > 1, kind, plan.follow_up,
                                               gold_top5, gold_cited, q.text, plan.query))
            if progress is not None:
                progress(done, len(dataset.questions))
    return report
