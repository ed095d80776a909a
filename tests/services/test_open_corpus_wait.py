"""A command that writes waits briefly for another process' read connection to go (a browser
holds one while in use and lets go 3 s after its last read), and past its wait names the
holder: real DuckDB file, a real second process holding it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tracefail.services.corpus import open_corpus
from tracefail.store import Database, DatabaseLocked, StoreError, open_waiting

HOLD = """
import sys, time
from tracefail.store import Database
db = Database(sys.argv[1], read_only=True)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
db.close()
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    reader = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout is not None and reader.stdout.readline().strip() == "held"
    return reader


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.duckdb"
    Database(path).close()
    return path


def test_a_writer_waits_for_a_reader_that_lets_go(corpus: Path) -> None:
    reader = _hold(corpus, 1.0)
    started = time.monotonic()
    with open_corpus(corpus, wait_s=10) as db:
        db.execute("CREATE TABLE written AS SELECT 1 AS x")
    waited = time.monotonic() - started
    assert reader.wait(timeout=30) == 0
    assert 0.2 < waited < 10  # it did wait, and stopped waiting once the file was free


def test_past_its_wait_a_writer_names_the_process_holding_the_file(corpus: Path) -> None:
    reader = _hold(corpus, 5.0)
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseLocked, match=rf"open in another process \(PID {reader.pid}\)"):
            open_corpus(corpus, wait_s=0.6)
        assert time.monotonic() - started < 4.0  # gave up after its wait, not the reader's 5 s
        with pytest.raises(DatabaseLocked):
            open_corpus(corpus, wait_s=0)  # no wait: at once
    finally:
        reader.kill()
        reader.wait(timeout=30)


def test_a_read_only_open_does_not_wait_for_a_writer(corpus: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLD.replace("read_only=True", "read_only=False"), str(corpus), "5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(DatabaseLocked):
            open_corpus(corpus, read_only=True)
        assert time.monotonic() - started < 2.0
    finally:
        writer.kill()
        writer.wait(timeout=30)


def test_the_wait_is_said_once_and_ends_when_the_holder_lets_go(corpus: Path) -> None:
    reader = _hold(corpus, 1.0)
    told: list[DatabaseLocked] = []
    open_waiting(corpus, 10, on_wait=told.append).close()
    assert reader.wait(timeout=30) == 0
    assert len(told) == 1 and told[0].holder == f"(PID {reader.pid})"


def test_a_broken_file_is_not_waited_for_even_where_lock_is_in_its_name(tmp_path: Path) -> None:
    """DuckDB's message for a corrupt file says "block", and a path may say "lock": neither is
    another process holding the file, so a writer says what is wrong at once."""
    folder = tmp_path / "lockwait"
    folder.mkdir()
    good = folder / "good.duckdb"
    Database(good).close()
    corrupt = folder / "corrupt.duckdb"
    data = bytearray(good.read_bytes())
    data[8192 : 8192 + 4096] = b"\xff" * 4096  # a block whose checksum no longer matches
    corrupt.write_bytes(bytes(data))
    not_duckdb = folder / "notes.duckdb"
    not_duckdb.write_text("not a database\n")
    for path, says in ((corrupt, "Corrupt database file"), (not_duckdb, "not a valid DuckDB")):
        started = time.monotonic()
        with pytest.raises(StoreError, match=f"{path.name}: cannot open as a DuckDB database.*{says}") as err:
            open_corpus(path, wait_s=10)
        assert not isinstance(err.value, DatabaseLocked)
        assert time.monotonic() - started < 5
