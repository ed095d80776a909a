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
    "session": "coalesce(t.session, '(none)')",
    "framework": "coalesce(t.framework, '(none)')",
    "day": "coalesce(s.start_ts, t.ingested_at)::DATE",  # a DATE groups faster than a string
}
# The dimensions drawn over days (a sparkline per value).
OVER_DAYS = ("agent", "model")
# The traces with their session: ingest keeps it as metadata `session_id` (OTel span attributes,
# Claude Code), Langfuse exports as `sessionId`. Read once per trace, not once per step.
_TRACES = """(SELECT trace_id, llm, framework, ingested_at,
                     coalesce(metadata->>'session_id', metadata->>'sessionId') AS session
              FROM traces) t"""
_TOOL_RESULT = (
    "(lower(coalesce(s.role, '')) = 'tool' OR lower(s.kind) = 'tool' OR s.tool_call_id IS NOT NULL)"
)
_FAILED = "lower(coalesce(s.status, '')) = 'error'"


def models(db: Database) -> list[str]:
    """Every model name a step can be counted under (to look up its price): each step's own and
    each trace's llm, read without the join (a superset of the names; 4x faster on 1M steps)."""
    return [
        r[0]
        for r in db.rows(
            "SELECT model FROM steps WHERE model IS NOT NULL "
            "UNION SELECT llm FROM traces WHERE llm IS NOT NULL"
        )
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
        x AS (  -- per step once, so that each grouping set only sums and counts
            SELECT {columns}, s.trace_id, s.tokens_in, s.tokens_out,
                   s.tokens_in IS NOT NULL OR s.tokens_out IS NOT NULL AS has_tokens,
                   -- in micro-USD as an exact decimal: a sum of doubles on several threads
                   -- could differ in its last bits from run to run
                   CASE WHEN s.tokens_in IS NOT NULL OR s.tokens_out IS NOT NULL
                        THEN coalesce(s.tokens_in, 0) * p.p_in::DECIMAL(18, 6)
                             + coalesce(s.tokens_out, 0) * p.p_out::DECIMAL(18, 6)
                   END AS cost,  -- NULL: unpriced model or no tokens
                   -- a step stamped once (end = start: formats with one time per event) has
                   -- no measured latency; counted as 0 ms it pulled p50 to 0 on the samples
                   CASE WHEN s.end_ts > s.start_ts
                        THEN epoch_ms(s.end_ts) - epoch_ms(s.start_ts) END AS latency_ms,
                   {_FAILED} AS failed, {_TOOL_RESULT} AS tool_result
            FROM steps s JOIN {_TRACES} USING (trace_id)
                 LEFT JOIN price p ON p.model = {DIMENSIONS["model"]})
        SELECT {dimension} AS dimension, {value} AS value,
               count(DISTINCT trace_id) AS traces, count(*) AS steps,
               coalesce(sum(tokens_in), 0)::BIGINT AS tokens_in,
               coalesce(sum(tokens_out), 0)::BIGINT AS tokens_out,
               count(*) FILTER (WHERE has_tokens) AS tokens_n,
               sum(cost)::DOUBLE / 1e6 AS cost_usd,
               count(cost) AS cost_n,
               quantile_cont(latency_ms, [0.5, 0.95]) AS latency_ms,
               count(latency_ms) AS latency_n,
               count(*) FILTER (WHERE failed) AS errors,
               count(*) FILTER (WHERE tool_result) AS tool_results,
               count(*) FILTER (WHERE tool_result AND failed) AS tool_failures
        FROM x
        GROUP BY GROUPING SETS ({", ".join(f"({d})" for d in DIMENSIONS)})
        ORDER BY dimension, value
        """,
        [names, [prices[n][0] for n in names], [prices[n][1] for n in names]],
    )


def ops_by_day(db: Database) -> pl.DataFrame:
    """One row per (dimension in OVER_DAYS, value, day): steps, errors and tokens, for the
    figures over time."""
    dimension = "CASE " + " ".join(f"WHEN grouping({d}) = 0 THEN '{d}'" for d in OVER_DAYS) + " END"
    value = "CASE " + " ".join(f"WHEN grouping({d}) = 0 THEN {d}" for d in OVER_DAYS) + " END"
    columns = ", ".join(f"{DIMENSIONS[d]} AS {d}" for d in (*OVER_DAYS, "day"))
    return db.frame(
        f"""
        WITH x AS (SELECT {columns}, s.tokens_in, s.tokens_out, {_FAILED} AS failed
                   FROM steps s JOIN {_TRACES} USING (trace_id))
        SELECT {dimension} AS dimension, {value} AS value, day, count(*) AS steps,
               count(*) FILTER (WHERE failed) AS errors,
               (coalesce(sum(tokens_in), 0) + coalesce(sum(tokens_out), 0))::BIGINT AS tokens
        FROM x
        GROUP BY GROUPING SETS ({", ".join(f"({d}, day)" for d in OVER_DAYS)})
        ORDER BY dimension, value, day
        """
    )
