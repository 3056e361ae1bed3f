"""Which names and model codes are the same product, as the KB itself says.

Customers say "AX3000" or "the Zephyr Pro"; the docs often say "KR-300" or "KR-940". A
price table ("Zephyr AX3000 | KR-300 | $179") and a parenthesis ("Zephyr AX1800 (KR-180)")
tie a name to its code. Read once per index generation from the chunks, so the answer
extractor can tell that a sentence about the KR-180 is about the AX1800 asked for, and that
one about the KR-300 is not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from supportdesk.kb.lexical import stem

_FULL_CODE = re.compile(r"^[A-Z]{1,4}-\d{2,5}[A-Z]?$")
_PAREN = re.compile(r"((?:[A-Z][A-Za-z0-9]*[ ]){0,3}[A-Z][A-Za-z0-9]*)\s*\(([A-Z]{1,4}-\d{2,5}[A-Z]?)\)")
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_CODE_WORD = re.compile(r"\b(?=[a-z0-9-]*\d)(?=[a-z0-9-]*[a-z])[a-z0-9]+(?:-[a-z0-9]+)*\b")
_UNIT_WORDS = frozenset({"5g", "4g", "3g", "2g", "6e"})


def _code(text: str) -> str:
    return text.lower().replace("-", "")


@dataclass(frozen=True)
class Aliases:
    """Names (and their digit words, "ax3000") mapped to the codes they stand for."""

    names: dict[str, frozenset[str]] = field(default_factory=dict)

    def products(self, text: str) -> set[str]:
        """The products ``text`` names, as codes: "Zephyr AX3000" and "KR-300" both → {kr300};
        a code the KB ties to no name stands for itself."""
        low = text.lower()
        # Full names first: "Zephyr AX1800" is the router even where "AX1800" alone is also a satellite's.
        named = {name: codes for name, codes in self.names.items()
                 if " " in name and re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", low)}
        found: set[str] = set().union(*named.values()) if named else set()
        for word in _CODE_WORD.findall(low):
            if word in _UNIT_WORDS:
                continue
            key = word.replace("-", "")
            codes = self.names.get(key, frozenset({key}))
            within = [c for name, c in named.items() if key in name.replace("-", "").split()]
            found |= codes & frozenset().union(*within) if within and len(codes) > 1 else codes
        return found

    @property
    def known(self) -> frozenset[str]:
        """Every code the KB ties to a name (not "n41", a band, or "2pack")."""
        return frozenset().union(*self.names.values()) if self.names else frozenset()

    def families(self, text: str) -> set[str]:
        """The products of every family ``text`` names by its first word alone ("How much does a Satellite
        cost?" → both Satellite models): a sentence about another family's model is not about it."""
        said = {stem(word) for word in _WORD.findall(text.lower())}
        return set().union(*(codes for name, codes in self.names.items()
                             if " " in name and stem(name.split()[0]) in said), set())


def _pairs(text: str) -> Iterable[tuple[str, str, bool]]:
    """(name, code, from a table) pairs: table rows with a name cell and a code cell, and
    "Name (CODE)" in running text (noisier: "Both Gust AX1800 (KP-180)")."""
    for line in text.splitlines():
        if line.lstrip().startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            codes = [c for c in cells if _FULL_CODE.match(c)]
            names = [c for c in cells[:1] if c and not _FULL_CODE.match(c) and re.search(r"[A-Za-z]{3}", c)]
            if len(codes) == 1 and names and len(names[0].split()) <= 5:
                yield names[0], codes[0], True
    for match in _PAREN.finditer(text):
        name = match.group(1).strip()
        if len(name.split()) >= 2 or re.search(r"\d", name):
            yield name, match.group(2), False


def find_aliases(texts: Iterable[str]) -> Aliases:
    groups: dict[str, set[str]] = {}
    for text in texts:
        for name, code, tabled in _pairs(text):
            words = _WORD.findall(name.lower())
            canonical = _code(code)
            # A product table's name and its short forms ("zephyr pro"); from running text, only the
            # model word itself ("ax1800"), never a phrase around it.
            keys = {" ".join(words[:n]) for n in range(2, len(words) + 1)} if tabled else set()
            keys |= {w.replace("-", "") for w in words if re.search(r"\d", w) and re.search(r"[a-z]", w)}
            keys -= _UNIT_WORDS
            for key in keys:
                groups.setdefault(key, set()).add(canonical)
    return Aliases({key: frozenset(codes) for key, codes in groups.items() if len(codes) <= 3})
