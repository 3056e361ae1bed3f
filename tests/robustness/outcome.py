"""What every hostile-input test checks about how a command ended."""

from __future__ import annotations


def no_traceback(result) -> None:
    """A failure path ended in a message, not a Python traceback or an uncaught exception."""
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
