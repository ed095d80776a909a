"""Ingest with reader processes stores exactly what a single-process ingest stores: the same
rows, counts and quarantine, for a big record file cut into runs and for a folder of files."""

from __future__ import annotations

import concurrent.futures
import json
import shutil
from pathlib import Path

import pytest

from tracefail.services import ingest_read
from tracefail.services.ingest import ingest
from tracefail.store import Database

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"
_COMPARED = {
    "traces": "SELECT * EXCLUDE (ingest_run_id, ingested_at, source_file) FROM traces ORDER BY trace_id",
    "steps": "SELECT * FROM steps ORDER BY trace_id, step_idx",
    "labels": "SELECT * EXCLUDE (label_id, run_id, created_at) FROM labels "
    "ORDER BY trace_id, source, taxonomy_version, mode_id",
    "attributions": "SELECT * EXCLUDE (attribution_id, run_id, created_at) FROM attributions "
    "ORDER BY trace_id, source",
    "quarantine": "SELECT record, reason FROM quarantine ORDER BY record, reason",
}


def _mast_array(path: Path, copies: int) -> Path:
    """The shipped MAST sample repeated with new ids, one id twice with other content (a
    conflict), one exact duplicate and two records the adapter rejects."""
    base = json.loads((SAMPLES / "mast" / "mad_full_sample.json").read_text())
    records: list[object] = []
    for n in range(copies):
        record = json.loads(json.dumps(base[n % len(base)]))
        record["trace_id"] = n
        records.append(record)
    clash = json.loads(json.dumps(records[3]))
    clash["trace"]["trajectory"] += "\nanother ending"
    records += [clash, records[5], {"trace": "no trajectory here"}, [1, 2]]
    path.write_text(json.dumps(records))
    return path


