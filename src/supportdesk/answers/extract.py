"""Answer extraction: the sentences, list items, steps or table rows of the shown sources
that answer the question, quoted with their ``[n]``.

A 135M model copies the wrong number from the right chunk (the neighbouring row's price,
the other country's phone number), so the facts of a grounded answer are taken from the
sources, never written. A source is read as units: sentences of its paragraphs, list items,
numbered steps and table rows (each row read with its header, "Solid red — Meaning:
Hardware fault"). A unit scores by the question's weighted terms it holds (its heading and
table header count less), by whether it holds the kind of value asked for (a price for
"how much", a duration for "how long", a phone number for "which number") and by naming the
entity asked about rather than a neighbour (AX3000 vs Pro, UK vs US). The answer is the best
unit, with the units that complete it: the rest of its procedure, the next sentence of an
explanation, up to ``max_words``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from supportdesk.answers import citations as cite
from supportdesk.kb.aliases import Aliases
from supportdesk.kb.lexical import question_phrase_terms, tokenize

UnitKind = Literal["sentence", "item", "step", "row"]
QuestionType = Literal["code", "price", "phone", "email", "distance", "speed", "duration", "hours", "date", "count", "version", "howto", "meaning",
                       "other"]

PRIOR_WEIGHT = 0.3
"""Weight of the unit's chunk's retrieval score (cosine): between two equally matching
sentences, the one from the better-retrieved source."""
NEAR_CONTEXT_WEIGHT = 0.5
"""Weight of a question term found only in the unit's own heading (the last of its path: an
FAQ's question, a manual's section), list intro or table header."""
FAR_CONTEXT_WEIGHT = 0.2
"""Weight of a question term found only in a heading above that: "Orders, returns and warranty"
is over the return window as much as over the warranty."""

# The kind of value a question asks for, tried in this order ("how many days" is a duration).
_QUESTION_TYPES: list[tuple[QuestionType, re.Pattern[str]]] = [
    ("phone", re.compile(r"\b(phone number|telephone|hotline|helpline|phone line|phone support|by phone|call (you|us|them|"
                         r"support)|number (to|for) (call|reach|contact)|what number)\b", re.IGNORECASE)),
    ("email", re.compile(r"\b(e-?mail|email address)\b", re.IGNORECASE)),
    ("price", re.compile(r"\bhow much\b(?!\s+(?!more\b|extra\b|money\b)[a-z]+(?<!is)(?<!are)(?<!does)(?<!do)(?<!will)"
                         r"(?<!would)(?<!for)(?<!to)(?<!of)\b)|\b(price|prices|cost|costs|fee|fees|charges|"
                         r"(do|will|would) you charge|charge for|pay for|to pay|amount|expensive|cheap|cheaper|cheapest)\b",
                         re.IGNORECASE)),
    ("distance", re.compile(r"\bhow (?:far|close|near)\b|\b(?:what|which) distance\b"
                            r"|\bhow long (?:can|could|may|should|must) (?:the |my |a |an |your )?[\w -]{2,30}? be\b",
                            re.IGNORECASE)),  # "How long can the Ethernet cable be?" asks a length, not a time
    ("speed", re.compile(r"\bhow (?:fast|quick) (?:is|are|can|will)\b|\b(?:what|which) speeds?\b|\bthroughput\b",
                         re.IGNORECASE)),
    ("duration", re.compile(r"\bhow long\b|\bhow often\b|\bhow (?:soon|quickly)\b|\bhow fast (?:do|does|will|can|would)\b|\bhow many (seconds|minutes|hours|days|weeks|months|years)\b"
                            r"|^(?!.*\bhow many\b).*\b(warranty|window|period|lasts?(?=\s*(?:for\b|long\b|\?|$))|take|takes|kept|keep)\b.*\?$",
                            re.IGNORECASE)),  # "last" as a verb ("does it last?"), not "the last used app"
    ("code", re.compile(r"\b(part|model|serial|sku|product) (number|no\.?|code)s?\b|\bsku\b",
                        re.IGNORECASE)),
    ("hours", re.compile(r"\b(what time|opening hours|business hours|open|opens|close|closes|hours)\b", re.IGNORECASE)),
    ("date", re.compile(r"\b(when|what date|which date|since when|release date)\b", re.IGNORECASE)),
    ("count", re.compile(r"\bhow many\b|\bhow much\b|\b(number of|maximum|max|limit|up to)\b", re.IGNORECASE)),
    ("version", re.compile(r"\b(version|firmware|release|build)\b", re.IGNORECASE)),
    ("howto", re.compile(r"\bhow (do|can|should|would) (i|we|you)\b|\bhow to\b|\b(steps?|set ?up|install|configure|"
                         r"reset|enable|disable|turn (on|off)|change|connect|add|remove)\b", re.IGNORECASE)),
    ("meaning", re.compile(r"\bwhat (does|do|is|are)\b.*\b(mean|means|meaning|stand for|indicate)\b|\bmeaning of\b", re.IGNORECASE)),
]

_VALUE = {
    "code": re.compile(r"\b(?=[A-Za-z0-9-]*\d)(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+\b"),
    "price": re.compile(r"[$£€]\s?\d|\b\d+(?:[.,]\d+)?\s?%|\b\d+(?:[.,]\d+)?\s?(?:usd|eur|gbp|dollars?|euros?|pounds?)\b|\bfree\b|\bno charge\b", re.IGNORECASE),
    "phone": re.compile(r"(?<![\w.])\+?\d[\d ().-]{6,}\d(?![\w.])"),
    "email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "distance": re.compile(r"\b\d+(?:[.,]\d+)?\s?(?:m|metres?|meters?|km|kilometres?|kilometers?|cm|mm|ft|feet|foot|"
                           r"inch(?:es)?|miles?|yards?|characters?|digits?)\b", re.IGNORECASE),
    "speed": re.compile(r"\b\d+(?:[.,]\d+)?\s?(?:[kmg]bps|[kmg]bit/s|[kmg]b/s|mbit|gbit)\b", re.IGNORECASE),
    "duration": re.compile(r"\b\d+(?:[.,]\d+)?\s*(?:-\s*)?(?:(?:business|working|calendar|full)\s+)?(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|"
                           r"months?|years?)\b|\b(?:one|two|three|four|five|six|seven|ten|twelve|thirty)\s+"
                           r"(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?)\b|\blifetime\b", re.IGNORECASE),
    "hours": re.compile(r"\b\d{1,2}(?::\d{2})?\s?(?:am|pm)\b|\b\d{1,2}[:.]\d{2}\b|\b24/7\b|\baround the clock\b", re.IGNORECASE),
    "date": re.compile(r"\b\d+\s*(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?)\b|\b(?:19|20)\d\d\b|\b(?:january|february|march|april|may|june|july|august|september|october|"
                       r"november|december)\b|\b\d{1,2}:\d{2}\b|\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b", re.IGNORECASE),
    "count": re.compile(r"(?<![\w-])\d+(?:,\d{3})*\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|twelve|unlimited)\b(?!-)",
                       re.IGNORECASE),
    "version": re.compile(r"\b\d+\.\d+(?:\.\d+)*\b"),
}

_CODE = re.compile(r"\b(?=[a-z0-9-]*\d)(?=[a-z0-9-]*[a-z])[a-z0-9]+(?:-[a-z0-9]+)*\b", re.IGNORECASE)
"""Model codes and names with digits: KR-300, AX3000, BE9400, KE-901 (not plain numbers)."""
_UNIT_CODES = frozenset({"5g", "4g", "3g", "2g", "6e", "wi-fi", "2.4ghz", "5ghz", "6ghz"})

# Regions a policy, price or phone number is often given per; each name maps to one region.
_REGIONS = {
    "us": "us", "usa": "us", "u.s.": "us", "united states": "us", "america": "us", "american": "us",
    "uk": "uk", "u.k.": "uk", "united kingdom": "uk", "britain": "uk", "british": "uk", "england": "uk",
    "eu": "eu", "europe": "eu", "european union": "eu", "european": "eu",
    "canada": "ca", "canadian": "ca", "australia": "au", "australian": "au", "new zealand": "nz",
    "ireland": "ie", "irish": "ie", "germany": "de", "german": "de", "france": "fr", "french": "fr",
    "spain": "es", "italy": "it", "netherlands": "nl", "norway": "no", "switzerland": "ch", "india": "in",
    "japan": "jp", "mexico": "mx", "brazil": "br",
}
_REGION_PATTERN = re.compile(r"(?<![\w.])(" + "|".join(sorted(map(re.escape, _REGIONS), key=len, reverse=True))
                             + r")(?![\w])", re.IGNORECASE)

_ASKS_LIMIT = re.compile(r"\b(maximum|max|most|limit|largest|biggest|highest)\b")
_STATES_LIMIT = re.compile(r"\b(up to|at most|maximum|max\.?|limit(?:ed)? (?:to|of)|no more than)\b", re.IGNORECASE)
_FACT_QUESTION = re.compile(r"^\W*(?:(?:at|in|on|for|by|to|from|with)\s+)?(?:what|which|when|where|who|whose|how (?:many|much|long|fast|far|big|often|old))\b"
                            r"(?!.*\b(?:mean|means|do i|can i|should i|steps?)\b)", re.IGNORECASE)
"""A question after one value ("What channel width…", "At what temperature…"): its best unit alone
answers it; the sentences after it add other values."""
_INSTRUCTION = re.compile(
    r"^(?:to [^,]{3,80},\s*)?(?:press|hold|tap|open|go to|select|click|choose|turn|unplug|plug|connect|enter|use|set|"
    r"install|remove|restart|reset|update|sign in|log in|scan|move|check|create|add|follow|type|switch|pick|"
    r"disconnect|contact|pack|ship|write|download)\b|,\s*(?:press|tap|hold|go to|open|select)\b"
    r"|\*\*[^*\n]+ > [^*\n]+\*\*",  # or says where in the menus ("… under **Account > Orders**")
    re.IGNORECASE)
_STEP = re.compile(r"^\s*(?:step\s+)?(\d{1,2})[.):]\s+\S", re.IGNORECASE)
_ITEM = re.compile(r"^\s*[-*+•▪◦]\s+(?=\S)")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


@dataclass(frozen=True)
class Unit:
    """One quotable piece of a shown source."""

    source: int
    kind: UnitKind
    text: str
    context: str
    block: int
    order: int
    path: str = ""
    """The menu path written on the lines just above the unit's paragraph ("Settings > General > Reset")."""
    section: int = 0
    """Which part of its source the unit is in: a sub-heading or a menu path inside the text starts the next
    (+1), a Markdown heading the next section (the next multiple of ``HEADING_PART``)."""
    subheading: str = ""
    """That part's sub-heading, a line of its own in the text ("Using the sleep timer")."""
    path_source: int = 0
    """The shown source the menu path was written in, when an earlier chunk of its passage (0: its own)."""
    options: tuple[str, ...] = ()
    """The label lines listed after it, when it announces them ("… by using the following functions:",
    "Backlight", "Tint (G/R)", …): the options it speaks of."""


