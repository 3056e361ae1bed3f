"""Make untrusted text safe to show in a terminal and to put in a prompt."""

from __future__ import annotations

import re

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
