"""Ingest writes its batches in one held transaction with commit points: a failure while
storing stops the ingest with one line, and everything committed before it stays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tracefail.services import ingest as ingest_service
from tracefail.services import ingest_read
from tracefail.services.ingest import IngestStopped, ingest
from tracefail.store import traces as trace_store

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"


def _whowhen_files(tmp_path: Path, n: int) -> list[Path]:
    """n Who&When records, one per file, each with its own question id."""
    base = json.loads((SAMPLES / "whowhen" / "1.json").read_text())
    paths = []
    for i in range(n):
        record = {**base, "question_ID": f"commit-test-{i}"}
        path = tmp_path / f"{i:02d}.json"
        path.write_text(json.dumps(record))
        paths.append(path)
    return paths


@pytest.mark.parametrize("bound", ["COMMIT_CHARS", "COMMIT_STEPS"])
def test_a_failed_batch_stops_the_ingest_and_keeps_every_committed_batch(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bound: str
) -> None:
    monkeypatch.setattr(ingest_read, "BATCH", 2)
    monkeypatch.setattr(ingest_service, bound, 1)  # commit after every batch
    real_add = trace_store.add_prepared
    calls = []

    def add_then_fail(db, batch, run_id):  # a fake store failure: orchestration under test
        calls.append(len(batch.headers))
        if len(calls) == 3:
            raise MemoryError("out of memory while appending")
        return real_add(db, batch, run_id)

    monkeypatch.setattr(trace_store, "add_prepared", add_then_fail)
    with pytest.raises(IngestStopped) as stopped:
        ingest(db, _whowhen_files(tmp_path, 8))
    message = str(stopped.value)
    assert "\n" not in message and str(db.path) in message and "out of memory" in message
    assert calls == [2, 2, 2]
    assert db.rows("SELECT count(*) FROM traces")[0][0] == 4  # the two committed batches
    assert db.rows("SELECT count(*) FROM quarantine")[0][0] == 0  # not blamed on a file


def test_without_a_commit_point_a_failure_rolls_back_the_whole_run(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_read, "BATCH", 2)
    real_add = trace_store.add_prepared
    calls = []

    def add_then_fail(db, batch, run_id):
        calls.append(len(batch.headers))
        if len(calls) == 3:
            raise ValueError("bad batch")
        return real_add(db, batch, run_id)

    monkeypatch.setattr(trace_store, "add_prepared", add_then_fail)
    with pytest.raises(IngestStopped):
        ingest(db, _whowhen_files(tmp_path, 8))
    assert db.rows("SELECT count(*) FROM traces")[0][0] == 0
    assert db.rows("SELECT kind, status FROM runs") == [("ingest", "failed")]  # the run row stays
    monkeypatch.setattr(trace_store, "add_prepared", real_add)
    report = ingest(db, _whowhen_files(tmp_path, 8))  # run again: everything lands
    assert (report.traces, report.duplicates, report.quarantined) == (8, 0, 0)
    assert db.rows("SELECT count(*) FROM traces")[0][0] == 8


def test_an_ingest_runs_with_fewer_collections_and_restores_the_collector(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    before = gc.get_threshold(), gc.get_freeze_count()
    real_add = trace_store.add_prepared
    seen = []

    def add_and_look(db, batch, run_id):  # a spy: what the collector looks like while storing
        seen.append((gc.get_threshold()[0], gc.get_freeze_count()))
        return real_add(db, batch, run_id)

    monkeypatch.setattr(trace_store, "add_prepared", add_and_look)
    report = ingest(db, _whowhen_files(tmp_path, 3))
    assert report.traces == 3
    assert seen and all(t == ingest_read.GC_THRESHOLD and frozen > 0 for t, frozen in seen)
    assert (gc.get_threshold(), gc.get_freeze_count()) == before

    def fail(db, batch, run_id):
        raise MemoryError("out of memory while appending")

    monkeypatch.setattr(trace_store, "add_prepared", fail)
    with pytest.raises(IngestStopped):
        ingest(db, _whowhen_files(tmp_path, 2))
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_an_ingest_offers_the_gil_often_and_restores_the_interval(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from tracefail.services import ingest as ingest_service

    before = sys.getswitchinterval()
    assert before > ingest_service.GIL_SWITCH_S  # the interpreter's default, 5 ms
    real_add = trace_store.add_prepared
    seen = []

    def add_and_look(db, batch, run_id):  # a spy: the interval while the store thread writes
        seen.append(sys.getswitchinterval())
        return real_add(db, batch, run_id)

    monkeypatch.setattr(trace_store, "add_prepared", add_and_look)
    assert ingest(db, _whowhen_files(tmp_path, 3)).traces == 3
    assert seen and all(s == pytest.approx(ingest_service.GIL_SWITCH_S) for s in seen)
    assert sys.getswitchinterval() == before

    def fail(db, batch, run_id):
        raise MemoryError("out of memory while appending")

    monkeypatch.setattr(trace_store, "add_prepared", fail)
    with pytest.raises(IngestStopped):
        ingest(db, _whowhen_files(tmp_path, 2))
    assert sys.getswitchinterval() == before


def test_a_group_is_read_with_the_collector_off_and_it_comes_back_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    files = _whowhen_files(tmp_path, 3)
    group = [ingest_read.Unit(f, "whowhen", f.stat().st_size) for f in files]
    limits = ingest_read.Limits(1 << 20, 1 << 20)
    real_prepare = ingest_read.rows.prepare
    seen = []

    def prepare_and_look(traces):  # a spy: is the collector on while a group is read?
        seen.append(gc.isenabled())
        return real_prepare(traces)

    monkeypatch.setattr(ingest_read.rows, "prepare", prepare_and_look)
    items = ingest_read._read_all(group, limits)
    assert sum(len(item.headers) for item in items if isinstance(item, ingest_read.Prepared)) == 3
    assert seen == [False] and gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        ingest_read._read_all(group, limits)
        assert not gc.isenabled()
    finally:
        gc.enable()


_SETTINGS = (
    "SELECT current_setting('memory_limit'), current_setting('threads'), "
    "current_setting('checkpoint_threshold')"
)


@pytest.mark.parametrize("fails", [False, True])
def test_an_ingest_gives_duckdb_its_memory_limit_threads_and_checkpoint_threshold_back(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    """An ingest caps DuckDB's memory (128 MiB and up) and threads (1) while it writes; the next
    work on the same connection (benchmarks/make_corpus.py synthesizes 1M steps after ingesting
    the samples) must get the user's settings back, after a failed ingest too."""
    db.execute("SET threads = 2")
    before = db.rows(_SETTINGS)
    seen = []
    real_add = trace_store.add_prepared

    def add_and_look(db, batch, run_id):  # a spy: the settings while the ingest writes
        seen.append(db.rows(_SETTINGS)[0])
        if fails:
            raise MemoryError("out of memory while appending")
        return real_add(db, batch, run_id)

    monkeypatch.setattr(trace_store, "add_prepared", add_and_look)
    if fails:
        with pytest.raises(IngestStopped):
            ingest(db, _whowhen_files(tmp_path, 3))
    else:
        assert ingest(db, _whowhen_files(tmp_path, 3)).traces == 3
    assert seen and seen[0][1] == 1 and seen[0][0].endswith("MiB") and seen[0][2] == "0 bytes"
    assert db.rows(_SETTINGS) == before
