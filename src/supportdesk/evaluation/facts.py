"""A labelled fact set: does an answer state the right fact, a wrong one, or none?

``eval/fact_set.jsonl`` holds plain customer questions about the sample KB, one per line::

    {"id": "f001", "half": "a"|"b", "question": ..., "answer": reference answer sentence,
     "fact": regex for the key fact, "wrong": [regexes for plausible wrong values],
     "source": path of the document holding it (relative to the KB), "type": question type}

Regexes are Python, matched case-insensitively against the *normalised* answer text
(:func:`normalise`: citation markers, Markdown emphasis and HTML entities removed, dashes
made ``-``, whitespace collapsed, so a hard line break never hides a fact).

Scoring one answer (:func:`score_answer`), in this order:

1. ``handoff``: the answer's kind is ``handoff`` or ``clarify`` (whatever its text says);
2. ``wrong``: any ``wrong`` pattern matches, even when the fact matches too: an answer that
   states the AX3000 adapter at $19 *and* at $29 leaves the customer with a wrong price.
   The set's wrong patterns are written so that a neighbouring value labelled as such ("16 on
   the KR-180", "$29 for the Pro") does not match;
3. ``right``: the fact pattern matches;
4. ``wrong``: the answer states a *different value of the asked type* (see ``VALUE_TYPES``:
   a price or percentage for ``how_much``, a duration for ``how_long``, a plain count for
   ``how_many``, a date or clock time for ``when``, a phone number for ``phone``, a version
   number for ``which_version``). Conservative on purpose: only when the fact is absent; only
   values of exactly that type (a count ignores numbers with a unit, list numbering, codes
   such as KR-300, numbers inside versions and numbers after a capitalised word, as in
   "Wi-Fi 7" or "Android 16"); a value that the reference answer or the
   question itself states never counts. ``what_means``, ``how_to`` and ``which`` answers are
   only wrong through their patterns;
5. ``missing``: none of the above.
"""

from __future__ import annotations

import html
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supportdesk.jsonl import read_jsonl

TYPES = ("how_many", "how_much", "how_long", "when", "phone", "what_means", "how_to", "which_version", "which")
VERDICTS = ("right", "wrong", "handoff", "missing")
HALVES = ("a", "b")
HANDOFF_KINDS = ("handoff", "clarify")
FIELDS = ("id", "half", "question", "answer", "fact", "wrong", "source", "type")

MARKER = re.compile(r"\[\d+(?:\s*[,;-]\s*\d+)*\]")
_DASHES = re.compile(r"[\u2010-\u2015\u2212]")


def normalise(text: str) -> str:
    """The text regexes are matched on: no markers, emphasis or entities; one space between words."""
    text = html.unescape(text)
    text = MARKER.sub(" ", text)
    text = text.replace("**", "").replace("__", "").replace("`", "")
    text = _DASHES.sub("-", text).replace("\u00a0", " ")
    return " ".join(text.split())


@dataclass(frozen=True)
class FactItem:
    id: str
    half: str
    question: str
    answer: str
    fact: re.Pattern[str]
    wrong: tuple[re.Pattern[str], ...]
    source: str
    type: str
    line: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "half": self.half, "question": self.question, "answer": self.answer,
                "fact": self.fact.pattern, "wrong": [w.pattern for w in self.wrong], "source": self.source,
                "type": self.type}


def _compile(path: Path, number: int, name: str, pattern: object) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError(f"{path}:{number}: field '{name}' must be a non-empty regex string")
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"{path}:{number}: field '{name}' is not a valid regex ({exc})") from exc


def load_fact_set(path: Path) -> list[FactItem]:
    """Read and validate the set; any problem is a ValueError naming the file, line and field."""
    if not path.exists():
        raise ValueError(f"{path}: fact set not found")
    items: list[FactItem] = []
    seen: dict[str, int] = {}
    for number, row in read_jsonl(path):
        for key in FIELDS:
            if key not in row:
                raise ValueError(f"{path}:{number}: field '{key}' is missing")
        for key in ("id", "question", "answer", "source"):
            if not isinstance(row[key], str) or not row[key].strip():
                raise ValueError(f"{path}:{number}: field '{key}' must be non-empty text")
        if row["half"] not in HALVES:
            raise ValueError(f"{path}:{number}: field 'half' must be 'a' or 'b', not {row['half']!r}")
        if row["type"] not in TYPES:
            raise ValueError(f"{path}:{number}: field 'type' must be one of {', '.join(TYPES)}, not {row['type']!r}")
        if row["id"] in seen:
            raise ValueError(f"{path}:{number}: field 'id' {row['id']!r} repeats line {seen[row['id']]}")
        seen[row["id"]] = number
        if not isinstance(row["wrong"], list):
            raise ValueError(f"{path}:{number}: field 'wrong' must be a list of regexes")  # noqa: TRY004 - bad data
        wrong = tuple(_compile(path, number, f"wrong[{i}]", p) for i, p in enumerate(row["wrong"]))
        items.append(FactItem(row["id"], row["half"], row["question"], row["answer"],
                              _compile(path, number, "fact", row["fact"]), wrong, row["source"], row["type"], number))
    if not items:
        raise ValueError(f"{path}: the fact set is empty")
    return items


