"""The one error the history raises to its callers."""

from __future__ import annotations


class HistoryError(RuntimeError):
    """The history is damaged, unreachable or unusable; the message names it and what to do."""
