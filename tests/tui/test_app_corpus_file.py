"""The corpus file itself goes wrong (pilot, real files): a file that is not a DuckDB corpus ends
the browser with its reason (it had left an empty screen saying "loading…"), and a corpus this
user may only read is browsed (the schema check had tried a writable open and stopped there)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pilot_wait import settle

from tracefail.tui.app import TracefailApp
from tracefail.tui.screens.corpus import CorpusScreen


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
