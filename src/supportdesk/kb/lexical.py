"""BM25 over chunk texts, as a sparse matrix so a query costs one column slice.

Exact names matter in manuals ("AX-300", "5.2.1", "Settings > Wireless"), so the tokenizer
keeps hyphenated and dotted codes whole *and* adds their parts. Term weights are precomputed
(Okapi BM25 saturation and idf), so scoring is a sum of a few sparse columns: ~1 ms at 50k
chunks, where rank-bm25's per-document Python loop takes tens of milliseconds.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import sparse

_TOKEN = re.compile(r"[a-z0-9]+(?:[-./][a-z0-9]+)*")
_STOP = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "do", "does", "for", "from", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "no", "not", "of", "on", "or", "our", "so", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to", "was", "we", "what", "when", "where", "which", "who", "why", "will", "with", "you", "your"]
)


# Conversational filler: no evidence either way about whether the docs answer a message
# ("hey quick one, how long is the warranty?"). Left out of query coverage only; BM25 keeps them.
_FILLER = frozenset(
    ["hey", "hi", "hello", "hiya", "ok", "okay", "cool", "great", "thank", "thanks", "please", "pls", "sorry", "bother", "quick", "question", "one", "again", "just", "wonder", "wondering", "know", "tell", "want", "need", "help", "like", "really", "also", "still", "actually", "anyone", "someone", "guy", "folk", "mean", "got", "thing", "stuff", "there", "here", "now", "oh", "um", "uh", "hmm", "yes", "yeah",
     # the halves of contractions ("isn't" -> "isn", "t") and reflexive pronouns: never content
     "isn", "aren", "wasn", "weren", "don", "doesn", "didn", "hasn", "haven", "hadn", "won", "wouldn", "couldn",
     "shouldn", "myself", "yourself", "ourselves", "themselves", "btw",
     # intensifiers and sentence adverbs ("my screen turns off too quickly", "I already opened it")
     "too", "already", "very", "even", "maybe", "anyway", "currently", "probably", "basically", "literally",
     "honestly", "somehow"]
)
_REQUEST_WORDS = ("please", "explain", "describe", "detail", "detailed", "every", "exactly", "kindly", "walk", "through")
"""How a request is phrased, not what it is about ("Please explain in detail how ..."): no
evidence either way. Matched as the tokenizer spells them ('please' -> 'pleas')."""


_SUFFIXES = (("ies", "y"), ("sses", "ss"), ("xes", "x"), ("ches", "ch"), ("shes", "sh"), ("zes", "z"),
             ("ing", ""), ("ed", ""), ("s", ""))


def _stem(token: str) -> str:
    """A light English stemmer: 'routers'/'router', 'resetting'/'reset', and, by dropping a
    final 'e', 'devices'/'device' and 'configured'/'configure' meet at the same stem."""
    if len(token) <= 3 or token.isdigit():
        return token
    stem = token
    for suffix, keep in _SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            if suffix == "s" and token.endswith(("ss", "us", "is")):
                break  # 'access', 'status', 'analysis' are not plurals
            stem = token[: -len(suffix)] + keep
            if suffix in ("ing", "ed") and len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "ls":
                stem = stem[:-1]  # 'resetting' -> 'resett' -> 'reset' (but 'installed' -> 'install')
            break
    if len(stem) > 3 and stem.endswith("e"):
        stem = stem[:-1]
    return stem


def stem(word: str) -> str:
    """A lower-case word as the index spells it ("Satellites" → "satellit")."""
    return _stem(word.lower())


_FILLER_STEMS = frozenset(_stem(word) for word in _REQUEST_WORDS)
_MODALS = ("should", "would", "could", "might", "must", "shall", "am", "been", "being", "did")
"""Auxiliary and modal verbs: how a question is put ("How long should I leave it unplugged?"), never what
it asks about."""
_TIME_UNITS = ("second", "minute", "hour", "day", "week", "fortnight", "month", "year", "seconds", "minutes", "hours",
               "days", "weeks", "months", "years")
"""A length of time the customer gives ("a week after my order arrived"): their circumstance, which the sources
state in their own units ("within 14 days"), not a topic the docs could lack."""
_ANY_FILLER = frozenset([*_FILLER, *_MODALS]) \
    | frozenset(_stem(word) for word in (*_FILLER, *_REQUEST_WORDS, *_MODALS, *_TIME_UNITS)) \
    | frozenset(["t", "s", "m", "d", "ll", "re", "ve"])  # the tails of contractions: "don't" -> "don", "t"
_HOW_WHAT = re.compile(r"\bhow\s+([a-z]+)")


def question_phrase_terms(question: str) -> frozenset[str]:
    """The word that makes "how" a question of size, time or amount ("how much", "how long", "how soon",
    "how big"), as the tokenizer spells it: it says what kind of value is asked for, not which one, so a
    source that states the value in other words ("14 days", "30 seconds") lacks nothing."""
    return frozenset(_stem(m.group(1)) for m in _HOW_WHAT.finditer(question.lower()) if m.group(1) not in _STOP)


def base_forms(term: str) -> tuple[str, ...]:
    """The stems a derived word is made from, as the tokenizer spells them: an adverb ("slowly" → "slow",
    "easily" → "easy"), a comparative or superlative ("longer", "oldest" → "long", "old"), an agent noun
    ("charger" → "charge"). A source that says the base word says what the question asks in other words."""
    if len(term) < 6 or not term.isalpha():
        return ()
    forms = []
    if term.endswith("ily"):
        forms.append(term[:-3] + "y")
    elif term.endswith("ly"):
        forms.append(term[:-2])
    for suffix in ("est", "er"):
        if term.endswith(suffix):
            root = term[: -len(suffix)]
            forms += [root, root + "e", root[:-1] + "y" if root.endswith("i") else root]
            if len(root) > 3 and root[-1] == root[-2]:
                forms.append(root[:-1])  # "biggest" → "big"
    return tuple(dict.fromkeys(_stem(form) for form in forms if len(form) >= 3))


def is_misspelling(typed: str, word: str) -> bool:
    """Is ``typed`` one slip away from ``word`` (a letter wrong, missing, added or two swapped; two slips
    in a word of eight letters or more), with the same first letter? "acoount" → "account", "explian" →
    "explain"; words under four letters are never read as typos."""
    if typed == word or typed[:1] != word[:1] or len(word) < 4 or abs(len(typed) - len(word)) > 2:
        return False
    limit = 1 if min(len(typed), len(word)) < 8 else 2
    previous2: list[int] = []
    previous = list(range(len(word) + 1))
    for i, a in enumerate(typed, start=1):
        current = [i] + [0] * len(word)
        for j, b in enumerate(word, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b))
            if i > 1 and j > 1 and a == word[j - 2] and typed[i - 2] == b:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return False
        previous2, previous = previous, current
    return previous[-1] <= limit


_TYPO_CHECKED = tuple(sorted(word for word in _ANY_FILLER if len(word) >= 5))
"""Filler and request words long enough that a slip is still recognisable ("explian" is "explain")."""


def is_filler(term: str) -> bool:
    """A filler or request word, as the tokenizer spells it ("like" is read as "lik"): never the question
    word the docs are missing ("I don't like it, can I send it back?" was handed off as "not found:
    'like'"). Query coverage keeps its own, narrower list (``term_weights``), as calibrated."""
    return term in _ANY_FILLER or len(term) >= 5 and any(is_misspelling(term, word) for word in _TYPO_CHECKED)


def _terms(text: str) -> list[tuple[str, str]]:
    """(term, the word it came from) for every term of ``text``."""
    terms: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(text.lower()):
        word = match.group()
        parts = re.split(r"[-./]", word)
        if len(parts) > 1:
            terms.append((word, word))
            if "-" in word and "." not in word and "/" not in word:
                terms.append(("".join(parts), word))  # 'Wi-Fi' also as 'wifi', 'AX-300' as 'ax300'
        terms.extend((_stem(p), p) for p in parts if p and p not in _STOP)
    return terms


def tokenize(text: str) -> list[str]:
    return [term for term, _ in _terms(text)]


def analyzed(text: str) -> str:
    """``text`` as our BM25 sees it (stemmed, stop words out), spelled so that any word
    tokenizer keeps each term whole: a search engine that indexes this (Milvus's BM25
    function) scores with the same terms as ``BM25Index``. 'wi-fi' -> 'wix2dfi'."""
    return " ".join(term.replace("-", "x2d").replace(".", "x2e").replace("/", "x2f") for term in tokenize(text))


def surface_words(text: str) -> dict[str, str]:
    """Each term of ``text`` mapped to the word it was written as ('zigbe' -> 'zigbee')."""
    words: dict[str, str] = {}
    for term, word in _terms(text):
        words.setdefault(term, word)
    return words


class BM25Index:
    """Okapi BM25 (k1, b) over a fixed list of texts."""

    def __init__(self, texts: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.size = len(texts)
        self.vocabulary: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        counts: list[int] = []
        lengths = np.zeros(self.size, dtype=np.float32)
        for row, text in enumerate(texts):
            terms = Counter(tokenize(text))
            lengths[row] = sum(terms.values())
            for term, count in terms.items():
                col = self.vocabulary.setdefault(term, len(self.vocabulary))
                rows.append(row)
                cols.append(col)
                counts.append(count)
        tf = np.asarray(counts, dtype=np.float32)
        row_idx = np.asarray(rows, dtype=np.int64)
        col_idx = np.asarray(cols, dtype=np.int64)
        avg = float(lengths.mean()) if self.size else 1.0
        doc_freq = np.bincount(col_idx, minlength=len(self.vocabulary)).astype(np.float32)
        idf = np.log1p((self.size - doc_freq + 0.5) / (doc_freq + 0.5))
        self._idf = idf
        self._unseen_idf = float(np.log1p((self.size + 0.5) / 0.5))
        norm = k1 * (1 - b + b * lengths[row_idx] / max(avg, 1e-9))
        weights = idf[col_idx] * tf * (k1 + 1) / (tf + norm)
        self._matrix = sparse.csc_matrix(
            (weights, (row_idx, col_idx)), shape=(self.size, max(len(self.vocabulary), 1)), dtype=np.float32
        )
        self._rows: sparse.csr_matrix | None = None
        self._terms: list[str] = []

    def scores(self, query: str) -> np.ndarray:
        cols = [self.vocabulary[t] for t in tokenize(query) if t in self.vocabulary]
        if not cols or self.size == 0:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._matrix[:, cols].sum(axis=1)).ravel()

    @property
    def unseen_idf(self) -> float:
        """The idf of a term no chunk holds: the largest any term can have."""
        return self._unseen_idf

    def term_weights(self, query: str) -> dict[str, float]:
        """The query's distinct content terms with their idf; a term no chunk holds gets the highest idf."""
        weights: dict[str, float] = {}
        for term in tokenize(query):
            if term in _FILLER or term in _FILLER_STEMS:
                continue
            col = self.vocabulary.get(term)
            weights[term] = float(self._idf[col]) if col is not None else self._unseen_idf
        return weights

    def matched_terms(self, rows: Sequence[int], terms: Iterable[str]) -> list[frozenset[str]]:
        """For each text in ``rows``, which of ``terms`` it holds, itself or as its base word ("slowly" by
        "slow", "oldest" by "old", "longer" by "long"): read from the index, not by tokenizing the texts
        again."""
        terms = list(terms)
        known = [(term, self.vocabulary[form]) for term in terms for form in {term, *base_forms(term)}
                 if form in self.vocabulary]
        unseen = [term for term in terms if term not in self.vocabulary and term.isalpha() and len(term) >= 4]
        if not rows or not known and not unseen:
            return [frozenset() for _ in rows]
        found = [set() for _ in rows]
        if known:
            present = self._matrix[:, [col for _, col in known]][list(rows)].toarray() > 0
            found = [{term for (term, _), hit in zip(known, flags, strict=True) if hit} for flags in present]
        if unseen:  # a word no text holds: a typo of one the row holds ("acoount", "serached") is that word
            by_row = self._by_row()
            for held, row in zip(found, rows, strict=True):
                words = [self._terms[c] for c in by_row.indices[by_row.indptr[row]:by_row.indptr[row + 1]]]
                held.update(term for term in unseen if any(is_misspelling(term, word) for word in words))
        return [frozenset(held) for held in found]

    def _by_row(self) -> sparse.csr_matrix:
        """The matrix by rows, with the vocabulary by column (built on the first typo asked about)."""
        if self._rows is None:  # two threads may both build it: the same result, the names set first
            names = [""] * len(self.vocabulary)
            for term, col in self.vocabulary.items():
                names[col] = term
            self._terms = names
            self._rows = self._matrix.tocsr()
        return self._rows

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` best (row, score) pairs with a positive score, best first."""
        return top_rows(self.scores(query), k, positive=True)


def top_rows(scores: np.ndarray, k: int, positive: bool = False) -> list[tuple[int, float]]:
    """The ``k`` best (row, score) pairs of a score array, best first (ties in row order);
    ``positive`` drops rows that scored 0 or less."""
    k = min(k, len(scores))
    if k == 0:
        return []
    best = np.argpartition(-scores, k - 1)[:k]
    best = best[np.argsort(-scores[best], kind="stable")]
    return [(int(i), float(scores[i])) for i in best if not positive or scores[i] > 0]


def query_coverage(weights: dict[str, float], text: str | set[str]) -> float:
    """Share of the query's idf mass whose terms occur in ``text``, in [0, 1].

    An answer usually sits in a chunk that holds the question's distinctive words; a chunk
    that is merely on the topic misses some of them. Measured on the E-Manual (gold sections
    removed): this separates answerable from unanswerable questions where cosine alone does
    not (see kb/answerability.py).
    """
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    present = set(tokenize(text)) if isinstance(text, str) else text
    return sum(w for term, w in weights.items() if term in present) / total
