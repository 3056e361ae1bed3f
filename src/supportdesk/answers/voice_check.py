"""The brand-voice reply check: a reply with no sources may be warm, never a person, never a fact.

Every brand-voice draft is checked before it is shown (``check``). It fails when it

* signs off or introduces itself with a person's name ("— Priya, Acme Care", "^AB", "/AB",
  "-Luis", "my name is Theo"): the bot is the brand's automated assistant, not a person;
* claims to be human ("we're a real agent here", "I'm not a bot");
* states what needs a source: a number, address or link; a price or fee; what the company
  does with data or what a policy says ("we do share your information"); how a product behaves
  (a product or term of the brand profile the customer did not mention, a menu path, "works fine");
* invites the customer somewhere ("let's meet at a café", "call me");
* is written in a language the customer did not use (a script check, and for Latin script a
  stop-word vote between English, Spanish, French, German, Italian, Portuguese and Dutch);
* for a greeting, thanks, goodbye or compliment: does not answer it at all ("ok bye" → "I'm
  sorry for your loss").

Cheap on purpose (regular expressions and word lists, microseconds): it runs on every reply.
A failed draft is replaced by one of the brand profile's approved replies (answers/pipeline.py).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from supportdesk.answers.citations import split_sentences
from supportdesk.brand import BrandProfile

# -- a person's name -------------------------------------------------------------------------------
_DASH_NAME = re.compile(r"(?:^|\s)[—–-]{1,2}\s*([A-Z][a-z]+(?:\s+[A-Z][a-z]*\.?)?)\s*(?:,[^,\n]{0,40})?[.!]?\s*$")
_INITIALS = re.compile(r"(?:^|\s)[\^/*~]\s?([A-Z]{2,3})\b\W*$")
_CLOSING_NAME = re.compile(r"\b(?:regards|best|cheers|thanks|thank you|sincerely|warmly|love|yours|talk soon),?\s*\n?\s*"
                           r"([A-Z][a-z]+)\W*$", re.IGNORECASE)
_INTRODUCES = re.compile(r"\b(?:my name is|my name's|this is|i am|i'm|call me)\s+([A-Z][a-z]+)\b")
_HERE = re.compile(r"^\W*([A-Z][a-z]+) here\b")
_NOT_NAMES = frozenset(["a", "an", "the", "so", "very", "really", "just", "always", "still", "here", "there", "happy", "glad", "sorry", "afraid", "not", "only", "sure", "back", "also", "now", "team", "everyone", "all", "mate", "again", "friend", "friends", "folks", "you", "customer", "care", "support", "service", "help", "assistant", "bot", "automated", "virtual", "digital", "ai", "we", "us", "our", "your", "this", "that", "it", "its", "today", "soon", "well", "okay", "ok", "hi", "hello", "hey", "good", "great", "thanks", "thank", "welcome", "anytime", "bye", "goodbye", "cheers", "enjoy", "take", "have", "see", "later", "care", "regards", "best", "yours", "kind"])

# -- posing as a human --------------------------------------------------------------------------------
_HUMAN = re.compile(
    r"\b(?:i am|i'm|im|we are|we're|this is)\s+(?:a\s+|an\s+|the\s+)?(?:real|human|live|actual|flesh)\b"
    r"|\b(?:i am|i'm|we are|we're)\s+(?:definitely\s+|certainly\s+)?not\s+(?:a\s+|an\s+)?(?:bot|robot|machine|ai|"
    r"program|computer|automated)\b"
    r"|\b(?:real|human|live)\s+(?:agent|person|being|people)s?\s+(?:here|typing|answering)\b"
    r"|\bas a (?:human|person)\b|\bi (?:have|had) (?:feelings|a family|a body)\b",
    re.IGNORECASE,
)

# -- facts that need a source --------------------------------------------------------------------------
_CHECKABLE = re.compile(r"\d|@|https?://|\bwww\.|\b[a-z0-9-]+\.(?:com|net|org|example|io|co\.uk)\b", re.IGNORECASE)
_PRICE = re.compile(r"[$€£¥]|\b(?:price[sd]?|cost(?:s|ing)?|fees?|discounts?|charges?|per (?:month|year)|"
                    r"(?:is|are|it's|its) free|for free|free of charge|refundable|cheap(?:er)?|expensive)\b",
                    re.IGNORECASE)
_POLICY = re.compile(
    r"\bwe\s+(?:do\s+|don't\s+|do not\s+|never\s+|always\s+|will\s+|won't\s+|can\s+|cannot\s+|can't\s+|may\s+)?"
    r"(?:share|sell|store|keep|collect|delete|use|track|record|protect|encrypt|retain)\b"
    r"|\b(?:privacy|gdpr|personal data|your data|your information|third[- ]part(?:y|ies)|warranty|guarantee[ds]?|"
    r"policy|policies|terms of|refund policy|returns? policy|eligible|entitled)\b",
    re.IGNORECASE,
)
_BEHAVIOUR = re.compile(
    r"\w+ ?> ?\w+|\b(?:supports?|compatible|works? (?:fine|with|on|great)|will work|won't work|doesn't work|"
    r"is (?:available|included)|(?:turn|switch) (?:it )?(?:on|off)|settings?|menu|tap|click|unplug|restart|"
    r"reboot|reset|firmware)\b",
    re.IGNORECASE,
)

# -- invitations -----------------------------------------------------------------------------------------
_INVITE = re.compile(
    r"\blet'?s (?:meet|grab|get|go|hang)\b|\bmeet (?:up|me|you|us)\b|\bjoin (?:me|us)\b|\bgrab (?:a |some )?"
    r"(?:coffee|drink|bite|lunch)\b|\bcaf[eé]s?\b|\bcoffee\b|\b(?:dinner|lunch|drinks) (?:with|together)\b"
    r"|\bvisit (?:us|our|me)\b|\bcome (?:by|over|visit|and see)\b|\bsee you (?:at|there|on)\b|\b(?:a )?date with\b"
    r"|\bparty\b|\bhang ?out\b|\bcall me\b|\btext me\b|\bdm me\b|\bmy (?:phone )?number\b|\bmy place\b",
    re.IGNORECASE,
)

# -- does it answer the pleasantry at all --------------------------------------------------------------------
_ON_INTENT = {
    "greeting": r"\b(?:hi|hello|hey|welcome|help|morning|afternoon|evening|thanks for (?:reaching|getting|contacting|"
                r"writing))\b",
    "thanks": r"\b(?:welcome|glad|pleasure|happy to help|anytime|any time|no problem|no worries|you bet)\b",
    "goodbye": r"\b(?:bye|goodbye|take care|have a|day|evening|night|weekend|see you|later|thanks for|anytime|"
               r"any time|whenever|until next time)\b",
    "compliment": r"\b(?:thank|thanks|kind|glad|appreciate|lovely|means a lot|happy|great to hear|nice to hear)\b",
}
_ON_INTENT_RE = {k: re.compile(v, re.IGNORECASE) for k, v in _ON_INTENT.items()}
_MOURNING = re.compile(r"\b(?:your loss|condolences?|passed away|rest in peace|sorry to hear about your)\b", re.IGNORECASE)

# -- language --------------------------------------------------------------------------------------------------
# Words frequent in one language and rare in the others (and in English chat).
_STOPWORDS = {
    "en": "the and you your is are was for with this that have has not what how can will would it's i'm don't "
          "please thanks thank hello welcome help",
    "es": "el la los las que de del por para con una usted gracias hola buenos buenas noches está es estoy muy "
          "pero como qué ayuda adiós",
    "fr": "le les des est une et vous je pour avec pas merci bonjour bonsoir nuit au revoir très c'est ça aide "
          "être",
    "de": "der die das und ist nicht ich sie mit für ein eine danke hallo guten nacht tag auf wiedersehen sehr "
          "bitte hilfe",
    "it": "il lo gli della che non sono per una grazie ciao buona buongiorno buonanotte notte sera arrivederci "
          "molto prego aiuto mio amore",
    "pt": "não obrigado obrigada olá boa noite tarde uma você está com para muito ajuda tchau",
    "nl": "het een niet ik je jij dank bedankt hallo goedemorgen goedenavond nacht tot ziens met voor heel",
}
_LANG_WORDS = {lang: frozenset(words.split()) for lang, words in _STOPWORDS.items()}
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def script_of(text: str) -> str | None:
    """The dominant writing system of the letters in ``text`` (LATIN, CYRILLIC, CJK, ...), or None."""
    counts: dict[str, int] = {}
    for char in text:
        if not char.isalpha():
            continue
        try:
            name = unicodedata.name(char)
        except ValueError:
            continue
        script = name.split(" ")[0]
        if script in ("HIRAGANA", "KATAKANA"):
            script = "CJK"
        counts[script] = counts.get(script, 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else None


def language_of(text: str) -> str | None:
    """A Latin-script text's language by a stop-word vote; None when the vote is too thin or tied."""
    words = [w.lower() for w in _WORD.findall(text)]
    votes = {lang: sum(w in vocab for w in words) for lang, vocab in _LANG_WORDS.items()}
    ranked = sorted(votes.items(), key=lambda kv: -kv[1])
    (best, top), (_, second) = ranked[0], ranked[1]
    if top < 2 or top == second:
        return None
    return best