@dataclass
class Extraction:
    """The composed answer and what it was made of (for the sources panel and the checks)."""

    text: str
    units: list[Unit] = field(default_factory=list)
    question_type: QuestionType = "other"
    score: float = 0.0
    """The best unit's score: 0 when no unit holds any of the question's terms."""
    coverage: float = 0.0
    """Share of the question's weighted terms the best unit holds (its context counts less)."""
    margin: float = 1.0
    """The best unit's score over that of the best unit stating a different value (1: none does)."""
    is_title: bool = False
    """The answer is a lone title or label ("Galaxy S10 [1]."): a section's heading line, no answer to anything."""
    states_value: bool = True
    """The answer states a value of the kind asked (a price for "how much"); True when none is asked. A
    question after a value whose shown sources hold none is handed off, not answered with a neighbour."""
    unnamed: str = ""
    """A name the question asks about ("Support+") that the answer and its headings never say: a value
    quoted is another thing's."""


_PERIOD_WORDS = {"yearly": "year", "annual": "year", "annually": "year", "year": "year", "monthly": "month",
                 "weekly": "week", "daily": "day", "hourly": "hour"}


def terms(text: str) -> set[str]:
    """The text's terms as BM25 sees them, with "yearly"/"annual" meeting "year" (a table's
    "Yearly" column answers "per year")."""
    return {_PERIOD_WORDS.get(t, t) for t in tokenize(text)}


_NOT_A_VALUE = re.compile(r"^\W*(?:where\b|what can (?:i|we|you) do\b|how (?:(?:do|can|should|would) (?:i|we|you)|to)\b"
                         r"(?! (?:pay|get charged)\b))", re.IGNORECASE)
"""Questions after a place or a way, whatever value words follow: "Where can I find the call center phone
number?", "How do I open the Shortcuts menu?", "How to launch the last used app?", "What can I do when the
signal is weak?"."""
_MEANING = next(pattern for name, pattern in _QUESTION_TYPES if name == "meaning")


_ASKS_VALUE = re.compile(r"(?:^|[,;:]\s*|\b(?:and|so|but|then)\s+)(?:how (?:long|much|many|often|soon|quickly|fast|far|close|near)|when|what (?:does|do|will|would) .{1,60}? cost|"
                         r"what time|until when|by when|since when|what(?:'s| is| are) the (?:price|cost|fee|phone number|"
                         r"opening hours|hours))\b", re.IGNORECASE)


def asks_value(question: str) -> bool:
    """Is the question itself after a value ("How long …", "…, how soon does …", "When …")? The type can
    also come from a word in passing ("the Window Preservation Standards", "my phone"): only a question
    that asks for the value is handed off when the sources state none."""
    return any(_ASKS_VALUE.search(sentence) for sentence in re.split(r"(?<=[.!?])\s+", question.strip())
               if sentence.rstrip().endswith("?"))


def question_type(question: str) -> QuestionType:
    asked = _last_sentence(question)
    if _MEANING.search(asked):
        return "meaning"  # "What does it mean when the light stays amber?" asks no date
    if _NOT_A_VALUE.search(asked):
        howto = next(pattern for name, pattern in _QUESTION_TYPES if name == "howto")
        return "howto" if howto.search(asked) else "other"
    for name, pattern in _QUESTION_TYPES:
        if pattern.search(question):
            return name
    return "other"


def regions(text: str) -> set[str]:
    return {_REGIONS[m.group(1).lower()] for m in _REGION_PATTERN.finditer(text)}


def codes(text: str) -> set[str]:
    return {c.lower().replace("-", "") for c in _CODE.findall(text) if c.lower() not in _UNIT_CODES}


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _render_row(cells: list[str], header: list[str] | None, question: str) -> str:
    """A table row as a line a customer can read: its first cell, then "Header: value" pairs —
    only the columns the question names or whose value is of the kind asked (the price, in the
    country asked about), when that leaves some out."""
    if not header or len(header) != len(cells):
        return " | ".join(c for c in cells if c)
    pairs = [(h, v) for h, v in zip(header[1:], cells[1:], strict=True) if v]
    wanted, q_regions, value = terms(question), regions(question), _VALUE.get(question_type(question))
    keep = []
    for h, v in pairs:
        h_regions = regions(h)
        if h_regions and q_regions and not h_regions & q_regions:
            continue  # another country's column
        named = bool(wanted & terms(h)) or bool(h_regions & q_regions)
        typed = value is not None and bool(value.search(v))
        if named or typed:
            keep.append((h, v, named and typed))
    exact = [(h, v) for h, v, both in keep if both]
    chosen = exact or [(h, v) for h, v, _ in keep] or pairs
    listed = "; ".join(f"{h}: {v}" for h, v in chosen)
    return f"{cells[0]} — {listed}" if cells[0] else listed


