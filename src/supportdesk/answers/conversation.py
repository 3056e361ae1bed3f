"""Conversations: what a follow-up refers to, and when a question must be clarified first.

A follow-up ("Are those the only steps?", "They sound similar", "Pagination options") after a
grounded answer stays on the conversation's route and topic: it is searched together with what
it refers to (the previous question; the headings the last answer cited where a caller has them)
and answered grounded. A question whose referent is nowhere ("Does this Superior Court publish a judges
roster?" with no court named) and whose search finds several distinct documents with close
scores gets a short clarifying question instead of a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from supportdesk.brand import CueLexicon
from supportdesk.kb.lexical import tokenize
from supportdesk.kb.search import SearchResult
from supportdesk.router.cues import fact_cues

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Turn:
    role: Role
    content: str
    route: str | None = None
    """For an assistant turn: the route it was answered on (voice, grounded, handoff, clarify)."""
    headings: tuple[str, ...] = field(default=())
    """For an assistant turn: the headings of the sources it cited."""


_BACK_REFERENCE = re.compile(
    r"^(and|also|what about|how about|then|so|but|or)\b"
    r"|\b(it|its|that|this|those|these|they|them|their|there|same|one|ones|both|either|neither|other|others|"
    r"above|previous|similar|instead|rather|too|further|more|else)\b",
    re.IGNORECASE,
)
REFERENCE_TERMS = frozenset(tokenize(
    "and also what about how then so but or it its that this those these they them their there same one ones both "
    "either neither other others above previous similar instead rather too further more else only"
))
"""Words that point back into the conversation: they say nothing about what the docs must hold."""
_DEMONSTRATIVE = re.compile(r"\b(this|that|these|those)\s+((?:[A-Za-z][\w'-]*\s+){0,2}[A-Za-z][\w'-]*)", re.IGNORECASE)
_SMALL_TALK_WORDS = frozenset(
    ["hi", "hello", "hey", "thanks", "thank", "you", "thx", "ty", "cheers", "bye", "goodbye", "see", "later", "ok", "okay", "k", "cool", "great", "awesome", "perfect", "got", "it", "that's", "thats", "that", "is", "was", "all", "no", "yes", "yep", "nope", "sure", "nice", "good", "fine", "very", "much", "a", "lot", "so", "helpful", "appreciate", "appreciated", "love", "have", "day", "night", "morning", "evening", "wonderful", "amazing", "excellent", "lovely", "brilliant", "for", "the", "help", "again"]
)
FOLLOW_UP_MAX_WORDS = 14
"""Longer messages are read as new questions even when they say "it"."""
FRAGMENT_MAX_WORDS = 3
"""A message this short with no question of its own ("Pagination options") continues the topic."""


def previous_question(history: list[Turn]) -> str | None:
    return next((t.content for t in reversed(history) if t.role == "user"), None)


def last_answer(history: list[Turn]) -> Turn | None:
    return next((t for t in reversed(history) if t.role == "assistant"), None)


def is_small_talk(message: str) -> bool:
    """Thanks, greetings and sign-offs only ("thanks, bye!", "ok got it"): nothing to look up."""
    words = re.findall(r"[a-z']+", message.lower())
    return bool(words) and all(w in _SMALL_TALK_WORDS for w in words)


def is_follow_up(message: str, history: list[Turn], lexicon: CueLexicon | None = None) -> bool:
    """Does the message lean on the conversation for its meaning? (``lexicon``: the brand's product
    names and codes: a message that names its own subject is not a follow-up.)"""
    if previous_question(history) is None or is_small_talk(message):
        return False
    cues = fact_cues(message, lexicon)
    if cues["codes"] > 0 or cues["products"] >= 2:
        return False  # names its own subject
    words = cues["words"]
    if words <= FRAGMENT_MAX_WORDS:
        return True
    return words <= FOLLOW_UP_MAX_WORDS and bool(_BACK_REFERENCE.search(message))


def follow_up_query(message: str, history: list[Turn]) -> str:
    """The message with what it refers to: the previous question and the cited headings."""
    parts = [previous_question(history) or ""]
    answer = last_answer(history)
    if answer is not None:
        parts.extend(h.split(" > ")[-1] for h in answer.headings[:2])
    parts.append(message)
    seen: list[str] = []
    for part in parts:
        part = part.strip()
        if part and part not in seen:
            seen.append(part)
    return " ".join(seen)


_STOP = frozenset(
    ["is", "are", "was", "were", "be", "been", "do", "does", "did", "has", "have", "had", "can", "could", "will", "would", "should", "may", "might", "must", "shall", "provide", "provides", "offer", "offers", "publish", "publishes", "mean", "means", "work", "works", "apply", "applies", "include", "includes", "of", "for", "in", "on", "at", "to", "from", "with", "by", "about", "as", "and", "or", "but", "if", "when", "where", "what", "which", "who", "how", "why", "the", "a", "an", "it", "its", "one", "ones", "also", "only", "really", "still", "just", "not",
     # a demonstrative pronoun before a verb ("that sounds hard", "this seems odd") names nothing
     "sounds", "seems", "looks", "makes", "helps", "happens", "depends", "sound", "seem", "look"]
)


def referent(phrase_words: list[str]) -> list[str]:
    """ "state library provide for" → ["state", "library"]: the words up to the first verb or
    function word, at most two (a demonstrative's noun phrase, without a tagger)."""
    out: list[str] = []
    if phrase_words and phrase_words[0].lower().endswith("ed"):
        return out  # "is that covered?", "this helped": a pronoun before a participle
    for word in phrase_words:
        if word.lower() in _STOP or len(out) == 2:
            break
        out.append(word)
    return out


_DEFINITE = re.compile(r"\bthe\s+([A-Za-z][\w'-]*)(?:\s+([A-Za-z][\w'-]*))?", re.IGNORECASE)
DEFINITE_MIN_DOCUMENTS = 3
"""'the clinic' is under-specified when this many documents are titled after a clinic."""


_TITLE_SEGMENT = re.compile(r"\s+[|\u2013\u2014:-]\s+|\s+of\s+", re.IGNORECASE)


def title_heads(title: str) -> set[str]:
    """What a document is *about*, by its title: the last word of each part ("Sampson State
    Park | NY Parks" → park; "Superior Court of California" → court, california)."""
    heads = set()
    for segment in _TITLE_SEGMENT.split(title):
        terms = tokenize(segment)
        if terms:
            heads.add(terms[-1])
    return heads


_SUBJECT_PRONOUNS = frozenset(["i", "you", "we", "they", "he", "she", "it", "my", "your", "our", "their"])
_DETERMINERS = frozenset(["the", "a", "an", "your", "my", "our", "their", "this", "that", "its", "his", "her", "to",
                          "of", "on", "in", "for", "with", "and", "or", "about", "from", "by"])


def named_instances(title: str) -> dict[str, str]:
    """Each head of a title that names *one of several* things, with the name: "Sampson State
    Park" → {park: "sampson state park"}, "(QLED TV)" → {tv: "qled tv"}; not "Turning on the
    TV". A KB of one TV's manual has many sections about "the TV"; a KB of many parks has many
    titles that each name a park. Only the second makes "the park" ambiguous."""
    found: dict[str, str] = {}
    segments = [seg.strip() for seg in _TITLE_SEGMENT.split(title) if seg.strip()]
    for index, segment in enumerate(segments):
        words = re.findall(r"[A-Za-z0-9][\w'-]*", segment)
        terms = tokenize(words[-1]) if words else []
        if len(words) >= 2 and terms and words[-2].lower() not in _DETERMINERS:
            # The name: the words before the head (not a verb like "Using"), and the title's other
            # parts ("Superior Court | County of Tuolumne" is not "… | County of Ventura").
            name = [w.lower() for w in words[-3:-1] if w.lower() not in _DETERMINERS and not w.lower().endswith("ing")]
            rest = [seg.lower() for i, seg in enumerate(segments) if i != index]
            found.setdefault(terms[-1], " | ".join([" ".join([*name, words[-1].lower()]), *rest]))
    return found


def named_heads(title: str) -> set[str]:
    return set(named_instances(title))


def unresolved_reference(message: str, history: list[Turn], titles: list[str] | None = None) -> str | None:
    """ "this library" / "that NASA mission" when nothing earlier names what it points at; with
    the KB's document ``titles``, also "the clinic" when several documents are each a clinic."""
    earlier = set(tokenize(" ".join(t.content for t in history)))
    for match in _DEMONSTRATIVE.finditer(message):
        words = referent(match.group(2).split())
        if not words:
            continue
        if match.group(1).lower() == "that" and words[0].lower() in _SUBJECT_PRONOUNS:
            continue  # "services that I want": a relative clause, not a pointer
        if re.search(r"[.!?]\s", message[:match.start()]):
            continue  # "I get a distorted picture. How do I fix this issue?": the message named it
        head = tokenize(words[-1])
        if head and not any(t in earlier for t in head):
            return f"{match.group(1).lower()} {' '.join(words)}"
    if titles:
        for match in _DEFINITE.finditer(message):
            words = referent([w for w in match.groups() if w])
            head = tokenize(words[-1]) if words else []
            if len(head) != 1 or head[0] in earlier:
                continue
            after = message[match.start() + len("the ") + len(" ".join(words)):]
            if re.match(r"\s+of\s", after) and words[0].islower():
                continue  # "the list of notifications": the phrase says which (not "the Court of …")
            named = sum(1 for title in titles if head[0] in named_heads(title))
            if named >= DEFINITE_MIN_DOCUMENTS:
                return f"the {' '.join(words)}"
    return None


@dataclass(frozen=True)
class Ambiguity:
    phrase: str
    options: tuple[str, ...]
    scores: tuple[float, ...]

    @property
    def question(self) -> str:
        what = self.phrase.split(" ", 1)[-1]
        if len(self.options) >= 2:
            listed = ", ".join(f'"{o}"' for o in self.options[:-1]) + f' or "{self.options[-1]}"'
            return f"Which {what} do you mean? For example {listed}? Tell me and I'll look it up."
        return f"Which {what} do you mean? Tell me its name and I'll look it up."

    @property
    def reason(self) -> str:
        shown = ", ".join(f"{o} ({s:.2f})" for o, s in zip(self.options, self.scores, strict=True))
        found = f"; the docs hold several: {shown}" if len(self.options) > 1 else ""
        return f"'{self.phrase}' points at something the conversation never named{found}"


def ambiguity(
    message: str, history: list[Turn], search: SearchResult, titles: list[str] | None = None, top: int = 5
) -> Ambiguity | None:
    """An under-specified question: it points at something ("this library", "that mission",
    "the clinic" in a KB of many clinics) that nothing earlier names. The distinct documents the
    search found are offered as readings."""
    phrase = unresolved_reference(message, history, titles)
    if phrase is None:
        return None
    labels: list[str] = []
    scores: list[float] = []
    for hit in search.hits[:top]:
        label = (hit.chunk.title or hit.chunk.heading.split(" > ")[0] or hit.chunk.source).strip()
        if label not in labels:
            labels.append(label)
            scores.append(hit.score)
    if phrase.startswith("the ") and titles:
        # "the clinic" is worth a question only when the documents found are different clinics:
        # several of the readings must each name one. Sections of one TV's manual ("Turning on
        # the TV", "Using the timers") are readings of a topic, and the search already chose.
        head = tokenize(phrase.split()[-1])
        named = {named_instances(label).get(head[-1]) for label in labels[:3]} - {None} if head else set()
        if len(named) < 2:
            return None  # one Smart Hub however many sections mention it
    return Ambiguity(phrase, tuple(labels[:3]), tuple(scores[:3]))