@dataclass
class VoiceCheck:
    text: str
    problems: list[str] = field(default_factory=list)
    fact_sentences: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return "passed" if self.passed else "; ".join(self.problems)

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "problems": list(self.problems), "fact_sentences": list(self.fact_sentences)}


def personal_sign_off(text: str, brand_words: frozenset[str] = frozenset()) -> re.Match[str] | None:
    """The personal sign-off at the end of ``text`` ("— Priya, Acme Care", "^AB", "/AB", "-Luis",
    "Regards, Sam"), or None; a sign-off in the brand's own words ("— Acme Care") is not personal."""
    stripped = text.rstrip()
    for pattern in (_DASH_NAME, _INITIALS, _CLOSING_NAME):
        match = pattern.search(stripped)
        if match:
            name = match.group(1).split()[0].lower()
            if pattern is _INITIALS or (name not in brand_words and name not in _NOT_NAMES):
                return match
    return None


def personal_name(text: str, brand: BrandProfile) -> str | None:
    """The person's name a reply signs off or introduces itself with ('— Priya'), or None."""
    ours = brand.name_words
    stripped = text.strip()
    sign_off = personal_sign_off(stripped, ours)
    if sign_off is not None:
        return sign_off.group(0).strip()
    for pattern in (_INTRODUCES, _HERE):
        for match in pattern.finditer(stripped):
            name = match.group(1)
            if name.lower() not in ours and name.lower() not in _NOT_NAMES:
                return match.group(0).strip()
    return None


