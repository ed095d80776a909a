"""Stats screen: failure-mode prevalence, co-occurrence and mistake position of the selection.

The numbers come from `services.stats.selection_stats`, the same selection and counts as
`tracefail stats --by framework|llm`: with no filter the screen and the CLI agree exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tracefail.services.filter_language import format_filter
from tracefail.services.stats import ModeRate, SelectionStats
from tracefail.tui.charts import bars
from tracefail.tui.mode_names import with_name
from tracefail.tui.work import background

if TYPE_CHECKING:
    from tracefail.tui.app import TracefailApp

TOP = 12  # bars per chart
LABEL_WIDTH = 44  # "framework · 1.3 Step repetition"


class StatsScreen(Screen[None]):
    """Follows the corpus filter: what you see is the statistics of the traces you selected."""

    BINDING_GROUP_TITLE = "Stats"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", tooltip="Back to the corpus.", id="stats.back"),
        Binding("R", "reload", "Refresh", tooltip="Recompute for the current filter.", id="stats.refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.stats: SelectionStats | None = None  # what is drawn, for the key help and tests

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
        self.stats = stats
        text = Text()
        text.append(f"{stats.total:,} traces selected", style="bold")
        words = format_filter(self.tf.corpus_filter, brief=True) or "all traces"
        text.append(f" · filter: {words}", style="dim")
        text.append(f" · {stats.taxonomy}\n", style="dim")
        text.append("label policy: ", style="bold")
        text.append(f"{stats.policy}\n")
        text.append("sources used:", style="bold")
        for source, counted, validation in stats.sources:
            text.append(f"\n  {source}", style="cyan")
            text.append(f" ({counted:,} verdicts counted)", style="dim")
            if validation:
                warn = validation.startswith("not validated")
                text.append(f" · {validation}", style="bold yellow" if warn else "green")
        if not stats.sources:
            text.append(" none (no labels in the selection)", style="dim")
        text.append("\n\n")
        for title, rows in (("by framework", stats.by_framework), ("by llm", stats.by_llm)):
            text.append(f"Failure-mode prevalence {title}", style="bold underline")
            text.append(
                " (traces with the mode present / n traces labelled for it, by the label policy; "
                "95% Wilson interval; sorted by its lower bound)\n",
                style="dim",
            )
            text.append_text(
                _prevalence(rows) if rows else Text("  no present labels in the selection\n", style="dim")
            )
            text.append("\n")
        text.append("Co-occurring modes", style="bold underline")
        text.append(" (traces where both are present)\n", style="dim")
        top = max((p.traces for p in stats.cooccurrence), default=1)
        text.append_text(
            bars(
                [
                    (
                        f"{with_name(p.mode_a, 22)} + {with_name(p.mode_b, 22)}",
                        p.traces / top,
                        f"{p.traces:,}",
                    )
                    for p in stats.cooccurrence
                ],
                label_width=48,
            )
            if stats.cooccurrence
            else Text("  none\n", style="dim")
        )
        text.append("\nWhere mistakes sit along traces", style="bold underline")
        text.append(" (attributed step / trace length, all attribution sources)\n", style="dim")
        top = max((b.mistakes for b in stats.positions), default=1)
        text.append_text(
            bars(
                [
                    (
                        f"{b.bin * 10:>3}–{b.bin * 10 + 10:>3}% of the trace",
                        b.mistakes / top,
                        f"{b.mistakes:,}",
                    )
                    for b in stats.positions
                ]
            )
            if stats.positions
            else Text("  no attributions in the selection\n", style="dim")
        )
        self.query_one("#stats", Static).update(text)


def _prevalence(rows: tuple[ModeRate, ...]) -> Text:
    return bars(
        [
            (
                f"{r.group} · {with_name(r.mode_id)}",
                r.prevalence,
                f"{r.prevalence:.0%} [{r.ci_low:.0%}–{r.ci_high:.0%}] n={r.labelled}",
            )
            for r in rows[:TOP]
        ],
        label_width=LABEL_WIDTH,
    )
