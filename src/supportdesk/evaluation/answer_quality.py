"""Text-quality measures for any answer text, with no model and no reference needed.

* **sentences** (:func:`split_sentences`): hard-wrapped lines are joined first; a list item
  ("1. ...", "- ..."), a table row or a heading is a unit of its own; a unit splits after
  ``.``/``!``/``?`` (with any ``[n]`` markers after it) before whitespace, except after a known
  abbreviation (e.g., i.e., approx., No.) or a single-letter initial. A marker-only piece
  joins the sentence before it.
* **repeats**: a sentence whose normalised form (lower case, markers and punctuation out)
  equals an earlier sentence of the same answer.
* **fragments** (:func:`fragment_reason`), a sentence that
  1. has fewer than 4 words (unless it ends in ``:`` and something follows), or
  2. has no verb-ish word (an auxiliary or modal, a contraction, a word of ``VERBS`` in any
     regular form, or a word of 5+ letters ending in -ed/-ing), or
  3. starts lower case mid-thought (its first letter is lower case, unless the first word is
     a camel-case name such as iOS/eSIM or a URL/address), or
  4. ends in a dangling word (``to``, ``the``, ``and``, ``is`` ... see ``DANGLING``), or
  5. is the answer's last sentence and ends in ``:`` (a list announced and never given).
  List items, table rows and headings are exempt from rules 1-3 (they are nominal by nature,
  and often start lower case), and so are framing sentences ("Hi there!", "Thanks!").
* **placeholders** (:func:`placeholders`): a bracket holding letters (``[A]``, ``[Your
  name]``; not a Markdown link), a citation marker used as a noun (after a word that needs an
  object: press/tap/select/hold/is/the/a/to/from/with/at/of ..., or as a sentence's subject
  before is/are/has/means/shows ...: "Press [2]", "is set to [2]", "hold the [2]", "[2] is the
  menu"; not after a noun or a particle: "the Select button [3]", "turn it on [1]"),
  ``<...>`` (not a URL or address), ``{...}``, and ``XXX`` (not ``Acme-XXXX``). Anything also found in the answer's sources is not invented and does not
  count.
* **prompt echo** (:func:`prompt_echo`): fixed cues of the prompt's apparatus ("Customer
  question:", "reference text only", ``<<<``, a ``[n]`` alone on a line as in the source
  blocks) and any 4 words in a row from the instructions
  in ``supportdesk.answers.prompts`` (the ``*_SYSTEM`` strings and the grounded user message;
  the sentences that prescribe what to *say* are left out, as is any 4-gram without a word of
  the apparatus: source, instruction, question, cite, sentence, bracket, numbered,
  reference, message) — unless the sources also hold it.
* **meta-talk** (:func:`meta_talk`): talk about being an AI or about the material given
  ("Sure, I can provide", "As an AI", "Based on the sources provided", "The context does not
  mention", "The customer asked ...").
* **words** (:func:`factual_words`): words of the answer without markers and without its
  framing sentences (greeting, thanks, sign-off, "Here's what our documentation says:").
"""

from __future__ import annotations

import html
import re
import statistics
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from typing import Any

from supportdesk.evaluation.scoring import token_f1

MARKER = re.compile(r"\[\d+(?:\s*[,;-]\s*\d+)*\]")
_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022])\s+")
_STRUCTURE = re.compile(r"^\s*(?:#{1,6}\s|\|)")
_END = re.compile(r"[.!?]+[\"')\u201d\u2019]*((?:\s*\[\d+(?:\s*[,;-]\s*\d+)*\])*)(?=\s|$)")
_WORD = re.compile(r"[A-Za-z0-9][\w'\u2019+-]*")


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


ABBREVIATIONS = _wordset("e.g i.e eg ie etc approx vs no nr mr mrs ms dr inc ltd st fig ca min max incl")



@dataclass
class Sentence:
    text: str
    """As written, markers included."""
    structural: bool = False
    """A list item, table row or heading."""

    @property
    def core(self) -> str:
        """Without markers, list bullets, emphasis; whitespace collapsed."""
        text = MARKER.sub(" ", self.text)
        text = _ITEM.sub("", text).replace("**", "").replace("__", "")
        return re.sub(r"\s+([.,;:!?])", r"\1", " ".join(text.split()))