def _mentions(text: str, brand: BrandProfile) -> set[str]:
    return {m.lower().rstrip("s") for m in brand.lexicon.product.findall(text)} | {
        m.lower() for m in brand.lexicon.code.findall(text)}


def check(reply: str, customer: str, brand: BrandProfile, intent: str = "none") -> VoiceCheck:
    """Check a brand-voice draft written in answer to ``customer`` (the message) for ``intent``."""
    text = reply.strip()
    result = VoiceCheck(text)
    problems = result.problems
    if not text:
        problems.append("empty reply")
        return result
    name = personal_name(text, brand)
    if name:
        problems.append(f"signs off or introduces itself with a person's name ('{name}')")
    human = _HUMAN.search(text)
    if human:
        problems.append(f"claims to be human ('{human.group(0)}')")
    asked = _mentions(customer, brand)
    # The profile's own scope phrase ("I can help with <scope>") names products, approved as written.
    for sentence in split_sentences(text.replace(brand.scope, "our products")):
        why = []
        if _CHECKABLE.search(sentence):
            why.append("a number, address or link")
        if _PRICE.search(sentence) and not re.search(r"\bfeel free\b", sentence, re.IGNORECASE):
            why.append("a price")
        if _POLICY.search(sentence):
            why.append("a policy or what is done with data")
        new_products = _mentions(sentence, brand) - asked
        if new_products:
            why.append(f"product behaviour ({', '.join(sorted(new_products))})")
        elif _BEHAVIOUR.search(sentence):
            why.append("how a product behaves")
        if why:
            result.fact_sentences.append(sentence)
            problems.append(f"states {' and '.join(why)} without a source: '{sentence[:80]}'")
    invite = _INVITE.search(text)
    if invite:
        problems.append(f"invites the customer ('{invite.group(0)}')")
    theirs, ours = script_of(customer), script_of(text)
    if theirs and ours and theirs != ours:
        problems.append(f"written in {ours.title()} script; the customer wrote {theirs.title()}")
    elif ours == "LATIN":
        written = language_of(text)
        spoken = language_of(customer) if theirs == "LATIN" else None
        if written is not None and written != (spoken or "en"):
            problems.append(f"written in {written}; the customer wrote {spoken or 'en (or too little to tell)'}")
    if intent in _ON_INTENT_RE and (not _ON_INTENT_RE[intent].search(text) or _MOURNING.search(text)):
        problems.append(f"does not answer the {intent}")
    return result
