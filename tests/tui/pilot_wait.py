"""Waiting in pilot tests: until every worker has finished and its results reached the widgets."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import Input
from textual.worker import WorkerState

from tracefail.tui.screens.corpus import CorpusScreen


async def settle(pilot: Pilot, quiet_rounds: int = 2) -> None:
    """Return once no worker has been pending or running for `quiet_rounds` checks in a row."""
    quiet = 0
    for _ in range(1000):
        await pilot.pause(0.01)
        busy = any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in pilot.app.workers)
        quiet = 0 if busy else quiet + 1
        if quiet == quiet_rounds:
            return
    raise AssertionError("workers did not finish")


async def submit_filter(pilot: Pilot, words: str) -> CorpusScreen:
    """Type `words` into the corpus screen's filter bar, submit them, and wait for the result."""
    screen = pilot.app.screen
    assert isinstance(screen, CorpusScreen)
    screen.query_one("#filter", Input).value = words
    await pilot.press("slash", "end", "enter")
    await settle(pilot)
    return screen
