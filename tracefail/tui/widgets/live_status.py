"""The corpus screen's live line: shown only while `tracefail serve` writes the corpus, it says
so and counts the traces that arrived since the table was loaded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Static

from tracefail.services.browse import LiveState
from tracefail.tui.work import background

if TYPE_CHECKING:
    from tracefail.tui.app import TracefailApp

POLL_S = 2.0  # serve publishes a new copy at most every second or so


class LiveStatus(Static):
    """Polls the corpus in a worker; hidden unless a server is writing it."""

    DEFAULT_CSS = "LiveStatus { height: 1; padding: 0 1; background: $boost; color: $success; }"

    class Arrived(Message):
        """New traces are readable; the screen decides whether to reload now."""

    def __init__(self) -> None:
        super().__init__(id="live")
        self.display = False
        self.shown: int | None = None  # traces when the table was last loaded
        self.state: LiveState | None = None  # the last poll's
        self._timer: Timer | None = None

    def loaded(self) -> None:
        """The table was (re)loaded: new traces count from a poll made now. The first call starts
        polling (not mounting: the screen first migrates the file, which needs it unopened)."""
        self.shown = None
        if self.state is not None and self.state.serving:  # what it counted as new is shown now
            self.update(self._line(self.state, 0))
        if self._timer is None:
            self._timer = self.set_interval(POLL_S, self._poll)
        self._poll()  # the count to compare with is the table's, not one a poll later

    def _poll(self) -> None:
        app: TracefailApp = self.app  # type: ignore[assignment]
        background(self, app.service.live, self._show, group="live", busy=lambda _: None)

    def _show(self, state: LiveState) -> None:
        self.state = state
        self.display = state.serving
        if not state.serving:
            return
        if self.shown is None:
            self.shown = state.traces
        new = state.traces - self.shown
        self.update(self._line(state, new))
        if new > 0:
            self.post_message(self.Arrived())

    @staticmethod
    def _line(state: LiveState, new: int) -> Text:
        text = Text("● live", style="bold")
        text.append(f" · tracefail serve is writing this corpus · {state.traces:,} traces")
        if new > 0:
            text.append(f" · {new:,} new since loaded (R shows them)", style="bold")
        return text
