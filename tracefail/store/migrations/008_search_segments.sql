-- 008 (search-index, merged postings): the postings of several writes are merged into one run
-- sorted by term id (tracefail/store/search.py, `_merge_segments`), so a common word's rows lie
-- in a few row groups instead of one per write. `search_segments` lists the runs: a range of
-- document ids whose postings are sorted by (term id, document). A 007 index is merged into one
-- run here, once; no row is added or lost.
CREATE TABLE search_segments (
    first_doc BIGINT NOT NULL,
    last_doc  BIGINT NOT NULL,
    n_rows    BIGINT NOT NULL
);
CREATE TABLE search_postings_merged (
    term_id   INTEGER   NOT NULL,
    doc_id    BIGINT    NOT NULL,
    tf        INTEGER   NOT NULL,
    positions INTEGER[] NOT NULL
);
INSERT INTO search_postings_merged SELECT term_id, doc_id, tf, positions FROM search_postings ORDER BY term_id, doc_id;
DROP TABLE search_postings;
ALTER TABLE search_postings_merged RENAME TO search_postings;
INSERT INTO search_segments
    SELECT min(doc_id), max(doc_id), (SELECT count(*) FROM search_postings) FROM search_docs HAVING count(*) > 0;
