"""The latency meter: per-stage timings of the selected answer, and a sparkline of recent ones."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline, Static

STAGES = [("route_ms", "route"), ("embed_ms", "embed"), ("search_ms", "search"), ("prompt_ms", "prompt"),
          ("queue_ms", "queue"),
          ("ttft_ms", "first token"), ("generation_ms", "generation"), ("total_ms", "total")]


class LatencyMeter(Vertical):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recent: list[float] = []

    def compose(self) -> ComposeResult:
        yield Label("Latency", classes="panel-title")
        yield Static("—", id="stages")
        yield Sparkline([], id="spark")

    def show(self, timings: dict[str, float] | None) -> None:
        stages = self.query_one("#stages", Static)
        if not timings:
            stages.update("—")
            return
        table = Table.grid(padding=(0, 1))
        table.add_column(style="dim")
        table.add_column(justify="right")
        for key, label in STAGES:
            if key in timings:
                value = timings[key]
                table.add_row(label, f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms")
        if timings.get("tokens_per_s"):
            table.add_row("tokens/s", f"{timings['tokens_per_s']:.0f}")
        stages.update(table)

    def record(self, total_ms: float | None) -> None:
        if total_ms is None:
            return
        self.recent = (self.recent + [total_ms])[-30:]
        self.query_one(Sparkline).data = list(self.recent)
