"""The team server: one process owns the KB, the model, the router and the history; the TUI
and the CLI of every agent, trainer and admin are its clients (``supportdesk --server URL``).

Headless: nothing here imports Textual. ``core`` holds the support core and its queue for
the model, ``tokens`` the roles, ``app`` the HTTP API (FastAPI, served by uvicorn): its
``routes/`` by area, sharing ``deps``.
"""
