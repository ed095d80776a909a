"""The full-text index kept by every write: built batch by batch it equals one built in one go,
re-ingested traces leave no stale postings, and hostile queries end in a clear error or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SAMPLES
from tracefail.model import Outcome, Step, ToolCall, Trace
from tracefail.services import search as service
from tracefail.services.ingest import ingest
from tracefail.store import Database
from tracefail.store import search as store
from tracefail.store.db import latest_version, migrations
from tracefail.store.traces import GrownTrace, add_traces, grow_traces, replace_traces

QUERIES = ["error", "verif*", '"the answer"', "python code", "agent tool*", '"the answer" error']


def _postings(db: Database) -> set[tuple[object, ...]]:
    """The index by (trace, step), not by document id (ids depend on the order of writes)."""
    rows = db.rows(
        "SELECT d.trace_id, d.step_idx, d.len, t.term, p.tf, p.positions FROM search_postings p "
        "JOIN search_docs d USING (doc_id) JOIN search_terms t USING (term_id)"
    )
    return {(t, s, n, term, tf, tuple(pos)) for t, s, n, term, tf, pos in rows}


def _ranked(db: Database, query: str) -> list[tuple[str, int, float]]:
    result = service.search(db, query, limit=100_000)
    assert result.indexed and result.index_built_s is None
    return [(h.trace_id, h.step_idx, h.score) for h in result.hits]


def test_incremental_index_equals_one_built_from_scratch(db: Database) -> None:
    folders = [SAMPLES / "whowhen", SAMPLES / "mast", SAMPLES / "otel", SAMPLES / "openai-chat"]
    for folder in folders:  # one ingest (and its index batches) per folder
        ingest(db, [folder])
    incremental, ranked = _postings(db), {q: _ranked(db, q) for q in QUERIES}
    assert incremental and all(ranked.values())
    db.execute("DELETE FROM search_postings")
    db.execute("DELETE FROM search_docs")
    assert not store.index_state(db).current
    store.catch_up(db)
    assert _postings(db) == incremental
    assert {q: _ranked(db, q) for q in QUERIES} == ranked


def _trace(content: str, *more: str) -> Trace:
    steps = [Step(step_idx=i, agent="a", content=text) for i, text in enumerate((content, *more))]
    return Trace(trace_id="demo:t", source="demo", outcome=Outcome.FAILURE, steps=steps)


def test_replaced_and_grown_traces_leave_no_stale_postings(db: Database) -> None:
    add_traces(db, [_trace("the zebra crossed", "a walrus")], run_id=None)
    assert service.search(db, "zebra").n_steps == 1
    replace_traces(db, [_trace("the okapi crossed")], run_id=None)
    assert service.search(db, "zebra").n_steps == 0
    assert service.search(db, "walrus").n_steps == 0  # the step that went
    assert service.search(db, "okapi").n_steps == 1
    grown = _trace("the okapi crossed", "then a narwhal")
    grow_traces(db, [_grown(grown, 1, grown.steps[1:])], run_id=None)
    assert service.search(db, "narwhal").n_steps == 1
    # a live write that changes step 1 and adds step 2 re-indexes those (and step 0) only, and
    # the index is what one built from scratch holds
    regrown = _trace("the okapi crossed", "then a beluga", "and a dugong")
    grow_traces(db, [_grown(regrown, 2, regrown.steps[1:])], run_id=None)
    assert service.search(db, "narwhal").n_steps == 0
    assert service.search(db, "beluga dugong okapi").n_steps == 0  # no one step has all three
    assert [service.search(db, w).n_steps for w in ("okapi", "beluga", "dugong")] == [1, 1, 1]
    incremental = _postings(db)
    db.execute("DELETE FROM search_postings")
    db.execute("DELETE FROM search_docs")
    store.catch_up(db)
    assert _postings(db) == incremental
    orphans = db.rows(
        "SELECT count(*) FROM search_postings WHERE doc_id NOT IN (SELECT doc_id FROM search_docs)"
    )
    assert orphans == [(0,)]
    assert store.index_state(db) == store.IndexState(3, 3)


def _grown(trace: Trace, stored_steps: int, steps: list[Step]) -> GrownTrace:
    return GrownTrace(
        header=trace,
        digest=f"hash-{len(trace.steps)}",
        n_steps=len(trace.steps),
        steps=steps,
        stored_steps=stored_steps,
        spans=[],
    )


@pytest.fixture
def texts_db(db: Database) -> Database:
    texts = [
        "Call tool_calls.get_weather(city='Zürich') -- it failed: HTTP 503!",
        "The answer is 42. the answer, again; answer the question",
        "Ошибка: агент не проверил результат; naïve café",
        "代理在调用工具时出错了",
        "e-mail me at bob@example.com; C++ and C# differ",
    ]
    add_traces(db, [_trace(*texts)], run_id=None)
    return db


@pytest.mark.parametrize(
    ("query", "steps"),
    [
        ("zurich", [0]),  # accents folded
        ("ZÜRICH", [0]),
        ("tool_calls", [0]),  # punctuation inside a word: the phrase of its parts
        ('"get weather"', [0]),
        ("get_weath*", []),  # a prefix after punctuation is a phrase "get weath": no whole word
        ("weath*", [0]),
        ("503", [0]),
        ('"the answer"', [1]),
        ('"answer the question"', [1]),
        ('"question the"', []),
        ("the", [1]),  # no stop words: "the" is a word like any other
        ("naive cafe", [2]),
        ("проверил", [2]),
        ("出错", [3]),
        ("错出", []),
        ("bob@example.com", [4]),
        ("c++", [4]),
    ],
)
def test_query_cases(texts_db: Database, query: str, steps: list[int]) -> None:
    result = service.search(texts_db, query)
    assert sorted(h.step_idx for h in result.hits) == steps
    assert list(service.matching_traces(texts_db, query)) == (["demo:t"] if steps else [])


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("word " * 400, "at most 1000"),
        ("a " * 40, "at most 32"),
        ('"', "no words"),
        ("*** ,,, ---", "no words"),
        ("", "no words"),
        ("%_\\", "no words"),
    ],
)
def test_hostile_queries_are_clear_errors(texts_db: Database, query: str, error: str) -> None:
    with pytest.raises(service.SearchQueryError, match=error):
        service.search(texts_db, query)
    with pytest.raises(service.SearchQueryError, match=error):
        service.matching_traces(texts_db, query)


@pytest.mark.parametrize(
    "query", ['"the answer', 'answer "', "' OR 1=1 --", "'; DROP TABLE steps; --", "x" * 999]
)
def test_hostile_queries_answer_without_a_crash(texts_db: Database, query: str) -> None:
    result = service.search(texts_db, query)
    scan = store.search_steps(texts_db, query, indexed=False, limit=100)[0]
    assert sorted(h.step_idx for h in result.hits) == sorted(scan["step_idx"].to_list())
    assert texts_db.rows("SELECT count(*) FROM steps") == [(5,)]


def test_a_corpus_with_the_006_index_is_reindexed_by_migration_007(tmp_path: Path) -> None:
    """Migration 007 drops 006's word-keyed tables and indexes the steps again on open: the
    steps stay, nothing of the old index survives, and queries answer as on a fresh corpus."""
    path = tmp_path / "old.duckdb"
    with Database(path) as db:
        ingest(db, [SAMPLES / "whowhen", SAMPLES / "mast"])
        ranked = {q: _ranked(db, q) for q in QUERIES}
        steps = db.rows("SELECT count(*) FROM steps")
        assert sum(map(len, ranked.values())) > 10
        sql_006 = next(sql for number, _, sql in migrations() if number == 6)
        db.execute("DROP TABLE search_terms")
        db.execute("DROP TABLE search_postings")
        db.execute("DROP TABLE search_segments")
        db.execute(sql_006)  # 006's tables, as an older tracefail left them
        db.execute("INSERT INTO search_docs VALUES (1, 'x:stale', 0, 1)")
        db.execute("INSERT INTO search_postings VALUES ('zyzzyva', 1, 1, [1])")
        db.execute("DELETE FROM schema_version WHERE version >= 7")
        assert db.schema_version() == 6
    with Database(path) as db:
        assert db.schema_version() == latest_version()
        assert db.rows("SELECT count(*) FROM steps") == steps
        assert store.index_state(db).current
        assert service.search(db, "zyzzyva").n_steps == 0
        assert {q: _ranked(db, q) for q in QUERIES} == ranked


def test_the_text_indexed_from_a_write_is_what_the_steps_table_gives(db: Database) -> None:
    """Writes tokenise the text they hold (Arrow rows, trace metadata as JSON text) and catch-up
    reads it back: both give, step by step, the searchable text `STEP_TEXT` computes in SQL
    (JSON escapes made spaces at any depth, step 0 with its trace's metadata, empty JSON left out)."""
    ingest(db, [SAMPLES / "whowhen", SAMPLES / "mast", SAMPLES / "otel", SAMPLES / "openai-chat"])
    odd = Trace(
        trace_id="demo:json",
        source="demo",
        outcome=Outcome.FAILURE,
        metadata={"note": 'line\none "quoted"\\tab', "é": ["Zürich", "\u00e9"]},
        steps=[
            Step(
                step_idx=0,
                agent="a",
                content="",
                tool_calls=[
                    ToolCall(name="get_weather", arguments='{"city": "Zürich\\nnow", "path": "a\\\\b\\/c"}')
                ],
                metadata={"x": 'say "hi"\r\n'},
            ),
            Step(step_idx=1, agent="a", content="plain", metadata={}),
        ],
    )
    add_traces(db, [odd], run_id=None)
    sql = {(t, s): c for t, s, c in db.rows(f"SELECT trace_id, step_idx, content FROM ({store.STEP_TEXT})")}
    ids = sorted({t for t, _ in sql})
    held = store._step_texts(store._stored_steps(db, ids, only_first=False))
    assert {(t, s): c for t, s, c in held.iter_rows()} == sql
    # `\\t` (a backslash, then "tab") counts as an escape: JSON-in-JSON stores a tab so
    assert "line one  quoted  ab" in sql[("demo:json", 0)] and "say  hi" in sql[("demo:json", 0)]
    incremental = _postings(db)
    db.execute("DELETE FROM search_postings")
    db.execute("DELETE FROM search_docs")
    store.catch_up(db)
    assert _postings(db) == incremental


def _runs_sorted(db: Database) -> bool:
    """Every run in `search_segments` holds its postings in (term id, document) order."""
    unsorted = db.rows(
        "SELECT count(*) FROM (SELECT s.first_doc, p.term_id, p.doc_id, lag((p.term_id, p.doc_id)) "
        "OVER (PARTITION BY s.first_doc ORDER BY p.rowid) AS before FROM search_postings p "
        "JOIN search_segments s ON p.doc_id BETWEEN s.first_doc AND s.last_doc) "
        "WHERE (term_id, doc_id) < before"
    )
    return unsorted == [(0,)]


def test_a_007_index_is_merged_into_one_sorted_run_by_migration_008(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with Database(path) as db:
        ingest(db, [SAMPLES / "whowhen", SAMPLES / "mast", SAMPLES / "otel"])
        postings, ranked = _postings(db), {q: _ranked(db, q) for q in QUERIES}
        db.execute("DROP TABLE search_segments")  # as 007 left it: one run per write
        db.execute("DELETE FROM schema_version WHERE version >= 8")
        assert db.schema_version() == 7
    with Database(path) as db:
        assert db.schema_version() == latest_version()
        assert _postings(db) == postings
        assert {q: _ranked(db, q) for q in QUERIES} == ranked
        # one run from 008, and one of the traces 009 indexed again (their JSON holds escapes)
        assert db.rows("SELECT count(*) FROM search_segments") == [(2,)]
        assert _runs_sorted(db)


def test_runs_of_postings_are_merged_as_writes_pile_up(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each write adds a run; `MERGE_FANOUT` runs of one size tier become one sorted run, and
    the index stays what one built from scratch holds."""
    monkeypatch.setattr(store, "MERGE_FANOUT", 2)
    words = ["zebra okapi", "okapi walrus", "walrus narwhal zebra", "beluga", "the okapi", "zebra"]
    for i, text in enumerate(words * 3):
        trace = _trace(text, f"step {i} {text}")
        add_traces(db, [trace.model_copy(update={"trace_id": f"demo:{i}"})], run_id=None)
    runs = db.rows("SELECT count(*) FROM search_segments")[0][0]
    assert runs < 9  # 18 writes (one run each), merged two by two within a size tier
    assert _runs_sorted(db)
    assert [service.search(db, w).n_steps for w in ("zebra", "okapi", '"the okapi"')] == [18, 18, 6]
    incremental = _postings(db)
    db.execute("DELETE FROM search_postings")
    db.execute("DELETE FROM search_docs")
    store.catch_up(db)
    assert _postings(db) == incremental
