-- 006 (search-index): tracefail's own full-text index, written by every ingest batch in the same
-- transaction as its steps (see tracefail/store/search.py). It replaces the fts extension's
-- index, which could only be rebuilt from scratch. Existing corpora are indexed right after this
-- migration (Database._migrate calls search.catch_up).
DROP SCHEMA IF EXISTS fts_main_search_docs CASCADE;
DROP TABLE IF EXISTS search_docs;
DROP TABLE IF EXISTS search_index;
-- one row per step: its document id and its length in tokens (BM25's document length)
CREATE TABLE search_docs (
    doc_id   BIGINT  NOT NULL,
    trace_id VARCHAR NOT NULL,
    step_idx INTEGER NOT NULL,
    len      INTEGER NOT NULL
);
-- one row per (term, step): how often the term occurs there and at which token positions
CREATE TABLE search_postings (
    term      VARCHAR   NOT NULL,
    doc_id    BIGINT    NOT NULL,
    tf        INTEGER   NOT NULL,
    positions INTEGER[] NOT NULL
);