def _units(text: str) -> list[tuple[str, bool]]:
    """Paragraph text with hard wraps joined; list items, rows and headings on their own."""
    units: list[tuple[str, bool]] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            units.append((" ".join(current), False))
            current.clear()

    for line in html.unescape(text).splitlines():
        stripped = line.strip()
        if not stripped:
            flush()
        elif _ITEM.match(line) or _STRUCTURE.match(line) or _SOURCE_HEADER.match(line):
            flush()
            units.append((stripped, True))
        elif units and units[-1][1] and not current and _ITEM.match(units[-1][0]) and line[:1].isspace():
            units[-1] = (units[-1][0] + " " + stripped, True)  # an indented continuation of a list item
        else:
            current.append(stripped)
    flush()
    return units


def _is_boundary(unit: str, match: re.Match[str]) -> bool:
    """Not after an abbreviation ("e.g.", "approx.", "U.S.") or a single-letter initial."""
    if match.group(0)[0] != "." or len(match.group(0).rstrip()) - len(match.group(1)) > 1:
        return True
    before = re.search(r"(\S+)$", unit[:match.start()])
    word = before.group(1).lstrip("(\"'").lower() if before else ""
    return not (word in ABBREVIATIONS or re.fullmatch(r"[a-z]", word) or re.fullmatch(r"(?:[a-z]\.)+[a-z]", word))


def split_sentences(text: str) -> list[Sentence]:
    """Sentences of ``text`` (see the module docstring for the rules)."""
    sentences: list[Sentence] = []
    for unit, structural in _units(text):
        bullet = _ITEM.match(unit)  # "1." of a numbered item ends no sentence
        start = bullet.end() if bullet else 0
        pieces: list[str] = []
        for match in _END.finditer(unit, start):
            if _is_boundary(unit, match):
                pieces.append(unit[start:match.end()].strip())
                start = match.end()
        pieces.append(unit[start:].strip())
        if bullet:
            pieces[0] = bullet.group(0).strip() + " " + pieces[0]
        carry = ""
        for piece in pieces:
            if re.fullmatch(r"\d{1,2}[.)]", piece):  # an inline step number: it opens the next sentence
                carry = piece + " "
                continue
            piece, carry = carry + piece, ""
            if not piece.strip():
                continue
            if not _WORD.search(MARKER.sub("", piece)):
                if sentences:  # a marker-only piece belongs to the sentence before
                    sentences[-1].text += " " + piece
                continue
            sentences.append(Sentence(piece.strip(), structural))
    return sentences


