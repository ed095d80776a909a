"""The TUI's free-text filter and `tracefail search` are one service: for the same words the
corpus filter (from its in-memory index, and with SQL only, with and without a connection to
look the words' term ids up first) selects exactly the traces holding
the steps `search` finds, on the shipped samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracefail.services import search
from tracefail.services.browse import BrowseService
from tracefail.services.filter_language import corpus_filter
from tracefail.store import Database
from tracefail.store.selection import selection_sql

QUERIES = ["error", "verif*", '"the answer"', "python code", "umbrella", "出错", '"reasons about the task"']


def _filtered(service: BrowseService, words: str) -> set[str]:
    f = service.read(lambda db: corpus_filter(db, words))
    total = service.count(f)
    return {row["trace_id"] for row in service.page(f, 0, total + 1).rows}


@pytest.mark.parametrize("query", QUERIES)
def test_filter_selects_the_traces_search_finds(samples_corpus: Path, query: str) -> None:
    with Database(samples_corpus, read_only=True) as db:
        result = search.search(db, query, limit=100_000)
    assert result.indexed
    found = {hit.trace_id for hit in result.hits}
    assert len(found) == result.n_traces
    indexed = BrowseService(samples_corpus, "t")
    assert indexed.build_index() is not None
    sql_only = BrowseService(samples_corpus, "t", use_index=False)
    assert _filtered(indexed, query) == found
    assert _filtered(sql_only, query) == found
    with Database(
        samples_corpus, read_only=True
    ) as db:  # SQL built without a connection: term ids as subqueries
        sql, params = selection_sql(corpus_filter(db, query))
        assert {row[0] for row in db.rows(sql, params)} == found
