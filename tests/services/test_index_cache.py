"""The browser's in-memory corpus index: it selects exactly what the SQL filters select, and it
is never used once the corpus file has changed (human labels, other writers)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tracefail.model import Label
from tracefail.services.browse import BrowseService
from tracefail.services.filter_language import SORT_COLUMNS, CorpusFilter, FeatureThreshold
from tracefail.services.search import matching_traces
from tracefail.services.views import CorpusPage
from tracefail.store import Database
from tracefail.store.traces import insert_labels

SPAN_TRACE = "demo:spans"  # built in conftest.py
INJECT_TRACE = "demo:inject"
FEATURE = "test.jumpy"  # written here, so these tests do not depend on extractor names


@pytest.fixture
def indexed_corpus(corpus_path: Path) -> Path:
    """The conftest corpus plus a feature with a NaN, a NULL and an aggregate row (step -1)."""
    rows = [(SPAN_TRACE, 0, 1.0), (SPAN_TRACE, 1, float("nan")), (INJECT_TRACE, 0, 3.0)]
    rows += [(INJECT_TRACE, 1, None), (INJECT_TRACE, -1, -2.0)]
    with Database(corpus_path) as db:
        for trace_id, step_idx, value in rows:
            db.execute(
                "INSERT INTO features (trace_id, step_idx, model, extractor_version, name, value) "
                "VALUES (?, ?, 'm', '1', ?, ?)",
                [trace_id, step_idx, FEATURE, value],
            )
    return corpus_path


def _both(path: Path) -> tuple[BrowseService, BrowseService]:
    sql = BrowseService(path, "tester", use_index=False)
    indexed = BrowseService(path, "tester")
    assert indexed.build_index() is not None and indexed.index_ready
    return sql, indexed


def _listing(service: BrowseService, f: CorpusFilter) -> tuple[int, list[dict]]:
    return service.count(f), service.page(f, 0, 1000).rows


FILTERS = [
    CorpusFilter(),
    CorpusFilter(framework="OpenAI Agents"),
    CorpusFilter(llm="gpt-4o"),
    CorpusFilter(benchmark="flights"),
    CorpusFilter(outcome="failure"),
    CorpusFilter(mode="1.1"),
    CorpusFilter(mode="1.3"),  # only absent labels: selects nothing
    CorpusFilter(category="FC3", category_modes=("3.2", "3.3")),
    CorpusFilter(source="dataset"),
    CorpusFilter(source="dataset:"),
    CorpusFilter(source="llm-judge:abc123"),
    CorpusFilter(source="human"),
    CorpusFilter(agreement="disagree"),
    CorpusFilter(agreement="agree"),
    CorpusFilter(mode="3.2", source="dataset"),
    CorpusFilter(features=(FeatureThreshold(FEATURE, ">", 2.0),)),  # NaN is above everything
    CorpusFilter(features=(FeatureThreshold(FEATURE, ">=", 3.0),)),
    CorpusFilter(features=(FeatureThreshold(FEATURE, "<", 0.0),)),  # the aggregate row counts
    CorpusFilter(features=(FeatureThreshold(FEATURE, "<=", 1.0),)),
    CorpusFilter(features=(FeatureThreshold(FEATURE, ">", 1e9), FeatureThreshold(FEATURE, "<", 2.0))),
    CorpusFilter(features=(FeatureThreshold("no_such_feature", ">", 0.0),)),
    CorpusFilter(text="wrong flight"),
    CorpusFilter(text="FLIGHT", outcome="failure"),
    CorpusFilter(text="no step says this"),
    CorpusFilter(trace_ids=("demo:spans", "demo:inject", "no such trace")),
    CorpusFilter(trace_ids=("demo:spans",), mode="3.2"),
]


@pytest.mark.slow  # ~5 s per filter under load, about two minutes in all
@pytest.mark.parametrize("f", FILTERS, ids=lambda f: repr(f)[13:80])
def test_index_selects_what_sql_selects(indexed_corpus: Path, f: CorpusFilter) -> None:
    sql, indexed = _both(indexed_corpus)
    assert _listing(indexed, f) == _listing(sql, f)
    for column in SORT_COLUMNS:
        for descending in (False, True):
            ordered = replace(f, sort=column, descending=descending)
            assert _listing(indexed, ordered) == _listing(sql, ordered), ordered
    assert indexed.index_ready  # every answer above came from the index


def test_pages_of_the_index_match_sql_pages(indexed_corpus: Path) -> None:
    sql, indexed = _both(indexed_corpus)
    f = CorpusFilter(sort="framework", descending=True)
    for offset in (0, 5, 20, 40):
        assert indexed.page(f, offset, 5) == sql.page(f, offset, 5)
    seen: list[dict] = []
    indexed.page_and_count(f, 7, lambda page: seen.extend(page.rows))
    assert seen == sql.page(f, 0, 7).rows


def test_filters_are_answered_without_opening_the_file(indexed_corpus: Path) -> None:
    _, indexed = _both(indexed_corpus)

    def no_reads(fn):  # type: ignore[no-untyped-def]
        raise AssertionError("the index should have answered")

    indexed.read = no_reads  # type: ignore[method-assign]
    assert indexed.count(CorpusFilter(agreement="disagree")) == 1
    assert indexed.page(CorpusFilter(mode="3.2"), 0, 10).rows[0]["trace_id"] == SPAN_TRACE


def test_a_human_label_written_here_shows_at_once(indexed_corpus: Path) -> None:
    _, indexed = _both(indexed_corpus)
    assert indexed.count(CorpusFilter(mode="2.2")) == 0
    receipt = indexed.label(INJECT_TRACE, "2.2", True, taxonomy=("mast", "1.0"))
    assert not indexed.index_ready  # our own write dropped it
    assert indexed.count(CorpusFilter(mode="2.2")) == 1
    assert indexed.count(CorpusFilter(source="human:tester")) == 1
    indexed.build_index()
    assert indexed.index_ready
    [row] = indexed.page(CorpusFilter(mode="2.2"), 0, 10).rows
    assert row["trace_id"] == INJECT_TRACE and row["modes"] == ["2.2"] and row["sources"] == ["human:tester"]
    indexed.label(INJECT_TRACE, "2.2", False, taxonomy=("mast", "1.0"))  # changed their mind
    assert indexed.count(CorpusFilter(mode="2.2")) == 0
    indexed.build_index()
    assert indexed.count(CorpusFilter(mode="2.2")) == 0
    assert indexed.undo(receipt)
    indexed.build_index()
    assert indexed.count(CorpusFilter(source="human:tester")) == 1  # the rejection is still there


def test_a_write_by_another_connection_retires_the_index(indexed_corpus: Path) -> None:
    """What `tracefail label`, an ingest or `graph --detect` do: write the file elsewhere."""
    sql, indexed = _both(indexed_corpus)
    f = CorpusFilter(mode="2.6", source="heuristic")
    assert indexed.count(f) == 0
    with Database(indexed_corpus) as db, db.transaction():
        insert_labels(
            db,
            [
                Label(
                    trace_id=SPAN_TRACE,
                    taxonomy_id="mast",
                    taxonomy_version="1.0",
                    mode_id="2.6",
                    present=True,
                    probability=1.0,
                    source="heuristic:loops",
                )
            ],
        )
    assert not indexed.index_ready and indexed.index_wanted
    assert _listing(indexed, f) == _listing(sql, f) and indexed.count(f) == 1
    indexed.build_index()
    assert indexed.index_ready and indexed.count(f) == 1
    assert indexed.page(f, 0, 1).rows[0]["sources"] == ["dataset:demo", "heuristic:loops", "llm-judge:abc123"]


def test_no_index_when_disabled(indexed_corpus: Path) -> None:
    service = BrowseService(indexed_corpus, "tester", use_index=False)
    assert not service.index_wanted
    service.build_index()
    assert not service.index_ready


@pytest.mark.parametrize(
    ("f", "some"),
    [
        (CorpusFilter(text="FLIGHT", sort="steps", descending=True), True),
        (CorpusFilter(text="flight", trace_ids=(SPAN_TRACE, INJECT_TRACE, "no such trace")), True),
        (CorpusFilter(text="flight", trace_ids=("no such trace",)), False),  # none left: none, not all
        (CorpusFilter(text="no step says this"), False),
    ],
    ids=["text", "text-and-ids", "ids-none-match", "no-match"],
)
def test_free_text_is_searched_once_per_first_page(
    indexed_corpus: Path, f: CorpusFilter, some: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first page and the count of a free-text filter come from one search of the full-text
    index, with SQL alone and with the in-memory index, and agree with `page` and `count`."""
    import tracefail.services.browse as browse
    import tracefail.services.index_cache as index_cache

    sql, indexed = _both(indexed_corpus)
    expected = _listing(sql, f)
    assert expected[0] == len(expected[1]) and (expected[0] > 0) == some
    if f.trace_ids:
        assert {r["trace_id"] for r in expected[1]} <= set(f.trace_ids)
    assert expected == _listing(BrowseService(indexed_corpus, "tester"), f)  # index not built yet
    searches: list[str] = []

    def counted(db: Database, query: str):  # type: ignore[no-untyped-def]
        searches.append(query)
        return matching_traces(db, query)

    monkeypatch.setattr(browse, "matching_traces", counted)
    monkeypatch.setattr(index_cache, "matching_traces", counted)
    for service in (sql, indexed):
        searches.clear()
        pages: list[CorpusPage] = []
        total = service.page_and_count(f, 1000, pages.append)
        assert (total, pages[0].rows) == expected and searches == [f.text]
    assert indexed.index_ready