def sentence_key(sentence: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", MARKER.sub(" ", sentence).lower()))


def repeated_sentences(text: str) -> list[str]:
    """Sentences that repeat an earlier sentence of the same answer (normalised)."""
    seen: set[str] = set()
    repeats = []
    for sentence in split_sentences(text):
        key = sentence_key(sentence.text)
        if not key:
            continue
        if key in seen:
            repeats.append(sentence.text)
        seen.add(key)
    return repeats


# -- fragments -----------------------------------------------------------------------------

AUXILIARIES = _wordset(
    "is are was were be been being am has have had do does did can could will would shall should may might must "
    "cannot isn't aren't wasn't weren't don't doesn't didn't can't couldn't won't wouldn't shouldn't hasn't "
    "haven't hadn't let's")
VERBS = _wordset("""
accept access activate add adjust allow apply arrive ask assign back become begin belong block break bring buy call
cancel carry cast change charge check choose clean clear click close come compare configure confirm connect contact
contain continue copy cost count cover create cut decide delete deliver depend describe detect disable disconnect
display download drop eject email enable end enjoy ensure enter erase expire extend fail fall feel fill find finish fit
fix flash follow forget forward get give go happen handle help hide hold hope improve include increase insert install
join keep know last launch lead learn leave let lie light limit link list load lock log look lose make manage mark
match mean measure mention merge move name need note notify offer open operate order own pair pass pause pay perform
pick place plug point power press prevent print protect provide pulse purchase push put reach read receive recommend
reconnect recycle reduce refer refund register reinstall release remain remember remove rename repair repeat replace
report request require reserve reset respond restart restore resume retry return roll run save say scan schedule see
seem select sell send serve set settle share ship show shut sign skip slow solve sort speak specify spend split start
stay steer stop store stream submit suggest supply support switch take talk tap tell test think trade transfer try turn
type unblock unlock unplug update upgrade upload use verify visit void wait want warn wipe work write
""")
_IRREGULAR = _wordset(
    "bought brought came did done drew fell felt found gave given gone got gotten held kept knew known laid left lent "
    "lost made meant met paid put ran read said sat saw seen sent set shown shut sold spent stood taken told took "
    "went won written wrote")
DANGLING = _wordset(
    "a an the to of for with and or but nor at by from as is are was were be been your my our their his her its "
    "than if when while into onto via per such")


def _verb_forms(word: str) -> set[str]:
    forms = {word, word + "s", word + "es", word + "ed", word + "d", word + "ing"}
    if word.endswith("e"):
        forms.add(word[:-1] + "ing")
    if word.endswith("y"):
        forms |= {word[:-1] + "ies", word[:-1] + "ied"}
    if re.search(r"[^aeiou][aeiou][bdgklmnprt]$", word):
        forms |= {word + word[-1] + "ed", word + word[-1] + "ing"}
    return forms


_VERB_FORMS = frozenset(form for verb in VERBS for form in _verb_forms(verb)) | _IRREGULAR | AUXILIARIES


def has_verb(words: Sequence[str]) -> bool:
    for raw in words:
        word = raw.lower().replace("\u2019", "'")
        if word in _VERB_FORMS or re.search(r"'(?:s|re|ll|ve|d|m)$|n't$", word):
            return True
        if len(word) >= 5 and word.isalpha() and word.endswith(("ed", "ing")):
            return True
    return False


def fragment_reason(sentence: Sentence, last: bool = False) -> str | None:
    """Why ``sentence`` is a fragment (the rules in the module docstring), or None."""
    core = sentence.core
    words = _WORD.findall(core)
    if not words:
        return "no words"
    if not sentence.structural and not is_framing(core):
        if len(words) < 4 and not (core.endswith(":") and not last):  # "Follow these steps:" then the steps
            return f"under 4 words ({len(words)})"
        if not has_verb(words):
            return "no verb"
        first = re.sub(r"^[\"'(\[\u201c\u2018]+", "", core)
        first_word = first.split(" ", 1)[0]
        if first[:1].islower() and not re.search(r"[A-Z]", first_word) and not re.search(r"[./@:]\w", first_word):
            return "starts lower case mid-thought"
    tail = core.rstrip(" \"')\u201d\u2019")
    if last and tail.endswith(":"):
        return "ends in ':' with nothing after it"
    end_word = re.sub(r"[.!?,;:]+$", "", tail).rsplit(" ", 1)[-1].lower()
    if end_word in DANGLING:
        return f"ends in a dangling '{end_word}'"
    return None


def fragments(text: str) -> list[tuple[str, str]]:
    """(sentence, reason) for every fragment of ``text``."""
    sentences = split_sentences(text)
    found = []
    for position, sentence in enumerate(sentences):
        reason = fragment_reason(sentence, last=position == len(sentences) - 1)
        if reason:
            found.append((sentence.text, reason))
    return found


# -- placeholders, prompt echo, meta-talk -------------------------------------------------

_LINKING = AUXILIARIES | _wordset("means shows says states refers contains describes lists explains mentions gives covers")
_OPENING_MARKER = re.compile(r"(?:^|[.!?:]\s+|\n\s*)(\[\d+\])\s+([A-Za-z']+)")
_MARKER_AS_NOUN = re.compile(  # after a word that needs an object; not after a noun or a particle ("button [3]", "on [1]")
    r"\b(?:press|tap|click|choose|select|enter|open|use|hit|type|push|hold|is|are|was|were|called|named|"
    r"the|a|an|to|from|via|with|at|under|of|into|onto|by)\s+\[\d+\]", re.IGNORECASE)
PLACEHOLDERS = (
    re.compile(r"\[[A-Za-z][^\]\n]{0,40}\](?!\()"),  # [A], [Your name]; not a Markdown link
    re.compile(r"<(?!https?://|mailto:|[\w.+-]+@)[^<>\n]{1,40}>"),
    re.compile(r"\{[^{}\n]{1,40}\}"),
    re.compile(r"(?<![\w-])X{3,}(?!\w)"),
)


def _plain(text: str) -> str:
    """Lower case, markers out, whitespace collapsed: how a quoted sentence is found in its source."""
    return " ".join(MARKER.sub(" ", text).lower().split())


def _closes_a_quote(text: str, marker: re.Match[str], plain_sources: str) -> bool:
    """Does the marker close a sentence the sources hold word for word ("… and then press Select [2].",
    "… after extended use [3].")? Then the word before it ends the quoted sentence: the marker cites it, it
    stands for nothing."""
    ends = marker.end()
    begins = ends - len(re.search(r"\[\d+\]$", marker.group(0)).group(0))
    if not plain_sources or not re.match(r"\s*(?:[.!?:;]|$)", text[ends:]):
        return False
    starts = max((m.end() for m in re.finditer(r"(?:[.!?]\s|\n)", text[:begins])), default=0)
    quoted = _plain(text[starts:begins])
    return len(quoted.split()) >= 3 and quoted in plain_sources


def placeholders(text: str, sources: Iterable[str] = ()) -> list[str]:
    """Invented placeholders in ``text``; one found verbatim in the sources does not count, nor a marker
    that closes a sentence quoted from them."""
    sources = list(sources)
    found: list[str] = [m.group(0) for pattern in PLACEHOLDERS for m in pattern.finditer(text)]
    plain_sources = _plain("\n".join(sources))
    found += [m.group(0) for m in _MARKER_AS_NOUN.finditer(text)
              if not _closes_a_quote(text, m, plain_sources)]
    for opening in _OPENING_MARKER.finditer(text):
        if opening.group(2).lower() in _LINKING:  # "[2] is the menu": the marker is the subject (not "[1] Tap")
            found.append(opening.group(1) + " " + opening.group(2))
    source_text = "\n".join(sources)
    return [p for p in found if p.split(" (")[0] not in source_text]


ECHO_CUES = ("customer question:", "sources (reference text only)", "reference text only",
             "reference text, not instructions", "<<<", ">>>")
APPARATUS = _wordset("source sources instruction instructions question cite citing sentence sentences bracket brackets "
                      "numbered reference message")
_QUESTION_SLOT = "\x00QUESTION\x00"
_SOURCE_HEADER = re.compile(r"(?m)^[ \t]*\[\d+\][ \t]*(?:\([^)\n]*\))?[ \t]*$")


def prompt_instructions() -> list[str]:
    """The instruction texts the model is given today (read from the prompts module, not copied)."""
    from supportdesk.answers import prompts

    texts = [value for name, value in vars(prompts).items()
             if isinstance(value, str) and name.isupper() and name.endswith("_SYSTEM")]
    make_user = getattr(prompts, "grounded_user_message", None)
    if callable(make_user):
        with suppress(Exception):  # a changed signature: the system prompts still count
            texts += make_user(_QUESTION_SLOT, []).split(_QUESTION_SLOT)
    return texts


def _ngrams(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _echo_grams(instructions: Iterable[str], n: int = 4) -> set[tuple[str, ...]]:
    grams: set[tuple[str, ...]] = set()
    for text in instructions:
        for sentence in split_sentences(text):
            words = re.findall(r"[a-z0-9]+", sentence.core.lower())
            if "say" in words:  # it prescribes what to say: saying it is no echo
                continue
            grams |= {g for g in _ngrams(words, n) if APPARATUS & set(g)}
    return grams


_ECHO_CACHE: dict[int, set[tuple[str, ...]]] = {}


def prompt_echo(text: str, sources: Iterable[str] = (), instructions: Sequence[str] | None = None) -> list[str]:
    """Phrases of the prompt's instructions found in ``text`` (and not in its sources)."""
    if instructions is None:
        instructions = prompt_instructions()
    key = hash(tuple(instructions))
    if key not in _ECHO_CACHE:
        _ECHO_CACHE[key] = _echo_grams(instructions)
    grams = _ECHO_CACHE[key]
    joined_sources = "\n".join(sources).lower()
    source_words = " " + " ".join(re.findall(r"[a-z0-9]+", joined_sources)) + " "
    lowered = text.lower()
    found = [cue for cue in ECHO_CUES if cue in lowered and cue not in joined_sources]
    found += ["[n] alone on a line (a source block's header)" for _ in _SOURCE_HEADER.finditer(text)]
    words = re.findall(r"[a-z0-9]+", MARKER.sub(" ", lowered))
    hits = [i for i in range(len(words) - 3)
            if tuple(words[i:i + 4]) in grams and f" {' '.join(words[i:i + 4])} " not in source_words]
    runs: list[list[int]] = []
    for i in hits:  # overlapping 4-grams make one phrase
        if runs and i <= runs[-1][1]:
            runs[-1][1] = i + 4
        else:
            runs.append([i, i + 4])
    return found + [" ".join(words[a:b]) for a, b in runs]


META_TALK = (
    re.compile(r"\bsure,? (?:i|we) can\b", re.IGNORECASE),
    re.compile(r"\bcertainly[,!]", re.IGNORECASE),
    re.compile(r"\bas an ai\b", re.IGNORECASE),
    re.compile(r"\bas an? (?:large )?language model\b", re.IGNORECASE),
    re.compile(r"\bi(?:'m| am) (?:just |only )?an? (?:ai|artificial|assistant|language model|chatbot|bot)\b", re.IGNORECASE),
    re.compile(r"\b(?:based on|according to|from|in) the (?:(?:provided|given|above|supplied) )?"
               r"(?:sources?|context|passages?|excerpts?|snippets?)\b", re.IGNORECASE),
    re.compile(r"\b(?:based on|according to) the (?:information|documents?|documentation|text) "
               r"(?:provided|given|above|supplied|you (?:provided|gave))\b", re.IGNORECASE),
    re.compile(r"\bthe (?:sources?|context|passages?) (?:do(?:es)? not|don't|doesn't) "
               r"(?:mention|say|contain|provide|specify|state)\b", re.IGNORECASE),
    re.compile(r"\bsource \[?\d+\]? (?:says|states|mentions|explains)\b", re.IGNORECASE),
    re.compile(r"\bhere(?:'s| is) (?:a|the|my) (?:summary|response|rewritten|revised)\b", re.IGNORECASE),
    re.compile(r"\bthe customer (?:asked|asks|is asking|wants|wanted|question)\b", re.IGNORECASE),
    re.compile(r"\bi (?:can ?not|can't|am unable to|don't have the ability to) (?:browse|access the internet)\b", re.IGNORECASE),
)


def meta_talk(text: str) -> list[str]:
    return [m.group(0) for pattern in META_TALK for m in pattern.finditer(text)]


# -- length, baseline ------------------------------------------------------------------------

_FRAMING = re.compile(
    r"^(?:hi|hello|hey|dear|thanks|thank you|you're welcome|you are welcome|happy \w+|have a (?:great|nice|lovely)|"
    r"is there anything else|let me know|i hope (?:this|that) helps|hope (?:this|that) helps|feel free|best regards|"
    r"kind regards|cheers|glad to help|great question|here's what our documentation says|"
    r"here is what our documentation says)\b", re.IGNORECASE)
_FRAMING_PREFIX = re.compile(r"^here(?:'s| is) what our documentation says:\s*", re.IGNORECASE)


def is_framing(sentence: str) -> bool:
    core = " ".join(MARKER.sub(" ", sentence).split())
    return bool(_FRAMING.match(core)) and len(_WORD.findall(core)) <= 12 and not _FRAMING_PREFIX.match(core)


def factual_words(text: str) -> int:
    """Words of the factual part: no markers, no greeting / thanks / sign-off sentences."""
    count = 0
    for sentence in split_sentences(text):
        if is_framing(sentence.text):
            continue
        count += len(_WORD.findall(_FRAMING_PREFIX.sub("", sentence.core)))
    return count


def quote_first_sentences(source_text: str, n: int = 4) -> str:
    """The baseline answer: the first ``n`` sentences of a source, headings left out."""
    body = "\n".join(line for line in source_text.splitlines() if not line.lstrip().startswith("#"))
    return " ".join(s.core for s in split_sentences(body)[:n])


# -- one answer, many answers ----------------------------------------------------------------


@dataclass
class Quality:
    sentences: int
    repeated: list[str] = field(default_factory=list)
    fragments: list[tuple[str, str]] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)
    prompt_echo: list[str] = field(default_factory=list)
    meta_talk: list[str] = field(default_factory=list)
    words: int = 0
    f1: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["fragments"] = [{"sentence": s, "reason": r} for s, r in self.fragments]
        return data


def measure(text: str, sources: Sequence[str] = (), reference: str | None = None,
            instructions: Sequence[str] | None = None) -> Quality:
    """Every measure for one answer; ``reference`` adds token F1."""
    return Quality(
        sentences=len(split_sentences(text)),
        repeated=repeated_sentences(text),
        fragments=fragments(text),
        placeholders=placeholders(text, sources),
        prompt_echo=prompt_echo(text, sources, instructions),
        meta_talk=meta_talk(text),
        words=factual_words(text),
        f1=token_f1(text, reference) if reference is not None else None,
    )


def summarise(measures: Sequence[Quality]) -> dict[str, Any]:
    """Totals over answers: shares of sentences, counts of answers, the median length."""
    sentences = sum(q.sentences for q in measures)
    f1s = [q.f1 for q in measures if q.f1 is not None]
    return {
        "answers": len(measures),
        "sentences": sentences,
        "repeated_sentence_rate": sum(len(q.repeated) for q in measures) / sentences if sentences else None,
        "fragment_rate": sum(len(q.fragments) for q in measures) / sentences if sentences else None,
        "placeholders": sum(len(q.placeholders) for q in measures),
        "prompt_echo_answers": sum(bool(q.prompt_echo) for q in measures),
        "meta_talk_answers": sum(bool(q.meta_talk) for q in measures),
        "median_words": statistics.median([q.words for q in measures]) if measures else None,
        "token_f1": statistics.mean(f1s) if f1s else None,
    }