def units(number: int, text: str, heading: str, question: str = "") -> list[Unit]:
    """Read a source as units: paragraph sentences, list items, numbered steps, table rows."""
    found: list[Unit] = []
    block = 0
    header: list[str] | None = None
    previous_kind = ""
    intro = ""
    base = heading  # the source's own heading; the labels inside its text are sub-headings of it
    labels: list[str] = []  # the label lines just read: a sub-heading, a menu path written a step per line
    path = subheading = ""
    section = 0
    before: tuple[str, str, str, int] = (heading, path, subheading, section)
    said = False  # the last line read was a sentence: a run of labels after it lists options, not a menu path
    announcer: tuple[int, str] | None = None  # the unit announcing a list ("… the following functions:"), its context
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            block += 1
            header, previous_kind = None, ""
            continue
        if line.startswith("#"):
            block += 1
            heading = base = line.lstrip("#").strip() or heading
            header, previous_kind, path, subheading, said = None, "", "", "", False
            section = (section // HEADING_PART + 1) * HEADING_PART
            continue
        if line.startswith("|"):
            if previous_kind != "row":
                block += 1
                header = _cells(line)
                previous_kind = "row"
                continue
            if _TABLE_RULE.match(line):
                continue
            cells = _cells(line)
            context = f"{heading} {' '.join(header or [])}"
            found.append(Unit(number, "row", _render_row(cells, header, question), context, block, len(found), "",
                              section, subheading))
            continue
        kind: UnitKind = "step" if _STEP.match(line) else "item" if _ITEM.match(line) and re.search(
            r"[A-Za-z]{2}", line) else "sentence"  # "- 87 -" is a page number, not a list item
        if kind == "sentence" and _is_label(line):
            block += 1  # a sub-heading or caption inside the text ("Reset Smart Hub", "- 88 -"): context only
            if re.search(r"[A-Za-z]{2}", line):
                if previous_kind != "label":
                    labels, before = [], (heading, path, subheading, section)
                labels.append(line)
                steps = menu_path(labels, opens=not said)
                if said and not steps and (announcer is not None or len(labels) >= 2 and all(map(_title_case, labels))):
                    # Options after a sentence ("You can select a sound mode." "Standard" "Optimized"), or after
                    # one that announces them ("… the following functions:" "Backlight" "Tint (G/R)"): the
                    # paragraph's own content, not a new part of the text.
                    heading, path, subheading, section = before
                    if announcer is not None:  # they are what the sentence speaks of
                        at, context = announcer
                        listed = tuple(label for label in labels if label.lower() not in _DANGLING)
                        found[at] = replace(found[at], context=f"{context} {' '.join(listed)}", options=listed)
                else:
                    # Sibling sub-headings, not nested ones; a menu path names what its paragraph is about, as
                    # much as the source's own heading does.
                    heading = f"{base} {' '.join(labels)}" if steps else f"{base} > {' '.join(labels)}"
                    path = " > ".join(steps)
                    subheading = " ".join(labels[: len(labels) - len(steps)])
                    section = before[3] + 1
                previous_kind = "label"
            continue
        said = re.search(r"[.:!?]\W*$", line) is not None
        announcer = None
        if kind == "sentence" or kind != previous_kind:
            block += 1  # a paragraph (one line since ingest joined wrapped lines), or a new list
        previous_kind = kind
        if kind == "sentence":
            sentences = cite.split_sentences(line)
            for sentence in sentences:
                found.append(Unit(number, "sentence", sentence, heading, block, len(found), path, section, subheading))
            intro = sentences[-1] if sentences else ""
            if intro.rstrip().endswith(":"):
                announcer = (len(found) - 1, found[-1].context)
            continue
        body = line if kind == "step" else _ITEM.sub("", line, count=1).strip() or line
        context = f"{heading} {intro}" if intro.endswith(":") else heading
        if kind == "step":
            found.append(Unit(number, kind, body, context, block, len(found), path, section, subheading))
            continue
        for position, sentence in enumerate(cite.split_sentences(body)):  # an item of several sentences
            found.append(Unit(number, "item" if position == 0 else "sentence", sentence, context, block, len(found),
                              path, section, subheading))
    return found


HEADING_PART = 1000
"""``Unit.section`` of a Markdown heading's part: a multiple of this (the parts under it count up from it)."""
_MINOR_WORDS = frozenset(["a", "an", "and", "or", "of", "the", "to", "for", "in", "on", "at", "with", "by"])


def menu_path(labels: list[str], opens: bool = True) -> list[str]:
    """The menu path among consecutive label lines: their longest run at the end written in title case
    ("Settings", "General", "Input Device Manager"), at least two steps, none twice; a sub-heading
    before it ("Setting the clock automatically") is left out. Such a run is a path where it opens a
    part of the text (``opens``: nothing read since the heading) or follows a sub-heading; after a
    sentence it lists the options the sentence speaks of ("Standard", "Optimized", "Amplify"). []
    when there is none."""
    steps: list[str] = []
    ends = len(labels)
    while ends and labels[ends - 1].strip().lower() in _DANGLING:
        ends -= 1  # "When" left on its line before the sentence it opens
    for label in reversed(labels[:ends]):
        if not _title_case(label):
            break
        steps.insert(0, label)
    if len(steps) < 2 or len(set(steps)) < len(steps) or not opens and len(steps) == ends:
        return []
    return steps


def _title_case(label: str) -> bool:
    """A menu step's spelling: every word capitalised but the minor ones ("Zoom and Position"); a lone
    sentence opener ("When", "If" left on its line by the PDF) is none."""
    words = label.split()
    if len(words) == 1 and words[0].lower() in _DANGLING:
        return False
    return bool(words) and words[0][:1].isupper() and all(
        w[:1].isupper() or w[:1].isdigit() or w.lower() in _MINOR_WORDS for w in words)


_DANGLING = frozenset(["the", "a", "an", "to", "of", "for", "and", "or", "with", "is", "are", "on", "in", "at", "by",
                       "your", "our", "from", "as", "that", "this", "be", "if", "when", "while", "than"])


def is_fragment(sentence: str) -> bool:
    """Under four words, ending on a word that needs more ("LED Clear Motion is set to"), or starting inside
    another sentence (", use and maintain food and water …": the text lost what came before)."""
    if re.match(r"\s*[,;:)\]]", sentence):
        return True
    words = re.findall(r"[A-Za-z0-9$£€'-]+", cite.MARKER.sub(" ", sentence))
    if len(words) < 4:
        return True
    return words[-1].lower() in _DANGLING and not sentence.rstrip().endswith("?")


def _is_label(line: str) -> bool:
    """A short line with no sentence end: a sub-heading, a caption, a page number."""
    words = re.findall(r"[A-Za-z0-9][\w'-]*", line)
    if not re.search(r"[A-Za-z]{2}", line):
        return True
    return len(words) <= LABEL_WORDS and not re.search(r"[.!?;]\W*$", line) and ":" not in line \
        and not re.search(r"\d|@", line)


LABEL_WORDS = 8
"""A label line has at most this many words ("Setting up the content for Ambient Mode" is a sub-heading)."""


@dataclass(frozen=True)
class _Scored:
    score: float
    lexical: float
    unit: Unit


def _score(unit: Unit, weights: dict[str, float], qtype: QuestionType, q_codes: set[str], q_regions: set[str],
           prior: float = 0.0, names: frozenset[str] = frozenset(), products=None, key: str | None = None,
           lead: frozenset[str] = frozenset(), predicate: frozenset[str] = frozenset(),
           same: Callable[[set[str], str], set[str]] | None = None, family: frozenset[str] = frozenset(),
           asked_terms: frozenset[str] = frozenset(), q_family: set[str] | frozenset[str] = frozenset(),
           known: frozenset[str] = frozenset(), plus: frozenset[str] = frozenset(),
           pairs: frozenset[tuple[str, str]] = frozenset(), numbers: tuple[float, ...] = ()) -> _Scored:
    """How well ``unit`` answers: its share of the question's weighted terms, times what it holds
    of the kind of value asked, of the product and country asked, of the question's key term;
    plus a little of its chunk's retrieval score. ``lead`` holds the terms of its paragraph
    ("Hold Reset to factory reset. The process takes 5 minutes": the key term said before);
    ``predicate`` what the question asks of its subject ("take", "expire", "cost"), which the
    answer says next to its value."""
    total = sum(weights.values()) or 1.0
    body = terms(unit.text)
    near, far = _near_context(unit)
    if same is not None:  # the question's words the unit says another way ("KR-300" for "AX3000", "setup")
        body, near = same(body, unit.text), same(near, unit.context)
    body = body - _only_in_names(unit.text, asked_terms, products)
    context = near | far
    lexical = sum(w for t, w in weights.items() if t in body) / total
    lexical += NEAR_CONTEXT_WEIGHT * sum(w for t, w in weights.items() if t not in body and t in near) / total
    lexical += FAR_CONTEXT_WEIGHT * sum(w for t, w in weights.items() if t not in body | near and t in far) / total
    score = lexical
    value = _VALUE.get(qtype)
    if value is not None:
        holds = value.search(unit.text)
        score *= 1.6 if holds or value.search(_heading_value(unit, value)) else 0.5
        if holds and predicate and _near_value(unit.text, value, predicate):
            score *= 1.25  # "how long does the reset take": "the reset takes about 3 minutes", "expires after 12 months"
    elif qtype == "howto":
        score *= 1.4 if unit.kind == "step" or _INSTRUCTION.search(unit.text) else 0.7
    elif qtype == "meaning" and unit.kind == "row":
        score *= 1.15
    if _ASKS_LIMIT.search(" ".join(weights)):
        # "the maximum number of rules" is answered by "up to 64 rules", not by "two rules use the same port"
        score *= 1.2 if _STATES_LIMIT.search(unit.text) else 0.8 if value is not None and value.search(unit.text) else 1.0
    if q_codes:
        mine = (products or codes)(unit.text)
        if mine & q_codes:
            score *= 1.3
        elif mine - q_codes and not (family and _family_named(unit.text, family)):
            score *= 0.6  # names another model only (not one of a kind the question asks about: "Satellites")
        else:  # the unit names no model: its document or section may ("X200 User Manual > Resetting")
            around = (products or codes)(unit.context)
            if around & q_codes:
                score *= 1.15
            elif around - q_codes:
                score *= 0.7
    elif q_family:
        mine = (products or codes)(unit.text) & known
        if mine and not mine & q_family:
            score *= 0.6  # names only models of another family ("the Router X 2-pack" for "a Satellite")
    mine = regions(unit.text) | (regions(unit.context) if unit.kind == "row" else set())
    if value is None:
        if q_regions and mine:
            score *= 1.25  # "Can I buy it in the UK?" is answered by "sold only in the US and Canada"
    elif q_regions:
        if mine & q_regions:
            score *= 1.25
        elif mine:
            score *= 0.6  # about another country
    elif mine:
        # When the question names no country: one country named is that country's exception; a
        # list of countries covers the asker's too, less directly than a unit that names none.
        score *= 0.85 if len(mine) == 1 else 0.92
    if names - body - context or any(_without_plus(word, unit) for word in plus):
        score *= 0.6  # misses a name the question asks about (Premium, not Basic; "Support+", not "Support")
    if value is not None and _about_another_name(unit.text, asked_terms):
        score *= OTHER_SUBJECT  # "Support Plus extends it to 4 years" for "How long is the warranty?": another plan's value
    if key is not None and key not in body and key not in near and key not in lead:
        score *= KEY_MISSING  # misses what the question is about ("warranty", not the return window above it)
    if qtype == "meaning" and pairs and pairs & _pairs(unit.text):
        # says two of the question's words as it does ("solid blue", not "solid purple"); not for a value, which
        # is often said of "it" or "the process" ("Hold it to factory reset" does not say how long it takes)
        score *= PHRASE
    if numbers and any(low <= n <= high for n in numbers for low, high in _ranges(unit.text)):
        score *= IN_RANGE  # "at -100 dBm" is answered by the row "-96 to -105 dBm"
    if unit.kind == "sentence" and is_fragment(unit.text) and not re.match(r"(?i)(yes|no)\b", unit.text):
        score *= 0.3  # a caption, a label, a sentence whose value the source lost: not an answer
    return _Scored(score + PRIOR_WEIGHT * prior, lexical, unit)


_NAME = re.compile(r"\b[A-Z][\w&'-]*(?:\s+[A-Z][\w&'-]*)+")


def _only_in_names(text: str, asked: frozenset[str], products: Callable[[str], set[str]] | None) -> set[str]:
    """The question's words ``text`` says only inside another thing's name: "express" in "American Express"
    (a card) for "How much is express shipping?", "pay" in "Apple Pay". A name counts when it shares one word
    with the question and not its first; products and countries are checked on their own."""
    if not asked:
        return set()
    inside: set[str] = set()
    outside = _NAME.sub(" ", text)
    for found in _NAME.finditer(text):
        words = [terms(word) for word in found.group().split()]
        while words and not words[0]:
            words.pop(0)  # "The RMA is valid …": an article opens the sentence, not a name
        name = found.group()
        if len(words) < 2:
            continue
        shared = set().union(*words) & asked
        if len(shared) != 1 or words[0] & asked or regions(name) and not regions(name.split()[0]) \
                or (products or codes)(name):
            continue
        inside |= shared
    return inside - terms(outside) if inside else set()


PHRASE = 1.2
"""Factor for a unit that says two adjacent words of the question next to each other too."""
IN_RANGE = 1.3
"""Factor for a unit whose range ("-96 to -105 dBm", "26–50%") holds a number the question gives."""
_RANGE = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)\s*(?:to|–|—)\s*(-?\d+(?:\.\d+)?)(?![\w.])")
_SIGNED = re.compile(r"(?<![\w.-])(-?\d+(?:\.\d+)?)(?![\w.])")


