"""Make untrusted text safe to show in a terminal and to put in a prompt."""

from __future__ import annotations

import re
import unicodedata

# CSI / OSC / other ESC sequences, then any remaining C0/C1 control character except \n and \t.
_ANSI = re.compile(
    r"""
    \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?   # OSC ... BEL or ST
    | \x1b\[[0-?]*[ -/]*[@-~]            # CSI
    | \x1b[PX^_][^\x1b]*(?:\x1b\\)?       # DCS, SOS, PM, APC
    | \x1b[@-Z\\-_]                       # two-byte escapes
    | \x9b[0-?]*[ -/]*[@-~]               # 8-bit CSI
    """,
    re.VERBOSE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_control(text: str) -> str:
    """Remove ANSI escapes and control characters; keep newlines and tabs; CR becomes newline."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _ANSI.sub("", text)
    return _CONTROL.sub("", text)


_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSAFE_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as the OS layer escapes it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_name(name: str) -> str:
    """A file name or other label fit for a terminal: control characters and bytes that are not
    UTF-8 (surrogate-escaped by the OS layer) become visible ``\\xNN`` escapes, never raw."""
    return _UNSAFE_NAME.sub(_visible, name)


def has_undecodable(text: str) -> bool:
    """True when ``text`` carries bytes that were not valid UTF-8 (lone surrogates)."""
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _invisible(ch: str) -> bool:
    """Whitespace, or a format character (Unicode category Cf: U+200B zero-width space, U+200C/D
    zero-width (non-)joiner, U+2060 word joiner, U+FEFF byte-order mark, bidi marks, ...)."""
    return ch.isspace() or unicodedata.category(ch) == "Cf"


def clean_question(text: str) -> str:
    """A customer's message as text the tokenizers accept: invalid UTF-8 bytes (from argv, a
    file, a pasted terminal line) become U+FFFD, control characters go, ends are trimmed of
    whitespace and format characters, so a message of zero-width characters only is empty.
    Inside the text they stay (a joiner in an emoji sequence, a non-joiner in Persian)."""
    if has_undecodable(text):
        try:
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte
            text = text.encode("utf-8", "replace").decode("utf-8")
    text = strip_control(text)
    start, end = 0, len(text)
    while start < end and _invisible(text[start]):
        start += 1
    while end > start and _invisible(text[end - 1]):
        end -= 1
    return text[start:end]


def safe_text(text: str) -> str:
    """Free text for a terminal (messages, server replies): escapes dropped, names made visible;
    newlines and tabs kept."""
    return _UNSAFE_TEXT.sub(_visible, _ANSI.sub("", text).replace("\r", ""))


_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_plain_name(name: str, what: str) -> str:
    """Names of adapters and datasets become folder names: letters, digits, '.', '_', '-' only, so
    ``../../x`` or ``/etc`` can never write outside the folder they belong to."""
    if not _PLAIN_NAME.fullmatch(name or "") or ".." in name:
        raise ValueError(
            f"{what} '{safe_name(name)}' is not a plain name: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name
