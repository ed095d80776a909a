-- 004 (serve): the spans of a trace that `serve` grows, one row each, appended as they arrive,
-- so that a write of a long trace adds its new spans instead of rewriting its whole `raw`.
-- Such a trace's traces.raw is NULL; `trace_raw` gives every trace's raw text, the same text
-- a file ingest of the same spans stores in traces.raw (its OTLP/JSON document: per service,
-- in order of first arrival, the spans in arrival order).
CREATE TABLE trace_spans (
    trace_id  VARCHAR NOT NULL,
    seq       INTEGER NOT NULL,     -- arrival order within the trace (from 0)
    resource  VARCHAR NOT NULL,     -- the span's resource, as the document writes it
    span      VARCHAR NOT NULL      -- the span's OTLP/JSON text, as the document writes it
);

CREATE VIEW trace_raw AS
SELECT t.trace_id, coalesce(t.raw, s.raw) AS raw
FROM traces t
LEFT JOIN (
    SELECT trace_id, '{"resourceSpans":[' || string_agg(part, ',' ORDER BY first_seq) || ']}' AS raw
    FROM (
        SELECT trace_id, min(seq) AS first_seq,
               '{"resource":' || resource || ',"scopeSpans":[{"spans":['
                   || string_agg(span, ',' ORDER BY seq) || ']}]}' AS part
        FROM trace_spans
        GROUP BY trace_id, resource
    ) resources
    GROUP BY trace_id
) s USING (trace_id);