@pytest.fixture
def units_to_workers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every unit goes to a worker process: the pool waits for its first worker (a real one)
    before taking units, where an ingest would read them itself meanwhile. Returns the count of
    units sent to workers, filled as they are sent."""
    sent: list[int] = []
    start = ingest_read.ReadPool.__init__

    def started(self, workers: int, limits: ingest_read.Limits) -> None:
        start(self, workers, limits)
        self._up.result(timeout=120)
        submit = self._pool.submit

        def counted(fn, *args):
            sent.append(1)
            return submit(fn, *args)

        self._pool.submit = counted

    monkeypatch.setattr(ingest_read.ReadPool, "__init__", started)
    return sent


def _stored(db: Database) -> dict[str, list[tuple]]:
    return {name: db.rows(sql) for name, sql in _COMPARED.items()}


def _both_ways(tmp_path: Path, paths: list[Path]) -> tuple[dict, dict, list, list]:
    reports, rows = [], []
    for workers in (0, 2):
        with Database(tmp_path / f"w{workers}.duckdb") as db:
            report = ingest(db, paths, workers=workers)
            reports.append(report)
            rows.append(_stored(db))
    return rows[0], rows[1], reports[0], reports[1]


@pytest.mark.slow
def test_a_big_record_file_read_in_runs_by_workers_stores_what_one_process_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, units_to_workers: list[int]
) -> None:
    monkeypatch.setattr(ingest_read, "UNIT_BYTES", 40_000)  # cut in main: ~10 runs of records
    monkeypatch.setattr(ingest_read, "RUN_BYTES", 40_000)
    path = _mast_array(tmp_path / "mast.json", 60)
    assert path.stat().st_size > 4 * 40_000
    alone, pooled, report_alone, report_pooled = _both_ways(tmp_path, [path])
    assert report_pooled.as_dict() == report_alone.as_dict()
    assert (report_alone.traces, report_alone.duplicates, report_alone.quarantined) == (60, 1, 3)
    assert sorted(report_pooled.messages) == sorted(report_alone.messages)
    assert pooled == alone
    assert len(alone["steps"]) == report_alone.steps > 60
    assert len(units_to_workers) >= 4


@pytest.mark.slow
def test_a_folder_read_by_workers_in_groups_and_file_by_file_stores_what_one_process_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, units_to_workers: list[int]
) -> None:
    monkeypatch.setattr(ingest_read, "SMALL_BYTES", 20_000)  # bigger files go alone
    monkeypatch.setattr(ingest_read, "UNIT_BYTES", 40_000)  # a group closes at this much input
    folder = tmp_path / "corpus"
    shutil.copytree(SAMPLES / "whowhen", folder / "whowhen")
    shutil.copytree(SAMPLES / "mast", folder / "mast")
    (folder / "broken.json").write_text('{"not": "a known format"')
    alone, pooled, report_alone, report_pooled = _both_ways(tmp_path, [folder])
    assert report_pooled.as_dict() == report_alone.as_dict()
    assert report_alone.traces > 10 and report_alone.quarantined >= 1
    assert pooled == alone
    assert len(units_to_workers) >= 10


def test_small_files_are_grouped_in_order_up_to_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_read, "SMALL_BYTES", 100)
    monkeypatch.setattr(ingest_read, "UNIT_BYTES", 250)
    monkeypatch.setattr(ingest_read, "BATCH", 3)

    def unit(name: str, size: int, run: bool = False) -> ingest_read.Unit:
        return ingest_read.Unit(Path(name), "whowhen", size, () if run else None)

    missing = ingest_read.Reject(Path("gone.json"), None, "no such file")
    stream = [
        unit("a", 10), unit("b", 10), unit("c", 10), unit("d", 10),  # BATCH files a group
        unit("e", 90), unit("f", 90), unit("g", 90), unit("h", 90),  # UNIT_BYTES closes one
        missing, unit("i", 10), unit("big", 101), unit("j", 10), unit("run", 10, run=True),
    ]  # fmt: skip
    names = [
        item.file.name if isinstance(item, ingest_read.Reject) else [u.file.name for u in item]
        for item in ingest_read.grouped(stream)
    ]
    assert names == [
        ["a", "b", "c"],
        ["d", "e", "f"],
        ["g", "h"],
        "gone.json",
        ["i"],
        ["big"],
        ["j"],
        ["run"],
    ]


@pytest.mark.slow
def test_a_truncated_big_file_keeps_the_runs_before_the_break(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, units_to_workers: list[int]
) -> None:
    monkeypatch.setattr(ingest_read, "UNIT_BYTES", 40_000)
    monkeypatch.setattr(ingest_read, "RUN_BYTES", 40_000)
    path = _mast_array(tmp_path / "mast.json", 30)
    text = path.read_text()
    path.write_text(text[: int(len(text) * 0.8)])  # cut inside a record
    alone, pooled, report_alone, report_pooled = _both_ways(tmp_path, [path])
    assert pooled == alone
    assert report_pooled.as_dict() == report_alone.as_dict()
    assert 0 < report_pooled.traces < 30
    assert any("truncated" in message for message in report_pooled.messages)
    assert units_to_workers


@pytest.mark.slow
def test_units_read_here_while_workers_start_keep_their_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before a worker is up the ingest reads units itself: mixed with the workers' units, the
    stored rows and counts are still those of a single-process ingest."""
    monkeypatch.setattr(ingest_read, "UNIT_BYTES", 20_000)
    monkeypatch.setattr(ingest_read, "RUN_BYTES", 20_000)
    path = _mast_array(tmp_path / "mast.json", 120)
    alone, pooled, report_alone, report_pooled = _both_ways(tmp_path, [path])
    assert report_pooled.as_dict() == report_alone.as_dict()
    assert pooled == alone


