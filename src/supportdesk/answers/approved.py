"""Approved answers at ask time: does a question match one of a curated answer's questions?

Each approved answer is scored against the question with three signals: the MiniLM cosines to
its questions (imported, proposed, or a wording an agent accepted it for: the set learns its
paraphrases), the cosine to its answer text, and how much of the question's BM25 idf mass its own
questions hold (``query_coverage``):

    entry score = (vote + 0.3 * cos_answer + 0.3 * coverage) / 1.6

where ``vote`` is a soft maximum of its question cosines, ``max + T * log(sum(exp((cos - max) / T)))``
with ``T = VOTE_TEMPERATURE``: with one question per entry it is the plain closest-question cosine;
an entry with several learned wordings close to the question outvotes one with a single close wording.

Serving needs more than a high score: the confidence is a logistic function of the best score, its
margin over the runner-up's score, the margin of the closest-question cosine, the margin of the vote,
how many of the ``NEIGHBOURS`` nearest stored questions belong to the best entry, and that entry's
share of a softmax (``SHARE_TEMPERATURE``) over all the stored questions. The last two say whether
the question sits in a neighbourhood the best entry owns or one that other entries' wordings crowd
(the first day, one question per entry, no neighbourhood is owned: little is served until the set has
learned). Its coefficients and the serve threshold were fitted on half a of
``../shared/datasets/faq_retrieval`` (``supportdesk eval-approved --calibrate``, see the README); the
threshold in effect is the setting ``approved.threshold``. Below it, the best entries whose score
reaches ``approved.suggest_floor`` are offered as suggestions (up to three).

No model runs: one embedding of the question (shared with the KB search when given) and a few
matrix products.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from supportdesk.kb.lexical import BM25Index, query_coverage, tokenize

ANSWER_WEIGHT = 0.3
COVERAGE_WEIGHT = 0.3
VOTE_TEMPERATURE = 0.05
"""How soft the vote over an entry's questions is (a question 0.05 further away weighs e times less)."""
SHARE_TEMPERATURE = 0.1
"""How far the softmax share of the best entry reaches (wider than the vote: it sees the crowd around)."""
NEIGHBOURS = 5
"""Nearest stored questions whose owners are counted."""
COEF = (-1.71, 1.827, 3.11, 2.979, 1.666, 1.019, 1.358)
"""Logistic confidence: intercept, then the best score, its margin, the question-cosine margin, the vote
margin, the best entry's share of the nearest questions and of the softmax (fitted on half a of
faq_retrieval by ``eval-approved --calibrate``)."""
DEFAULT_THRESHOLD = 0.929
DEFAULT_SUGGEST_FLOOR = 0.33
DEFAULT_MIN_SCORE = 0.57
"""However confident the margins make it, an entry scoring less is never served (a set of a few entries
has no runner-up to be far from): the lowest score served on the calibration half."""


@dataclass
class Entry:
    """What the matcher needs of an approved answer."""

    id: int
    answer: str
    questions: list[str]
    learned: list[str] = field(default_factory=list)
    """Wordings agents accepted it for: they count for the cosine, not for the BM25 coverage."""


@dataclass
class Suggestion:
    answer_id: int
    text: str
    score: float
    question: str
    """The entry's question closest to the one asked."""

    def to_json(self) -> dict[str, Any]:
        return {"answer_id": self.answer_id, "text": self.text, "score": round(self.score, 4),
                "question": self.question}


@dataclass
class Match:
    answer_id: int | None
    """The approved answer to serve, or None."""
    confidence: float
    score: float
    suggestions: list[Suggestion] = field(default_factory=list)
    ranked: list[int] = field(default_factory=list)
    """Entry ids, best first (the evaluation reads them)."""
    features: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    elapsed_ms: float = 0.0


def confidence(features: Sequence[float], coef: Sequence[float] = COEF) -> float:
    z = coef[0] + sum(c * f for c, f in zip(coef[1:], features, strict=True))
    return 1.0 / (1.0 + math.exp(-z))


