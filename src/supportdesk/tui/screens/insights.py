"""The insights screen: per day, questions by route and latency per stage (plotext), numbers beside the
plots, and the top knowledge gaps. The figures come from ``session.insights`` (local history, or the
team server: the team's for trainers and admins, an agent's own)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Static
from textual_plotext import PlotextPlot

from supportdesk.insights.stats import ROUTES, STAGES

ROUTE_LABELS = {"voice": "voice", "grounded": "grounded", "approved": "approved", "clarify": "clarify",
                "decline": "decline", "handoff": "hand-off"}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


class InsightsScreen(Screen[None]):
    """Opened with the ``insights`` binding; ``r`` reloads, ``escape`` goes back to the chat."""

    CSS_PATH = "insights.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", id="insights.close"),
        Binding("r", "reload", "Reload", id="insights.reload"),
    ]

    def __init__(self, load: Callable[[], dict[str, Any]], title: str = "Insights") -> None:
        super().__init__()
        self._load = load
        self._title = title
        self.report: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Label(self._title, id="insights-title")
        with VerticalScroll(id="insights-body"):
            with Horizontal(classes="insights-row"):
                yield PlotextPlot(id="routes-plot")
                yield Static(id="routes-numbers", classes="insights-numbers")
            with Horizontal(classes="insights-row"):
                yield PlotextPlot(id="latency-plot")
                yield Static(id="latency-numbers", classes="insights-numbers")
            yield Static(id="insights-gaps")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#routes-numbers", Static).update("loading…")
        self.action_reload()

    def action_reload(self) -> None:
        self._fetch()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _fetch(self) -> None:
        try:
            report = self._load()
        except Exception as exc:  # noqa: BLE001 - a history or server problem is a notice, never a crash
            self.app.call_from_thread(self.notify, str(exc), title="insights", severity="error", timeout=15)
            self.app.call_from_thread(self.query_one("#routes-numbers", Static).update, "could not load the insights")
            return
        self.app.call_from_thread(self.show, report)

    def show(self, report: dict[str, Any]) -> None:
        self.report = report
        days = report["days"]
        total = report["total"]
        labels = [d["day"][5:] for d in days]  # MM-DD
        plot = self.query_one("#routes-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        used = [r for r in ROUTES if any(d["routes"].get(r, 0) for d in days)]
        if days and used:
            plt.stacked_bar(labels, [[d["routes"].get(r, 0) for d in days] for r in used],
                            labels=[ROUTE_LABELS[r] for r in used])
        plt.title("answers per day, by route")
        plot.refresh()
        self.query_one("#routes-numbers", Static).update(self._route_numbers(total, days))

        lat = self.query_one("#latency-plot", PlotextPlot)
        plt = lat.plt
        plt.clear_data()
        plt.clear_figure()
        stages = [s for s in STAGES if s in total["latency_ms"]]
        if stages:
            names = [s.removesuffix("_ms") for s in stages]
            plt.multiple_bar(names, [[total["latency_ms"][s]["p50"] for s in stages],
                                     [total["latency_ms"][s]["p95"] for s in stages]], labels=["p50", "p95"])
        plt.title("latency per stage (ms)")
        lat.refresh()
        self.query_one("#latency-numbers", Static).update(self._latency_numbers(total))
        self.query_one("#insights-gaps", Static).update(self._gaps(report.get("gaps")))

    @staticmethod
    def _route_numbers(total: dict[str, Any], days: list[dict[str, Any]]) -> Table:
        table = Table(title="whole period", show_header=False, box=None, pad_edge=False)
        table.add_column("what")
        table.add_column("n", justify="right")
        table.add_row("questions", str(total["questions"]))
        for route in ROUTES:
            table.add_row(ROUTE_LABELS[route], str(total["routes"].get(route, 0)))
        table.add_row("hand-off rate", _pct(total["handoff_rate"]))
        table.add_row("👍 / 👎", f"{total['thumbs_up']} / {total['thumbs_down']}")
        table.add_row("approved hits", _pct(total["approved_hit_rate"]))
        table.add_row("edit ratio", "-" if total["edit_ratio"] is None else f"{total['edit_ratio']:.2f}")
        if days:
            last = days[-1]
            table.add_row(Text(f"{last['day']}", style="dim"), Text(f"{last['questions']} q", style="dim"))
        return table

    @staticmethod
    def _latency_numbers(total: dict[str, Any]) -> Table:
        table = Table(show_header=True, box=None, pad_edge=False)
        for col in ("stage", "p50", "p95"):
            table.add_column(col, justify="right")
        for stage, figures in total["latency_ms"].items():
            table.add_row(stage.removesuffix("_ms"), f"{figures['p50']:.0f}", f"{figures['p95']:.0f}")
        return table

    @staticmethod
    def _gaps(gaps: list[dict[str, Any]] | None) -> Table | str:
        if not gaps:
            return "no knowledge gaps: nothing was handed off, declined as a product question, rated 👎 or rewritten"
        table = Table(title="top knowledge gaps", expand=True)
        for col in ("gap", "size", "representative question", "closest section"):
            table.add_column(col, overflow="fold")
        for gap in gaps:
            best = gap["closest"][0] if gap["closest"] else None
            table.add_row(str(gap["gap"]), str(gap["size"]), gap["label"],
                          f"{best['source']} — {best['heading']} ({best['score']:.2f})" if best else "-")
        return table
