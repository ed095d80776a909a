"""The span tree's waterfall columns: a bar placed in the trace's time, duration, status,
tokens and cost; the spans with the most self time and the failing spans marked."""

from __future__ import annotations

from rich.text import Text

from tracefail.services.spans import SpanTiming

BAR_WIDTH = 12
LEGEND = "spans  █ time · ◆ most self time · ✗ failing"


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.1f}s"


def bar(span: SpanTiming, total_s: float, width: int = BAR_WIDTH) -> str:
    """`width` cells with the span's interval filled; blank without timings."""
    if span.start_s is None or total_s <= 0:
        return " " * width
    start = min(width - 1, int(span.start_s / total_s * width))
    if span.duration_s is None:
        return " " * start + "▏" + " " * (width - start - 1)
    cells = max(1, round(span.duration_s / total_s * width))
    cells = min(cells, width - start)
    return " " * start + "█" * cells + " " * (width - start - cells)


def total_seconds(spans: tuple[SpanTiming, ...]) -> float:
    ends = [s.start_s + (s.duration_s or 0.0) for s in spans if s.start_s is not None]
    return max(ends, default=0.0)


def columns(span: SpanTiming, total_s: float) -> Text:
    """What follows a span's name in the tree: bar, duration, status, tokens, cost, marks."""
    style = "red" if span.failing else "yellow" if span.slowest else "blue"
    text = Text(" ")
    text.append(bar(span, total_s), style=style)
    text.append(f" {_seconds(span.duration_s):>6}" if span.duration_s is not None else "       ", style="dim")
    if span.status:
        text.append(f" {span.status}", style="bold red" if span.failing else "dim")
    if span.tokens is not None:
        text.append(f" {span.tokens} tok", style="dim")
    if span.cost is not None:
        text.append(f" ${span.cost:.4f}", style="dim")
    if span.slowest:
        text.append(" ◆", style="bold yellow")
    if span.failing:
        text.append(" ✗", style="bold red")
    return text
