"""Operations figures per agent, model, framework and day: tokens, cost, latency, error and
tool-failure counts over the steps, in one grouped scan (GROUPING SETS, no row loop)."""

from __future__ import annotations

import polars as pl

from tracefail.store.db import Database

# SQL for each dimension's value of a step (s: steps, t: traces). A step's model is its own, else
# the trace's llm; its day is its start, else its trace's ingest.
DIMENSIONS = {
    "agent": "coalesce(s.agent, s.role, '(none)')",
    "model": "coalesce(s.model, t.llm, '(none)')",
    "framework": "coalesce(t.framework, '(none)')",
    "day": "coalesce(s.start_ts, t.ingested_at)::DATE",  # a DATE groups faster than a string
}
_TOOL_RESULT = (
    "(lower(coalesce(s.role, '')) = 'tool' OR lower(s.kind) = 'tool' OR s.tool_call_id IS NOT NULL)"
)
_FAILED = "lower(coalesce(s.status, '')) = 'error'"


def models(db: Database) -> list[str]:
    """Every model name a step is counted under (to look up its price)."""
    return [
        r[0]
        for r in db.rows(f"SELECT DISTINCT {DIMENSIONS['model']} FROM steps s JOIN traces t USING (trace_id)")
    ]


def ops_table(db: Database, prices: dict[str, tuple[float, float]]) -> pl.DataFrame:
    """One row per (dimension, value): traces, steps, tokens with their n, cost (USD, from
    `prices` per exact model name, per 1M tokens) with its n, latency quantiles (ms) with their n,
    errors, tool results and tool failures."""
    names = sorted(prices)
    columns = ", ".join(f"{sql} AS {name}" for name, sql in DIMENSIONS.items())
    value = "CASE " + " ".join(f"WHEN grouping({d}) = 0 THEN {d}::VARCHAR" for d in DIMENSIONS) + " END"
    dimension = "CASE " + " ".join(f"WHEN grouping({d}) = 0 THEN '{d}'" for d in DIMENSIONS) + " END"
    return db.frame(
        f"""
        WITH price AS (SELECT unnest(?::VARCHAR[]) AS model, unnest(?::DOUBLE[]) AS p_in,
                              unnest(?::DOUBLE[]) AS p_out),
        x AS (
            SELECT {columns}, s.trace_id, s.tokens_in, s.tokens_out,
                   CASE WHEN s.end_ts >= s.start_ts
                        THEN epoch_ms(s.end_ts) - epoch_ms(s.start_ts) END AS latency_ms,
                   {_FAILED} AS failed, {_TOOL_RESULT} AS tool_result
            FROM steps s JOIN traces t USING (trace_id))
        SELECT {dimension} AS dimension, {value} AS value,
               count(DISTINCT trace_id) AS traces, count(*) AS steps,
               coalesce(sum(tokens_in), 0)::BIGINT AS tokens_in,
               coalesce(sum(tokens_out), 0)::BIGINT AS tokens_out,
               count(*) FILTER (WHERE tokens_in IS NOT NULL OR tokens_out IS NOT NULL) AS tokens_n,
               sum((coalesce(tokens_in, 0) * p_in + coalesce(tokens_out, 0) * p_out) / 1e6)
                   FILTER (WHERE p_in IS NOT NULL AND (tokens_in IS NOT NULL OR tokens_out IS NOT NULL))
                   AS cost_usd,
               count(*) FILTER (WHERE p_in IS NOT NULL AND (tokens_in IS NOT NULL OR tokens_out IS NOT NULL))
                   AS cost_n,
               quantile_cont(latency_ms, [0.5, 0.95]) AS latency_ms,
               count(latency_ms) AS latency_n,
               count(*) FILTER (WHERE failed) AS errors,
               count(*) FILTER (WHERE tool_result) AS tool_results,
               count(*) FILTER (WHERE tool_result AND failed) AS tool_failures
        FROM x LEFT JOIN price USING (model)
        GROUP BY GROUPING SETS ({", ".join(f"({d})" for d in DIMENSIONS)})
        ORDER BY dimension, value
        """,
        [names, [prices[n][0] for n in names], [prices[n][1] for n in names]],
    )
