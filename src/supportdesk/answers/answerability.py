"""Answer from the docs, or hand off to a human? One probability, and why.

A grounded answer is only as good as the chunks behind it. Two retrieval signals, both
already computed by a search, decide whether those chunks can carry an answer:

* ``best_score``: the best cosine similarity between the question and a retrieved chunk;
* ``coverage``: the best share of the question's idf-weighted terms that one of the top
  chunks holds (``kb.lexical.query_coverage``). A chunk that is merely on the topic misses
  the question's distinctive words; the chunk that answers it usually has them.

They are combined by a logistic model, ``p = sigmoid(w · [best_score, coverage, 1])``; below
``router.abstain_below`` the pipeline hands off. Weights and threshold live in settings and
are fitted by ``supportdesk router calibrate-abstain`` on the calibration half of the
E-Manual (questions made unanswerable by removing the sections that hold their answers) plus
the product's own labelled questions, at a target share of answerable questions answered.
Measured (held-out half, see the README): cosine alone AUC 0.78, both signals 0.82.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from supportdesk.router.router import fit_logistic

FEATURES = ("best_score", "coverage", "bias")


@dataclass(frozen=True)
class AnswerabilityVerdict:
    probability: float
    threshold: float
    best_score: float
    coverage: float

    @property
    def answerable(self) -> bool:
        return self.probability >= self.threshold

    @property
    def reason(self) -> str:
        side = ">=" if self.answerable else "<"
        verdict = "the docs cover this" if self.answerable else "the docs do not cover this well enough to answer"
        return (
            f"answerability {self.probability:.2f} {side} {self.threshold:.2f} (chunks for the prompt: best score "
            f"{self.best_score:.2f}, question terms covered {self.coverage:.0%}): {verdict}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "probability": round(self.probability, 4),
            "threshold": self.threshold,
            "answerable": self.answerable,
            "best_score": round(self.best_score, 4),
            "coverage": round(self.coverage, 4),
            "reason": self.reason,
        }


def features(best_score: float, coverage: float) -> np.ndarray:
    return np.array([best_score, coverage, 1.0], dtype=np.float64)


class Answerability:
    """The fitted model: weights over ``FEATURES`` and the hand-off threshold."""

    def __init__(self, weights: Sequence[float], threshold: float) -> None:
        if len(weights) != len(FEATURES):
            raise ValueError(f"answerability weights need {len(FEATURES)} values {FEATURES}, got {len(weights)}")
        self.weights = np.asarray(weights, dtype=np.float64)
        self.threshold = float(threshold)

    def probability(self, best_score: float, coverage: float) -> float:
        z = float(features(best_score, coverage) @ self.weights)
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def assess(self, best_score: float, coverage: float) -> AnswerabilityVerdict:
        return AnswerabilityVerdict(self.probability(best_score, coverage), self.threshold, best_score, coverage)


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
    answerable: Sequence[tuple[float, float]], unanswerable: Sequence[tuple[float, float]], answer_rate: float = 0.9
) -> AnswerabilityFit:
    """Fit the weights on (best_score, coverage) pairs, then put the threshold where
    ``answer_rate`` of the answerable examples are still answered (abstention is the price)."""
    if not answerable or not unanswerable:
        raise ValueError("calibration needs both answerable and unanswerable examples")
    x = np.array([features(*pair) for pair in [*answerable, *unanswerable]])
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
