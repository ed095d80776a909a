-- 009 (json-words): JSON text is split into words with its escapes decoded at any depth of
-- JSON-in-JSON (tracefail/store/search.py, `_json_words`): `\\n` in a tool call's arguments
-- had glued the `n` to the next word, and `\\u00e9` had never been `é`. Only a JSON text that
-- holds a run of backslashes or a `\u` can split differently, so only the traces with such a
-- text lose their documents here; Database._migrate then calls search.catch_up, which indexes
-- them again. Nothing of the steps changes.
CREATE TEMP TABLE search_json_words_redo AS
    SELECT trace_id FROM steps
    WHERE contains(CAST(tool_calls AS VARCHAR), '\\') OR contains(CAST(tool_calls AS VARCHAR), '\u')
       OR contains(CAST(metadata AS VARCHAR), '\\') OR contains(CAST(metadata AS VARCHAR), '\u')
    UNION
    SELECT trace_id FROM traces
    WHERE contains(CAST(metadata AS VARCHAR), '\\') OR contains(CAST(metadata AS VARCHAR), '\u');
DELETE FROM search_postings WHERE doc_id IN (
    SELECT doc_id FROM search_docs WHERE trace_id IN (SELECT trace_id FROM search_json_words_redo));
DELETE FROM search_docs WHERE trace_id IN (SELECT trace_id FROM search_json_words_redo);
DROP TABLE search_json_words_redo;
