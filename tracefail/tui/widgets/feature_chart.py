"""A per-step feature as a sparkline across the trace, change points in red, the cursor marked."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tracefail.tui.charts import sparkline


class FeatureChart(Static):
    """Redraws itself when resized; the screen only says what to chart."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown = False
        self._series: tuple[str, list[float | None], list[int], int] | None = None

    def show(self, name: str | None, values: list[float | None], jumps: list[int], cursor: int) -> None:
        self._shown = True
        self._series = (name, values, jumps, cursor) if name is not None else None
        self._draw()

    def on_resize(self) -> None:
        if self._shown:
            self._draw()

    def _draw(self) -> None:
        if self._series is None:
            self.update(Text("no per-step features stored for this trace", style="dim"))
            return
        if not self.size.width:  # not laid out yet: draw once the width is known
            self.call_after_refresh(self._draw)
            return
        name, values, jumps, cursor = self._series
        width = max(self.size.width - 2, 20)
        text = Text()
        text.append(name, style="bold")
        text.append(f"  f: next · red: change at {', '.join(map(str, jumps)) or 'no step'}", style="dim")
        text.truncate(width, overflow="ellipsis")
        text.append("\n")
        text.append_text(sparkline(values, width, marks=jumps, cursor=cursor, stretch=4))
        self.update(text)