@pytest.mark.slow
def test_a_reader_process_that_dies_stops_the_ingest_with_one_line_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal

    from tracefail.services.ingest import IngestStopped

    start = ingest_read.ReadPool.__init__

    def killed(self, workers: int, limits: ingest_read.Limits) -> None:  # a worker killed (OOM)
        start(self, workers, limits)
        self._up.result(timeout=120)
        os.kill(next(iter(self._pool._processes)), signal.SIGKILL)

    monkeypatch.setattr(ingest_read, "UNIT_BYTES", 40_000)
    monkeypatch.setattr(ingest_read, "RUN_BYTES", 40_000)
    path = _mast_array(tmp_path / "mast.json", 60)
    with Database(tmp_path / "corpus.duckdb") as db:
        monkeypatch.setattr(ingest_read.ReadPool, "__init__", killed)
        with pytest.raises(IngestStopped) as stopped:
            ingest(db, [path], workers=2)
        message = str(stopped.value)
        assert "\n" not in message and "reading process died" in message and "--workers 0" in message
        assert db.rows("SELECT status FROM runs") == [("failed",)]
        monkeypatch.setattr(ingest_read.ReadPool, "__init__", start)
        report = ingest(db, [path], workers=0)  # the corpus is intact: run it again
        assert (report.traces, report.quarantined) == (60, 3)


@pytest.mark.slow
def test_when_no_reader_process_can_start_the_ingest_reads_everything_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fake start (orchestration only): no worker comes up, as when processes cannot be
    created; every unit is read in the ingest's own process and nothing differs."""

    def no_workers(self: ingest_read.ReadPool, workers: int) -> None:
        self._up.set_exception(OSError("Resource temporarily unavailable"))

    monkeypatch.setattr(ingest_read.ReadPool, "_start", no_workers)
    monkeypatch.setattr(ingest_read, "UNIT_BYTES", 40_000)
    monkeypatch.setattr(ingest_read, "RUN_BYTES", 40_000)
    sent: list[object] = []
    monkeypatch.setattr(concurrent.futures.ProcessPoolExecutor, "submit", lambda *args: sent.append(args))
    path = _mast_array(tmp_path / "mast.json", 60)
    alone, pooled, report_alone, report_pooled = _both_ways(tmp_path, [path])
    assert report_pooled.as_dict() == report_alone.as_dict()
    assert pooled == alone
    assert report_alone.traces == 60 and not sent


_CHOICES = [
    (2, 0.0, 2), (2, 0.6, 2), (2, 1.0, 2), (2, 1.5, 0), (2, 2.0, 0), (2, 9.0, 0),
    (16, 4.0, 13), (16, 0.2, 16), (1, 0.0, 1),
]  # fmt: skip


@pytest.mark.parametrize(("cores", "load", "workers"), _CHOICES)
def test_reader_processes_are_chosen_from_the_cores_the_load_leaves_idle(
    monkeypatch: pytest.MonkeyPatch, cores: int, load: float, workers: int
) -> None:
    monkeypatch.setattr(ingest_read, "cores", lambda: cores)
    assert ingest_read.default_workers(load) == workers


def test_at_load_2_on_2_cores_the_default_ingest_reads_in_one_process_as_workers_0_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default is never slower than `--workers 0` on a busy machine because it is
    `--workers 0` there: no reader process starts (readers waiting for a core cost 1.25x at
    load 2.5), and what is stored is the same."""
    import os

    import tracefail.services.ingest as ingest_service

    pools: list[int] = []
    start = ingest_read.ReadPool.__init__

    def counted(self, workers: int, limits: ingest_read.Limits) -> None:
        pools.append(workers)
        start(self, workers, limits)

    monkeypatch.setattr(ingest_read.ReadPool, "__init__", counted)
    monkeypatch.setattr(ingest_service, "PARALLEL_BYTES", 1)  # this input counts as big
    monkeypatch.setattr(ingest_read, "cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.0, 2.0, 2.0))
    path = _mast_array(tmp_path / "mast.json", 20)
    reports, stored = [], []
    for workers in (None, 0):
        with Database(tmp_path / f"w{workers}.duckdb") as db:
            reports.append(ingest(db, [path], workers=workers))
            stored.append(_stored(db))
    assert pools == []
    assert [r.reader_processes for r in reports] == [0, 0]
    assert reports[0].as_dict() == reports[1].as_dict()
    assert stored[0] == stored[1]
    assert reports[0].traces == 20
