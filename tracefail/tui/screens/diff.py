"""Diff screen: two runs aligned step by step, the same `services.diff` result `tracefail diff`
prints, with the first divergence highlighted and each run's labels placed against it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from tracefail.services.diff import MARKS, RunDiff, RunSide
from tracefail.tui.text import literal, one_line
from tracefail.tui.work import background

if TYPE_CHECKING:
    from tracefail.tui.app import TracefailApp

STATUS_STYLE = {"changed": "yellow", "tool_result": "magenta", "only_a": "red", "only_b": "green"}


class DiffScreen(Screen[None]):
    """Opened from the corpus with two marked traces (space marks, d diffs)."""

    BINDING_GROUP_TITLE = "Run diff"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", tooltip="Back to the corpus.", id="diff.back"),
        Binding("n", "next_change", "Next change", tooltip="Next row where the runs differ.", id="diff.next"),
        Binding("p", "prev_change", "Prev change", tooltip="Previous differing row.", id="diff.prev"),
    ]

    def __init__(self, trace_a: str, trace_b: str) -> None:
        super().__init__()
        self.trace_a, self.trace_b = trace_a, trace_b
        self.result: RunDiff | None = None

    @property
    def tf(self) -> TracefailApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(literal(f"comparing {self.trace_a} and {self.trace_b}…"), id="diff-head")
        table: DataTable[Any] = DataTable(id="diff-rows", cursor_type="row")
        for title, width in (("", 1), ("A", 5), ("B", 5), ("agent", 24), ("action", 36), ("sim", 5)):
            table.add_column(title, width=width)
        yield table
        with VerticalScroll(id="diff-detail"):
            yield Static("", id="diff-labels")
        yield Footer()

    def on_mount(self) -> None:
        a, b = self.trace_a, self.trace_b
        background(self, lambda: self.tf.service.diff(a, b), self._show, group="diff")

    def _show(self, result: RunDiff) -> None:
        self.result = result
        head = Text()
        for name, side in (("A", result.a), ("B", result.b)):
            head.append(f"{name}: ", style="bold")
            head.append_text(literal(one_line(side.trace_id, 60)))
            head.append(f"  {one_line(side.framework or '-', 20)}  ")
            head.append(side.outcome, style={"failure": "red", "success": "green"}.get(side.outcome, "dim"))
            head.append(f"  {side.n_steps} steps\n")
        head.append("aligned rows: " + ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())))
        head.append("   marks: ~ changed, ≠ tool result, - only A, + only B", style="dim")
        self.query_one("#diff-head", Static).update(head)
        table = self.query_one(DataTable)
        for i, row in enumerate(result.rows):
            style = "bold reverse red" if i == result.first_divergence else STATUS_STYLE.get(row.status, "")
            table.add_row(
                Text(MARKS[row.status], style=style),
                Text("" if row.a is None else str(row.a), style=style, justify="right"),
                Text("" if row.b is None else str(row.b), style=style, justify="right"),
                Text(one_line(row.agent or "-", 24), style=style),
                Text(one_line(row.action, 36), style=style),
                Text(f"{row.similarity:.2f}", style=style, justify="right"),
            )
        self.query_one("#diff-labels", Static).update(_detail(result))
        table.focus()
        if result.first_divergence is not None:
            table.move_cursor(row=result.first_divergence)

    def _changes(self) -> list[int]:
        return [i for i, r in enumerate(self.result.rows) if r.status != "same"] if self.result else []

    def action_next_change(self) -> None:
        table = self.query_one(DataTable)
        later = [i for i in self._changes() if i > table.cursor_row]
        if later:
            table.move_cursor(row=later[0])

    def action_prev_change(self) -> None:
        table = self.query_one(DataTable)
        earlier = [i for i in self._changes() if i < table.cursor_row]
        if earlier:
            table.move_cursor(row=earlier[-1])

    def action_back(self) -> None:
        self.app.pop_screen()


def _detail(result: RunDiff) -> Text:
    """The first divergence as both runs have it, then each run's labels relative to it."""
    text = Text()
    if result.first_divergence is None:
        text.append("the runs are identical step by step\n", style="bold")
    else:
        at = result.rows[result.first_divergence]
        text.append(f"first divergence: A step {at.a}, B step {at.b} ({at.status})\n", style="bold red")
    for name, side in (("A", result.a), ("B", result.b)):
        if side.divergent_text is not None:
            text.append(f"  {name} step {side.divergent_step}: ", style="bold")
            text.append_text(literal(side.divergent_text))
            text.append("\n")
    for name, side in (("A", result.a), ("B", result.b)):
        text.append_text(_labels(name, side))
    return text


def _labels(name: str, side: RunSide) -> Text:
    if not side.labels:
        return Text(f"{name} labels: none\n", style="dim")
    text = Text(f"{name} labels:\n", style="bold")
    for label in side.labels:
        steps = ",".join(map(str, label.steps))
        text.append("  ")
        text.append_text(literal(f"{label.source}: {label.what}"))
        text.append(f" step {steps}" if steps else "")
        text.append(f"  ({label.where} the divergence)" if label.where else "", style="italic")
        text.append("\n")
    return text
