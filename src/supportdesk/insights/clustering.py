"""Group questions by meaning: hierarchical clustering of sentence vectors, cut without labels.

1. The vectors are centred on their mean and re-normalised when there are enough of them
   (``CENTRE_FROM``): a team's questions share their topic ("the router", "COVID"), and that
   shared direction dominates MiniLM's cosine; removing it leaves what tells them apart
   (faq_retrieval, best cut by label: V-measure 0.734 raw → 0.766 centred).
2. Average-linkage agglomerative clustering of the cosine distances (SciPy's ``linkage``).
3. The cut: every height of the dendrogram is tried, and the one whose clusters have the highest
   modularity on the questions' k-nearest-neighbour graph (cosine-weighted, k = ``NEIGHBOURS``)
   wins. Modularity compares the weight inside clusters with what random wiring of the same
   degrees would put there, so it needs no labels and no distance picked by hand; k and its
   resolution ``gamma`` (1 is the standard definition; higher keeps groups smaller) are the free
   parameters, and ``supportdesk eval-gaps`` shows how they were chosen (on one half of a
   labelled set) and what they give on the other half.

Fewer than ``CENTRE_FROM`` questions are cut at an average cosine of 0.5 instead
(``SMALL_SET_MAX_DISTANCE``): too few for a graph criterion. A question that joins nothing is its own group (a singleton gap). Deterministic: the same
questions give the same groups. Nothing here imports Textual or the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CENTRE_FROM = 30
"""Fewer questions than this are clustered on the raw vectors: their mean is not a topic yet."""
NEIGHBOURS = 3
RESOLUTION = 3.0
"""The k-NN graph's k and modularity's resolution: chosen on half a of faq_retrieval (``supportdesk
eval-gaps``: V-measure 0.773 there, 0.777 on half b; k 10 and the standard resolution 1 gave 0.747 / 0.754)."""
SMALL_SET_MAX_DISTANCE = 0.5
"""Below ``CENTRE_FROM`` questions a k-NN graph is too small for modularity to mean much (three
questions make a triangle, and one group always wins): there the dendrogram is cut at an average
cosine of 0.5 (MiniLM puts paraphrases above it, different topics below)."""
MAX_CUTS = 400
"""At most this many dendrogram heights are scored (quantiles of them for a large history)."""


@dataclass
class Grouping:
    labels: np.ndarray
    """One group number per question, 0..n_groups-1, numbered by first appearance."""
    threshold: float
    """The cosine distance (average linkage) at which the dendrogram was cut."""
    modularity: float
    centred: bool

    @property
    def n_groups(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0


def _normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def prepare(vectors: np.ndarray) -> tuple[np.ndarray, bool]:
    """The vectors the clustering compares: centred and re-normalised from ``CENTRE_FROM`` questions."""
    vectors = _normalise(np.asarray(vectors, dtype=np.float64))
    if len(vectors) >= CENTRE_FROM:
        return _normalise(vectors - vectors.mean(axis=0)), True
    return vectors, False


def _renumber(labels: np.ndarray) -> np.ndarray:
    order: dict[int, int] = {}
    return np.array([order.setdefault(int(label), len(order)) for label in labels], dtype=int)


def _knn_edges(similarity: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The symmetric k-nearest-neighbour graph: (i, j, weight) with i < j, weight the cosine (≥ 0)."""
    n = len(similarity)
    masked = similarity - np.eye(n) * 10.0
    nearest = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    rows = np.repeat(np.arange(n), k)
    cols = nearest.ravel()
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    weight = np.clip(similarity[rows, cols], 0.0, None)
    keys = lo * n + hi
    order = np.lexsort((-weight, keys))
    keys, lo, hi, weight = keys[order], lo[order], hi[order], weight[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return lo[first], hi[first], weight[first]


def modularity(labels: np.ndarray, edges: tuple[np.ndarray, np.ndarray, np.ndarray], n: int,
               gamma: float = RESOLUTION) -> float:
    i, j, w = edges
    total = float(w.sum())
    if total <= 0:
        return 0.0
    degree = np.bincount(i, w, n) + np.bincount(j, w, n)
    inside = float(w[labels[i] == labels[j]].sum())
    per_group = np.bincount(labels, degree)
    return inside / total - gamma * float(((per_group / (2 * total)) ** 2).sum())


def group(vectors: np.ndarray | list[list[float]], gamma: float = RESOLUTION, neighbours: int = NEIGHBOURS) -> Grouping:
    """Group the questions' vectors (one row each); see the module's docstring."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    array = np.asarray(vectors, dtype=np.float64)
    n = len(array)
    if n == 0:
        return Grouping(np.zeros(0, dtype=int), 0.0, 0.0, False)
    if n == 1:
        return Grouping(np.zeros(1, dtype=int), 0.0, 0.0, False)
    points, centred = prepare(array)
    similarity = points @ points.T
    distance = np.clip(1.0 - similarity, 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="average")
    edges = _knn_edges(similarity, min(neighbours, n - 1))
    heights = np.unique(tree[:, 2])
    # A cut between two merge heights keeps the lower merge: the candidates are the midpoints
    # (and below the first merge: every question alone).
    cuts = np.concatenate([[heights[0] / 2], (heights[:-1] + heights[1:]) / 2, [heights[-1] + 1e-6]])
    if not centred:
        labels = fcluster(tree, SMALL_SET_MAX_DISTANCE, criterion="distance") - 1
        return Grouping(_renumber(labels), SMALL_SET_MAX_DISTANCE, modularity(labels, edges, n, gamma), False)
    if len(cuts) > MAX_CUTS:
        cuts = np.unique(np.quantile(cuts, np.linspace(0, 1, MAX_CUTS)))
    best: tuple[float, float, np.ndarray] | None = None
    for cut in cuts:
        labels = fcluster(tree, cut, criterion="distance") - 1
        score = modularity(labels, edges, n, gamma)
        if best is None or score > best[0] + 1e-12:
            best = (score, float(cut), labels)
    assert best is not None
    return Grouping(_renumber(best[2]), best[1], best[0], centred)