def _pairs(text: str) -> frozenset[tuple[str, str]]:
    """Adjacent content terms, as the tokenizer reads them (a compound's parts are not a pair)."""
    words = [t for t in tokenize(text) if not t.isdigit()]
    return frozenset((a, b) for a, b in itertools.pairwise(words) if a not in b and b not in a)


def _numbers(question: str) -> tuple[float, ...]:
    """The numbers the question gives, with their sign ("at -100 dBm")."""
    return tuple(float(n) for n in _SIGNED.findall(question))


def _ranges(text: str) -> list[tuple[float, float]]:
    return [(min(float(a), float(b)), max(float(a), float(b))) for a, b in _RANGE.findall(text)]


def _plus_names(question: str) -> frozenset[str]:
    """Names the question writes with a "+" ("Support+", "Disney+"): another product than the plain name."""
    return frozenset(re.findall(r"\b([A-Za-z][\w-]*)\+", question))


def _says_plus(word: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}\+", text, re.IGNORECASE) is not None


def _without_plus(word: str, unit: Unit) -> bool:
    """Does the unit name ``word`` only without its "+" (the plain service, not the "+" plan asked)?"""
    text = f"{unit.context}\n{unit.text}"
    return re.search(rf"(?<![\w-]){re.escape(word)}(?!\+)\b", text, re.IGNORECASE) is not None \
        and not _says_plus(word, text)


def _asks_same(unit: Unit, weights: dict[str, float]) -> bool:
    """Is the unit's own heading a question holding most of what the question asks (weighted by idf, over
    the terms the shown sources hold at all: "I live in London" adds words no source can answer)?"""
    heading = unit.context.split(" > ")[-1].strip()
    total = sum(weights.values())
    if not heading.endswith("?") or total <= 0:
        return False
    return sum(w for t, w in weights.items() if t in terms(heading)) / total >= 0.5


def _near_context(unit: Unit) -> tuple[set[str], set[str]]:
    """The terms of the unit's own heading (with a row's header, an item's list intro) and those
    of the headings above it."""
    path = unit.context.split(" > ")
    return terms(path[-1]), terms(" ".join(path[:-1]))


KEY_MISSING = 0.65
FAQ_ANSWER = 1.2
"""Factor for the first unit under a heading that is itself a question (an FAQ entry): it is written to answer
it ("How long is the warranty?" → "2 years in the US …", before "Support Plus extends it to 4 years")."""
"""Factor for a unit whose paragraph and own heading lack the question's key term (weaker than
naming another product: "The reset takes 3 minutes on the KR-180" answers "factory reset")."""
COMMON_NAME_IDF = 1.0
"""A name nearly every source holds (the company's own, idf under this) tells no unit apart."""
FORM_WORD_SHARE = 0.3
"""Weight left to a question's form words ("long", "much", "cost") when it asks for a kind of value."""

def _predicate(question: str) -> frozenset[str]:
    """The question's last content word and its value verbs: "How long does a factory reset *take*",
    "When does trade-in credit *expire*" — English puts what is asked of the subject last."""
    words = [t for t in terms(_last_sentence(question)) if t not in _FORM_WORDS - _VALUE_VERBS]
    ordered = [_PERIOD_WORDS.get(t, t) for t in tokenize(_last_sentence(question))]
    last = [t for t in ordered if t in words][-1:]
    return frozenset(last) | (frozenset(words) & _VALUE_VERBS) | _counted(question)


_COUNTED = re.compile(r"\b(?:how many|number of)\s+((?:[\w-]+\s+){0,2}[\w-]+)", re.IGNORECASE)


def _counted(question: str) -> frozenset[str]:
    """What a count question counts ("How many *Satellites*", "the number of port-forwarding *rules*"): the
    answer's number is said of it ("up to two Satellite S1 units", not "64 devices")."""
    found = _COUNTED.search(_last_sentence(question))
    if found is None:
        return frozenset()
    head: set[str] = set()
    for word in found.group(1).split():
        term = terms(word)
        if not term or term & _FORM_WORDS or word.lower() in ("can", "do", "does", "will", "are", "is", "i", "we"):
            break
        head = term  # the phrase's last word is what is counted ("port-forwarding *rules*")
    return frozenset(head)


def _near_value(text: str, value: re.Pattern[str], asked: set[str], reach: int = 3) -> bool:
    """Is one of the question's terms within ``reach`` words of a value of the kind asked? The value
    said of what is asked ("expires after 12 months"), not a value in passing."""
    for match in value.finditer(text):
        before = text[:match.start()].split()[-reach:]
        after = text[match.end():].split()[:reach]
        if terms(" ".join(before + after)) & asked:
            return True
    return False


_VALUE_VERBS = frozenset(terms("take takes last lasts cost costs charge charges ship ships arrive arrives"))
"""Verbs that tie a value to what is asked about: "the reset takes 3 minutes", "the plan costs $49"."""

_FORM_WORDS = frozenset(terms("how long much many cost costs price take takes mean means time often kind type "
                              "way need get use work happen happens per each open opens close closes hours "
                              "put make go give let"))  # light verbs: "put it in bridge mode" is about bridge mode
"""Words that say what kind of answer is wanted, not what it is about."""
_REQUEST_WORDS = frozenset(terms("please explain detail details detailed step steps list tell show describe exactly "
                                 "everything every"))
"""Words of the request around any question ("Explain step by step how to …", "Please list every step"): they
weigh as little as form words whatever is asked, and are never its key term."""


_FAMILY = re.compile(r"\b([A-Z][a-z]+)\s+(?=[A-Za-z-]*\d)[A-Za-z0-9-]+")
"""A product written as family name and model ("Satellite S1", "Router X200")."""


def _family_named(text: str, words: frozenset[str]) -> bool:
    """Does ``text`` name a product whose family the question says ("Satellites" → "Satellite S1")?"""
    return any(set(terms(m.group(1))) & words for m in _FAMILY.finditer(text))


def _compound_of_parts(term: str, weights: dict[str, float]) -> bool:
    """"port-forwarding" / "portforwarding" when "port" and "forward" are weighed too."""
    for compound in (term, *(t for t in weights if "-" in t and t.replace("-", "") == term)):
        if "-" in compound and all(part in weights for part in tokenize(compound.replace("-", " "))):
            return True
    return False


def key_term(weights: dict[str, float], pool: list[Unit]) -> str | None:
    """The question's most specific term that the shown sources hold somewhere: the unit that
    answers names it (a term no source holds cannot tell units apart)."""
    present = set().union(*(terms(u.text) | terms(u.context) for u in pool)) if pool else set()
    candidates = {t: w for t, w in weights.items()
                  if t in present and t not in _FORM_WORDS | _REQUEST_WORDS and len(t) > 2}
    return max(candidates, key=candidates.__getitem__) if candidates else None


def names(question: str, texts: list[str]) -> frozenset[str]:
    """The question's terms that the sources write as names (capitalised wherever they occur
    inside a sentence: "Premium", "Satellite"), however the customer typed them."""
    found = set()
    for word in set(re.findall(r"[A-Za-z][A-Za-z0-9'-]+", question)):
        term = tokenize(word)
        if len(term) != 1 or len(word) < 3:
            continue
        inside = [m.group(1) for text in texts for m in re.finditer(rf"(?<=[a-z0-9,;] )({re.escape(word)})\b", text,
                                                                   re.IGNORECASE)]
        if len(inside) >= 2 and sum(w[0].isupper() for w in inside) >= 0.8 * len(inside):
            found.add(_PERIOD_WORDS.get(term[0], term[0]))
    return frozenset(found)


def _continues(question: str, best: Unit, value: re.Pattern[str] | None) -> bool:
    """Does the answer go on past its best unit? An explanation or a procedure does; a question
    after one value does only when the best unit is too short to hold it."""
    single_fact = value is not None or bool(_FACT_QUESTION.search(_last_sentence(question)))
    if not single_fact:
        return True
    if value is not None:
        return _words(best.text) < 8 and not value.search(best.text)  # "No bars:" needs what follows
    return _words(best.text) < 5 and not re.search(r"\d", best.text)


def _last_sentence(question: str) -> str:
    """The question itself, without the context before it ("I live in London. How long …?")."""
    parts = [p for p in re.split(r"(?<=[.!?])\s+", question.strip()) if p]
    return parts[-1] if parts else question


def _heading_value(unit: Unit, value: re.Pattern[str]) -> str:
    """The last heading of the unit's path that holds the value asked for ("AcmeOS 5.0.0
    (2025-01-14)" above a release note), or ''."""
    if unit.kind == "row":
        return ""
    for part in reversed(unit.context.split(" > ")):
        if value.search(part):
            return part.strip()
    return ""


def _quote(unit: Unit) -> str:
    """The unit with its marker before the closing punctuation ("... 3 years [2].")."""
    body = unit.text.rstrip()
    body = body[:1].upper() + body[1:]  # a list item quoted as a sentence ("no bars: …" → "No bars: …")
    closing = re.search(r"[.!?:;]+[\"')\]]*$", body)
    cut = closing.start() if closing else len(body)
    end = body[cut:] if closing else "."
    return f"{body[:cut].rstrip()} [{unit.source}]{end}"


def _words(text: str) -> int:
    return len(cite.MARKER.sub(" ", text).split())


