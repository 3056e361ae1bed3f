"""Measuring the router and the answers: route accuracy, answer quality, citations, abstention.

Used by ``supportdesk eval`` and ``bench/answers.py``. The E-Manual part builds its own
temporary KB from the Samsung TV manual (each section one document), samples questions
deterministically, and compares three systems on the same questions:

* brand voice only: the model answers without any retrieved text;
* grounded: the full pipeline on the grounded route (sources, citations, checks, fallback);
* extractive: the best-matching sentences of the retrieved sources, quoted.

Unanswerable questions are made by removing from the index every section that holds the
answer of a second sample (``evaluation.abstention``); a good system hands those off and answers
the others. Questions come from the evaluation half of the manual, never the half the
hand-off was calibrated on.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from supportdesk.answers.pipeline import AnswerPipeline, extractive_answer
from supportdesk.answers.prompts import select_sources, voice_system
from supportdesk.evaluation.abstention import (
    EMANUAL_SAMPLE,
    EVAL_SAMPLES,
    build_manual_kb,
    calibrate_emanual,
    sample_questions,
)
from supportdesk.jsonl import read_jsonl, require_text
from supportdesk.kb.index import KnowledgeBase
from supportdesk.models.base import ChatBackend, ChatMessage, GenerationOptions
from supportdesk.router.router import Calibration, Router, calibrate
from supportdesk.settings import Settings

_WORD = re.compile(r"[a-z0-9]+")


def _tokens(text: str) -> list[str]:
    return _WORD.findall(re.sub(r"\[\d+\]", " ", text.lower()))


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = _tokens(prediction), _tokens(reference)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    pred, ref = _tokens(prediction), _tokens(reference)
    if not pred or not ref:
        return 0.0
    previous = [0] * (len(ref) + 1)
    for p in pred:
        current = [0]
        for j, r in enumerate(ref, start=1):
            current.append(previous[j - 1] + 1 if p == r else max(previous[j], current[j - 1]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


# -- routes ---------------------------------------------------------------------------------


def load_route_set(path: Path) -> list[dict[str, str]]:
    rows = read_jsonl(path)
    for number, row in rows:
        require_text(path, number, row, ("text", "route", "split"))
        if row["route"] not in ("voice", "grounded"):
            raise ValueError(f"{path}:{number}: field 'route' must be 'voice' or 'grounded', not '{row['route']}'")
    return [row for _, row in rows]


def route_features(router: Router, kb: KnowledgeBase, rows: list[dict[str, str]]) -> np.ndarray:
    features = []
    for row in rows:
        result = kb.search(row["text"])
        features.append(router.signals(row["text"], result.vector, result.best_score).features())
    return np.asarray(features)


@dataclass
class RouteReport:
    calibration: Calibration | None
    heldout_accuracy: float
    heldout_n: int
    confusion: dict[str, int]
    mistakes: list[dict[str, Any]] = field(default_factory=list)


def evaluate_routes(
    router: Router, kb: KnowledgeBase, rows: list[dict[str, str]], fit: bool = False,
    target_escalation: float | None = None,
) -> RouteReport:
    """Held-out accuracy; with ``fit``, first calibrate weights and threshold on the calibration split."""
    features = route_features(router, kb, rows)
    labels = np.array([row["route"] == "grounded" for row in rows])
    split = np.array([row["split"] for row in rows])
    calibration = None
    if fit:
        mask = split == "calibration"
        calibration = calibrate(features[mask], labels[mask], target_escalation)
        router.weights = np.asarray(calibration.weights)
        router.threshold = calibration.threshold
    held = split == "heldout"
    z = features @ router.weights
    predicted = 1 / (1 + np.exp(-np.clip(z, -60, 60))) >= router.threshold
    confusion = Counter(
        f"{'grounded' if truth else 'voice'}→{'grounded' if guess else 'voice'}"
        for truth, guess in zip(labels[held], predicted[held], strict=True)
    )
    mistakes = [
        {"text": rows[i]["text"], "expected": rows[i]["route"]}
        for i in np.where(held & (predicted != labels))[0]
    ]
    return RouteReport(calibration, float((predicted[held] == labels[held]).mean()), int(held.sum()), dict(confusion), mistakes)


# -- E-Manual answers ------------------------------------------------------------------------


@dataclass
class SystemScores:
    f1: list[float] = field(default_factory=list)
    rouge: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        return {"token_f1": statistics.mean(self.f1) if self.f1 else 0.0,
                "rouge_l": statistics.mean(self.rouge) if self.rouge else 0.0, "n": len(self.f1)}


@dataclass
class AnswerReport:
    systems: dict[str, dict[str, float]]
    markers_total: int
    markers_invalid: int
    supported_rates: list[float]
    fallback_rate: float
    answered_rate: float
    abstained_unanswerable_rate: float
    ttft_ms_p50: float | None
    unanswerable_n: int = 0
    adjudicated_n: int = 0
    abstained_adjudicated_rate: float | None = None
    answerability: dict[str, Any] = field(default_factory=dict)
    """The hand-off model calibrated on the manual's calibration half, and its retrieval-only
    rates on the evaluation half (more answerable questions than the generation run)."""

    @property
    def marker_validity(self) -> float | None:
        return None if not self.markers_total else 1 - self.markers_invalid / self.markers_total


def evaluate_emanual(
    settings: Settings, backend: ChatBackend, dataset: Path, n: int = 30, max_tokens: int = 96,
    progress: Any = None, adjudications: dict[str, dict[str, str]] | None = None, answer_rate: float = 0.9,
) -> AnswerReport:
    """Three systems on ``n`` answerable questions, and hand-off on the unanswerable sample.

    The hand-off is first calibrated on the manual's calibration half, as a deployment on this
    manual would be (``calibrate_emanual``); everything here runs on the evaluation half.
    """
    bench = calibrate_emanual(settings, dataset, adjudications, answer_rate)
    adjudication = (adjudications or {}).get(EVAL_SAMPLES[0][0], {})
    answerable, unanswerable, removed = sample_questions(dataset, part="eval", **EMANUAL_SAMPLE)
    answerable = answerable[:n]
    router = settings.router.model_copy(
        update={"answerability_weights": bench.fit.weights, "abstain_below": bench.fit.threshold}
    )
    kb = bench.heldout_kbs[0] or build_manual_kb(settings, dataset, removed)  # sample A's index, built once
    eval_settings = kb.settings.model_copy(update={"router": router})
    pipeline = AnswerPipeline(eval_settings, kb, backend)
    pipeline.router.threshold = 0.0  # every E-Manual question is a product question: measure grounding
    options = GenerationOptions(max_tokens=max_tokens, temperature=0.0)
    cfg = eval_settings.router

    systems = {"brand voice only": SystemScores(), "grounded": SystemScores(), "extractive": SystemScores()}
    markers_total = markers_invalid = fallbacks = answered = 0
    supported: list[float] = []
    ttfts: list[float] = []
    total = len(answerable) + len(unanswerable)
    for done, q in enumerate(answerable, start=1):
        if progress:
            progress(done, total, q["question"])
        reference = q["answer"]
        voice = backend.generate([ChatMessage("system", voice_system(pipeline.brand)), ChatMessage("user", q["question"])],
                                 options)
        voice_text = voice.run()
        result = pipeline.ask(q["question"], options=options).run()
        search = kb.search(q["question"], k=cfg.context_chunks)
        extract = extractive_answer(q["question"], select_sources(search.hits, cfg.context_chunks, cfg.context_chars))
        for name, text in (("brand voice only", voice_text), ("grounded", result.answer), ("extractive", extract)):
            systems[name].f1.append(token_f1(text, reference))
            systems[name].rouge.append(rouge_l(text, reference))
        if not result.abstained:
            answered += 1
        markers_total += result.markers_total
        markers_invalid += result.markers_invalid
        fallbacks += result.fallback == "extractive"
        if result.supported_rate is not None:
            supported.append(result.supported_rate)
        if "ttft_ms" in result.timings:
            ttfts.append(result.timings["ttft_ms"])
    abstained = 0
    adjudicated: list[bool] = []
    for done, q in enumerate(unanswerable, start=len(answerable) + 1):
        if progress:
            progress(done, total, q["question"])
        result = pipeline.ask(q["question"], options=options).run()
        abstained += result.abstained
        if adjudication.get(q["qid"]) == "unanswerable":
            adjudicated.append(result.abstained)
    return AnswerReport(
        systems={name: scores.summary() for name, scores in systems.items()},
        markers_total=markers_total,
        markers_invalid=markers_invalid,
        supported_rates=supported,
        fallback_rate=fallbacks / max(len(answerable), 1),
        answered_rate=answered / max(len(answerable), 1),
        abstained_unanswerable_rate=abstained / max(len(unanswerable), 1),
        ttft_ms_p50=statistics.median(ttfts) if ttfts else None,
        unanswerable_n=len(unanswerable),
        adjudicated_n=len(adjudicated),
        abstained_adjudicated_rate=sum(adjudicated) / len(adjudicated) if adjudicated else None,
        answerability={"weights": bench.fit.weights, "abstain_below": bench.fit.threshold,
                       "retrieval_only": bench.heldout},
    )
