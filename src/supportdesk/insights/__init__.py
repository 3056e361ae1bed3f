"""Insights over the history: knowledge gaps (questions the docs do not answer, grouped by meaning)
and per-day figures (routes, ratings, latency). Headless: the CLI, the TUI and the team server
show what these modules compute."""