def extract(question: str, sources: list[tuple], weights: dict[str, float] | None = None,
            max_words: int = 60, aliases: Aliases | None = None) -> Extraction:
    """Compose an answer from ``sources`` — (number, text, heading), (number, text, heading,
    retrieval score) or (number, text, heading, score, (document, position)) — that quotes them only.

    ``weights`` are the question's content terms with their idf in the serving index (the
    search's ``term_weights``); without them every term weighs 1.
    """
    qtype = question_type(question)
    asked = list(dict.fromkeys(_PERIOD_WORDS.get(t, t) for t in tokenize(question)))
    known = {_PERIOD_WORDS.get(t, t): w for t, w in (weights or {}).items()}
    weights = {t: known[t] for t in asked if t in known} if known else {}
    weights = weights or {t: 1.0 for t in asked}
    products = aliases.products if aliases is not None else codes
    q_codes, q_regions = products(question), regions(question)
    # "a Satellite": no model named, but every model of that family is what the question is about
    q_family = aliases.families(question) if aliases is not None and not q_codes else set()
    plus = _plus_names(question)  # "Support+": another product than "Support"
    known = aliases.known if q_family else frozenset()
    priors = {source[0]: float(source[3]) if len(source) > 3 else 0.0 for source in sources}
    pool = [u for source in sources for u in units(source[0], source[1], source[2], question)]
    if not pool:
        return Extraction("", [], qtype, 0.0)
    named = names(question, [source[1] for source in sources])
    weights = {t: w * FORM_WORD_SHARE if t in _REQUEST_WORDS else w for t, w in weights.items()}
    # "port-forwarding" is also read as "portforwarding", "port" and "forward": one concept, counted once
    # (a unit that writes the compound holds its parts too).
    weights = {t: w for t, w in weights.items() if not _compound_of_parts(t, weights)}
    # The product asked is a filter (the product checks below), not what the question is about: its name
    # ("Gateway G5") is not the key term a unit must hold ("How many Satellites can I use with a Gateway G5?").
    product_words = set().union(*(terms(name) for name, found in (aliases.names.items() if aliases else ())
                                  if found & q_codes)) if q_codes else set()
    # "How long", "how fast", "how close" ask for a kind of value, which the value check rewards: the word
    # ("long" in "How long do I have to return…") says little about which unit answers.
    form_words = (_FORM_WORDS - _VALUE_VERBS) | question_phrase_terms(question)
    key = key_term({t: w for t, w in weights.items()
                    if t not in product_words and not (qtype in _VALUE and t in form_words)}, pool)
    if qtype in _VALUE:
        weights = {t: w * FORM_WORD_SHARE if t in form_words else w for t, w in weights.items()}
    # The asked product's own name ("Router" of "Router X200") is checked as a product, not as a name every
    # answer must repeat ("2 years in the US …" under "How long is the warranty?" names no product).
    named = frozenset(t for t in named if weights.get(t, COMMON_NAME_IDF) >= COMMON_NAME_IDF and t not in product_words)
    paragraphs: dict[tuple[int, int], set[str]] = {}
    for u in pool:
        paragraphs.setdefault((u.source, u.block), set()).update(terms(u.text))
    predicate = _predicate(question)
    family = frozenset(weights) - product_words
    same = _same_words(question, weights, q_codes, products)
    scored = [_score(u, weights, qtype, q_codes, q_regions, priors.get(u.source, 0.0), named, products, key,
                     frozenset(paragraphs[(u.source, u.block)]), predicate, same, family,
                     frozenset(terms(question)), q_family, known, plus, _pairs(question),
                     _numbers(question)) for u in pool]
    # A unit whose label the question says ("HW A (February 2024 – …): …" for "the first (HW A) units"); its
    # sibling entries ("HW B (…): … after some HW A units restarted") are about something else.
    asked_label = {id(s): _label_asked(s.unit.text, question) for s in scored}
    if any(asked_label.values()):
        scored = [_Scored(s.score * (LABEL_MATCH if asked_label[id(s)] else LABEL_OTHER if _label(s.unit.text) else 1.0),
                          s.lexical, s.unit) for s in scored]
    # The first unit under a heading that asks the question ("How long is the warranty?") was written to answer it.
    seen = set().union(*(terms(u.text) | terms(u.context) for u in pool))
    in_docs = {t: w for t, w in weights.items() if t in seen}
    scored = [_Scored(s.score * FAQ_ANSWER, s.lexical, s.unit) if s.unit.order == 0 and _asks_same(s.unit, in_docs)
              else s for s in scored]
    # Ties go to the earlier source (better retrieved) and the earlier unit.
    best = max(scored, key=lambda s: (s.score, -s.unit.source, -s.unit.order))
    chosen = [best.unit]
    value = _VALUE.get(qtype)
    # A question after one value ("What is the default lease time now?") is answered by its best unit; one
    # after an explanation, a procedure or a place in the menus by the lead of the part it names.
    asked = _last_sentence(question)
    explains = value is None and not (_FACT_QUESTION.search(asked) and not _EXPLAINS.search(asked))
    passages = _read_sources(sources, question) if explains else []
    # A how-to whose best unit is a step of a procedure is answered by that procedure, not by the lead of a part
    # whose heading happens to hold more of its words ("Supported drives" for "turn on file sharing for a drive").
    procedure = qtype == "howto" and best.unit.kind == "step"
    lead = _section_lead(scored, weights, max_words, best.unit, passages, question, _successors(sources)) \
        if explains and not procedure else []
    if lead:  # the question names a part of a source: its lead is the answer (what it is, where in the menus)
        return Extraction(_compose(lead, 2 * max_words), lead, qtype, round(best.score, 4), round(best.lexical, 4), 1.0)
    if best.unit.kind == "step" and value is not None and value.search(best.unit.text):
        pass  # a value asked for and said in one step ("3. By phone: call … 1-888-…"): that step, not the procedure
    elif best.unit.kind == "step":
        # A procedure is quoted whole, in order, from its first step (up to twice the budget).
        block = [s.unit for s in scored if s.unit.source == best.unit.source and s.unit.block == best.unit.block
                 and s.unit.kind == "step"]
        chosen, used = [], 0
        for unit in block:
            if chosen and used + _words(unit.text) > 2 * max_words:
                break
            chosen.append(unit)
            used += _words(unit.text)
        lead = [s.unit for s in scored if s.unit.source == best.unit.source and s.unit.order == block[0].order - 1
                and s.unit.kind == "sentence" and s.unit.text.rstrip().endswith(":")]
        chosen = lead + chosen
    elif best.unit.kind != "row" and _continues(question, best.unit, value):
        # An explanation (or a very short fact) goes on with what follows it in its passage.
        used = _words(best.unit.text)
        following = sorted((s for s in scored if s.unit.source == best.unit.source and s.unit.order > best.unit.order),
                           key=lambda s: s.unit.order)
        last = best.unit.order
        for s in following:
            if s.unit.order != last + 1 or s.unit.kind in ("row", "step") or s.unit.block != best.unit.block \
                    and s.unit.kind != "item":
                break
            if _about_another(s.unit.text, q_codes, products) \
                    or _label(best.unit.text) and _label(s.unit.text) and not _label_asked(s.unit.text, question):
                break  # "KE-103: your provider uses PPPoE" after the KE-102 asked about: another entry
            last = s.unit.order
            if s.unit.kind == "sentence" and is_fragment(s.unit.text):
                continue  # a fragment of the passage ("LED Clear Motion is set to"): left out
            if used + _words(s.unit.text) > max_words or value is not None and len(chosen) >= 2:
                break
            chosen.append(s.unit)
            used += _words(s.unit.text)
    before = [s.unit for s in scored if s.unit.source == best.unit.source and s.unit.order == best.unit.order - 1
              and s.unit.block == best.unit.block and s.unit.kind == "sentence" and _words(s.unit.text) <= 3]
    if before and best.unit.kind == "sentence" and re.match(r"(?i)(yes|no)\b", before[0].text):
        chosen.insert(0, before[0])  # "No. The gateway is sold only in …": the FAQ's own yes or no
    if best.unit.kind == "row" and value is not None:
        # Rows of the same table that hold the value and match as well ("Phone, US" and "Phone, UK" hours).
        used = _words(best.unit.text)
        for s in sorted(scored, key=lambda s: -s.score):
            if len(chosen) >= 3 or s.score < 0.85 * best.score or s.unit is best.unit:
                continue
            if s.unit.kind == "row" and s.unit.source == best.unit.source and s.unit.block == best.unit.block \
                    and value.search(s.unit.text) and used + _words(s.unit.text) <= max_words:
                chosen.append(s.unit)
                used += _words(s.unit.text)
        chosen.sort(key=lambda u: u.order)
    if value is not None and len(chosen) == 1 and best.unit.kind in ("sentence", "item", "row"):
        # The sentence's values of the asked kind, or (when it states none: "how much power") its numbers.
        stated = value if value.search(best.unit.text) else NUMBER
        asked_terms = frozenset(weights)
        narrowed = narrow(best.unit.text, stated,
                          lambda text: _asked_in(text, q_codes, q_regions, named, products, asked_terms))
        if narrowed == best.unit.text:
            narrowed = narrow(best.unit.text, stated, lambda text: _label_in(text, asked_terms), labelled=True)
        if narrowed != best.unit.text:
            chosen = [Unit(best.unit.source, best.unit.kind, narrowed, best.unit.context, best.unit.block,
                           best.unit.order)]
    if value is not None and not value.search(best.unit.text):
        where = _heading_value(best.unit, value)
        if where:  # the value is the section's title: "AcmeOS 5.0.0 (2025-01-14) — New: …"
            chosen[0] = Unit(best.unit.source, best.unit.kind, f"{where}: {best.unit.text}", best.unit.context,
                             best.unit.block, best.unit.order)
    if q_regions and value is None and best.unit.kind != "step" and not any(regions(u.text) for u in chosen):
        # "Can I trade in my router in Canada?": the sentence that says where it applies is part of the answer
        # ("Trade-in is available in the US only"), which the best sentence alone leaves out.
        where = [s for s in scored if s.unit.source == best.unit.source and s.unit.section == best.unit.section
                 and s.unit not in chosen and regions(s.unit.text) and s.unit.kind == "sentence"]
        if where:
            chosen = sorted([*chosen, max(where, key=lambda s: s.score).unit], key=lambda u: u.order)
    if explains:
        chosen = _explained(question, chosen, passages, max_words)
    if chosen and chosen[-1].options:  # "To use it, you must:" and the lines it announces
        chosen[-1] = _with_options(chosen[-1], question, max_words - sum(_words(u.text) for u in chosen[:-1]))
    text = _compose(chosen, max_words)
    said = " ".join(f"{u.context}\n{u.text}" for u in chosen)
    unnamed = next((f"{word}+" for word in sorted(plus) if not _says_plus(word, said)), "")
    return Extraction(text, chosen, qtype, round(best.score, 4), round(best.lexical, 4), _margin(best, scored, value),
                      unnamed=unnamed,
                      is_title=len(chosen) == 1 and chosen[0].kind == "sentence" and is_fragment(chosen[0].text)
                      and not re.match(r"(?i)(yes|no)\b", chosen[0].text),
                      states_value=value is None or value.search(_STEP_NUMBER.sub("", cite.MARKER.sub(" ", text))) is not None)


