"""How well the knowledge gaps group questions by meaning, on labelled public sets.

Each set's questions are treated as unanswered questions and grouped by ``insights.clustering``
(no labels involved); the groups are scored against the set's labels with scikit-learn's
V-measure (a question alone is its own group). The clustering's two free parameters, the
neighbours of the k-NN graph and the modularity resolution ``gamma``, are chosen on half a of
faq_retrieval (by V-measure; ties to the smaller gamma, then the larger k) and reported on half b
of every set; each set's own half-a choice is shown too, and the whole set at the shipped
defaults (``clustering.NEIGHBOURS``, ``clustering.RESOLUTION``: what this choice gave). Halves
are a fixed random split (seed 0).

Labels: faq_retrieval the first FAQ id of each paraphrase (1,037 questions, 59 ids);
emanual TV and S10 the gold section; social_dev the intent; mtrag_dev the first gold passage.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from supportdesk.evaluation.datasets import SHARED, emanual, faq_retrieval, mtrag_dev
from supportdesk.insights.clustering import NEIGHBOURS, RESOLUTION, group

GAMMAS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
NEIGHBOUR_CHOICES = (3, 5, 10)
SEED = 0


@dataclass
class SetResult:
    name: str
    questions: int
    labels: int
    full_v: float
    full_groups: int
    half_b_v: float
    """Half b with the parameters chosen on faq_retrieval's half a."""
    own_params: str
    own_half_b_v: float
    """Half b with the parameters chosen on this set's own half a."""
    by_params: dict[str, dict[str, float]] = field(default_factory=dict)
    """"k=3 gamma=3.0" → {"a": V on half a, "b": V on half b}."""


@dataclass
class GapsEvaluation:
    params: str
    """The parameters chosen on faq_retrieval's half a."""
    defaults: str
    """The shipped defaults (the whole-set column)."""
    sets: list[SetResult]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def labelled_sets(folder: Path = SHARED) -> dict[str, tuple[list[str], list[str]]]:
    """name → (questions, labels) for every set present under ``folder``."""
    sets: dict[str, tuple[list[str], list[str]]] = {}
    if (folder / "faq_retrieval").is_dir():
        ds = faq_retrieval(folder / "faq_retrieval")
        sets["faq_retrieval"] = ([q.text for q in ds.questions], [q.gold[0] for q in ds.questions])
    for part in ("tv", "s10"):
        if (folder / "emanual" / f"questions_{part}.jsonl").exists():
            ds = emanual(folder / "emanual", part)
            sets[f"emanual_{part}"] = ([q.text for q in ds.questions], [q.gold[0] for q in ds.questions])
    if (folder / "social_dev" / "messages.jsonl").exists():
        rows = [json.loads(line) for line in (folder / "social_dev" / "messages.jsonl").read_text().splitlines()
                if line.strip()]
        sets["social_dev"] = ([r["message"] for r in rows], [r["intent"] for r in rows])
    if (folder / "mtrag_dev").is_dir():
        ds = mtrag_dev(folder / "mtrag_dev")
        found = [q for q in ds.questions if q.gold]
        sets["mtrag_dev"] = ([q.text for q in found], [q.gold[0] for q in found])
    return sets


def halves(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def v_measure(labels: list[str], groups: np.ndarray) -> float:
    from sklearn.metrics import v_measure_score

    return round(float(v_measure_score(labels, groups)), 4)


def _key(k: int, gamma: float) -> str:
    return f"k={k} gamma={gamma}"


def _pick(scores: dict[tuple[int, float], float]) -> tuple[int, float]:
    best = max(scores.values())
    return min((p for p, v in scores.items() if v >= best - 1e-9), key=lambda p: (p[1], -p[0]))


def evaluate_gaps(embed: Callable[[list[str]], list[list[float]]], folder: Path = SHARED,
                  progress: Callable[[str], None] = lambda s: None, only: set[str] | None = None) -> GapsEvaluation:
    """Every labelled set under ``folder`` (``only``: those named; faq_retrieval is always run: it picks gamma)."""
    sets = {name: found for name, found in labelled_sets(folder).items()
            if only is None or name in only or name == "faq_retrieval"}
    if "faq_retrieval" not in sets:
        raise FileNotFoundError(f"{folder / 'faq_retrieval'} not found: the public sets live in ../shared/datasets")
    runs: dict[str, dict[str, Any]] = {}
    for name, (texts, labels) in sets.items():
        progress(f"embedding {name} ({len(texts)} questions)")
        vectors = np.asarray(embed(texts), dtype=np.float64)
        a, b = halves(len(texts))
        la, lb = [labels[i] for i in a], [labels[i] for i in b]
        by_params: dict[tuple[int, float], dict[str, float]] = {}
        for k in NEIGHBOUR_CHOICES:
            for gamma in GAMMAS:
                by_params[(k, gamma)] = {"a": v_measure(la, group(vectors[a], gamma, k).labels),
                                         "b": v_measure(lb, group(vectors[b], gamma, k).labels)}
        full = group(vectors, RESOLUTION, NEIGHBOURS)
        runs[name] = {"texts": texts, "labels": labels, "by_params": by_params, "full": full}
    chosen = _pick({p: v["a"] for p, v in runs["faq_retrieval"]["by_params"].items()})
    results = []
    for name, run in runs.items():
        by_params = run["by_params"]
        own = _pick({p: v["a"] for p, v in by_params.items()})
        results.append(SetResult(
            name, len(run["texts"]), len(set(run["labels"])), v_measure(run["labels"], run["full"].labels),
            run["full"].n_groups, by_params[chosen]["b"], _key(*own), by_params[own]["b"],
            {_key(*p): v for p, v in by_params.items()}))
    return GapsEvaluation(_key(*chosen), _key(NEIGHBOURS, RESOLUTION), results)
