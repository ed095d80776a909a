"""Every label of a trace (all sources) in a table, with the highlighted one's rationale."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from tracefail.tui.mode_names import with_name
from tracefail.tui.text import literal, one_line

MODE_WIDTH = 30  # "1.3 Step repetition" and most names whole
LABEL_COLUMNS = [
    ("mode", MODE_WIDTH),
    ("present", 7),
    ("p", 4),
    ("source", 18),
    ("evidence", 8),
    ("rationale", 80),
]


class LabelsPanel(Vertical):
    """Posts `Chosen` when the user selects a label (enter), so the screen can jump to its evidence."""

    DEFAULT_CSS = """
    LabelsPanel { height: auto; }
    """

    class Chosen(Message):
        def __init__(self, label: dict[str, Any]) -> None:
            super().__init__()
            self.label = label

    def __init__(self) -> None:
        super().__init__()
        self.labels: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        table: DataTable[Any] = DataTable(id="labels", cursor_type="row")
        for title, width in LABEL_COLUMNS:  # fixed widths: no re-layout as rows arrive
            table.add_column(title, width=width)
        yield table
        yield Static(id="label-detail")

    def show(self, labels: list[dict[str, Any]]) -> None:
        self.labels = labels
        table = self.query_one("#labels", DataTable)
        row = table.cursor_row
        # the source column fits the longest source, so every source shows in full
        source_width = max([18, *(len(label["source"]) for label in labels)])
        table.clear(columns=True)
        for title, width in LABEL_COLUMNS:
            table.add_column(title, width=source_width if title == "source" else width)
        for label in labels:
            present = label["present"]
            table.add_row(
                Text(with_name(label["mode_id"], MODE_WIDTH, label.get("taxonomy_id")), style="bold"),
                Text(
                    "yes" if present else "no" if present is False else "?",
                    style="red" if present else "green" if present is False else "dim",
                ),
                "" if label["probability"] is None else f"{label['probability']:.2f}",
                Text(label["source"], style="cyan"),
                " ".join(map(str, label["evidence_steps"] or [])),
                Text(one_line(label["rationale"], 80)),
            )
        if labels:
            table.move_cursor(row=min(row, len(labels) - 1))

    def current(self) -> dict[str, Any] | None:
        """The highlighted label, if any."""
        row = self.query_one("#labels", DataTable).cursor_row
        return self.labels[row] if 0 <= row < len(self.labels) else None

    @on(DataTable.RowHighlighted, "#labels")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        label = self.current()
        detail = self.query_one("#label-detail", Static)
        if label is None:
            detail.update("")
            return
        name = with_name(label["mode_id"], taxonomy_id=label.get("taxonomy_id"))
        text = Text(f"{name} · {label['source']}: ", style="bold")
        text.append_text(literal(label["rationale"] or "(no rationale)", limit=600))
        detail.update(text)

    @on(DataTable.RowSelected, "#labels")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        label = self.current()
        if label is not None:
            self.post_message(self.Chosen(label))
