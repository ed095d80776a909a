-- 007 (search-index, integer terms): postings keyed by an integer term id from a terms
-- dictionary instead of the term's text, tokenised by polars (tracefail/store/search.py). The
-- index holds nothing that the steps do not: its old tables go and the corpus is indexed again
-- right after this migration (Database._migrate calls search.catch_up), so no data is lost and
-- query-time tokenising stays identical to what the index holds.
DROP TABLE IF EXISTS search_postings;
DELETE FROM search_docs;  -- same columns as in 006 (BM25's document lengths); its rows are re-made
-- one row per distinct token of the corpus: a write's new terms take the next ids, in term order
CREATE TABLE search_terms (
    term    VARCHAR NOT NULL,
    term_id INTEGER NOT NULL
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
