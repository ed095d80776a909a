"""The browser's held read connection on a real DuckDB file: shared, let go when idle, out of
the way of this process' writes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tracefail.services.browse import BrowseService
from tracefail.services.filter_language import CorpusFilter
from tracefail.services.read_hold import ReadHold
from tracefail.store import Database, StoreError
from tracefail.store.partitioned import export_partitioned


def _corpus(tmp_path: Path) -> Path:
    path = tmp_path / "held.duckdb"
    with Database(path) as db:
        db.execute("CREATE TABLE notes (n INTEGER)")
    return path


def _hold(path: Path, idle_s: float) -> tuple[ReadHold, list[int]]:
    opened: list[int] = []

    def open_read() -> Database:
        opened.append(1)
        return Database(path, read_only=True)

    return ReadHold(open_read, idle_s), opened


def test_reads_share_one_open_and_let_go_when_idle(tmp_path: Path) -> None:
    path = _corpus(tmp_path)
    hold, opened = _hold(path, idle_s=0.3)
    for _ in range(5):
        with hold.reading() as db:
            assert db.rows("SELECT count(*) FROM notes") == [(0,)]
    assert len(opened) == 1 and hold.held
    deadline = time.monotonic() + 5
    while hold.held:
        assert time.monotonic() < deadline, "the idle connection was never closed"
        time.sleep(0.05)
    with Database(path) as db:  # a writer gets the file once the hold let go
        db.execute("INSERT INTO notes VALUES (1)")
    with hold.reading() as db:
        assert db.rows("SELECT count(*) FROM notes") == [(1,)]
    assert len(opened) == 2
    hold.close()
    assert not hold.held


def test_a_write_waits_for_the_reads_in_flight_and_reads_then_see_it(tmp_path: Path) -> None:
    path = _corpus(tmp_path)
    hold, _ = _hold(path, idle_s=60)
    reading, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def slow_read() -> None:
        with hold.reading() as db:
            reading.set()
            release.wait(5)
            seen.append(db.rows("SELECT count(*) FROM notes")[0][0])

    reader = threading.Thread(target=slow_read)
    reader.start()
    assert reading.wait(5)
    wrote: list[float] = []

    def write() -> None:
        with hold.exclusive(), Database(path) as db:  # read-write in the same process
            db.execute("INSERT INTO notes VALUES (1)")
            wrote.append(time.monotonic())

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.2)
    assert not wrote  # still waiting for the read
    released = time.monotonic()
    release.set()
    reader.join(5)
    writer.join(5)
    assert seen == [0] and wrote and wrote[0] >= released
    with hold.reading() as db:  # reopened after the write: sees it
        assert db.rows("SELECT count(*) FROM notes") == [(1,)]
    hold.close()


def test_without_idle_time_each_read_closes_the_file(tmp_path: Path) -> None:
    path = _corpus(tmp_path)
    hold, opened = _hold(path, idle_s=0)
    for _ in range(2):
        with hold.reading() as db:
            db.rows("SELECT 1")
        assert not hold.held
    assert len(opened) == 2


def test_a_parquet_corpus_is_read_through_the_hold(corpus_path: Path, tmp_path: Path) -> None:
    with Database(corpus_path, read_only=True) as db:
        export_partitioned(db, tmp_path / "parts", "framework")
    service = BrowseService(tmp_path / "parts", "tester", hold_s=60)
    service.prepare()
    assert service.count(CorpusFilter()) == 22
    assert len(service.page(CorpusFilter(), 0, 5).rows) == 5 and service.reads.held
    service.close()
    assert not service.reads.held


def test_a_sandboxed_database_hands_out_no_cursor(tmp_path: Path) -> None:
    path = _corpus(tmp_path)
    with Database(path, sandbox=True) as db, pytest.raises(StoreError, match="no cursors"):
        db.cursor()
