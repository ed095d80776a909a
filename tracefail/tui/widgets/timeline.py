"""The steps of a trace as a virtual list: only the lines on screen are ever rendered.

A 10k-step trace would take seconds to lay out as widgets or options, so this follows
toolong's Line API pattern: the widget knows the number of steps, asks for the two lines of a
step (header, preview) only when they scroll into view, and keeps a small cache of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

LINES_PER_STEP = 2
CACHE_STEPS = 512
StepLines = Callable[[int], tuple[Text, Text]]


class Timeline(ScrollView, can_focus=True):
    """Two lines per step; the cursor step is highlighted and announced with `Highlighted`."""

    BINDING_GROUP_TITLE = "Trace timeline"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Previous step", show=False),
        Binding("down,j", "move(1)", "Next step", show=False),
        Binding("pageup", "page(-1)", "A page of steps up", show=False),
        Binding("pagedown", "page(1)", "A page of steps down", show=False),
        Binding("home", "jump(0)", "First step", show=False),
        Binding("end", "jump(-1)", "Last step", show=False),
    ]
    DEFAULT_CSS = """
    Timeline { background: $surface; }
    """
    cursor: reactive[int] = reactive(0, always_update=True)

    class Highlighted(Message):
        def __init__(self, timeline: Timeline, index: int) -> None:
            super().__init__()
            self.timeline = timeline
            self.index = index

        @property
        def control(self) -> Timeline:
            return self.timeline

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.count = 0
        self._step_lines: StepLines = lambda _: (Text(), Text())
        self._cache: dict[int, tuple[Text, Text]] = {}

    def set_steps(self, count: int, step_lines: StepLines, cursor: int = 0) -> None:
        self.count = count
        self._step_lines = step_lines
        self._cache.clear()
        self.virtual_size = Size(self.size.width, count * LINES_PER_STEP)
        self.cursor = max(0, min(cursor, count - 1))
        self.refresh()

    def lines(self, index: int) -> tuple[Text, Text]:
        found = self._cache.get(index)
        if found is None:
            if len(self._cache) >= CACHE_STEPS:
                self._cache.clear()
            found = self._cache[index] = self._step_lines(index)
        return found

    def watch_cursor(self, cursor: int) -> None:
        if not self.count:
            return
        self.scroll_to_region(
            Region(0, cursor * LINES_PER_STEP, 1, LINES_PER_STEP), animate=False, immediate=True
        )
        self.refresh()
        self.post_message(self.Highlighted(self, cursor))

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        line = self.scroll_offset.y + y
        index, part = divmod(line, LINES_PER_STEP)
        if index >= self.count:
            return Strip.blank(width, self.rich_style)
        text = self.lines(index)[part].copy()
        text.truncate(width, overflow="ellipsis", pad=True)
        style = self.rich_style
        if index == self.cursor:
            style += Style(bgcolor="#2d3a55" if self.has_focus else "#262b36", bold=part == 0)
        segments = [
            Segment(s.text, style + s.style if s.style else style) for s in text.render(self.app.console)
        ]
        return Strip(segments, width).crop(0, width)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, self.count * LINES_PER_STEP)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        index = (self.scroll_offset.y + event.y) // LINES_PER_STEP
        if 0 <= index < self.count:
            self.cursor = index

    def action_move(self, delta: int) -> None:
        if self.count:
            self.cursor = max(0, min(self.cursor + delta, self.count - 1))

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(self.scrollable_content_region.height // LINES_PER_STEP, 1))

    def action_jump(self, index: int) -> None:
        if self.count:
            self.cursor = index % self.count
