-- 007 (search-index, integer terms): postings keyed by an integer term id from a terms
-- dictionary instead of the term's text, tokenised by polars (tracefail/store/search.py). The
-- index holds nothing that the steps do not: its old tables go and the corpus is indexed again
-- right after this migration (Database._migrate calls search.catch_up), so no data is lost and
-- query-time tokenising stays identical to what the index holds.
DROP TABLE IF EXISTS search_postings;
DROP TABLE IF EXISTS search_docs;
-- one row per distinct token of the corpus: ids are given in the order terms first appear
CREATE TABLE search_terms (
    term    VARCHAR NOT NULL,
    term_id INTEGER NOT NULL
);
-- one row per step: its document id and its length in tokens (BM25's document length)
CREATE TABLE search_docs (
    doc_id   BIGINT  NOT NULL,
    trace_id VARCHAR NOT NULL,
    step_idx INTEGER NOT NULL,
    len      INTEGER NOT NULL
);
-- one row per (term, step): how often the term occurs there and at which token positions
-- (0-based); each write appends its rows sorted by term id, so a query's terms touch few row
-- groups (DuckDB skips the others by their min/max)
CREATE TABLE search_postings (
    term_id   INTEGER   NOT NULL,
    doc_id    BIGINT    NOT NULL,
    tf        INTEGER   NOT NULL,
    positions INTEGER[] NOT NULL
);
