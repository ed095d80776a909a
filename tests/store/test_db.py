"""The DuckDB store: migrations on open, clear failures on files it cannot use, idempotent adds."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tracefail.model import Attribution, Label, Step, Trace
from tracefail.store import Database, StoreError
from tracefail.store import traces as trace_store
from tracefail.store.db import latest_version, migrations, now


def make_trace(native: str, text: str = "hello") -> Trace:
    trace = Trace(
        trace_id=f"test:{native}",
        source="test",
        native_id=native,
        steps=[Step(step_idx=0, agent="a", content=text), Step(step_idx=1, agent="b", content="ok")],
    )
    trace.labels.append(
        Label(
            trace_id=trace.trace_id,
            taxonomy_id="mast",
            taxonomy_version="v1",
            mode_id="1.1",
            present=True,
            source="dataset:test",
        )
    )
    trace.attributions.append(
        Attribution(trace_id=trace.trace_id, agent="a", step_idx=0, source="dataset:test")
    )
    return trace


def test_fresh_database_has_every_migration(tmp_path: Path) -> None:
    with Database(tmp_path / "new.duckdb") as db:
        assert db.schema_version() == latest_version()
        applied = [r[0] for r in db.rows("SELECT version FROM schema_version ORDER BY version")]
        assert applied == [number for number, _, _ in migrations()]
        assert trace_store.counts(db)["traces"] == 0


def test_old_version_database_migrates_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    number, name, sql = migrations()[0]
    con = duckdb.connect(str(path))  # a corpus written by the first release: only 001
    con.execute(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
        "applied_at TIMESTAMP NOT NULL)"
    )
    con.execute(sql)
    con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [number, name, now()])
    con.execute(
        "INSERT INTO traces (trace_id, source, outcome, n_steps, content_hash, ingested_at) "
        "VALUES ('old:1', 'old', 'unknown', 0, 'h', now())"
    )
    con.close()
    if latest_version() > number:
        with pytest.raises(StoreError, match="needs migrating"):
            Database(path, read_only=True)
    with Database(path) as db:
        assert db.schema_version() == latest_version()
        assert trace_store.trace_ids(db) == ["old:1"]


def test_newer_database_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "future.duckdb"
    with Database(path) as db:
        db.execute(
            "INSERT INTO schema_version VALUES (?, 'from_the_future.sql', now())", [latest_version() + 1]
        )
    with pytest.raises(StoreError, match=r"newer than this tracefail understands.*upgrade tracefail"):
        Database(path)


def test_non_duckdb_file_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match=r"notes\.duckdb: cannot open as a DuckDB database"):
        Database(path)
    assert path.read_text().startswith("these are my notes")  # left untouched


def test_foreign_duckdb_file_is_not_adopted(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE sales (id INTEGER)")
    con.close()
    with pytest.raises(StoreError, match="not a tracefail database"):
        Database(path)


def test_read_only_open_of_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such database"):
        Database(tmp_path / "missing.duckdb", read_only=True)


def test_add_traces_skips_duplicates_and_reports_conflicts(db: Database) -> None:
    first = trace_store.add_traces(db, [make_trace("1"), make_trace("2")], run_id=None)
    assert (first.traces, first.steps, first.labels, first.attributions) == (2, 4, 2, 2)
    again = trace_store.add_traces(db, [make_trace("1"), make_trace("2", "changed")], run_id=None)
    assert (again.traces, again.duplicates) == (0, 1)
    ((trace, reason),) = again.conflicts
    assert trace.trace_id == "test:2" and "different content" in reason
    assert trace_store.counts(db)["steps"] == 4


def test_get_trace_and_steps_round_trip(db: Database) -> None:
    trace_store.add_traces(db, [make_trace("1", "first [b]words[/b]")], run_id="r1")
    found = trace_store.get_trace(db, "test:1")
    assert found["trace"]["n_steps"] == 2
    assert found["labels"][0]["run_id"] == "r1" and found["attributions"][0]["agent"] == "a"
    steps = trace_store.get_steps(db, "test:1")
    assert [s.content for s in steps] == ["first [b]words[/b]", "ok"]
    assert trace_store.get_trace(db, "test:nope") is None


def test_read_only_database_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "ro.duckdb"
    Database(path).close()
    with Database(path, read_only=True) as db, pytest.raises(duckdb.Error, match="read-only"):
        db.execute("DELETE FROM traces")


def test_quarantine_rows_are_kept(db: Database) -> None:
    trace_store.quarantine(db, "f.json", "record 3", "not valid JSON", "x" * 5000, run_id=None)
    row = trace_store.quarantined(db).to_dicts()[0]
    assert (row["file"], row["record"], row["reason"], len(row["excerpt"])) == (
        "f.json",
        "record 3",
        "not valid JSON",
        2000,
    )


def test_memory_cap_applies_during_a_bulk_write_and_is_restored(tmp_path: Path) -> None:
    limit = "SELECT current_setting('memory_limit')"
    with Database(tmp_path / "cap.duckdb") as db:
        before = db.rows(limit)[0][0]
        with db.memory_capped(128 * 1024 * 1024):
            assert db.rows(limit)[0][0] == "128.0 MiB"
            trace_store.add_traces(db, [make_trace("1")], None)
        assert db.rows(limit)[0][0] == before
        db.execute("SET memory_limit = '64MB'")  # a user's lower limit is kept
        user = db.rows(limit)[0][0]
        with db.memory_capped(128 * 1024 * 1024):
            assert db.rows(limit)[0][0] == user
        assert db.rows(limit)[0][0] == user


def test_threads_capped_for_a_write_and_restored_after_it_even_on_error(db: Database) -> None:
    setting = "SELECT current_setting('threads')"
    db.execute("SET threads = 3")
    with pytest.raises(RuntimeError, match="boom"), db.threads_capped(1):
        assert db.rows(setting)[0][0] == 1
        raise RuntimeError("boom")
    assert db.rows(setting)[0][0] == 3
    db.execute("SET threads = 1")  # already at or below the cap: left alone
    with db.threads_capped(2):
        assert db.rows(setting)[0][0] == 1


def test_each_commit_checkpoints_into_the_file_and_the_threshold_is_restored(tmp_path: Path) -> None:
    setting = "SELECT current_setting('checkpoint_threshold')"
    path = tmp_path / "direct.duckdb"
    wal = path.with_name(path.name + ".wal")
    with Database(path) as db:
        db.execute("SET checkpoint_threshold = '32MB'")  # a user's own setting comes back as it was
        user = db.rows(setting)[0][0]
        big = make_trace("big").model_copy(update={"raw": "x" * 4_000_000})
        with db.checkpoint_each_commit(), db.bulk_write():
            trace_store.add_traces(db, [big], None)
        assert not wal.exists() or wal.stat().st_size == 0  # the rows went to the file, not the log
        assert path.stat().st_size > 1_000_000
        assert db.rows(setting)[0][0] == user
        with pytest.raises(RuntimeError, match="boom"), db.checkpoint_each_commit():
            raise RuntimeError("boom")
        assert db.rows(setting)[0][0] == user
        trace_store.add_traces(db, [make_trace("small")], None)  # under the threshold: logged
        assert wal.stat().st_size > 0


def test_bulk_write_commits_at_its_points_and_rolls_back_only_the_rest(db: Database) -> None:
    other = db.connection.cursor()  # a second connection sees committed rows only

    def committed() -> int:
        return other.execute("SELECT count(*) FROM traces").fetchone()[0]

    with pytest.raises(RuntimeError, match="disk on fire"), db.bulk_write() as commit:
        trace_store.add_traces(db, [make_trace("a")], "run")  # its transaction() joins the held one
        assert committed() == 0
        commit()
        assert committed() == 1
        trace_store.add_traces(db, [make_trace("b")], "run")
        raise RuntimeError("disk on fire")
    assert [r[0] for r in db.rows("SELECT trace_id FROM traces")] == ["test:a"]
    assert db.rows("SELECT count(*) FROM steps")[0][0] == 2
    with db.bulk_write():
        trace_store.add_traces(db, [make_trace("b")], "run")
    assert committed() == 2  # the end commits
    with db.transaction():  # and plain transactions work again afterwards
        trace_store.quarantine(db, "f", None, "why", None, None)
    assert other.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 1


def test_bulk_write_does_not_nest(db: Database) -> None:
    with pytest.raises(RuntimeError, match="does not nest"), db.bulk_write(), db.bulk_write():
        pass
    trace_store.add_traces(db, [make_trace("a")], "run")  # the outer one rolled back cleanly
    assert db.rows("SELECT count(*) FROM traces")[0][0] == 1


def test_stored_labels_keep_their_run_or_take_the_ingest_run(db: Database) -> None:
    trace = make_trace("runs")
    own = trace.labels[0].model_copy(
        update={"mode_id": "1.2", "run_id": "judge-1", "evidence_steps": [0, 1], "metadata": {"k": "é"}}
    )
    trace.labels.append(own)
    trace_store.add_traces(db, [trace], "ingest-1")
    rows = db.rows("SELECT mode_id, run_id, evidence_steps, metadata FROM labels ORDER BY mode_id")
    assert rows == [("1.1", "ingest-1", [], None), ("1.2", "judge-1", [0, 1], '{"k": "é"}')]
    assert db.rows("SELECT run_id FROM attributions") == [("ingest-1",)]