LABEL_MATCH = 1.3
"""A unit whose label ("HW A", "Solid amber") the question says word for word."""
LABEL_OTHER = 0.7
"""Then, a unit labelled otherwise: another entry of the list (as a unit naming another model only)."""


def _label(text: str) -> str:
    """The label a list item or entry opens with ("HW A (February 2024 – …): …" → "HW A"), or ''."""
    found = re.match(r"\s*(?:[-*+•]\s*)?\**([^:*()\n]{1,40}?)\**\s*(?:\([^)]*\))?\s*[:—]", text)
    return found.group(1).strip() if found and len(found.group(1).strip()) >= 2 else ""


OTHER_SUBJECT = 0.8
"""A unit whose subject is a name the question does not say (a plan, a service, a variant)."""
_SUBJECT_NAME = re.compile(r"^\W*((?:[A-Z][\w+&'-]*)(?:\s+[A-Z][\w+&'-]*)+)")


def _about_another_name(text: str, asked: frozenset[str]) -> bool:
    """Does ``text`` open with a name of two or more words the question does not say ("Support Plus extends
    it …", "Certified Renewed products: 1 year")? Its value is that thing's. Countries and products are
    checked on their own (``regions``, the product checks)."""
    found = _SUBJECT_NAME.match(text)
    if found is None or not asked:
        return False
    name = found.group(1)
    if regions(name) or _CODE.search(name):
        return False
    return not terms(name) <= asked


def _label_asked(text: str, question: str) -> bool:
    label = _label(text)
    if len(label.split()) < 2 and not _CODE.search(label):
        return False  # one plain word ("Off") is too common to tell an entry by
    return re.search(rf"(?<!\w){re.escape(label)}(?!\w)", question, re.IGNORECASE) is not None


def _date(day: int, month: str) -> re.Pattern[str]:
    return re.compile(rf"\b{day}(?:st|nd|rd|th)?\s+{month}\b|\b{month}\s+{day}(?:st|nd|rd|th)?\b", re.IGNORECASE)


_HOLIDAYS = {"christmas eve": _date(24, "december"), "christmas": _date(25, "december"),
             "boxing day": _date(26, "december"), "new year's eve": _date(31, "december"),
             "new year's day": _date(1, "january"), "new year": _date(1, "january"),
             "independence day": _date(4, "july"), "halloween": _date(31, "october")}
"""Holidays on a fixed date, as a schedule writes them ("closed on 25 December")."""


def _same_words(question: str, weights: dict[str, float], q_codes: set[str],
                products: Callable[[str], set[str]]) -> Callable[[set[str], str], set[str]]:
    """The question's terms a unit holds in other words: a product's other name ("KR-300" for the
    "AX3000" asked, through the KB's aliases) and two words written as one ("setup" for "set up")."""
    named = {t for t in weights if products(t) & q_codes}
    words = tokenize(question)
    joined = {a + b: (a, b) for a, b in itertools.pairwise(words)}
    holidays = [(terms(name), date) for name, date in _HOLIDAYS.items() if re.search(rf"\b{name}\b", question, re.IGNORECASE)]

    def same(found: set[str], text: str) -> set[str]:
        extra = set()
        for said, date in holidays:  # "Christmas" is what a calendar line writes "25 December"
            if date.search(text):
                extra |= said
        if named and products(text) & q_codes:
            extra |= named
        for compound, parts in joined.items():
            if compound in found:
                extra.update(parts)
        return found | extra if extra else found

    return same


def _about_another(text: str, q_codes: set[str], products: Callable[[str], set[str]]) -> bool:
    """A unit that opens with a label naming another code than those asked ("KE-103: …")."""
    label = _label(text)
    if not label:
        return False
    named = products(label)
    return bool(named) and not named & q_codes


ASKED_THING = 10
"""In ``_asked_in``: a product, region or name asked counts more than any number of other terms."""


def _asked_in(text: str, q_codes: set[str], q_regions: set[str], named: frozenset[str],
              products: Callable[[str], set[str]], asked_terms: frozenset[str] = frozenset()) -> int:
    """How much of what the question names ``text`` names: a product or region asked outweighs all its
    other terms. A name counts as a term: it is often the sentence's subject ("Support is closed on
    1 January, … and 25 December"), not one of the things it lists values for."""
    found = terms(text)
    return ASKED_THING * (len(products(text) & q_codes) + len(regions(text) & q_regions)) \
        + len(found & (asked_terms | named))


def _label_in(text: str, asked_terms: frozenset[str]) -> int:
    """How many of the question's words ``text`` writes as a name ("Standard …, 5–8 days; Express …" for
    "standard delivery"): the variant asked, once no product or country tells the parts apart."""
    label = re.match(r"\W*([A-Z][a-z]+)", text)
    return ASKED_THING * len(terms(label.group(1) if label else "") & asked_terms) \
        + len(terms(text) & asked_terms)


_LEAD = re.compile(r"^(?P<lead>[^;:—]{3,}?(?::|\s—|\s-))\s+(?P<rest>.+)$", re.DOTALL)
_PARENTHESIS = re.compile(r"\s*\(([^()]*)\)")
_PART_SEPARATORS = (
    re.compile(r";\s+"),
    re.compile(r",?\s+and\s+(?=(?:in|on|for)\b)|,\s+(?=(?:in|on|for)\b)"),
    re.compile(r",\s+(?=\d|[A-Z]{2}|[A-Z][a-z]+ [A-Z0-9])|,?\s+and\s+(?=\d|[A-Z])"),
)
"""From the coarsest: "…; …", "in the UK …, and in the EU …", "KR-180 4.1 W, KR-300 6.8 W and …"."""
NUMBER = re.compile(r"(?<![\w-])\d+(?:[.,]\d+)*(?![\w-])")
"""A number that is not part of a code (KR-180)."""


def _names_a_thing(part: str) -> bool:
    """A product code, a region or a name ("Express", "Certified Renewed"): the part gives a value *for*
    something ("… and 5,000 devices per organisation" does not: it is another value of the same thing)."""
    return bool(_CODE.search(part) or regions(part) or re.search(r"\b[A-Z][a-z]+", part))


def narrow(text: str, value: re.Pattern[str], asked: Callable[[str], int], labelled: bool = False) -> str:
    """A sentence that gives the asked value for several things ("KR-180 4.1 W, KR-300 6.8 W, …",
    "in the UK … £4.99, and in the EU €5.99"), cut to the part about the thing the question names,
    with the sentence's lead ("Typical power in standby:"): the other values are not the answer and
    a customer skimming would take one of them. Unchanged when no single part is about it. ``labelled``:
    only parts that each open with a name ("Standard $9.95, 5–8 days; Express …") are told apart."""
    body = text.strip()
    lead, rest = "", body
    found = _LEAD.match(body)
    if found and not value.search(found.group("lead")):
        lead, rest = found.group("lead") + " ", found.group("rest")
    # A parenthesis is a part of its own when it is about another thing ("(about 120,000 on the KR-180)"),
    # not when it qualifies what it follows ("Mesh 3-pack ($299)").
    inner = [m.group(1) for m in _PARENTHESIS.finditer(rest) if value.search(m.group(1)) and _names_a_thing(m.group(1))]
    main = _PARENTHESIS.sub("", rest) if inner else rest
    parts, pieces = [main], list(inner)
    for separator in _PART_SEPARATORS:
        parts = [piece for part in parts for piece in separator.split(part) if piece.strip()]
        pieces = [piece for part in pieces for piece in separator.split(part) if piece.strip()]
        candidates = [(p, False) for p in parts] + [(p, True) for p in pieces]
        valued = [(p, paren) for p, paren in candidates if value.search(p)]
        hits = [asked(p) for p, _ in valued]
        top = max(hits, default=0)
        # The question names a thing (a product, region or name) and one part only is about it: the others
        # name other things. A question that names none keeps every value ("up to 32 (16 on the KR-180)").
        others = [(p, h) for (p, _), h in zip(valued, hits, strict=True) if h != top]
        if len(valued) >= 2 and top >= ASKED_THING and hits.count(top) == 1 \
                and all(h < ASKED_THING and _names_a_thing(p) for p, h in others) \
                and not (labelled and not all(re.match(r"\W*[A-Z][a-z]", p) for p, _ in valued)):
            break  # one part is about the thing asked, the others about other things
    else:
        return text
    part, paren = valued[hits.index(max(hits))]
    part = part.strip().rstrip(".;,")
    holder = main if paren else parts[0]
    starts = value.search(part)
    if starts is not None and part[:starts.start()].strip(" ~≈").lower() not in ("", "about", "around", "up to"):
        starts = None
    if starts is not None and (paren or part != parts[0].strip().rstrip(".;,") and value.search(parts[0])):
        # "The maximum is 64 devices for the KR-180, 128 for the KR-300": the subject stays, its value goes;
        # "… counts towards the maximum (64 for the KR-180, 128 for the KR-300)": the sentence is the subject.
        opening = value.search(holder)
        subject = holder[:opening.start()].rstrip() if opening else holder.strip().rstrip(".;,") + ":"
        first_word = part.split()[0].lower() if part.split() else ""
        if subject.lower().endswith(" " + first_word):
            subject = subject[: -len(first_word) - 1]
        if len(subject.split()) >= 2 and not _CODE.search(subject):
            part = f"{subject} {part}"
    narrowed = f"{lead}{part}".replace("**", "").strip()
    return narrowed[:1].upper() + narrowed[1:] + "."


