"""Pilot tests of the corpus index in the app: built after the first page, used for filter
changes without a worker, and never hiding a human label written in the trace screen."""

from __future__ import annotations

from pathlib import Path

from pilot_wait import settle
from textual.widgets import DataTable, Input

from tracefail.tui.app import TracefailApp
from tracefail.tui.screens.corpus import CorpusScreen
from tracefail.tui.screens.trace import TraceScreen

SIZE = (140, 44)
SPAN_TRACE = "demo:spans"  # built in conftest.py


async def test_filters_come_from_the_index_and_follow_human_labels(corpus_path: Path, tmp_path: Path) -> None:
    app = TracefailApp(corpus_path, "tester", export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        corpus = app.screen
        assert isinstance(corpus, CorpusScreen) and corpus.total == 22
        assert app.service.index_ready  # built once the first page was shown

        queried = app.service.page_and_count

        def no_query(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise AssertionError("the index should have answered")

        app.service.page_and_count = no_query  # type: ignore[method-assign]
        corpus.query_one("#filter", Input).value = "agree:no"
        await pilot.press("slash", "end", "enter")
        await settle(pilot)
        assert corpus.total == 1 and len(corpus.row_ids) == 1  # the judge and the dataset disagree
        assert not any("unexpected" in (n.title or "") for n in app._notifications)
        app.service.page_and_count = queried  # type: ignore[method-assign]

        corpus.query_one("#filter", Input).value = "source:human"
        await pilot.press("slash", "end", "enter")
        await settle(pilot)
        assert corpus.total == 0

        corpus.query_one("#filter", Input).value = 'framework:"OpenAI Agents"'
        await pilot.press("slash", "end", "enter")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        trace = app.screen
        assert isinstance(trace, TraceScreen) and trace.trace_id == SPAN_TRACE
        labels = trace.query_one("#labels", DataTable)
        labels.focus()
        labels.move_cursor(row=0)
        await pilot.press("a")  # a human label, written by this app
        await settle(pilot)
        assert not app.service.index_ready  # dropped with the write
        await pilot.press("escape")
        await settle(pilot)

        corpus.query_one("#filter", Input).value = "source:human"
        await pilot.press("slash", "end", "enter")
        await settle(pilot)
        assert corpus.row_ids == [SPAN_TRACE] and corpus.total == 1
        assert app.service.index_ready  # rebuilt after the corpus changed
        await pilot.press("escape")
        corpus.query_one("#filter", Input).value = "source:human:tester"
        await pilot.press("slash", "end", "enter")
        assert corpus.row_ids == [SPAN_TRACE]  # now from the new index