class ApprovedMatcher:
    """Built from the entries (``build``); ``match`` scores one question. Thread-safe: a rebuild swaps
    the whole state at once."""

    def __init__(self, embed: Callable[[list[str]], list[list[float]]], threshold: float = DEFAULT_THRESHOLD,
                 suggest_floor: float = DEFAULT_SUGGEST_FLOOR, coef: Sequence[float] = COEF,
                 min_score: float = DEFAULT_MIN_SCORE) -> None:
        self._embed = embed
        self.threshold = threshold
        self.min_score = min_score
        self.suggest_floor = suggest_floor
        self.coef = tuple(coef)
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._state: dict[str, Any] | None = None

    def _vectors(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vector in zip(missing, self._embed(missing), strict=True):
                self._cache[text] = np.asarray(vector, dtype=np.float32)
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

    def prime(self, texts: list[str], vectors: Any) -> None:
        """Vectors already computed (an evaluation embeds everything in one batch)."""
        for text, vector in zip(texts, vectors, strict=True):
            self._cache[text] = np.asarray(vector, dtype=np.float32)

    def build(self, entries: Sequence[Entry]) -> None:
        entries = [e for e in entries if e.questions or e.learned]
        texts = [q for e in entries for q in (*e.questions, *e.learned)]
        owner = np.asarray([i for i, e in enumerate(entries) for _ in (*e.questions, *e.learned)], dtype=np.int64)
        state: dict[str, Any] = {
            "entries": entries,
            "questions": texts,
            "owner": owner,
            "learned_rows": [row for row, (i, j) in enumerate(
                (i, j) for i, e in enumerate(entries) for j in range(len(e.questions) + len(e.learned)))
                if j >= len(entries[i].questions)],
            "qv": self._vectors(texts),
            "av": self._vectors([e.answer for e in entries]),
            # BM25 over each entry's own questions (one text per question; the coverage of the best)
            "bm25": BM25Index([q for e in entries for q in e.questions]) if entries else None,
            "bm_tokens": [set(tokenize(q)) for e in entries for q in e.questions],
            "bm_owner": np.asarray([i for i, e in enumerate(entries) for _ in e.questions], dtype=np.int64),
        }
        with self._lock:
            self._state = state

    @property
    def size(self) -> int:
        state = self._state
        return len(state["entries"]) if state else 0

    def scores(self, text: str, vector: Any) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Per entry: the combined score and the question cosine; and, per entry, its closest question's index."""
        score, best_q, closest, _ = self._scores(text, vector)
        return score, best_q, closest

    def _scores(self, text: str, vector: Any, leave_out: str | None = None, state: dict[str, Any] | None = None
                ) -> tuple[np.ndarray, np.ndarray, list[int], dict[str, Any]]:
        """``scores``, and what the confidence reads besides: each entry's vote, the cosine to every stored
        question. ``leave_out``: a learned wording not counted (the evaluation asks a question the set
        learned without letting it find itself). ``state``: the one the caller read (a rebuild may swap it)."""
        state = state or self._state
        assert state is not None
        n = len(state["entries"])
        v = np.asarray(vector, dtype=np.float32)
        qcos = (state["qv"] @ v).astype(np.float64)
        if leave_out is not None:
            qcos[[row for row in state["learned_rows"] if state["questions"][row] == leave_out]] = -2.0
        owner = state["owner"]
        best_q = np.full(n, -2.0, dtype=np.float64)
        np.maximum.at(best_q, owner, qcos)
        mass = np.zeros(n, dtype=np.float64)
        np.add.at(mass, owner, np.exp((qcos - best_q[owner]) / VOTE_TEMPERATURE))
        vote = best_q + VOTE_TEMPERATURE * np.log(np.maximum(mass, 1.0))
        closest = [-1] * n
        for row, entry in enumerate(owner.tolist()):
            if closest[entry] < 0 or qcos[row] > qcos[closest[entry]]:
                closest[entry] = row
        acos = (state["av"] @ v).astype(np.float64)
        cover = np.zeros(n, dtype=np.float64)
        if state["bm25"] is not None:
            weights = state["bm25"].term_weights(text)
            if weights:
                for row, tokens in enumerate(state["bm_tokens"]):
                    entry = int(state["bm_owner"][row])
                    cover[entry] = max(cover[entry], query_coverage(weights, tokens))
        score = (vote + ANSWER_WEIGHT * acos + COVERAGE_WEIGHT * cover) / (1 + ANSWER_WEIGHT + COVERAGE_WEIGHT)
        return score, best_q, closest, {"vote": vote, "qcos": qcos}

    @staticmethod
    def _features(state: dict[str, Any], score: np.ndarray, best_q: np.ndarray, extra: dict[str, Any], top: int,
                  second: float) -> tuple[float, ...]:
        owner, qcos, vote = state["owner"], extra["qcos"], extra["vote"]
        q_sorted = np.sort(best_q)
        q_margin = float(best_q[top] - (q_sorted[-2] if len(q_sorted) > 1 else 0.0))
        others = np.delete(vote, top)
        v_margin = float(vote[top] - (others.max() if len(others) else 0.0))
        k = min(NEIGHBOURS, len(qcos))
        nearest = np.argpartition(-qcos, k - 1)[:k]
        owned = float(np.mean(owner[nearest] == top))
        weights = np.exp((qcos - qcos.max()) / SHARE_TEMPERATURE)
        share = float(weights[owner == top].sum() / weights.sum())
        return (float(score[top]), float(score[top]) - second, q_margin, v_margin, owned, share)

    def match(self, text: str, vector: Any | None = None, suggestions: int = 3, leave_out: str | None = None) -> Match:
        started = time.perf_counter()
        state = self._state
        if not state or not state["entries"]:
            return Match(None, 0.0, 0.0)
        if vector is None:
            vector = self._vectors([text])[0] if text in self._cache else self._embed([text])[0]
        score, qcos, closest, extra = self._scores(text, vector, leave_out, state)
        order = np.argsort(-score, kind="stable")
        top = int(order[0])
        second = float(score[order[1]]) if len(order) > 1 else 0.0
        features = self._features(state, score, qcos, extra, top, second)
        conf = confidence(features, self.coef)
        entries = state["entries"]
        served = entries[top].id if conf >= self.threshold and features[0] >= self.min_score else None
        offered = [Suggestion(entries[i].id, entries[i].answer, float(score[i]), state["questions"][closest[i]])
                   for i in (int(j) for j in order[:suggestions]) if score[i] >= self.suggest_floor]
        if served is not None:
            offered = []
        return Match(served, conf, float(score[top]), offered, [entries[int(i)].id for i in order[:10]], features,
                     (time.perf_counter() - started) * 1000)


def entries_of(answers: Sequence[Any]) -> list[Entry]:
    """Matcher entries from stored approved answers (``history.approved.ApprovedAnswer``)."""
    return [Entry(a.id, a.answer, [q.question for q in a.questions if q.origin != "suggestion-accepted"],
                  [q.question for q in a.questions if q.origin == "suggestion-accepted"]) for a in answers]


class ApprovedService:
    """The matcher kept in step with a store of approved answers (``history.approved.ApprovedAnswers``,
    or anything with ``all``, ``signature`` and ``record_hit``): rebuilt when the store's signature
    changes (an answer or a wording added, edited or removed, here or by another replica)."""

    def __init__(self, source: Callable[[], Any], embed: Callable[[list[str]], list[list[float]]],
                 settings: Any) -> None:
        self._source = source
        self.settings = settings
        self.matcher = ApprovedMatcher(embed, settings.threshold, settings.suggest_floor, min_score=settings.min_score)
        self._signature: tuple[Any, ...] | None = None
        self._answers: dict[int, Any] = {}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        store = self._source()
        signature = store.signature()
        if signature == self._signature:
            return
        with self._lock:
            if signature == self._signature:
                return
            answers = store.all()
            self.matcher.build(entries_of(answers))
            self._answers = {a.id: a for a in answers}
            self._signature = signature

    def warm_up(self) -> None:
        """Embed the approved answers now; a history that cannot be read now is read at the first question."""
        from supportdesk.history.errors import HistoryError

        if self.settings.enabled:
            with contextlib.suppress(HistoryError, OSError):
                self.refresh()

    def match(self, text: str) -> tuple[Match, Any | None]:
        """The match and, when it serves one, the approved answer (its hit counted)."""
        from supportdesk.history.errors import HistoryError

        if not self.settings.enabled:
            return Match(None, 0.0, 0.0), None
        with contextlib.suppress(HistoryError, OSError):  # a history out of reach: the answers last read serve
            self.refresh()
        self.matcher.threshold, self.matcher.suggest_floor = self.settings.threshold, self.settings.suggest_floor
        self.matcher.min_score = self.settings.min_score
        found = self.matcher.match(text)
        if found.answer_id is None:
            return found, None
        self._source().record_hit(found.answer_id)
        return found, self._answers.get(found.answer_id)


def serve(service: ApprovedService, result: Any, message: str, history: list[Any], lexicon: Any = None) -> bool:
    """Before the model: fill ``result`` with an approved answer when the message matches one (True),
    or with the suggestions close to it (False: the pipeline answers as usual). A follow-up ("and for
    the other one?") is not matched on its own words."""
    from supportdesk.answers import conversation as talk
    from supportdesk.answers.pipeline import Citation

    if history and talk.is_follow_up(message, history, lexicon):
        return False
    started = time.perf_counter()
    found, approved = service.match(message)
    result.timings["approved_ms"] = (time.perf_counter() - started) * 1000
    if approved is None:
        result.suggestions = [s.to_json() for s in found.suggestions]
        return False
    fields = set(Citation.__dataclass_fields__)
    citations = []
    for number, source in enumerate((s for s in approved.sources if isinstance(s, dict)), start=1):
        values = {k: v for k, v in source.items() if k in fields}
        values.update(number=number, cited=True)
        for name, default in (("source", ""), ("title", ""), ("heading", ""), ("page", None), ("score", 0.0),
                              ("snippet", ""), ("text", ""), ("chunk_id", "")):
            values.setdefault(name, default)
        citations.append(Citation(**values))
    result.kind = "approved"
    result.answer = result.streamed = approved.answer
    result.approved_id = approved.id
    result.approved_citation = approved.citation()
    result.citations = citations
    result.decision = {"route": "approved", "reason": f"matches {approved.citation()} "
                       f"(confidence {found.confidence:.2f} ≥ {service.matcher.threshold:.2f})",
                       "confidence": round(found.confidence, 4)}
    return True


def approved_service(source: Callable[[], Any], kb: Any, settings: Any) -> ApprovedService:
    """The service a session's pipeline matches with (the KB's embedder: the same vectors as the search)."""
    return ApprovedService(source, lambda texts: kb.embedder.embed_documents(texts), settings.approved)


class SessionApproved:
    """What an agent or a trainer does with approved answers, on a history store (the embedded session;
    the team server's client has the same methods). ``by``: who does it (None locally)."""

    def __init__(self, history: Any, by: str | None = None) -> None:
        self._history = history
        self._store = history.approved
        self.by = by

    def propose(self, message_id: int, text: str) -> int:
        """The agent's rewrite of the stored answer ``message_id``, with its question, its draft and the
        sources the draft cited, as a proposal for a trainer."""
        from supportdesk.history.approved import ApprovedError

        conversation_id = self._history.answer_conversation(message_id)
        if conversation_id is None:
            raise ApprovedError(f"no stored answer with id {message_id}")
        messages = self._history.messages(conversation_id)
        position = next(i for i, m in enumerate(messages) if m.id == message_id)
        question = next((m.content for m in reversed(messages[:position]) if m.role == "user"), "")
        draft = messages[position]
        sources = [c for c in draft.citations if isinstance(c, dict) and c.get("cited")]
        return self._store.propose(question, text, draft=draft.content, by=self.by, message_id=message_id,
                                   sources=sources)

    def propose_text(self, question: str, text: str, draft: str = "") -> int:
        return self._store.propose(question, text, draft=draft, by=self.by)

    def accept_suggestion(self, answer_id: int, question: str) -> bool:
        """The agent sent approved answer ``answer_id`` for ``question``: that wording becomes another of its
        questions (False when it already had it)."""
        return self._store.add_question(answer_id, question, "suggestion-accepted", self.by)

    def proposals(self, status: str | None = "pending") -> list[Any]:
        return self._store.proposals(status)

    def accept(self, proposal_id: int, text: str | None = None) -> int:
        return self._store.accept(proposal_id, by=self.by, text=text)

    def reject(self, proposal_id: int) -> None:
        self._store.reject(proposal_id, by=self.by)

    def all(self) -> list[Any]:
        return self._store.all()

    def get(self, answer_id: int) -> Any:
        return self._store.get(answer_id)

    def remove(self, answer_id: int) -> bool:
        return self._store.remove(answer_id)

    def import_rows(self, rows: list[Any]) -> list[tuple[int, bool]]:
        return self._store.import_rows(rows, by=self.by)
