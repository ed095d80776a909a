"""Clusters screen: failing traces grouped by failure signature (`services.clusters`, as
`tracefail clusters` lists them); enter opens a cluster in the corpus as a `trace:` filter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from tracefail.services.clusters import Cluster, Clusters
from tracefail.tui.text import literal, one_line
from tracefail.tui.work import background

if TYPE_CHECKING:
    from tracefail.tui.app import TracefailApp

MODES_SHOWN = 4


class ClustersScreen(Screen[tuple[str, ...] | None]):
    """Dismisses with the chosen cluster's trace ids (the corpus filters to them), or None."""

    BINDING_GROUP_TITLE = "Clusters"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape", "back", "Back", tooltip="Back to the corpus, filter unchanged.", id="clusters.back"
        ),
        Binding(
            "enter", "open", "Open", tooltip="Show the cluster's traces in the corpus.", id="clusters.open"
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.result: Clusters | None = None

    @property
    def tf(self) -> TracefailApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("clustering failing traces…", id="clusters-head")
        table: DataTable[Any] = DataTable(id="clusters", cursor_type="row", zebra_stripes=True)
        for title, width in (
            ("#", 3),
            ("name", 34),
            ("size", 4),
            ("frameworks", 16),
            ("modes (traces/size, share of mode)", 36),
            ("examples", 36),
        ):
            table.add_column(title, width=width)
        yield table
        yield Static("", id="cluster-detail")
        yield Footer()

    def on_mount(self) -> None:
        background(self, self.tf.service.clusters, self._show, group="clusters")

    def _show(self, result: Clusters) -> None:
        self.result = result
        self.query_one("#clusters-head", Static).update(
            Text(
                f"{result.n_traces} failing traces, {len(result.clusters)} clusters "
                f"(source {result.source}, seed {result.seed}) · enter shows a cluster's traces",
                style="bold",
            )
        )
        table = self.query_one(DataTable)
        for found in result.clusters:
            table.add_row(
                Text(str(found.cluster_id), justify="right"),
                Text(one_line("unclustered" if found.cluster_id == 0 else found.name, 34), style="bold"),
                Text(str(found.size), justify="right"),
                Text(one_line(", ".join(f"{k} {v}" for k, v in found.frameworks.items()), 16)),
                Text(one_line(_modes(found), 36), style="yellow"),
                Text(one_line(", ".join(found.examples), 36), style="cyan"),
            )
        table.focus()
        self._describe(0)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._describe(event.cursor_row)

    def _describe(self, row: int) -> None:
        """The whole of the highlighted cluster: words, every mode and the examples, unabridged."""
        if self.result is None or not 0 <= row < len(self.result.clusters):
            return
        found = self.result.clusters[row]
        text = Text("words: ", style="bold")
        text.append_text(literal(", ".join(found.terms) or "-"))
        text.append("\nmodes: ", style="bold")
        text.append_text(literal(_modes(found, limit=None) or "-"))
        text.append("\nexamples: ", style="bold")
        text.append_text(literal(", ".join(found.examples)))
        self.query_one("#cluster-detail", Static).update(text)

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._open(event.cursor_row)

    def action_open(self) -> None:
        self._open(self.query_one(DataTable).cursor_row)

    def _open(self, row: int) -> None:
        if self.result is not None and 0 <= row < len(self.result.clusters):
            self.dismiss(self.result.clusters[row].trace_ids)

    def action_back(self) -> None:
        self.dismiss(None)


def _modes(found: Cluster, limit: int | None = MODES_SHOWN) -> str:
    return ", ".join(f"{m.mode_id} {m.traces}/{found.size} ({m.share:.0%})" for m in found.modes[:limit])