def _margin(best: _Scored, scored: list[_Scored], value: re.Pattern[str] | None) -> float:
    """How far ahead the best unit is of the best one that states another value of the kind asked
    (another price, another duration): a close second is a coin toss between two facts."""
    if value is None or best.score <= 0:
        return 1.0
    mine = {v.lower() for v in value.findall(best.unit.text)} if value.search(best.unit.text) else set()
    rivals = [s.score for s in scored if s.unit is not best.unit and value.search(s.unit.text)
              and {v.lower() for v in value.findall(s.unit.text)} - mine]
    return round(1 - max(rivals) / best.score, 4) if rivals else 1.0


_STEP_NUMBER = re.compile(r"^\s*(?:step\s+)?\d{1,2}[.):]\s+", re.IGNORECASE | re.MULTILINE)
"""A step's own number ("3. Add satellites"): no value of anything."""


def _compose(chosen: list[Unit], max_words: int) -> str:
    steps = [u for u in chosen if u.kind == "step"]
    if steps:
        lead = [u.text for u in chosen if u.kind != "step"]
        body = [re.sub(r"^\s*(?:step\s+)?(\d{1,2})[.):]\s+", r"\1. ", u.text, flags=re.IGNORECASE) for u in steps]
        body[-1] = _quote(Unit(steps[-1].source, "step", body[-1], "", 0, 0))
        return "\n".join([*lead, *body])
    parts: list[str] = []
    used = 0
    said: set[str] = set()
    for unit in chosen:
        normal = " ".join(re.findall(r"[a-z0-9]+", unit.text.lower()))
        if normal in said:
            continue  # the same sentence twice in a passage is quoted once
        said.add(normal)
        words = _words(unit.text)
        if parts and used + words > max_words:
            break
        short_reply = unit is chosen[0] and len(chosen) > 1 and words <= 3 and re.match(r"(?i)(yes|no)\b", unit.text)
        quoted = unit.text.strip() if short_reply else _quote(unit)
        following = chosen[chosen.index(unit) + 1] if unit is not chosen[-1] else None
        if quoted.endswith((":", ";")) and (following is None or following.kind not in ("item", "row", "step")
                                            and not _label(following.text)):
            quoted = quoted[:-1] + "."  # "… for store credit:" without the list it announced ends as a sentence
        parts.append(quoted)
        used += words
    if len(parts) == 1 and used > max_words:
        return _trim(chosen[0], max_words)
    return " ".join(parts)


def _trim(unit: Unit, max_words: int) -> str:
    """A single unit longer than the budget: cut at its last clause boundary within it."""
    words = unit.text.split()
    head = " ".join(words[:max_words])
    cut = max(head.rfind("; "), head.rfind(", "), head.rfind(" — "))
    head = head[:cut] if cut > len(head) // 2 else head
    return f"{head.rstrip(' ,;')} … [{unit.source}]"


SECTION_MATCH = 0.75
"""Share of the question's weighted terms a part's own heading (with its sub-heading or menu path) must
hold for that part's lead to be the answer: "How do I connect a Bluetooth keyboard?" and the section
"Connecting a Bluetooth keyboard or mouse" (chosen on E-Manual half a: 0.5 quoted more leads of parts
that were not asked about)."""
LEAD_FROM = 1
"""Without a part named by the question, the best unit's part is quoted from its start only when the best
unit is among its first ``LEAD_FROM + 1`` sentences (a fact deep in a list stays the answer on its own)."""
_EXPLAINS = re.compile(
    r"^\W*(?:what (?:is|are) (?:the )?(?:use|uses|function|functions|purpose|features?|benefits?) of\b"
    r"|what (?:does|do) .+ (?:offer|do|provide)\W*$"
    r"|what (?:is|are) (?!(?:the|it|this|that|they|these|those)\b)(?:an? )?[\w' -]{1,40}?(?:\?|\s+and\b)"
    r"|what (?:is|are) (?:it|they)\?"
    r"|(?:from )?where (?:to |do i |can i |i can )?(?:view|find|see|select|get|check|set|change|open)\b)",
    re.IGNORECASE)
"""Questions that read like one value but ask for an explanation or a place in the menus: "What is
Universal Guide?", "What is the use of …", "Where do I find the software version?"."""


OVERLAP_CHARS = 400
"""Most characters two neighbouring chunks of a document may share (the KB's chunk overlap is less)."""


def _joined(before: str, text: str) -> str:
    """``before`` and the chunk after it as the document has them: the text they share once, and a line
    the split cut in two (the next chunk opening on ". The HDMI …" or ", and then …") whole again."""
    for size in range(min(len(before), len(text), OVERLAP_CHARS), 19, -1):
        if before.endswith(text[:size]):
            text = text[size:]
            break
    return before + text if re.match(r"\s*[.,;:)]", text) else f"{before}\n{text}"


def _read_sources(sources: list[tuple], question: str) -> list[Unit]:
    """The units of every shown source, as ``units`` reads them, except that a chunk continuing a shown
    chunk of its document (a source's fifth element is its (document, position)) and opening with no menu
    path of its own takes the path the earlier chunk ends under: "Settings / General / … / HDMI UHD Color"
    written at the section's start is the path of the sentences the next chunk holds. The path is cited
    with the source it is written in (``Unit.path_source``)."""
    place = {source[0]: tuple(source[4]) for source in sources if len(source) > 4 and source[4] is not None}
    shown = {where: number for number, where in place.items()}
    read = {source[0]: units(source[0], source[1], source[2], question) for source in sources}
    pool: list[Unit] = []
    for number, text, heading, *_ in sources:
        own = read[number]
        earlier = shown.get((place[number][0], place[number][1] - 1)) if number in place else None
        if earlier is None or not own or own[0].path or own[0].subheading:
            pool += own
            continue
        joined = units(number, _joined(_text_of(sources, earlier), text), heading, question)
        carried = joined[len(read[earlier])].path if len(joined) > len(read[earlier]) else ""
        first = own[0].section
        pool += [replace(u, path=carried, path_source=earlier) if carried and u.section == first else u for u in own]
    return pool


def _successors(sources: list[tuple]) -> dict[int, int]:
    """For each shown source, the shown source holding the next chunk of its document (by (document, position))."""
    place = {source[0]: tuple(source[4]) for source in sources if len(source) > 4 and source[4] is not None}
    shown = {where: number for number, where in place.items()}
    return {number: shown[(doc, position + 1)] for number, (doc, position) in place.items() if (doc, position + 1) in shown}


def _text_of(sources: list[tuple], number: int) -> str:
    return next(source[1] for source in sources if source[0] == number)


_ASKS_WAY = re.compile(r"\b(?:how (?:do|can|should|would|to)|where)\b|^\W*can (?:i|we|you)\b", re.IGNORECASE)
"""A question after a way or a place: "How do I …", "How to …", "Where do I find …", "Can I change …" (which
asks how as much as whether)."""


def _entry(unit: Unit) -> bool:
    """An entry of a list of options: a short name, a colon, what it does ("Brightness : Adjusts the screen
    brightness")."""
    if ":" not in unit.text:
        return False
    label = _label(unit.text)
    return bool(label) and len(label.split()) <= ENTRY_WORDS and label[:1].isupper() \
        and bool(unit.text.split(":", 1)[1].strip(" ."))


ENTRY_WORDS = 5
"""Most words of an entry's name ("Start Recording Early"); a longer one before a colon is a sentence."""
_FILLER_WORDS = frozenset(tokenize("i my me we our you your want wants need needs to do does can could what how why "
                                   "should would is are am the a an"))
_REFERS_BACK = re.compile(r"^(?:this|these|that|it|they)\b", re.IGNORECASE)


def _restates(unit: Unit, question: str) -> bool:
    """Does the unit only say back what the question says ("The TV smells of plastic." for "Why does the TV
    smell of plastic?")? A troubleshooting table's problem cell, or an FAQ's question: not its answer."""
    said = terms(unit.text) - _FILLER_WORDS
    return len(said) >= 2 and said <= terms(question) and not _INSTRUCTION.search(unit.text)


def _asks(unit: Unit) -> bool:
    """A question written in the source (an FAQ's, a troubleshooting table's "How can I change the
    language?"): it answers nothing itself."""
    return unit.text.rstrip(" *_\"')").endswith("?")


