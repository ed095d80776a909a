"""Review screen: which failed traces to label next, and whether labelling is paying off yet.

The queue is `tracefail review`'s (unlabelled failures, sources that disagree first, then the
ranker's least sure); enter opens a trace, where `m` marks the mistake step. The learning curve
is `tracefail train --curve` on the `human:` marks, beside the best structural rule, so a user
sees when the ranker starts to beat the rules on their system.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from tracefail.services.attribution import ReviewPanel, TrainError
from tracefail.tui.charts import bars
from tracefail.tui.work import background

if TYPE_CHECKING:
    from tracefail.tui.app import TracefailApp

COLUMNS = [
    ("trace_id", "trace", 60),
    ("uncertainty", "ranker unsure", 13),
    ("disagree", "sources disagree", 16),
]


class ReviewScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Review"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", tooltip="Back to the corpus.", id="review.back"),
        Binding(
            "R", "reload", "Refresh", tooltip="Re-rank the queue and redraw the curve.", id="review.refresh"
        ),
    ]

    def __init__(self, ranker_path: Path | None = None) -> None:
        super().__init__()
        self.ranker_path = ranker_path
        self.panel: ReviewPanel | None = None  # what is drawn, for tests
        self.row_ids: list[str] = []

    @property
    def tf(self) -> TracefailApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        table: DataTable[Any] = DataTable(id="review", cursor_type="row", zebra_stripes=True)
        for key, title, width in COLUMNS:
            table.add_column(title, key=key, width=width)
        yield table
        yield Static("ranking…", id="review-curve")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.reload()

    def reload(self) -> None:
        path = self.ranker_path

        def work() -> ReviewPanel | str:
            try:
                return self.tf.service.review_panel(path)
            except TrainError as exc:
                return str(exc)

        background(self, work, self._show, group="review")

    def action_reload(self) -> None:
        self.reload()

    def action_back(self) -> None:
        self.app.pop_screen()

    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        from tracefail.tui.screens.trace import TraceScreen

        self.app.push_screen(TraceScreen(self.row_ids[event.cursor_row]))

    def _show(self, panel: ReviewPanel | str) -> None:
        table = self.query_one(DataTable)
        table.clear()
        if isinstance(panel, str):
            self.panel, self.row_ids = None, []
            self.query_one("#review-curve", Static).update(Text(panel, style="yellow"))
            return
        self.panel = panel
        self.row_ids = [item.trace_id for item in panel.items]
        for item in panel.items:
            table.add_row(
                item.trace_id,
                "-" if item.uncertainty is None else f"{item.uncertainty:.2f}",
                str(item.disagreement) if item.disagreement > 1 else "",
                key=item.trace_id,
            )
        self.query_one("#review-curve", Static).update(_curve(panel))


def _curve(panel: ReviewPanel) -> Text:
    text = Text()
    text.append(f"{len(panel.items)} unlabelled failed traces, most useful first", style="bold")
    text.append(f" · {panel.order} · enter opens, m marks the mistake step\n", style="dim")
    text.append("Learning curve", style="bold underline")
    text.append(
        f" (held-out step accuracy, 10-fold CV, from {panel.labelled} {panel.reference}-labelled traces)\n",
        style="dim",
    )
    if not panel.curve:
        text.append(
            f"  needs 4 labelled traces, {panel.labelled} so far: mark the mistake step (m)\n", style="dim"
        )
        return text
    rows = [
        (
            f"{p.n_train:>4} labelled",
            p.step.value,
            f"{p.step.value:.2f} [{p.step.low:.2f}, {p.step.high:.2f}]",
        )
        for p in panel.curve
    ]
    if panel.best_baseline is not None and panel.best_baseline_step is not None:
        rows.append(
            (f"rule: {panel.best_baseline}", panel.best_baseline_step, f"{panel.best_baseline_step:.2f}")
        )
    text.append_text(bars(rows))
    return text
