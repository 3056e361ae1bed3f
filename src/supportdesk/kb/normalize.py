"""Text normalisation at ingest: hard-wrapped lines become the sentences they were.

PDF pages, plain-text files and Markdown wrapped at ~80 columns break sentences at line ends.
Everything downstream reads sentences (the answer extractor, the support check, citation
markers), so a sentence cut at a line break ("... get a free") would be quoted as one. A
line is joined to the next when both are prose; headings, list items, numbered steps, table
rows, code blocks and underlined headings stay the lines they are. So do the short lines a PDF
turned into text writes a menu path or a sub-heading as ("Settings" / "General" / "Reset"), unless
the line before stops mid-phrase ("… is available only in the" / "Internet" / "app."): a menu
path is never run into the sentence before it ("… manually. Settings General Reset …").
"""

from __future__ import annotations

import re

VERSION = 5
"""Stored with an index: a change here (or in how chunks carry table headers) re-chunks every file
at the next build."""

_BLOCK_START = re.compile(
    r"^\s*(?:#{1,6}\s|[-*+•▪◦]\s|\d{1,3}[.)]\s|[a-z][.)]\s|(?:step\s+\d+)\b|\||>|```|~~~|={3,}\s*$|-{3,}\s*$)",
    re.IGNORECASE,
)
_FENCE = re.compile(r"^\s*(```|~~~)")
_LABEL_LINE = re.compile(r"^[A-Z][\w /&()'-]{0,40}:\s*\S")
"""'Phone: 1-888-…', 'Applies to: …': a label line is a record of its own."""
_ENDS_SENTENCE = re.compile(r"[.!?:;)\]\"'”’]\s*$")
_OPEN_END = re.compile(
    r"\b(?:a|an|the|to|of|for|from|in|on|at|by|with|into|onto|via|and|or|as|is|are|be|set|select|press|choose|"
    r"your|its|their|this|that|than|then)\s*$", re.IGNORECASE)
"""A line that stops mid-phrase: the next line, however short, goes on with it."""


def _is_short_label(line: str) -> bool:
    """A short capitalised line with no sentence end: a menu step, a sub-heading, a button's name."""
    text = line.strip()
    words = text.split()
    return (0 < len(words) <= 8 and len(text) < 60 and text[:1].isupper() and re.search(r"[A-Za-z]{2}", text) is not None
            and not re.search(r"[.,;:!?]\s*$", text) and not _OPEN_END.search(text) and not _is_block_start(text))


def _is_block_start(line: str) -> bool:
    return bool(_BLOCK_START.match(line))


def _is_menu_step(line: str) -> bool:
    """A short label in title case ("Try Now", "Time Offset"): a step of a menu path or a button, never the
    start of a sentence that a name on the next line continues ("To enter" / "Ambient Mode")."""
    words = line.split()
    return _is_short_label(line) and all(w[:1].isupper() or not w[:1].isalpha() or w in ("and", "or", "of", "the")
                                         for w in words)


def _continues(previous: str, line: str, raw_before: str = "", following: str = "") -> bool:
    """Is ``line`` the continuation of the wrapped prose (or list item) line ``previous``?
    ``raw_before`` is the source line just before ``line`` (``previous`` may be several joined
    lines), ``following`` the line after it."""
    before, after = previous.rstrip(), line.strip()
    raw_before = (raw_before or previous).rstrip()
    if not before.strip() or not after:
        return False
    if _is_block_start(line) or before.lstrip().startswith(("#", "|", ">")) or _LABEL_LINE.match(after):
        return False
    if after[:1].islower() or after[:1] in ",.;:)]":
        return True  # running text: a sentence goes on (no sentence starts with a comma)
    if _is_short_label(after) and not _OPEN_END.search(raw_before):
        # A menu step or a sub-heading, unless it is a name inside running text: after a full line that
        # stops mid-sentence, or before the rest of its sentence ("select" / "Refresh" / ". The TV …").
        if _ENDS_SENTENCE.search(raw_before) or following.startswith(":") or _is_menu_step(raw_before):
            return False  # "Color Tone" / ": Adjusts the colors …": an entry's label opens a line
        return len(raw_before) >= 60 or re.match(r"[a-z,.;)\]]", following) is not None
    if _is_short_label(before):
        return False  # the line after a sub-heading or a menu path starts a paragraph
    if len(before) < 40:
        return _OPEN_END.search(before) is not None  # a title, a label, an address line: a record of its own
    # A long line: wrapped prose, unless a sentence ended exactly there on a shorter line.
    return not _ENDS_SENTENCE.search(before) or len(before) >= 60


def _is_title(line: str, following: str) -> bool:
    """A short line with no sentence end before a line that starts a sentence: a heading. Only
    read so in a PDF page, whose headings are plain lines; in text files a short line is as
    often a menu path or a label inside a paragraph."""
    words = line.split()
    return (0 < len(words) <= 6 and len(line.strip()) < 40 and not re.search(r"[.,;:!?)]\s*$", line)
            and line.strip()[:1].isupper() and (not following or following[:1].isupper() or following[:1].isdigit()))


def unwrap(text: str, headings_are_lines: bool = False) -> str:
    """Join hard-wrapped prose lines (and continuation lines of list items) with one space.

    Blank lines, headings, list items, numbered steps, table rows and fenced code keep their
    line breaks; a hyphen at a line end before a lower-case letter is a split word ("configu-
    ration") and is closed up.
    """
    out: list[str] = []
    fenced = False
    lines = text.split("\n")
    for index, raw in enumerate(lines):
        line = raw.rstrip()
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if headings_are_lines and _is_title(line, following):
            out.append(line)  # a PDF's heading line ("Factory reset") stays a line of its own
            continue
        if _FENCE.match(line):
            fenced = not fenced
            out.append(line)
            continue
        raw_before = lines[index - 1] if index else ""
        if fenced or not out or not _continues(out[-1], line, raw_before, following):
            out.append(line)
            continue
        previous = out[-1]
        piece = line.strip()
        if re.search(r"[a-z]-$", previous) and piece[:1].islower():
            out[-1] = previous[:-1] + piece
        else:
            out[-1] = f"{previous} {piece}"
    return "\n".join(out)
