"""A claim-level check for what a model writes in a grounded answer.

The old support check counted shared words, and a number passed if it occurred anywhere in
a shown chunk: "the guest network is 16 devices [1]" passed because "(16 on the KR-180)" is
in the chunk. Here every checkable fact a sentence states — numbers with their units, prices,
durations, phone numbers, product codes, menu paths — must occur in *the cited sentence or
row that the sentence restates* (its best-matching unit of the cited source), and a sentence
fails outright when it echoes the prompt's instructions, uses a placeholder ("Press [2]",
"choose [A]"), talks about itself ("Sure, I can provide…"), repeats an earlier sentence or
is a fragment. Failed sentences are dropped, with the reason, for the sources panel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from supportdesk.answers import citations as cite
from supportdesk.answers.extract import Unit, codes, is_fragment, regions
from supportdesk.kb.lexical import tokenize

_PRICE = re.compile(r"[$£€]\s?\d+(?:[.,]\d+)?")
_PHONE = re.compile(r"(?<![\w.])\+?\d[\d ().-]{6,}\d(?![\w.])")
_QUANTITY = re.compile(r"\b\d+(?:[.,]\d+)?(?:\s*(?:-|to)\s*\d+(?:[.,]\d+)?)?\s*[%°]?\s*(?:[a-zA-Z]{1,12})?")
_MENU = re.compile(r"\b[A-Z][\w'-]*(?: [A-Z&][\w'-]*)*(?:\s*>\s*[A-Z][\w'-]*(?: [\w'&-]+){0,3})+")
_PLACEHOLDER = re.compile(
    r"\[[A-Za-z]\]|\[(?:\d{1,2})\]\s+(?:button|key|option|menu|on your)|"
    r"\b(?:press|choose|select|tap|click|enter|type|open|use)\s+(?:the\s+)?\[\d{1,2}\](?=\s+[a-z])|<[^<>\n]{1,30}>|"
    r"\bX{3,}\b|"
    r"\[(?:insert|your|product|name|number)[^\]]*\]", re.IGNORECASE)
_INNER_NAME = re.compile(r"(?<=[a-z0-9,;)] )[A-Z][A-Za-z0-9-]+(?: [A-Z][A-Za-z0-9-]+)*")
"""Capitalised words inside a sentence: the names it is about ("Certified Renewed", "Premium")."""
_META = re.compile(
    r"^\W*(?:sure|certainly|of course|absolutely)\b[^.]*\b(?:help|provide|answer|assist)|\bas an ai\b|"
    r"\bi (?:can|will|would be happy to) (?:provide|help you with|answer)\b|"
    r"\b(?:based on|according to|from) the (?:sources?|information|documentation|context|text) (?:provided|given|above)\b|"
    r"\bthe (?:sources?|context|documents?) (?:provided|given|above)\b|\bin the (?:sources?|context) (?:above|provided)\b",
    re.IGNORECASE)


def prompt_phrases(*prompts: str, n: int = 4) -> frozenset[tuple[str, ...]]:
    """The word 4-grams of the prompt's instructions: a sentence holding one echoes them."""
    grams: set[tuple[str, ...]] = set()
    for prompt in prompts:
        words = re.findall(r"[a-z]+", prompt.lower())
        grams.update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return frozenset(grams)


def facts(sentence: str) -> set[str]:
    """The checkable facts a sentence states, normalised for comparison."""
    text = cite.MARKER.sub(" ", sentence)
    text = re.sub(r"(?im)^\s*(?:step\s+)?\d{1,2}[.)]\s", " ", text)  # "1. Open" enumerates, states nothing
    found: set[str] = set()
    for match in _PRICE.finditer(text):
        found.add("price:" + re.sub(r"\s", "", match.group()).replace(",", ""))
    for match in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if len(digits) >= 7:
            found.add("phone:" + digits)
    text = _PHONE.sub(" ", _PRICE.sub(" ", text))
    for code in codes(text):
        found.add("code:" + code)
    for number in cite.numbers(text):
        found.add("number:" + number.replace(",", ""))
    for path in _MENU.findall(sentence):
        if ">" in path:
            found.add("menu:" + " > ".join(p.strip().lower() for p in path.split(">")))
    return found


_CLAUSE = re.compile(r"[();]|\s[—–]\s|,\s(?=(?:and|but|or|except|while)\b)")


def _qualifiers(text: str) -> set[str]:
    """Model codes and regions that a clause is about ("16 on the KR-180" → {kr180})."""
    return codes(text) | {"region:" + r for r in regions(text)}


def _value_of(fact: str) -> str:
    return fact.split(":", 1)[1].lstrip("$£€")


