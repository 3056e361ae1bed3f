"""Answer from the docs, or hand off to a human? One probability, and why.

A grounded answer is only as good as the chunks behind it. Three retrieval signals, all
computed by a search (``kb.search.Evidence``) over the chunks a grounded prompt would show:

* ``best_score``: the best cosine similarity between the question and one of those chunks;
* ``coverage``: the best share of the question's idf-weighted content words that one chunk
  holds (``kb.lexical.query_coverage``). A chunk that is merely on the topic misses some of
  the question's distinctive words; the chunk that answers it usually has them;
* ``missing``: how specific the most specific question word is that *none* of the chunks
  holds (its idf over the largest idf possible; 0 when every word is there). "Which
  wallpapers can I choose in the app?" finds the app's chunks, but "wallpaper" is nowhere.

They are combined by a logistic model, ``p = sigmoid(w · [best_score, coverage, missing, 1])``;
below ``router.abstain_below`` the pipeline hands off. Weights and threshold live in settings
and are fitted per knowledge base by ``supportdesk router calibrate-abstain``, at a target
share of answerable questions answered. Measured (held-out halves, README): see "Answers".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from supportdesk.kb.search import Evidence
from supportdesk.logistic import fit_logistic

FEATURES = ("best_score", "coverage", "missing", "bias")
Signals = tuple[float, float, float]


@dataclass(frozen=True)
class AnswerabilityVerdict:
    probability: float
    threshold: float
    evidence: Evidence

    @property
    def answerable(self) -> bool:
        return self.probability >= self.threshold

    @property
    def reason(self) -> str:
        e = self.evidence
        side = ">=" if self.answerable else "<"
        verdict = "the docs cover this" if self.answerable else "the docs do not cover this well enough to answer"
        missing = f", not found: '{e.missing_term}'" if e.missing_term else ""
        return (
            f"answerability {self.probability:.2f} {side} {self.threshold:.2f} (chunks for the prompt: best score "
            f"{e.best_score:.2f}, question terms covered {e.coverage:.0%}{missing}): {verdict}"
        )

    def to_json(self) -> dict[str, Any]:
        e = self.evidence
        return {
            "probability": round(self.probability, 4),
            "threshold": self.threshold,
            "answerable": self.answerable,
            "best_score": round(e.best_score, 4),
            "coverage": round(e.coverage, 4),
            "missing": round(e.missing, 4),
            "missing_term": e.missing_term,
            "reason": self.reason,
        }


def features(signals: Signals) -> np.ndarray:
    return np.array([*signals, 1.0], dtype=np.float64)


class Answerability:
    """The fitted model: weights over ``FEATURES`` and the hand-off threshold."""

    def __init__(self, weights: Sequence[float], threshold: float) -> None:
        if len(weights) != len(FEATURES):
            raise ValueError(f"answerability weights need {len(FEATURES)} values {FEATURES}, got {len(weights)}")
        self.weights = np.asarray(weights, dtype=np.float64)
        self.threshold = float(threshold)

    def probability(self, signals: Signals) -> float:
        z = float(features(signals) @ self.weights)
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def assess(self, evidence: Evidence) -> AnswerabilityVerdict:
        return AnswerabilityVerdict(self.probability(evidence.signals()), self.threshold, evidence)

    def answers(self, signals: Signals) -> bool:
        return self.probability(signals) >= self.threshold


def answer_threshold(probabilities: Sequence[float], answer_rate: float) -> float:
    """The threshold that answers at least ``answer_rate`` of *new* answerable questions.

    Split-conformal rule: with n calibration scores, hand off only below the
    floor((n + 1) * (1 - answer_rate))-th smallest, which holds the rate in expectation on
    exchangeable new questions; the plain empirical quantile lands just under it on a
    held-out half. Rounded down to 4 places so the chosen example itself stays answered.
    """
    ranked = sorted(float(v) for v in probabilities)
    if not ranked:
        raise ValueError("no answerable questions to set the threshold on")
    rank = math.floor((len(ranked) + 1) * (1.0 - answer_rate) + 1e-9)  # 1 - 0.9 is 0.0999...: not 9.99 -> 9
    if rank < 1:
        return 0.0  # too few questions to promise that rate: never hand off on this evidence
    return math.floor(ranked[rank - 1] * 10_000) / 10_000


@dataclass
class AnswerabilityFit:
    weights: list[float]
    threshold: float
    answered_rate: float
    abstained_rate: float
    n_answerable: int
    n_unanswerable: int


def fit_answerability(
    answerable: Sequence[Signals], unanswerable: Sequence[Signals], answer_rate: float = 0.9
) -> AnswerabilityFit:
    """Fit the weights on the signals of answerable and unanswerable questions, then put the
    threshold where ``answer_rate`` of new answerable questions are answered."""
    if not answerable or not unanswerable:
        raise ValueError("calibration needs both answerable and unanswerable examples")
    x = np.array([features(signals) for signals in [*answerable, *unanswerable]])
    y = np.r_[np.ones(len(answerable)), np.zeros(len(unanswerable))]
    # Features are in [0, 1]: no scaling needed; a weak L2 keeps the fit stable on few rows.
    w = fit_logistic(x, y, l2=0.001, steps=6000, lr=2.0)
    p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -60, 60)))
    threshold = answer_threshold(p[: len(answerable)], answer_rate)
    return AnswerabilityFit(
        weights=[round(float(v), 4) for v in w],
        threshold=threshold,
        answered_rate=float((p[: len(answerable)] >= threshold).mean()),
        abstained_rate=float((p[len(answerable):] < threshold).mean()),
        n_answerable=len(answerable),
        n_unanswerable=len(unanswerable),
    )
