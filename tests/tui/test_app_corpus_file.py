"""The corpus file itself goes wrong or changes (pilot, real files): a file that is not a DuckDB
corpus ends the browser with its reason (it had left an empty screen saying "loading…"), a corpus
this user may only read is browsed (the schema check had tried a writable open and stopped
there), and `R` shows what another process added."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pilot_wait import settle
from textual.widgets import Static

from tracefail.tui.app import TracefailApp
from tracefail.tui.screens.corpus import CorpusScreen

ADD = """
import sys
from tracefail.model import Step, Trace
from tracefail.store import Database
from tracefail.store.traces import add_traces
with Database(sys.argv[1]) as db:
    add_traces(db, [Trace(trace_id="elsewhere:1", source="elsewhere", framework="Elsewhere",
                          steps=[Step(step_idx=0, content="written by another process")])], run_id=None)
"""


@pytest.mark.parametrize("content", [b"not a database\n", b"DUCK" * 3000])
async def test_a_file_that_is_not_a_corpus_ends_the_browser_with_its_reason(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_bytes(content)
    app = TracefailApp(path, "tester", export_dir=tmp_path)
    async with app.run_test(size=(120, 35)) as pilot:
        for _ in range(500):
            if app.error is not None:
                break
            await pilot.pause(0.01)
    assert app.error is not None and app.error.startswith(f"{path}: cannot open as a DuckDB database")
    assert "\n" not in app.error and app.return_code == 1
    assert path.read_bytes() == content  # nothing written to it


async def test_a_corpus_this_user_may_only_read_is_browsed(corpus_path: Path, tmp_path: Path) -> None:
    corpus_path.chmod(0o444)
    if os.access(corpus_path, os.W_OK):
        pytest.skip("this user (root) may write a read-only file")
    app = TracefailApp(corpus_path, "tester", export_dir=tmp_path)
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CorpusScreen) and screen.loaded == 22 and app.error is None


async def test_refresh_shows_what_another_process_added(corpus_path: Path, tmp_path: Path) -> None:
    """`R` after an ingest elsewhere: the rows, the corpus size ("N matching of M") and the filter
    values all include the new traces (the size had stayed as first counted: "23 matching of 22")."""
    app = TracefailApp(corpus_path, "tester", export_dir=tmp_path)
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CorpusScreen) and screen.corpus_size == 22
        app.service.close()  # the browser lets go of the file, as it does when idle
        added = subprocess.run(
            [sys.executable, "-c", ADD, str(corpus_path)], capture_output=True, text=True, check=False
        )
        assert added.returncode == 0, added.stderr
        await pilot.press("R")
        await settle(pilot)
        assert screen.loaded == screen.total == screen.corpus_size == 23
        assert "23 matching of 23 traces" in str(screen.query_one("#status", Static).render())
        assert app.service.facets_cache is not None
        assert "Elsewhere" in app.service.facets_cache.frameworks
