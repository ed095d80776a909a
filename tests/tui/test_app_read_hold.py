"""The browser keeps one read connection across filter changes (pilot, real corpus file): its own
label writes still work while it is held, another process' write fails with a clear message
while it is held and succeeds once the browser has been idle for its hold time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from pilot_wait import settle, submit_filter

from tracefail.tui.app import TracefailApp

SPAN_TRACE = "demo:spans"  # built in conftest.py
WRITE = """
import sys
from tracefail.store import Database, DatabaseLocked
try:
    with Database(sys.argv[1]) as db:
        db.execute("UPDATE traces SET task = 'edited elsewhere' WHERE trace_id = ?", [sys.argv[2]])
except DatabaseLocked as exc:
    print(exc)
else:
    print("written")
"""


def _write_elsewhere(path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", WRITE, str(path), SPAN_TRACE], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


async def test_filters_share_the_held_connection_and_writes_still_work(
    corpus_path: Path, tmp_path: Path
) -> None:
    app = TracefailApp(corpus_path, "tester", export_dir=tmp_path)
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        opened: list[int] = []
        connect = app.service._connect

        def counted(read_only: bool):  # type: ignore[no-untyped-def]
            opened.append(read_only)
            return connect(read_only)

        app.service._connect = counted  # type: ignore[method-assign]
        app.service.reads._open_read = lambda: counted(True)
        app.service.index.enabled = False  # every filter change reads the file
        for words in ("framework:MetaGPT", "flight", 'framework:"OpenAI Agents"', ""):
            screen = await submit_filter(pilot, words)
        assert opened in ([], [True])  # at most one open for four filter changes
        assert app.service.reads.held
        # the browser's own write while its read connection is held: it closes it and writes
        receipt = app.service.mistake(SPAN_TRACE, "booker", 3, "held connection test")
        assert receipt.row_id is not None and opened[-1] is False
        assert app.service.read(
            lambda db: db.rows("SELECT count(*) FROM attributions WHERE source = 'human:tester'")
        ) == [(1,)]
        # another process cannot write while the browser holds the file, and says why
        message = _write_elsewhere(corpus_path)
        assert "open in another process (PID" in message and "tracefail browse" in message
        # once idle for its hold time the browser lets go, and the other process writes
        app.service.reads.idle_s = 0.3
        app.service.read(lambda db: None)  # re-arms the release with the short hold
        deadline = time.monotonic() + 10
        while app.service.reads.held:
            assert time.monotonic() < deadline, "the browser kept the file"
            await pilot.pause(0.05)
        assert _write_elsewhere(corpus_path) == "written"
        screen = await submit_filter(pilot, 'framework:"OpenAI Agents"')  # the browser reads again
        assert screen.loaded == 1
        assert app.service.trace(SPAN_TRACE).head["task"] == "edited elsewhere"  # type: ignore[union-attr]
    assert not app.service.reads.held  # closed when the app quit
