"""After generation: check every citation marker and how well each sentence is supported.

A marker ``[n]`` is valid when ``n`` is one of the sources shown to the model; invalid ones
are removed (and counted). A sentence is supported when enough of its content words occur
in one of the shown sources (lexical overlap: fast, transparent, and exactly what
"the docs say so" means for names and menu paths) *and* every number it states occurs in
that source: "your 45-day window lasts 6 weeks" shares its words with the returns policy,
but the policy never says 6.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from supportdesk.kb.lexical import tokenize

MARKER = re.compile(r"\[(\d{1,2})\]")
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")
# Greetings, thanks and sign-offs in the house voice ("Happy browsing! — Acme Care") state no facts: nothing to support.
_SOCIAL = re.compile(
    r"^\W*(hi|hello|hey)\b.{0,60}\b(thanks|thank you)\b|^\W*happy \w+\W*(?:[—–-].{0,40})?$|^\W*[—–-]\s*\w[\w ,]{0,40}$"
    r"|^\W*(thanks|thank you|you're welcome|"
    r"my pleasure|anytime|glad (we|i) could help)\b|let (us|me) know|anything else",
    re.IGNORECASE,
)
_GENERIC = frozenset(
    ["please", "thank", "thanks", "help", "happy", "hi", "hello", "sorry", "care", "customer", "let", "know", "also", "just", "sure", "glad", "question", "colleague", "source", "sources", "answer", "docs", "documentation", "need", "here", "great"]
)


@dataclass
class SentenceCheck:
    text: str
    markers: list[int]
    best_source: int | None
    support: float
    unsourced_numbers: list[str] = field(default_factory=list)

    @property
    def supported(self) -> bool:
        return self.best_source is not None


@dataclass
class CitationReport:
    text: str  # the answer with invalid markers removed
    markers_total: int = 0
    markers_invalid: int = 0
    sentences: list[SentenceCheck] = field(default_factory=list)

    @property
    def markers_valid_rate(self) -> float | None:
        return None if self.markers_total == 0 else 1 - self.markers_invalid / self.markers_total

    @property
    def supported_rate(self) -> float | None:
        factual = [s for s in self.sentences if s.support >= 0]
        if not factual:
            return None
        return sum(s.supported for s in factual) / len(factual)

    @property
    def cited_sources(self) -> list[int]:
        seen: list[int] = []
        for sentence in self.sentences:
            for n in sentence.markers + ([sentence.best_source] if sentence.best_source else []):
                if n not in seen:
                    seen.append(n)
        return seen


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


# What a brand-voice reply must not state without a source: numbers (phone numbers, prices,
# versions, dates, days), e-mail addresses and links. The small model invents them.
_UNCHECKED_FACT = re.compile(r"\d|@|https?://|\bwww\.|\b[a-z0-9-]+\.(?:com|net|org|example|io)\b", re.IGNORECASE)


def strip_unchecked_facts(text: str) -> tuple[str, list[str]]:
    """Drop the sentences of an unsourced (brand-voice) reply that state checkable facts;
    return the kept text and the dropped sentences (for the audit trail)."""
    kept, dropped = [], []
    for sentence in split_sentences(text):
        (dropped if _UNCHECKED_FACT.search(sentence) else kept).append(sentence)
    return " ".join(kept), dropped


_ENUMERATION = re.compile(r"(?im)^\s*(?:step\s+)?\d{1,2}[.)]\s")


def numbers(text: str) -> set[str]:
    """The numbers a text states, thousands separators dropped ('1,600' == '1600'); list
    enumerations ("1. Open Settings") and citation markers are not statements."""
    text = _ENUMERATION.sub(" ", MARKER.sub(" ", text))
    return {n.replace(",", "").rstrip(".:") for n in _NUMBER.findall(text)}


_BRAND_WORDS: ContextVar[frozenset[str]] = ContextVar("supportdesk_brand_words", default=frozenset())
"""The brand's own name words (its assistant's name, its company's first word): in every answer and
most sources, so no evidence either way. Set by the pipeline around its checks (``brand_words``)."""


_SIGNATURE: ContextVar[re.Pattern[str] | None] = ContextVar("supportdesk_signature", default=None)


@contextmanager
def brand_words(words: Iterable[str], signature: str = "") -> Iterator[None]:
    """Count ``words`` (the brand profile's name words) as generic in the checks run inside, and a
    sentence that ends with ``signature`` (its assistant's name: "... from Acme Care.") as social."""
    token = _BRAND_WORDS.set(frozenset(tokenize(" ".join(words))))
    signed = _SIGNATURE.set(re.compile(rf"{re.escape(signature)}\W*$", re.IGNORECASE) if signature.strip() else None)
    try:
        yield
    finally:
        _BRAND_WORDS.reset(token)
        _SIGNATURE.reset(signed)


def _social(sentence: str) -> bool:
    signature = _SIGNATURE.get()
    return bool(_SOCIAL.search(sentence) or (signature is not None and signature.search(sentence)))


def content_words(text: str) -> set[str]:
    generic = _GENERIC | _BRAND_WORDS.get()
    return {t for t in tokenize(MARKER.sub(" ", text)) if t not in generic and len(t) > 1}


def check(answer: str, sources: dict[int, str], support_min: float) -> CitationReport:
    """Validate markers against ``sources`` ({number: text}) and score each sentence's support."""
    report = CitationReport(text=answer)
    found = [int(m) for m in MARKER.findall(answer)]
    report.markers_total = len(found)
    report.markers_invalid = sum(1 for n in found if n not in sources)
    # Small models echo the source header ("[2] (Guide > Section)"): keep the marker, drop the echo.
    answer = re.sub(r"(\[\d{1,2}\])\s*\([^()\n]{0,160}\)", r"\1", answer)
    report.text = re.sub(r"\s+([.,;!?])", r"\1", MARKER.sub(lambda m: m.group(0) if int(m.group(1)) in sources else "", answer))
    source_words = {n: content_words(text) for n, text in sources.items()}
    source_numbers = {n: numbers(text) for n, text in sources.items()}
    for sentence in split_sentences(report.text):
        words = content_words(sentence)
        markers = [int(m) for m in MARKER.findall(sentence)]
        if len(words) < 2 or _social(sentence):  # greetings, sign-offs: nothing to support
            report.sentences.append(SentenceCheck(sentence, markers, None, -1.0))
            continue
        # Prefer the sources the sentence cites; fall back to any shown source.
        candidates = [n for n in markers if n in sources] or list(sources)
        stated = numbers(sentence)
        backed = [n for n in candidates if stated <= source_numbers[n]]
        scored = [(len(words & source_words[n]) / len(words), n) for n in backed]
        support, best = max(scored, default=(0.0, None))
        missing = sorted(stated - set().union(*(source_numbers[n] for n in candidates))) if not backed else []
        report.sentences.append(
            SentenceCheck(sentence, markers, best if support >= support_min else None, support, missing)
        )
    return report


def add_missing_markers(report: CitationReport) -> tuple[str, int]:
    """Give every supported sentence that carries no marker the ``[n]`` of the source that
    supports it, so an agent can audit every claim; returns the text and how many were added.

    The marker goes before the sentence's closing punctuation ("... the satellite [2]."). Sentences
    that state no fact (greetings, sign-offs) and unsupported ones are left as they are.
    """
    text = report.text
    added = 0
    cursor = 0
    for sentence in report.sentences:
        where = text.find(sentence.text, cursor)
        if where < 0:
            continue
        end = where + len(sentence.text)
        cursor = end
        if sentence.markers or sentence.best_source is None:
            continue
        body = sentence.text.rstrip()
        closing = re.search(r"[.!?:;]+[\"')\]]*$", body)
        cut = closing.start() if closing else len(body)
        marked = f"{body[:cut].rstrip()} [{sentence.best_source}]{body[cut:]}"
        text = text[:where] + marked + text[where + len(body):]
        cursor = where + len(marked)
        sentence.markers = [sentence.best_source]
        added += 1
    report.text = text
    return text, added
