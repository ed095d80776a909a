"""A per-step feature across the trace: bars with a value scale, the values when they fit, change
points (▲) and the attributed mistake step (✗) marked under the bars, the cursor reversed."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from tracefail.tui.charts import sparkline

STRETCH = 8  # cells per step when the trace is short enough
VALUE_CELLS = 6  # the values are printed under the bars when a step gets this many cells


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float | None]
    jumps: list[int]  # change points (analysis.change_points)
    mistakes: frozenset[int]  # attributed mistake steps
    cursor: int


class FeatureChart(Static):
    """Redraws itself when resized; the screen only says what to chart."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown = False
        self._series: Series | None = None

    def show(self, series: Series | None) -> None:
        self._shown = True
        self._series = series
        self._draw()

    def on_resize(self) -> None:
        if self._shown:
            self._draw()

    def _draw(self) -> None:
        s = self._series
        if s is None:
            self.update(Text("no per-step features stored for this trace", style="dim"))
            return
        if not self.size.width:  # not laid out yet: draw once the width is known
            self.call_after_refresh(self._draw)
            return
        known = [v for v in s.values if v is not None]
        low, high = (min(known), max(known)) if known else (0.0, 0.0)
        scale_labels = [f"{high:.3g}", f"{low:.3g}"]
        gutter = max(len(x) for x in scale_labels) + 2
        width = max(self.size.width - 2 - gutter, 10)
        n = max(len(s.values), 1)
        cells = max(1, min(STRETCH, width // n))
        per_cell = max(n / width, 1.0)  # steps per drawn cell when the trace is long

        text = Text()
        text.append(s.name, style="bold")
        changes = ", ".join(map(str, s.jumps)) or "none"
        mistakes = ", ".join(map(str, sorted(s.mistakes))) or "none"
        text.append(f"  ▲ change at {changes} · ✗ mistake at {mistakes} · f: next · F: pick", style="dim")
        text.truncate(self.size.width - 2, overflow="ellipsis")
        text.append(f"\n{scale_labels[0]:>{gutter - 2}} ┤", style="dim")
        text.append_text(sparkline(s.values, width, marks=s.jumps, cursor=s.cursor, stretch=STRETCH))
        text.append(f"\n{scale_labels[1]:>{gutter - 2}} ┤", style="dim")
        marks = Text()
        for cell in range(min(n, width) if per_cell > 1 else n):
            steps = range(int(cell * per_cell), max(int((cell + 1) * per_cell), int(cell * per_cell) + 1))
            symbol, style = " ", "dim"
            if any(i in s.jumps for i in steps):
                symbol, style = "▲", "bold red"
            if any(i in s.mistakes for i in steps):
                symbol, style = "✗", "bold red reverse"
            marks.append(symbol.ljust(cells), style=style)
        text.append_text(marks)
        if cells >= VALUE_CELLS:
            text.append("\n" + " " * gutter)
            for value in s.values:
                shown = "–" if value is None else f"{value:.3g}"
                text.append(shown[: cells - 1].ljust(cells), style="cyan")
        self.update(text)
