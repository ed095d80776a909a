"""While a filter's page is read from the file, only the table is covered by Textual's loading
indicator; the screen itself never enters Textual's loading state (that disabled the screen and
rebuilt the footer's keys twice per filter change, and its style work held the GIL the reading
worker needed: 0.4-0.7 s to the first row of a common-word phrase on 100k traces, 0.25 s without).
The table has the focus once the rows show, and a read that fails uncovers it; a next page that
fails is read again when the cursor moves on (pilot, real corpus file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pilot_wait import settle, submit_filter
from textual.widgets import DataTable

from tracefail.services.browse import StoreError
from tracefail.services.filter_language import CorpusFilter
from tracefail.services.views import CorpusPage
from tracefail.tui.app import TracefailApp
from tracefail.tui.screens.corpus import CorpusScreen


async def test_a_filter_read_from_the_file_covers_only_the_table(corpus_path: Path, tmp_path: Path) -> None:
    app = TracefailApp(corpus_path, "tester", export_dir=tmp_path)
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        app.service.index.enabled = False  # every filter change reads the file
        screen = app.screen
        assert isinstance(screen, CorpusScreen)
        table = screen.query_one(DataTable)
        covered: list[tuple[str, bool]] = []
        screen.watch(screen, "loading", lambda value: covered.append(("screen", value)), init=False)
        screen.watch(table, "loading", lambda value: covered.append(("table", value)), init=False)
        screen = await submit_filter(pilot, "the")
        assert screen.loaded > 1 and screen.total == screen.loaded
        assert covered == [("table", True), ("table", False)]  # the screen stayed as it was
        assert app.focused is table and not table.disabled
        await pilot.press("down")
        assert table.cursor_row == 1

        def fail(*args: object) -> int:
            raise ValueError("the corpus could not be read")

        app.service.page_and_count = fail  # type: ignore[method-assign]
        screen = await submit_filter(pilot, "framework:AG2")
        assert not table.loading and not screen.fetching  # uncovered, the rows read before kept
        assert screen.loaded > 0
        assert any("could not be read" in str(n.message) for n in app._notifications)


async def test_a_failed_next_page_read_lets_scrolling_load_it_again(
    corpus_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A next page that cannot be read once (the error is shown) is read when the cursor moves on:
    the screen had stayed 'fetching' and loaded no more pages until the filter changed."""
    monkeypatch.setattr("tracefail.tui.screens.corpus.PAGE", 5)
    monkeypatch.setattr("tracefail.tui.screens.corpus.LOOKAHEAD", 2)
    app = TracefailApp(corpus_path, "tester", export_dir=tmp_path)
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CorpusScreen) and screen.loaded == 5
        page, tried = app.service.page, []

        def fails_once(f: CorpusFilter, offset: int, limit: int) -> CorpusPage:
            tried.append(offset)
            if len(tried) == 1:
                raise StoreError(f"{corpus_path}: the next page could not be read")
            return page(f, offset, limit)

        app.service.page = fails_once  # type: ignore[method-assign]
        await pilot.press("ctrl+end")
        await settle(pilot)
        assert tried == [5] and screen.loaded == 5 and not screen.fetching
        assert any("next page could not be read" in str(n.message) for n in app._notifications)
        await pilot.press("up")  # the cursor moves near the end again
        await settle(pilot)
        assert tried == [5, 5] and screen.loaded == 10
        assert screen.row_ids == [r["trace_id"] for r in page(app.corpus_filter, 0, 10).rows]