def source_text(kb_dir: Path, rel: str) -> str:
    """The document as the KB loader reads it (HTML tables as rows, PDF text), normalised."""
    from supportdesk.kb.files import SUPPORTED_SUFFIXES, SourceFile
    from supportdesk.kb.loaders import load

    path = kb_dir / rel
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is None or not path.is_file():
        raise ValueError(f"{rel}: not a KB document in {kb_dir}")
    doc = load(SourceFile(path, rel, kind, path.stat().st_size, path.stat().st_mtime_ns))
    return normalise("\n".join(part.page_content for part in doc.parts))


def verify_set(items: Sequence[FactItem], kb_dir: Path) -> list[str]:
    """Problems with the set itself: a fact its source does not state, a wrong pattern that
    matches the reference answer, a reference answer without its fact. Empty when sound."""
    problems: list[str] = []
    texts: dict[str, str] = {}
    for item in items:
        where = f"{item.id} (line {item.line})"
        if item.source not in texts:
            try:
                texts[item.source] = source_text(kb_dir, item.source)
            except Exception as exc:  # noqa: BLE001 - a LoadError or a missing file: reported, not raised
                problems.append(f"{where}: field 'source': cannot read {item.source}: {exc}")
                continue
        if not item.fact.search(texts[item.source]):
            problems.append(f"{where}: field 'fact' /{item.fact.pattern}/ does not match {item.source}")
        reference = normalise(item.answer)
        if not item.fact.search(reference):
            problems.append(f"{where}: field 'answer' does not state the fact /{item.fact.pattern}/")
        for pattern in item.wrong:
            if pattern.search(reference):
                problems.append(f"{where}: field 'wrong' /{pattern.pattern}/ matches the reference answer")
    return problems


# -- values of a type ----------------------------------------------------------------------

_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"))} | {
    "fifteen": "15", "twenty": "20", "thirty": "30", "forty": "40", "sixty": "60", "ninety": "90"}
_WORDNUM = "|".join(_NUMBER_WORDS)
_TIME_UNIT = r"(?:business |working |calendar )?(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?)"
_MEASURE = (r"%|°|percent\b|(?:Mbps|Gbps|GHz|MHz|MB|GB|TB|KB|W|V|A|VA|mAh|mm|cm|m|km|kg|g|sq|ft|m²|dBm|dBA|dB|"
            r"fps|am|pm|a\.m\.|p\.m\.|x|×)\b")
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"

DURATION = re.compile(rf"(?<![\w.,])(\d[\d,.]*(?:\s?(?:-|to)\s?\d[\d,.]*)?|{_WORDNUM})[ -]({_TIME_UNIT})\b", re.IGNORECASE)
PRICE = re.compile(r"(?:CA\$|[$£€])\s?\d[\d,]*(?:\.\d+)?|(?<![\w.,])\d[\d,]*(?:\.\d+)?\s?(?:%|percent\b)", re.IGNORECASE)
PHONE = re.compile(r"(?<![\w.])\+?\d[\d ().-]{7,}\d(?![\w.]\d)")
VERSION = re.compile(
    r"(?<![\w.])\d+\.\d+(?:\.\d+)?(?![\w]|\.\d|\s?(?:GHz|MHz|Gbps|Mbps|MB|GB|TB|W|V|A|%|°|mm|cm|m|kg|g|dBm|dBA)\b)", re.IGNORECASE)
DATE = re.compile(
    rf"\b\d{{1,2}} (?:{_MONTHS}) \d{{4}}\b|\b(?:{_MONTHS}) \d{{1,2}},? \d{{4}}\b|\b(?:{_MONTHS}) \d{{4}}\b"
    r"|\b\d{4}-\d{2}(?:-\d{2})?\b|\b\d{1,2}:\d{2}\b|\b\d{1,2}\s?(?:am|pm)\b", re.IGNORECASE)
COUNT = re.compile(rf"(?<![\w.,$£€:/\-])(?<!step )(\d[\d,]*)(?![\w]|[.,:/]\d|\s?-?\s?(?:{_TIME_UNIT}\b|{_MEASURE}))",
                   re.IGNORECASE)
_LIST_NUMBER = re.compile(r"(?m)^\s*\d+[.)]\s")

VALUE_TYPES = ("how_many", "how_much", "how_long", "when", "phone", "which_version")


def _unit(unit: str) -> str:
    unit = unit.lower().split()[-1]
    unit = {"secs": "second", "sec": "second", "mins": "minute", "min": "minute", "hrs": "hour", "hr": "hour"}.get(
        unit, unit)
    return unit.removesuffix("s")