def _reply(chosen: list[Unit], question: str, read: dict[tuple[int, int], Unit], max_words: int) -> list[Unit]:
    """For an answer that says back the question, what its source says next, when that is a reply: an
    instruction or a sentence about it ("Remove the base stand …", "This smell is normal …"), up to
    ``max_words``. The answer unchanged when nothing like that follows."""
    if not (_restates(chosen[0], question) or _asks(chosen[0])):
        return chosen
    reply: list[Unit] = []
    used = 0
    at = chosen[0]
    while (nxt := read.get((at.source, at.order + 1))) is not None and nxt.kind in ("sentence", "item") \
            and not is_fragment(nxt.text) and (_INSTRUCTION.search(nxt.text) or _REFERS_BACK.match(nxt.text)):
        if used + _words(nxt.text) > max_words:
            break
        reply.append(nxt)
        used += _words(nxt.text)
        at = nxt
    return reply or chosen


def _with_intro(chosen: list[Unit], question: str, read: dict[tuple[int, int], Unit], max_words: int) -> list[Unit]:
    """An entry of a list of options ("Brightness : Adjusts …") quoted, for a question after a way or a place,
    with what introduces the list: the paragraph before its entries that ends in a colon ("In the Ambient
    Mode browser screen, move the focus to …, and then press the Select button. You can change the following
    settings:"), which says where the option is; and with the other entries of that list the question names
    ("auto brightness and ambient off timer")."""
    first = chosen[0]
    if not _entry(first):
        return chosen
    at = first
    entries = [first]
    while (before := read.get((at.source, at.order - 1))) is not None and (_entry(before) or _entry_block(before, read)):
        if _entry(before):
            entries.insert(0, before)
        at = before
    intro_end = read.get((at.source, at.order - 1)) if _ASKS_WAY.search(_last_sentence(question)) else None
    intro = sorted((u for u in read.values() if intro_end is not None and intro_end.text.rstrip().endswith(":")
                    and u.source == intro_end.source and u.block == intro_end.block and u.order <= intro_end.order
                    and u.kind == "sentence" and not is_fragment(u.text[:-1] + ".")), key=lambda u: u.order)
    at = first
    while (after := read.get((at.source, at.order + 1))) is not None and (_entry(after) or _entry_block(after, read)):
        if _entry(after):
            entries.append(after)
        at = after
    asked = [u for u in entries if u is not first and _label_asked(u.text, question)]
    while asked and sum(_words(u.text) for u in [*chosen, *asked]) > max_words:
        asked.pop()  # the entries named last give way first; the one that answered stays
    body = sorted({id(u): u for u in [*chosen, *asked]}.values(), key=lambda u: u.order)
    used = sum(_words(u.text) for u in body)
    while intro and used + sum(_words(u.text) for u in intro) > max_words:
        intro.pop(0)  # the sentence nearest the list says most about it
    return [*intro, *body]


def _entry_block(unit: Unit, read: dict[tuple[int, int], Unit]) -> bool:
    """Is ``unit`` a later sentence of an entry ("… ambient light level." after "Auto Brightness : …")?"""
    at = unit
    while (before := read.get((at.source, at.order - 1))) is not None and before.block == unit.block:
        if _entry(before):
            return True
        at = before
    return False


def _explained(question: str, chosen: list[Unit], passages: list[Unit], max_words: int) -> list[Unit]:
    """An explanation quoted from inside a part (not its lead): a restated question gives way to the reply
    after it (``_reply``); an option of a list comes with the list's intro (``_with_intro``); for a
    question after a way or a place, the part's menu path goes first ("Go to Settings > … [1]."), where
    the part has one and the answer does not already say where to go."""
    if not chosen or any(u.kind in ("step", "row") for u in chosen):
        return chosen
    read = {(u.source, u.order): u for u in passages}
    chosen = _reply(chosen, question, read, max_words)
    chosen = [u for u in chosen if not _asks(u)] or chosen
    chosen = _with_intro(chosen, question, read, max_words)
    if not _ASKS_WAY.search(_last_sentence(question)):
        return chosen
    first = read.get((chosen[0].source, chosen[0].order), chosen[0])
    if not first.path or any(_INSTRUCTION.search(u.text) and "go to" in u.text.lower() for u in chosen[:1]):
        return chosen
    said = f"Go to {first.path}."
    if sum(_words(u.text) for u in chosen) + _words(said) - said.count(" > ") > max_words:
        return chosen
    return [replace(first, source=first.path_source or first.source, kind="sentence", text=said), *chosen]


_ASKS_PLACE = re.compile(r"^\W*(?:from )?where\b", re.IGNORECASE)
_PLACE_VERBS = frozenset(terms("find view see get locate"))
"""The verb of a question after a place ("Where do I *find* Caption Settings?"): how it asks, not what about."""


def _with_options(unit: Unit, question: str, room: int) -> Unit:
    """A sentence announcing options ("… by using the following functions:") with the options it lists: the
    ones the question names ("Tint (G/R)" for "How do I configure Tint?"), or all of them when it names none
    and they fit in ``room`` words. A label repeated between them is a caption ("Try Now"), not an option."""
    if not unit.options or not unit.text.rstrip().endswith(":"):
        return unit
    options = [o for o in dict.fromkeys(unit.options) if unit.options.count(o) == 1]
    asked = terms(question)
    named = [o for o in options if (own := terms(_PARENTHESIS.sub("", o))) and own <= asked]
    chosen = named or options
    text = f"{unit.text.rstrip()} {', '.join(chosen)}."
    if not chosen or not named and _words(text) > room:
        return unit
    return replace(unit, text=text)


def _section_lead(scored: list[_Scored], weights: dict[str, float], max_words: int, best: Unit,
                  passages: list[Unit] | None = None, question: str = "", after: dict[int, int] | None = None,
                  ) -> list[Unit]:
    """The lead of the shown part whose heading is what the question asks about: its menu path (as
    "Go to Settings > General > …") and its first sentences, then the parts after it in the same
    source, up to ``max_words`` (a sentence that does not fit is left out, a shorter one after it
    may fit). Without such a part (no heading holds ``SECTION_MATCH`` of the question), the best
    unit's part when the best unit opens it. [] otherwise, or when the part holds a procedure (its
    steps are quoted whole) or a table."""
    if _ASKS_PLACE.search(_last_sentence(question)):
        weights = {t: w for t, w in weights.items() if t not in _PLACE_VERBS} or weights
    total = sum(weights.values()) or 1.0
    # The units as read with the chunks before them (a section's menu path written in the chunk before).
    read = {(u.source, u.order): u for u in passages or ()}
    best = read.get((best.source, best.order), best)
    parts: dict[tuple[int, int], list[Unit]] = {}
    for s in scored:
        parts.setdefault((s.unit.source, s.unit.section), []).append(read.get((s.unit.source, s.unit.order), s.unit))
    ranked = []
    for (source, section), members in parts.items():
        heading = terms(min(members, key=lambda u: u.order).context)
        ranked.append((sum(w for t, w in weights.items() if t in heading) / total, -source, -section))
    match, source, section = max(ranked)
    source, section = -source, -section
    if match < SECTION_MATCH:
        source, section = best.source, best.section
        opening = sorted((u for u in parts[(source, section)] if u.kind in ("sentence", "item")), key=lambda u: u.order)
        if not opening or best.order > opening[min(len(opening) - 1, LEAD_FROM)].order:
            return []
    body = sorted(parts[(source, section)], key=lambda u: u.order)
    if any(u.kind in ("step", "row") for u in body) or sum(bool(_label(u.text)) for u in body) >= 2:
        return []  # a procedure is quoted whole from its first step, a table row by row, an entry on its own
    following = sorted((u for (src, sec), members in parts.items() if src == source and sec > section
                        and sec // HEADING_PART == section // HEADING_PART for u in members), key=lambda u: u.order)
    # The chunk after it in its document, where shown: the part goes on in it, up to its first sub-heading.
    chunk = (after or {}).get(source)
    if chunk is not None and chunk != source:
        going_on = sorted((u for (src, _), members in parts.items() if src == chunk for u in members),
                          key=lambda u: u.order)
        following += [u for u in going_on if u.section == going_on[0].section and not (u.subheading or u.path
                                                                                        and not u.path_source)]
    lead: list[Unit] = []
    used = 0
    said_path = ""
    for unit in [*body, *following]:
        if (unit.source, unit.section) != (source, section) and unit.kind in ("step", "row"):
            break
        if unit.path and unit.path != said_path and (not lead or (lead[-1].source, lead[-1].section)
                                                     != (unit.source, unit.section)):
            said_path = unit.path
            said = f"{unit.subheading}: go to {unit.path}." if unit.subheading and lead else f"Go to {unit.path}."
            if used and used + _words(said) - said.count(" > ") > max_words:
                break
            lead.append(replace(unit, source=unit.path_source or unit.source, kind="sentence", text=said))
            used += _words(said) - said.count(" > ")  # the path's separators are no words
        if not lead and unit.kind == "sentence" and _words(unit.text) <= 3 and re.match(r"(?i)(yes|no)\b", unit.text):
            lead.append(unit)  # "No. The gateway is sold only in …": the FAQ's own yes or no
            continue
        if unit.kind not in ("sentence", "item") or is_fragment(unit.text) or _asks(unit) \
                or not unit.text.lstrip("*_")[:1].isupper():  # ", you can view …": a sentence's lost start
            continue
        if used and used + _words(unit.text) > max_words:
            if unit.source != source:
                break  # in the next chunk a later sentence would follow one left out ("In this case, …")
            continue
        listed = _with_options(unit, question, max_words - used)
        lead.append(listed)
        used += _words(listed.text)
        if listed is not unit:
            break  # the options it announces end what the lead says
    while lead and lead[-1].text.rstrip().endswith(":"):
        lead.pop()  # "… who can remotely:" and its list, written as labels, not quoted: it announces nothing
    return lead
