"""Per-message routing: brand-voice answer or retrieval-grounded answer, with its reasons.

Headless: nothing here imports Textual.
"""

from supportdesk.router.router import RouteDecision, Router, Signals

__all__ = ["RouteDecision", "Router", "Signals"]
