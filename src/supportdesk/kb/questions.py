"""Question headings: a FAQ's own questions, each with a vector, matched against the customer's.

A FAQ entry is titled by the question it answers ("How do I change my Wi-Fi password?"), and
customers ask that question in their own words. Matching the customer's question against the
entry's *question* finds it where its answer shares few words with the question (on the public
FAQ set a chunk scored by 0.7 x its own cosine + 0.3 x its question's cosine ranks the right
entry higher: MRR 0.78 -> 0.80 on the half of the questions not used to choose 0.3; on manuals,
whose headings are topics, nothing changes). The vectors are made once per heading text at
build time and stored with the generation (its manifest), so loading an index embeds nothing.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from supportdesk.kb.chunking import Chunk

_ASKING = re.compile(
    r"^(what|what's|how|why|when|where|who|which|whom|whose|can|could|do|does|did|is|are|was|were|will|would|"
    r"should|shall|may|might|must|have|has|am|isn't|aren't|don't|doesn't|can't|won't)\b",
    re.IGNORECASE,
)


def is_question(text: str) -> bool:
    """A heading that asks something: ends with '?' or opens like a question, two words or more."""
    text = " ".join(text.split())
    return len(text.split()) >= 2 and (text.endswith("?") or bool(_ASKING.match(text)))


def question_of(chunk: Chunk) -> str | None:
    """The question a chunk answers, when its section (or its single-section file) is titled by one."""
    last = chunk.heading.split(" > ")[-1].strip() if chunk.heading else chunk.title.strip()
    last = " ".join(last.split())
    return last if last and is_question(last) else None


def question_share(chunks: Sequence[Chunk]) -> tuple[int, int]:
    """(sections titled by a question, sections): how much of the KB is a FAQ."""
    sections = {(c.source, c.heading): c for c in chunks}
    return sum(question_of(c) is not None for c in sections.values()), len(sections)


def mostly_faq(chunks: Sequence[Chunk]) -> bool:
    """At least half the sections are titled by a question: customers will ask those questions.

    Question vectors and a self-chosen fusion weight are used only on such a KB. In a KB where
    a FAQ page sits beside manuals (the sample), its entries' questions pulled loosely related
    entries into the shown chunks and one more off-topic question was answered instead of handed
    off (product KB hand-off 0.88 -> 0.84), so there they stay off."""
    return faq_share(*question_share(chunks))


def faq_share(asked: int, sections: int) -> bool:
    """The rule of :func:`mostly_faq`, for a caller that has counted already."""
    return sections > 0 and asked * 2 >= sections


@dataclass(frozen=True)
class QuestionVectors:
    """One vector per distinct question heading, and which chunk rows each belongs to."""

    texts: tuple[str, ...]
    matrix: np.ndarray
    """(len(texts), dim) float32, unit rows."""
    rows_of: tuple[tuple[int, ...], ...]
    """Per text, the chunk rows under that question."""
    question_at: np.ndarray
    """Per chunk row, the index of its question in ``texts`` (-1: none)."""

    @staticmethod
    def stored(data: object) -> dict[str, np.ndarray]:
        """text -> vector from a manifest's ``questions`` entry ({} when absent or malformed)."""
        if not isinstance(data, dict):
            return {}
        texts, dim, blob = data.get("texts"), data.get("dim"), data.get("vectors")
        if not isinstance(texts, list) or not isinstance(dim, int) or not isinstance(blob, str) or dim <= 0:
            return {}
        try:
            matrix = np.frombuffer(base64.b64decode(blob), dtype="<f4").reshape(len(texts), dim)
        except ValueError:
            return {}
        return {str(t): matrix[i].astype(np.float32) for i, t in enumerate(texts)}

    @classmethod
    def for_chunks(cls, chunks: Sequence[Chunk], vectors: dict[str, np.ndarray]) -> QuestionVectors | None:
        """Index ``chunks`` by the question vectors known for their headings (None: no question headings)."""
        texts: list[str] = []
        index: dict[str, int] = {}
        question_at = np.full(len(chunks), -1, dtype=np.int64)
        rows_of: list[list[int]] = []
        for row, chunk in enumerate(chunks):
            question = question_of(chunk)
            if question is None or question not in vectors:
                continue
            if question not in index:
                index[question] = len(texts)
                texts.append(question)
                rows_of.append([])
            question_at[row] = index[question]
            rows_of[index[question]].append(row)
        if not texts:
            return None
        matrix = np.stack([vectors[t] for t in texts]).astype(np.float32)
        return cls(tuple(texts), matrix, tuple(tuple(r) for r in rows_of), question_at)


def embed_questions(
    chunks: Sequence[Chunk],
    embed_documents: Callable[[list[str]], list[list[float]]],
    known: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Vectors for every question heading of ``chunks`` when the KB is mostly a FAQ (else none);
    those in ``known`` (the previous generation's) are reused, so a reload embeds only new questions."""
    known = known or {}
    if not mostly_faq(chunks):
        return {}
    wanted = sorted({q for q in (question_of(c) for c in chunks) if q is not None})
    missing = [q for q in wanted if q not in known]
    fresh = embed_documents(missing) if missing else []
    out = {q: known[q] for q in wanted if q in known}
    for q, vec in zip(missing, fresh, strict=True):
        out[q] = np.asarray(vec, dtype=np.float32)
    return out


def manifest_entry(vectors: dict[str, np.ndarray]) -> dict[str, object]:
    """The question vectors (at least one) as stored in a generation's signed manifest: texts and one
    base64 float32 blob."""
    matrix = np.stack(list(vectors.values())).astype("<f4")
    return {
        "texts": list(vectors),
        "dim": int(matrix.shape[1]),
        "vectors": base64.b64encode(np.ascontiguousarray(matrix).tobytes()).decode("ascii"),
    }
