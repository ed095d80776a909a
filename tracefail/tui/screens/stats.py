"""Stats screen: failure-mode prevalence, co-occurrence and mistake position of the selection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tracefail.services.browse import SelectionStats, format_filter
from tracefail.tui.charts import bars
from tracefail.tui.work import background

if TYPE_CHECKING:
    from tracefail.tui.app import TracefailApp

TOP = 12  # bars per chart


class StatsScreen(Screen[None]):
    """Follows the corpus filter: what you see is the statistics of the traces you selected."""

    BINDING_GROUP_TITLE = "Stats"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", tooltip="Back to the corpus.", id="stats.back"),
        Binding("R", "reload", "Refresh", tooltip="Recompute for the current filter.", id="stats.refresh"),
    ]

    @property
    def tf(self) -> TracefailApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="stats-scroll"):
            yield Static("computing…", id="stats")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        corpus_filter = self.tf.corpus_filter
        background(self, lambda: self.tf.service.stats(corpus_filter), self._show, group="stats")

    def action_reload(self) -> None:
        self.reload()

    def action_back(self) -> None:
        self.app.pop_screen()

    def _show(self, stats: SelectionStats) -> None:
        text = Text()
        text.append(f"{stats.total:,} traces selected", style="bold")
        text.append(f" · filter: {format_filter(self.tf.corpus_filter) or 'all traces'}\n\n", style="dim")
        for title, rows in (("by framework", stats.by_framework), ("by llm", stats.by_llm)):
            text.append(f"Failure-mode prevalence {title}", style="bold underline")
            text.append(" (share of the group's traces with the mode present, any source)\n", style="dim")
            text.append_text(
                _prevalence(rows) if rows else Text("  no present labels in the selection\n", style="dim")
            )
            text.append("\n")
        text.append("Co-occurring modes", style="bold underline")
        text.append(" (traces where both are present)\n", style="dim")
        top = max((r["traces"] for r in stats.cooccurrence), default=1)
        text.append_text(
            bars(
                [
                    (f"{r['mode_a']} + {r['mode_b']}", r["traces"] / top, f"{r['traces']:,}")
                    for r in stats.cooccurrence
                ]
            )
            if stats.cooccurrence
            else Text("  none\n", style="dim")
        )
        text.append("\nWhere mistakes sit along traces", style="bold underline")
        text.append(" (attributed step / trace length, all attribution sources)\n", style="dim")
        top = max((r["mistakes"] for r in stats.positions), default=1)
        text.append_text(
            bars(
                [
                    (
                        f"{r['bin'] * 10:>3}–{r['bin'] * 10 + 10:>3}% of the trace",
                        r["mistakes"] / top,
                        f"{r['mistakes']:,}",
                    )
                    for r in stats.positions
                ]
            )
            if stats.positions
            else Text("  no attributions in the selection\n", style="dim")
        )
        self.query_one("#stats", Static).update(text)


def _prevalence(rows: list[dict[str, Any]]) -> Text:
    return bars(
        [
            (f"{r['group']} · {r['mode_id']}", r["share"], f"{r['share']:.0%} ({r['traces']}/{r['total']})")
            for r in rows[:TOP]
        ]
    )
