"""The router: one probability that a message needs grounded facts, and why.

Signals (all cheap, all reported):

* ``fact_sim`` / ``voice_sim``: cosine of the message to the closest example utterances of
  each route (semantic-router style), from the query vector retrieval computes anyway;
* ``best_score``: the best cosine similarity among the retrieved chunks;
* ``cue_score``: lexical cues (model codes, versions, numbers, product terms, question words
  against greetings and thanks); codes and product terms are the brand profile's (``use_lexicon``).

They are combined by a logistic model, ``p = sigmoid(w · [fact_sim - voice_sim, best_score,
cue_score, 1])``; the message goes to the grounded route when ``p >= threshold``. Weights and
threshold live in settings and are fitted by ``supportdesk router calibrate`` on the
calibration half of a labelled set (optionally to a target escalation rate, as RouteLLM
does); the held-out half is only ever used to measure.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from supportdesk.brand import CueLexicon
from supportdesk.logistic import fit_logistic
from supportdesk.router.cues import cue_score, fact_cues
from supportdesk.router.examples import GROUNDED, VOICE

Route = Literal["voice", "grounded"]
FEATURES = ("sim_margin", "best_score", "cue_score", "bias")


@dataclass
class Signals:
    fact_sim: float
    voice_sim: float
    best_score: float
    cue_score: float
    cues: dict[str, int]

    def features(self) -> np.ndarray:
        return np.array([self.fact_sim - self.voice_sim, self.best_score, self.cue_score, 1.0], dtype=np.float64)


@dataclass
class RouteDecision:
    route: Route
    probability: float
    threshold: float
    signals: Signals
    elapsed_ms: float
    note: str | None = None
    """Why the route differs from what p(facts) alone says (a follow-up keeps its conversation's route)."""

    @property
    def reason(self) -> str:
        s = self.signals
        side = ">=" if self.probability >= self.threshold else "<"
        base = (
            f"p(facts)={self.probability:.2f} {side} {self.threshold:.2f}: "
            f"example similarity facts {s.fact_sim:.2f} vs chat {s.voice_sim:.2f}, "
            f"best doc score {s.best_score:.2f}, cue score {s.cue_score:+.2f}"
        )
        return f"{self.note} ({base})" if self.note else base

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "probability": round(self.probability, 4),
            "threshold": self.threshold,
            "reason": self.reason,
            "signals": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self.signals).items()},
            "elapsed_ms": round(self.elapsed_ms, 3),
        }


def _top_mean(similarities: np.ndarray, n: int = 3) -> float:
    if similarities.size == 0:
        return 0.0
    n = min(n, similarities.size)
    return float(np.sort(similarities)[-n:].mean())


class Router:
    """Decides per message; needs the message's (normalised) vector and the best retrieval score."""

    def __init__(
        self,
        embed_documents: Callable[[list[str]], list[list[float]]],
        weights: Sequence[float],
        threshold: float,
    ) -> None:
        self._embed_documents = embed_documents
        self.weights = np.asarray(weights, dtype=np.float64)
        self.threshold = float(threshold)
        self._voice: np.ndarray | None = None
        self._grounded: np.ndarray | None = None
        self._kb_examples: tuple[str, ...] = ()
        self._kb_vectors: np.ndarray | None = None
        self.lexicon: CueLexicon | None = None

    def use_lexicon(self, lexicon: CueLexicon | None) -> None:
        """The brand profile's product names, terms and model codes, for the lexical cues."""
        self.lexicon = lexicon

    def configure(self, weights: Sequence[float], threshold: float) -> None:
        """New weights and threshold (the KB's labelled values can change with a reload)."""
        self.weights = np.asarray(weights, dtype=np.float64)
        self.threshold = float(threshold)

    def use_kb_examples(self, texts: Sequence[str]) -> None:
        """Questions made from the KB itself (its self-calibration) join the grounded examples,
        so a question in the KB's domain routes to grounded even when it shares no word with
        the generic examples. Embedded once per KB generation."""
        texts = tuple(texts)
        if texts != self._kb_examples:
            self._kb_examples = texts
            self._kb_vectors = np.asarray(self._embed_documents(list(texts)), dtype=np.float32) if texts else None

    def _examples(self) -> tuple[np.ndarray, np.ndarray]:
        if self._voice is None or self._grounded is None:
            self._voice = np.asarray(self._embed_documents(VOICE), dtype=np.float32)
            self._grounded = np.asarray(self._embed_documents(GROUNDED), dtype=np.float32)
        if self._kb_vectors is not None:
            return self._voice, np.vstack([self._grounded, self._kb_vectors])
        return self._voice, self._grounded

    def warm_up(self) -> None:
        self._examples()

    def base_similarity(self, vector: np.ndarray) -> tuple[float, float]:
        """(facts, chat) similarity to the generic example utterances alone (not the KB's own
        questions): a signal that means the same on every KB (the conversation policy uses it)."""
        self._examples()
        assert self._voice is not None and self._grounded is not None
        vector = np.asarray(vector, dtype=np.float32)
        return _top_mean(self._grounded @ vector), _top_mean(self._voice @ vector)

    def signals(self, message: str, vector: np.ndarray, best_score: float) -> Signals:
        voice, grounded = self._examples()
        vector = np.asarray(vector, dtype=np.float32)
        cues = fact_cues(message, self.lexicon)
        return Signals(
            fact_sim=_top_mean(grounded @ vector),
            voice_sim=_top_mean(voice @ vector),
            best_score=float(best_score),
            cue_score=cue_score(cues),
            cues=cues,
        )

    def probability(self, signals: Signals) -> float:
        z = float(self.weights @ signals.features())
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def decide(self, message: str, vector: np.ndarray, best_score: float) -> RouteDecision:
        started = time.perf_counter()
        signals = self.signals(message, vector, best_score)
        p = self.probability(signals)
        route: Route = "grounded" if p >= self.threshold else "voice"
        return RouteDecision(route, p, self.threshold, signals, (time.perf_counter() - started) * 1000)


@dataclass
class Calibration:
    weights: list[float]
    threshold: float
    train_accuracy: float
    escalation_rate: float
    n: int


def calibrate(features: np.ndarray, labels: np.ndarray, target_escalation: float | None = None) -> Calibration:
    """Fit weights, then pick the threshold: best accuracy, or the one that escalates
    (routes to grounded) the target fraction of messages."""
    w = fit_logistic(features, labels.astype(np.float64))
    p = 1.0 / (1.0 + np.exp(-np.clip(features @ w, -60, 60)))
    if target_escalation is not None:
        threshold = float(np.quantile(p, 1.0 - target_escalation))
    else:
        candidates = np.unique(np.r_[p, 0.5])
        accuracy = [((p >= t) == labels).mean() for t in candidates]
        best = max(accuracy)
        # Among equally accurate thresholds take the middle one: margin on both sides.
        ties = candidates[np.isclose(accuracy, best)]
        threshold = float(ties[len(ties) // 2])
    predicted = p >= threshold
    return Calibration(
        weights=[round(float(v), 4) for v in w],
        threshold=round(threshold, 4),
        train_accuracy=float((predicted == labels).mean()),
        escalation_rate=float(predicted.mean()),
        n=len(labels),
    )
