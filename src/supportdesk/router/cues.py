"""Lexical cues that a message asks for facts (or is small talk). Pure regex: microseconds."""

from __future__ import annotations

import re

from supportdesk.brand import GENERIC_LEXICON, CueLexicon

# Versions (5.4.2), numbers with units, prices. Model codes and product terms come from the
# brand profile (brand.CueLexicon): the company's names are data, not code.
_VERSION = re.compile(r"\b\d+\.\d+(?:\.\d+)?\b")
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\s*(?:%|mbps|gbps|ghz|mhz|gb|tb|mb|days?|years?|months?|hours?|w|v|dbm)?\b", re.IGNORECASE)
_FACT_WORD = re.compile(
    r"\b(?:how|what|which|when|where|why|does|do|is|are|can|could|will|should|price|cost|much|many|long|"
    r"return|refund|warranty|ship|shipping|deliver|cancel|reset|set ?up|install|update|error|code|mean|"
    r"support|compatible|work with|difference|limit|fee|discount|covered|speed|slow|drop|offline|block)\b",
    re.IGNORECASE,
)
_SMALL_TALK = re.compile(
    r"\b(?:hi|hello|hey|thanks?|thank you|thx|cheers|bye|goodbye|ok(?:ay)?|cool|great|awesome|perfect|lol|"
    r"haha|good (?:morning|evening|night)|nice|yes|no|yep|nope|sure|appreciate|love|happy|sorry)\b",
    re.IGNORECASE,
)


def fact_cues(text: str, lexicon: CueLexicon | None = None) -> dict[str, int]:
    """Counts of each cue family in ``text``; product terms and codes are the lexicon's (the brand
    profile's), generic support terms without one."""
    lexicon = lexicon or GENERIC_LEXICON
    return {
        "codes": len(lexicon.code.findall(text)),
        "versions": len(_VERSION.findall(text)),
        "numbers": len(_NUMBER.findall(text)) - len(_VERSION.findall(text)),
        "products": len(lexicon.product.findall(text)),
        "fact_words": len(_FACT_WORD.findall(text)),
        "question": int("?" in text),
        "small_talk": len(_SMALL_TALK.findall(text)),
        "words": len(text.split()),
    }


def cue_score(cues: dict[str, int]) -> float:
    """One number from the cue counts: positive leans 'facts', negative leans 'small talk'."""
    facts = (
        2.0 * min(cues["codes"], 2)
        + 1.0 * min(cues["versions"], 2)
        + 0.5 * min(max(cues["numbers"], 0), 2)
        + 1.0 * min(cues["products"], 3)
        + 0.7 * min(cues["fact_words"], 3)
        + 0.5 * cues["question"]
    )
    chat = 1.0 * min(cues["small_talk"], 3)
    return (facts - chat) / 4.0
