"""Tiny text charts (sparklines and bars) returned as rich Text, for tables and panels."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

BLOCKS = "▁▂▃▄▅▆▇█"


def _resample(values: Sequence[float | None], width: int) -> list[float | None]:
    if len(values) <= width:
        return list(values)
    out: list[float | None] = []
    for i in range(width):
        chunk = [
            v for v in values[i * len(values) // width : (i + 1) * len(values) // width] if v is not None
        ]
        out.append(max(chunk) if chunk else None)
    return out


def sparkline(
    values: Sequence[float | None],
    width: int = 12,
    marks: Sequence[int] = (),
    cursor: int | None = None,
    stretch: int = 1,
) -> Text:
    """One block per value (max-pooled past `width`, widened to up to `stretch` cells when there
    is room); marked steps red, the cursor reversed."""
    if not values:
        return Text("")
    cells = max(1, min(stretch, width // len(values)))
    scale = max(len(values) / width, 1.0)
    shown = _resample(values, width)
    known = [v for v in shown if v is not None]
    low, high = (min(known), max(known)) if known else (0.0, 0.0)
    mark_cells = {int(m / scale) for m in marks}
    cursor_cell = int(cursor / scale) if cursor is not None else None
    text = Text()
    for i, value in enumerate(shown):
        if value is None:
            char = " "
        elif high == low:
            char = BLOCKS[len(BLOCKS) // 2]
        else:
            char = BLOCKS[round((value - low) / (high - low) * (len(BLOCKS) - 1))]
        style = "bold red" if i in mark_cells else "cyan"
        if i == cursor_cell:
            style += " reverse"
        text.append(char * cells, style=style)
    return text


def bars(rows: Sequence[tuple[str, float, str]], width: int = 40, label_width: int = 28) -> Text:
    """Horizontal bars: (label, value in 0..1, note) per row, value as a share of `width`."""
    text = Text()
    for label, value, note in rows:
        cells = value * width
        full = int(cells)
        part = " ▏▎▍▌▋▊▉"[int((cells - full) * 8)]
        label_text = label if len(label) <= label_width else label[: label_width - 1] + "…"
        text.append(f"{label_text:<{label_width}} ", style="bold")
        text.append("█" * full + (part if full < width else ""), style="magenta")
        text.append(" " * max(width - full - 1, 0) + f" {note}\n", style="dim")
    return text
