"""Operations figures per agent, model, framework or day: tokens, latency, error and tool-failure
counts over the steps, one grouped scan per dimension (no row loop)."""

from __future__ import annotations

import polars as pl

from tracefail.store.db import Database

# SQL for each dimension's value of a step (s: steps, t: traces). A step's model is its own, else
# the trace's llm; its day is its start, else its trace's ingest.
DIMENSIONS = {
    "agent": "coalesce(s.agent, s.role, '(none)')",
    "model": "coalesce(s.model, t.llm, '(none)')",
    "framework": "coalesce(t.framework, '(none)')",
    "day": "strftime(coalesce(s.start_ts, t.ingested_at), '%Y-%m-%d')",
}
_TOOL_RESULT = (
    "(lower(coalesce(s.role, '')) = 'tool' OR lower(s.kind) = 'tool' OR s.tool_call_id IS NOT NULL)"
)
_FAILED = "lower(coalesce(s.status, '')) = 'error'"


def ops_counts(db: Database, dimension: str) -> pl.DataFrame:
    """Per value: traces, steps, latency quantiles (ms) with their n, errors, tool results and failures."""
    value = DIMENSIONS[dimension]
    return db.frame(
        f"""
        WITH x AS (
            SELECT {value} AS value, s.trace_id,
                   CASE WHEN s.end_ts >= s.start_ts
                        THEN epoch_ms(s.end_ts) - epoch_ms(s.start_ts) END AS latency_ms,
                   {_FAILED} AS failed, {_TOOL_RESULT} AS tool_result
            FROM steps s JOIN traces t USING (trace_id))
        SELECT value, count(DISTINCT trace_id) AS traces, count(*) AS steps,
               quantile_cont(latency_ms, 0.5) AS latency_p50_ms,
               quantile_cont(latency_ms, 0.95) AS latency_p95_ms,
               count(latency_ms) AS latency_n,
               count(*) FILTER (WHERE failed) AS errors,
               count(*) FILTER (WHERE tool_result) AS tool_results,
               count(*) FILTER (WHERE tool_result AND failed) AS tool_failures
        FROM x GROUP BY value ORDER BY value
        """
    )


def ops_tokens(db: Database, dimension: str) -> pl.DataFrame:
    """Per value and model: token sums and how many steps reported tokens (cost is per model)."""
    value = DIMENSIONS[dimension]
    return db.frame(
        f"""
        SELECT {value} AS value, coalesce(s.model, t.llm, '(none)') AS model,
               coalesce(sum(s.tokens_in), 0)::BIGINT AS tokens_in,
               coalesce(sum(s.tokens_out), 0)::BIGINT AS tokens_out,
               count(*) FILTER (WHERE s.tokens_in IS NOT NULL OR s.tokens_out IS NOT NULL) AS tokens_n
        FROM steps s JOIN traces t USING (trace_id)
        GROUP BY ALL ORDER BY value, model
        """
    )
