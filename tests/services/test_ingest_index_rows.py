"""The search index an ingest writes from rows built where its batches are read (reader
processes, or the reading thread with `--workers 0`) is the one its writer would build itself:
the same terms, documents, postings and runs, row for row in storage order, on a fresh corpus
and on one whose known terms the new ones interleave; and what a rebuild (`catch_up`) holds."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.conftest import SAMPLES
from tests.store.test_search_index import _runs_sorted
from tracefail.services import ingest_read
from tracefail.services.ingest import ingest
from tracefail.store import Database
from tracefail.store import search as store
from tracefail.store import traces as trace_store

# storage order (rowid): a run of postings written out of term-id order differs from the writer's
_INDEX = {
    table: f"SELECT * FROM {table} ORDER BY rowid"
    for table in ("search_terms", "search_docs", "search_postings", "search_segments")
}
FRESH = [SAMPLES / "whowhen", SAMPLES / "mast", SAMPLES / "langfuse", SAMPLES / "otlp-json"]


def _index(db: Database) -> dict[str, list[tuple]]:
    return {table: db.rows(sql) for table, sql in _INDEX.items()}


def _by_step(db: Database) -> set[tuple[object, ...]]:
    """The index by (trace, step, term), not by ids (ids depend on how the writes were cut)."""
    rows = db.rows(
        "SELECT d.trace_id, d.step_idx, d.len, t.term, p.tf, p.positions FROM search_postings p "
        "JOIN search_docs d USING (doc_id) JOIN search_terms t USING (term_id)"
    )
    return {(t, s, n, term, tf, tuple(pos)) for t, s, n, term, tf, pos in rows}


def _writer_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches reach the writer without their index rows, which it then builds (as every other
    writer does): the reference."""
    add = trace_store.add_prepared
    monkeypatch.setattr(
        trace_store, "add_prepared", lambda db, batch, run_id: add(db, replace(batch, index=None), run_id)
    )


def _corpus(path: Path, steps: list[list[Path]], workers: int) -> tuple[dict[str, list[tuple]], set]:
    with Database(path) as db:
        for paths in steps:
            report = ingest(db, paths, workers=workers)
            assert report.traces + report.duplicates > 0
        assert store.index_state(db).current
        assert _runs_sorted(db)  # by term id, then document: what the reorder of new terms keeps
        return _index(db), _by_step(db)


def _both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, steps: list[list[Path]], workers: int = 0):
    prepared = _corpus(tmp_path / "prepared.duckdb", steps, workers)
    with monkeypatch.context() as patch:
        _writer_builds(patch)
        built = _corpus(tmp_path / "built.duckdb", steps, workers)
    return prepared, built


def test_prepared_rows_store_the_index_the_writer_builds_fresh_and_over_known_terms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    joins: list[int] = []
    join = store.IndexRows.joined

    def counted(parts: list[store.IndexRows]) -> store.IndexRows:
        joins.append(len(parts))
        return join(parts)

    monkeypatch.setattr(store.IndexRows, "joined", counted)
    monkeypatch.setattr(ingest_read, "SMALL_BYTES", 0)  # a batch per file, joined before it is written
    steps = [
        [SAMPLES / "otlp-json", SAMPLES / "langfuse"],  # known terms first
        FRESH,  # new terms among them; langfuse and otlp-json are duplicates (left out)
        [SAMPLES / "whowhen-handcrafted", SAMPLES / "mast"],
    ]
    (prepared, prepared_steps), (built, built_steps) = _both(tmp_path, monkeypatch, steps)
    assert max(joins) > 2
    assert len(prepared["search_segments"]) > 3 and len(prepared["search_postings"]) > 10_000
    for table in _INDEX:
        assert prepared[table] == built[table], table
    assert prepared_steps == built_steps
    with Database(tmp_path / "prepared.duckdb") as db:  # a rebuild from the steps table holds the same
        db.execute("DELETE FROM search_postings")
        db.execute("DELETE FROM search_docs")
        db.execute("DELETE FROM search_segments")
        store.catch_up(db)
        assert _by_step(db) == prepared_steps


def test_joined_and_subset_rows_are_those_built_in_one_go(db: Database) -> None:
    ingest(db, FRESH, workers=0)
    ids = [t for (t,) in db.rows("SELECT trace_id FROM traces ORDER BY trace_id")]
    texts = store._step_texts(store._stored_steps(db, ids, only_first=False))
    parts = [ids[0::3], ids[1::3], ids[2::3]]  # every part's traces interleave the others'
    rows = [store.index_rows(texts.filter(texts["trace_id"].is_in(part))) for part in parts]
    whole = store.index_rows(texts)
    assert _equal(store.IndexRows.joined(rows), whole)
    assert _equal(whole.subset(parts[1]), rows[1])
    assert _equal(pickle.loads(pickle.dumps(whole)), whole)  # Arrow buffers, no object per step
    assert all(isinstance(table, pa.Table) for table in (whole.docs, whole.postings))


def _equal(a: store.IndexRows, b: store.IndexRows) -> bool:
    return a.docs.equals(b.docs) and a.terms.equals(b.terms) and a.postings.equals(b.postings)


def _mast_array(path: Path, copies: int) -> Path:
    """The shipped MAST sample repeated with new ids (and new words, so that later runs add
    terms among the known ones)."""
    base = json.loads((SAMPLES / "mast" / "mad_full_sample.json").read_text())
    records = []
    for n in range(copies):
        record = json.loads(json.dumps(base[n % len(base)]))
        record["trace_id"] = n
        record["trace"]["trajectory"] += f"\nword{n} zz{n}q a{n:03d}"
        records.append(record)
    path.write_text(json.dumps(records))
    return path


@pytest.mark.slow
def test_reader_processes_prepare_the_index_the_writer_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []
    start = ingest_read.ReadPool.__init__

    def started(self: ingest_read.ReadPool, workers: int, limits: ingest_read.Limits) -> None:
        start(self, workers, limits)
        self._up.result(timeout=120)  # every unit goes to a reader process
        submit = self._pool.submit

        def counted(fn: Any, *args: Any) -> Any:
            sent.append(1)
            return submit(fn, *args)

        self._pool.submit = counted  # type: ignore[method-assign, assignment]

    monkeypatch.setattr(ingest_read.ReadPool, "__init__", started)
    monkeypatch.setattr(ingest_read, "UNIT_BYTES", 40_000)  # the array is cut into runs of records
    monkeypatch.setattr(ingest_read, "RUN_BYTES", 40_000)
    big = _mast_array(tmp_path / "mast.json", 60)
    steps = [[SAMPLES / "langfuse"], [big, SAMPLES / "whowhen", SAMPLES / "langfuse"]]
    (prepared, prepared_steps), (built, _) = _both(tmp_path, monkeypatch, steps, workers=2)
    assert len(sent) >= 6
    for table in _INDEX:
        assert prepared[table] == built[table], table
    _, alone_steps = _corpus(tmp_path / "alone.duckdb", steps, workers=0)
    assert prepared_steps == alone_steps  # batches cut otherwise: the same index, other ids