def _qualified_match(fact: str, unit_text: str, sentence_qualifiers: set[str]) -> bool:
    """The number occurs in a clause of the unit whose own subject (a model code, a country),
    if it names one, is one the sentence names too: "(16 on the KR-180)" backs "16" only in a
    sentence about the KR-180."""
    value = _value_of(fact)
    for clause in _CLAUSE.split(unit_text):
        stated = {n.lstrip("$£€") for n in cite.numbers(clause)} | {
            re.sub(r"\s", "", p).replace(",", "").lstrip("$£€") for p in _PRICE.findall(clause)}
        if not any(n == value or n.startswith(value + ".") for n in stated):
            continue
        # "30-day" is the number itself, not a subject
        own = {q for q in _qualifiers(clause) if not re.match(rf"{re.escape(value)}(?!\d)", q)}
        if not own or own & sentence_qualifiers:
            return True
    return False


def _in_unit(fact: str, unit_text: str, unit_facts: set[str], sentence_qualifiers: set[str]) -> bool:
    kind = fact.partition(":")[0]
    if kind == "menu":
        flat = " > ".join(p.strip().lower() for p in unit_text.split(">"))
        return fact.partition(":")[2] in flat
    if kind in ("number", "price"):
        return _qualified_match(fact, unit_text, sentence_qualifiers)
    return fact in unit_facts


@dataclass
class ClaimCheck:
    sentence: str
    kept: bool
    reason: str = ""
    unit: Unit | None = None


@dataclass
class ClaimReport:
    text: str
    checks: list[ClaimCheck] = field(default_factory=list)

    @property
    def removed(self) -> list[dict[str, str]]:
        return [{"sentence": c.sentence, "reason": c.reason} for c in self.checks if not c.kept]

    @property
    def kept_factual(self) -> int:
        return sum(1 for c in self.checks if c.kept and c.unit is not None)


def _normal(sentence: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", cite.MARKER.sub(" ", sentence).lower()))


def _check_facts(sentence: str, candidates: list[Unit], unit_facts: dict[int, set[str]],
                 support_min: float) -> tuple[bool, str, Unit | None]:
    """(kept, why not, the unit it restates): every fact of the sentence must be in the one
    unit of the cited sources that it restates best."""
    stated = facts(sentence)
    content = cite.content_words(sentence)
    if not content or not candidates:
        return (False, "states facts with no source", None) if stated else (True, "", None)
    mine = _qualifiers(sentence)

    def overlap(u: Unit) -> float:
        return len(content & set(tokenize(u.text))) / len(content)

    def backed(u: Unit, f: str) -> bool:
        return _in_unit(f, u.text, unit_facts[id(u)], mine)

    best = max(candidates, key=lambda u: (sum(backed(u, f) for f in stated), overlap(u)))
    missing = sorted(f.split(":", 1)[1] for f in stated if not backed(best, f))
    if missing:
        return False, f"states {', '.join(missing)}, which the cited sentence does not", None
    # The same subject: a name the sentence gives its fact ("Certified Renewed") must be the
    # backing sentence's too, unless most of the sources name it (the company, the product).
    names = {t for t in tokenize(" ".join(_INNER_NAME.findall(sentence)))}
    common = {t for t in names if sum(t in set(tokenize(u.text)) for u in candidates) * 2 > len(candidates) > 2}
    absent = sorted(names - common - set(tokenize(f"{best.text} {best.context}")))
    if stated and absent:
        return False, f"gives its facts to {', '.join(absent)}, which the cited sentence does not name", None
    if overlap(best) >= support_min:
        return True, "", best
    if stated:
        return False, "its facts are not in a sentence of the sources it resembles", None
    return True, "", None  # general wording, no fact: kept as framing


def check(answer: str, units: list[Unit], echo: frozenset[tuple[str, ...]], support_min: float = 0.5) -> ClaimReport:
    """Check each sentence of ``answer`` against the units of the sources it cites."""
    report = ClaimReport(text="")
    seen: set[str] = set()
    kept: list[str] = []
    by_source: dict[int, list[Unit]] = {}
    for unit in units:
        by_source.setdefault(unit.source, []).append(unit)
    unit_facts = {id(u): facts(u.text) for u in units}
    for sentence in cite.split_sentences(answer):
        normal = _normal(sentence)
        words = re.findall(r"[a-z]+", normal)
        reason = ""
        if not normal:
            continue
        if normal in seen:
            reason = "repeats an earlier sentence"
        elif any(tuple(words[i:i + 4]) in echo for i in range(len(words) - 3)):
            reason = "repeats the prompt's instructions"
        elif _PLACEHOLDER.search(sentence):
            reason = "uses a placeholder instead of a name"
        elif _META.search(sentence):
            reason = "talks about the answer instead of answering"
        elif is_fragment(sentence):
            reason = "is not a complete sentence"
        check = ClaimCheck(sentence, not reason, reason)
        if not reason:
            markers = [int(m) for m in cite.MARKER.findall(sentence)]
            candidates = [u for n in markers for u in by_source.get(n, [])] or list(units)
            check.kept, check.reason, check.unit = _check_facts(sentence, candidates, unit_facts, support_min)
        report.checks.append(check)
        seen.add(normal)
        if check.kept:
            kept.append(sentence)
    report.text = " ".join(kept)
    return report