def values(text: str, qtype: str) -> set[str]:
    """The values of the question type ``qtype`` that ``text`` states, normalised for comparison."""
    if qtype not in VALUE_TYPES:
        return set()
    if qtype == "how_many":
        raw = _DASHES.sub("-", _LIST_NUMBER.sub(" ", MARKER.sub(" ", html.unescape(text))))
        found = set()
        for m in COUNT.finditer(raw):
            before = re.search(r"(\S+)\s+$", raw[:m.start()])
            if before and re.search(r"[A-Z]", before.group(1)) and before.group(1)[-1].isalnum():  # Wi-Fi 7, Hub 4
                continue
            found.add(m.group(1).replace(",", ""))
        return found
    text = normalise(text)
    if qtype == "how_long":
        found = set()
        for m in DURATION.finditer(text):
            amount = _NUMBER_WORDS.get(m.group(1).lower(), m.group(1)).replace(",", "").replace(" ", "")
            found.add(f"{re.sub(r'to', '-', amount)} {_unit(m.group(2))}")
        return found
    if qtype == "how_much":
        return {re.sub(r"[\s,]|percent", "", m.group(0).lower()).replace("%", "") + (
            "%" if "%" in m.group(0) or "percent" in m.group(0).lower() else "") for m in PRICE.finditer(text)}
    if qtype == "phone":
        found = set()
        for m in PHONE.finditer(text):
            digits = re.sub(r"\D", "", m.group(0))
            if len(digits) >= 9:
                found.add(digits.removeprefix("1") if len(digits) == 11 else digits)
        return found
    if qtype == "which_version":
        return {re.sub(r"(\.0)+$", "", m.group(0)) for m in VERSION.finditer(text)}
    return {m.group(0).lower().replace(" ", "") for m in DATE.finditer(text)}  # when


@dataclass
class Verdict:
    verdict: str
    reason: str
    matched: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reason": self.reason, "matched": self.matched}


def score_answer(item: FactItem, answer: str, kind: str = "grounded") -> Verdict:
    """right / wrong / handoff / missing for one answer (the rules in the module docstring)."""
    if kind in HANDOFF_KINDS:
        return Verdict("handoff", f"answer kind {kind}")
    text = normalise(answer)
    for pattern in item.wrong:
        found = pattern.search(text)
        if found:  # a pattern that scans its clause for labels names the value itself as group 'v'
            value = found.group("v") if "v" in pattern.groupindex else found.group(0)
            return Verdict("wrong", f"wrong value /{pattern.pattern}/", value)
    found = item.fact.search(text)
    if found:
        return Verdict("right", "fact stated", found.group(0))
    other = values(answer, item.type) - values(item.answer, item.type) - values(item.question, item.type)
    if other:
        stated = ", ".join(sorted(other))
        return Verdict("wrong", f"states another {item.type.replace('_', ' ')} value ({stated}), not the fact", stated)
    return Verdict("missing", "fact not stated")


def fact_in_texts(item: FactItem, texts: Iterable[str]) -> bool:
    """Is the fact in any of these chunk texts (the retrieved top-5, say)?"""
    return any(item.fact.search(normalise(text)) for text in texts)


# -- figures -------------------------------------------------------------------------------


@dataclass
class FactFigures:
    n: int
    right: float
    wrong: float
    handoff: float
    missing: float
    fact_in_top5: float
    n_fact_in_top5: int
    right_when_in_top5: float | None
    by_type: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "right_rate": self.right, "wrong_facts_rate": self.wrong, "handoff_rate": self.handoff,
                "missing_rate": self.missing, "fact_in_top5_rate": self.fact_in_top5,
                "fact_in_top5_n": self.n_fact_in_top5, "right_when_fact_in_top5": self.right_when_in_top5,
                "by_type": self.by_type}


def fact_figures(records: Sequence[dict[str, Any]]) -> FactFigures | None:
    """Rates over records with ``verdict``, ``fact_in_top5`` and ``type`` (None for no records).

    ``wrong`` is wrong facts stated per question asked (not per answer given)."""
    n = len(records)
    if not n:
        return None
    count = {v: sum(r["verdict"] == v for r in records) for v in VERDICTS}
    in_top5 = [r for r in records if r["fact_in_top5"]]
    by_type: dict[str, dict[str, int]] = {}
    for r in records:
        by_type.setdefault(r["type"], {v: 0 for v in VERDICTS})[r["verdict"]] += 1
    return FactFigures(
        n=n, right=count["right"] / n, wrong=count["wrong"] / n, handoff=count["handoff"] / n,
        missing=count["missing"] / n, fact_in_top5=len(in_top5) / n, n_fact_in_top5=len(in_top5),
        right_when_in_top5=(sum(r["verdict"] == "right" for r in in_top5) / len(in_top5)) if in_top5 else None,
        by_type=by_type)


def by_half(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records split into half a, half b and all (in that order; empty halves left out)."""
    groups = {h: [r for r in records if r.get("half") == h] for h in HALVES}
    return {**{h: rs for h, rs in groups.items() if rs}, "all": list(records)}


def median(values_: Sequence[float]) -> float | None:
    return statistics.median(values_) if values_ else None
