"""Counting queries behind `tracefail stats`, `slices`, `audit`, `graph` and `report`.

Every statistic starts from one materialized selection: the latest label per (trace, source,
mode) from the chosen sources, with legacy mode codes already mapped onto the taxonomy's own
ids (`stats_labels`, whose `decides` column marks the labels the verdicts count), and one verdict
per (trace, mode) (`stats_verdicts`): under the "trusted" policy the most trusted source kind
with a verdict decides (human, dataset, llm-judge, ranker, heuristic; the latest label among that kind), under
"pooled" some selected source says present. Both are TEMP tables, so a read-only corpus works
and every later query counts over the same rows. Heavy counting stays in DuckDB; callers
shape the small results.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from tracefail.model import SourceKind
from tracefail.store.db import Database
from tracefail.store.selection import VALUE_COLUMNS, CorpusFilter, llm_name, selection_sql, value_key
from tracefail.store.text_list import IN_TEXTS, texts

GROUP_COLUMNS = {
    "framework": "t.framework",
    "llm": llm_name("t.llm"),  # one model, however its provider spelled it
    "benchmark": "t.benchmark",
    "outcome": "t.outcome",
    "trace_source": "t.source",
}


def label_codes(db: Database, taxonomy_id: str) -> pl.DataFrame:
    """Distinct (taxonomy_version, code, mode_name) of the stored labels of one taxonomy."""
    return db.frame(
        "SELECT DISTINCT taxonomy_version, mode_id AS code, "
        "coalesce(metadata->>'mode_name', '') AS mode_name FROM labels WHERE taxonomy_id = ?",
        [taxonomy_id],
    )


# trust order of source kinds (the part of a source name before ':'); lower decides first
def trust_rank(column: str) -> str:
    """SQL ranking a source name column by its kind's trust (SourceKind order); lower first."""
    return (
        f"CASE split_part({column}, ':', 1) "
        + " ".join(f"WHEN '{kind.value}' THEN {rank}" for rank, kind in enumerate(SourceKind))
        + f" ELSE {len(SourceKind)} END"
    )


TRUST_RANK = trust_rank("l.source")


def select_labels(
    db: Database,
    taxonomy_id: str,
    code_map: pl.DataFrame,
    modes: pl.DataFrame,
    source_patterns: Sequence[str],
    within: CorpusFilter | None = None,
    trusted: bool = True,
) -> None:
    """(Re)build the TEMP selection tables for one taxonomy and a set of source LIKE patterns,
    over the traces `within` selects (all when None).

    `code_map`: taxonomy_version, code, mode_name -> mode_id; `modes`: mode_id, name, category,
    stage. Labels without a usable answer (present NULL) are not part of any count. `trusted`:
    one deciding label per (trace, mode) by TRUST_RANK, else every selected label decides.
    """
    stats_map = code_map.to_arrow()  # noqa: F841 - scanned by name below
    stats_modes = modes.to_arrow()  # noqa: F841
    where = " OR ".join("l.source LIKE ?" for _ in source_patterns) or "TRUE"
    traces, trace_params = (
        selection_sql(within) if within is not None else ("SELECT trace_id FROM traces", [])
    )
    con = db.connection
    con.execute("CREATE OR REPLACE TEMP TABLE stats_modes AS SELECT * FROM stats_modes")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE stats_labels AS
        SELECT l.label_id, l.trace_id, l.source, m.mode_id, l.present, l.evidence_steps, l.agent,
               l.created_at, {TRUST_RANK} AS rank
        FROM labels l
        JOIN stats_map m ON l.taxonomy_version = m.taxonomy_version AND l.mode_id = m.code
             AND coalesce(l.metadata->>'mode_name', '') = m.mode_name
        WHERE l.taxonomy_id = ? AND l.present IS NOT NULL AND ({where}) AND l.trace_id IN ({traces})
        QUALIFY row_number() OVER (PARTITION BY l.trace_id, l.source, m.mode_id
                                   ORDER BY l.created_at DESC, l.label_id DESC) = 1
        """,
        [taxonomy_id, *source_patterns, *trace_params],
    )
    decides = (
        "row_number() OVER (PARTITION BY trace_id, mode_id ORDER BY rank, created_at DESC, label_id DESC) = 1"
        if trusted
        else "TRUE"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE stats_labels AS SELECT *, {decides} AS decides FROM stats_labels"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE stats_verdicts AS SELECT trace_id, mode_id, "
        "bool_or(present) AS present FROM stats_labels WHERE decides GROUP BY trace_id, mode_id"
    )


def _group(by: str | None) -> str:
    return GROUP_COLUMNS[by] if by else "'all'"


def mode_counts(db: Database, by: str | None) -> pl.DataFrame:
    """group, mode_id, labelled traces, affected traces. `by="agent"` groups affected traces by
    the agent the label blames; its denominator is every trace labelled for the mode."""
    if by == "agent":
        return db.frame(
            """
            WITH n AS (SELECT mode_id, count(*) AS labelled FROM stats_verdicts GROUP BY mode_id)
            SELECT coalesce(l.agent, '(none)') AS "group", l.mode_id, any_value(n.labelled) AS labelled,
                   count(DISTINCT l.trace_id) AS affected
            FROM stats_labels l JOIN n USING (mode_id)
            WHERE l.present AND l.decides GROUP BY ALL ORDER BY 1, 2
            """
        )
    return db.frame(
        f"""
        SELECT coalesce({_group(by)}::VARCHAR, '(none)') AS "group", v.mode_id,
               count(*) AS labelled, count(*) FILTER (WHERE v.present) AS affected
        FROM stats_verdicts v JOIN traces t USING (trace_id)
        GROUP BY ALL ORDER BY 1, 2
        """
    )


def category_counts(db: Database, by: str | None) -> pl.DataFrame:
    """group, category, traces labelled for any mode of it, traces with some mode of it present."""
    group = "coalesce(l.agent, '(none)')" if by == "agent" else f"coalesce({_group(by)}::VARCHAR, '(none)')"
    if by == "agent":
        return db.frame(
            f"""
            WITH n AS (SELECT m.category, count(DISTINCT v.trace_id) AS labelled
                       FROM stats_verdicts v JOIN stats_modes m USING (mode_id) GROUP BY 1)
            SELECT {group} AS "group", m.category, any_value(n.labelled) AS labelled,
                   count(DISTINCT l.trace_id) AS affected
            FROM stats_labels l JOIN stats_modes m USING (mode_id) JOIN n USING (category)
            WHERE l.present AND l.decides GROUP BY ALL ORDER BY 1, 2
            """
        )
    return db.frame(
        f"""
        SELECT {group} AS "group", m.category, count(DISTINCT v.trace_id) AS labelled,
               count(DISTINCT v.trace_id) FILTER (WHERE v.present) AS affected
        FROM stats_verdicts v JOIN stats_modes m USING (mode_id) JOIN traces t USING (trace_id)
        GROUP BY ALL ORDER BY 1, 2
        """
    )


def pair_counts(db: Database) -> pl.DataFrame:
    """For every pair of modes a < b over traces labelled for both: n, n_a, n_b, n_ab."""
    return db.frame(
        """
        SELECT a.mode_id AS mode_a, b.mode_id AS mode_b, count(*) AS n,
               count(*) FILTER (WHERE a.present) AS n_a, count(*) FILTER (WHERE b.present) AS n_b,
               count(*) FILTER (WHERE a.present AND b.present) AS n_ab
        FROM stats_verdicts a JOIN stats_verdicts b ON a.trace_id = b.trace_id AND a.mode_id < b.mode_id
        GROUP BY ALL ORDER BY 1, 2
        """
    )


def evidence_positions(db: Database, bins: int) -> pl.DataFrame:
    """mode_id, bin, evidence steps: where present labels point, as a share of the trace length.

    The relative position of step s in a trace of n steps is s / (n - 1) (0 first, 1 last)."""
    return db.frame(
        f"""
        SELECT l.mode_id,
               least({bins - 1}, floor(e.step / greatest(t.n_steps - 1, 1) * {bins}))::INT AS bin,
               count(*) AS steps, sum(e.step / greatest(t.n_steps - 1, 1)) AS rel_sum
        FROM stats_labels l JOIN traces t USING (trace_id),
             LATERAL (SELECT unnest(l.evidence_steps) AS step) e
        WHERE l.present AND l.decides AND e.step BETWEEN 0 AND t.n_steps - 1
        GROUP BY ALL ORDER BY 1, 2
        """
    )


def attribution_blame(db: Database, source_patterns: Sequence[str], by: str | None) -> pl.DataFrame:
    """group, agent, traces blamed, attributions, sources (the kinds that decided): who the
    root-cause attributions point at. One attribution per trace decides, the most trusted
    source's newest, and it blames the speaker of its step (where the step names one)."""
    where = " OR ".join("a.source LIKE ?" for _ in source_patterns) or "TRUE"
    return db.frame(
        f"""
        WITH chosen AS (
            SELECT a.trace_id, coalesce(s.agent, a.agent) AS agent, split_part(a.source, ':', 1) AS kind
            FROM attributions a LEFT JOIN steps s ON s.trace_id = a.trace_id AND s.step_idx = a.step_idx
            WHERE ({where}) AND (a.agent IS NOT NULL OR a.step_idx IS NOT NULL)
            QUALIFY row_number() OVER (PARTITION BY a.trace_id
                ORDER BY {trust_rank("a.source")}, a.created_at DESC, a.attribution_id DESC) = 1
        )
        SELECT coalesce({_group(by) if by != "agent" else "'all'"}::VARCHAR, '(none)') AS "group",
               coalesce(c.agent, '(none)') AS agent,
               count(DISTINCT c.trace_id) AS traces, count(*) AS attributions,
               string_agg(DISTINCT c.kind, ',' ORDER BY c.kind) AS sources
        FROM chosen c JOIN traces t USING (trace_id)
        GROUP BY ALL ORDER BY 1, 3 DESC, 2
        """,
        list(source_patterns),
    )


def label_blame(db: Database) -> pl.DataFrame:
    """agent, mode_id, traces: which agent present labels name, per mode."""
    return db.frame(
        """
        SELECT agent, mode_id, count(DISTINCT trace_id) AS traces
        FROM stats_labels WHERE present AND decides AND agent IS NOT NULL GROUP BY ALL ORDER BY 3 DESC, 1, 2
        """
    )


def failure_rates(db: Database, column: str) -> pl.DataFrame:
    """Per value of a trace column: traces labelled, traces with any mode present, and traces
    whose recorded outcome is failure (among the labelled ones)."""
    return db.frame(
        f"""
        SELECT coalesce({GROUP_COLUMNS[column]}::VARCHAR, '(none)') AS "group",
               count(*) AS labelled, count(*) FILTER (WHERE v.failing) AS failing,
               count(*) FILTER (WHERE t.outcome = 'failure') AS outcome_failure
        FROM (SELECT trace_id, bool_or(present) AS failing FROM stats_verdicts GROUP BY 1) v
        JOIN traces t USING (trace_id)
        GROUP BY ALL ORDER BY 1
        """
    )


def source_usage(db: Database) -> pl.DataFrame:
    """Per selected source: labels selected, labels counted (deciding a verdict), traces and
    present verdicts it decided: what each source contributed to the numbers."""
    return db.frame(
        """
        SELECT source, split_part(source, ':', 1) AS kind, count(*) AS labels,
               count(*) FILTER (WHERE decides) AS counted,
               count(DISTINCT trace_id) FILTER (WHERE decides) AS traces,
               count(*) FILTER (WHERE decides AND present) AS present_counted
        FROM stats_labels GROUP BY ALL ORDER BY min(rank), source
        """
    )


def judge_reference_counts(db: Database) -> pl.DataFrame:
    """source, n11, n10, n01, n00 per judge source against the reference verdict (the most
    trusted human or dataset label) on the (trace, mode) pairs both labelled, pooled over modes."""
    return db.frame(
        """
        WITH ref AS (
            SELECT trace_id, mode_id, present FROM stats_labels WHERE rank <= 1
            QUALIFY row_number() OVER (PARTITION BY trace_id, mode_id
                                       ORDER BY rank, created_at DESC, label_id DESC) = 1)
        SELECT j.source,
               count(r.present) FILTER (WHERE j.present AND r.present) AS n11,
               count(r.present) FILTER (WHERE j.present AND NOT r.present) AS n10,
               count(r.present) FILTER (WHERE NOT j.present AND r.present) AS n01,
               count(r.present) FILTER (WHERE NOT j.present AND NOT r.present) AS n00
        FROM stats_labels j LEFT JOIN ref r USING (trace_id, mode_id)
        WHERE j.source LIKE 'llm-judge:%' GROUP BY 1 ORDER BY 1
        """
    )


def agreement_counts(db: Database, level: str) -> pl.DataFrame:
    """rater_a, rater_b, mode_id and the 2x2 table (n11, n10, n01, n00) over shared traces.

    level "source" compares each pair of label sources; "family" first merges sources of one
    kind (human, llm-judge, dataset, heuristic) with "any says present"."""
    # stats_labels already holds one row per (trace, source, mode); only kinds need merging
    r = (
        "SELECT source AS rater, trace_id, mode_id, present FROM stats_labels"
        if level == "source"
        else "SELECT split_part(source, ':', 1) AS rater, trace_id, mode_id, bool_or(present) AS present "
        "FROM stats_labels GROUP BY ALL"
    )
    return db.frame(
        f"""
        WITH r AS ({r})
        SELECT a.rater AS rater_a, b.rater AS rater_b, a.mode_id,
               count(*) FILTER (WHERE a.present AND b.present) AS n11,
               count(*) FILTER (WHERE a.present AND NOT b.present) AS n10,
               count(*) FILTER (WHERE NOT a.present AND b.present) AS n01,
               count(*) FILTER (WHERE NOT a.present AND NOT b.present) AS n00
        FROM r a JOIN r b ON a.trace_id = b.trace_id AND a.mode_id = b.mode_id AND a.rater < b.rater
        GROUP BY ALL ORDER BY 1, 2, 3
        """
    )


def verdict_table(db: Database) -> pl.DataFrame:
    """trace_id, mode_id, present for the current selection (slices and audits start here)."""
    return db.frame("SELECT trace_id, mode_id, present FROM stats_verdicts")


def trace_attributes(db: Database) -> pl.DataFrame:
    """Metadata of the labelled traces, with the number of distinct agents, for slicing."""
    return db.frame(
        """
        SELECT t.trace_id, t.framework, t.llm, t.benchmark, t.source AS trace_source, t.n_steps,
               count(DISTINCT s.agent) AS n_agents
        FROM traces t JOIN (SELECT DISTINCT trace_id FROM stats_verdicts) v USING (trace_id)
        LEFT JOIN steps s USING (trace_id)
        GROUP BY ALL
        """
    )


def trace_feature_means(db: Database, names: Sequence[str] | None = None) -> pl.DataFrame:
    """trace_id, name, value: the mean of each step feature over a labelled trace's steps."""
    where = f"AND f.name {IN_TEXTS}" if names else ""
    return db.frame(
        f"""
        SELECT f.trace_id, f.name, avg(f.value) AS value
        FROM features f JOIN (SELECT DISTINCT trace_id FROM stats_verdicts) v USING (trace_id)
        WHERE f.step_idx >= 0 AND f.value IS NOT NULL {where}
        GROUP BY ALL
        """,
        [texts(names)] if names else None,
    )


def mode_sequence(db: Database, mode_id: str) -> pl.DataFrame:
    """trace_id, present in the order the labels were written: one observation per trace, the
    first selected label for the mode (what an auditor had seen at that moment)."""
    return db.frame(
        """
        SELECT trace_id, present FROM (
            SELECT trace_id, present, created_at, label_id,
                   row_number() OVER (PARTITION BY trace_id ORDER BY created_at, label_id) AS k
            FROM stats_labels WHERE mode_id = ? AND decides)
        WHERE k = 1 ORDER BY created_at, label_id
        """,
        [mode_id],
    )


def step_feature_split(
    db: Database, limit_names: int, prefer: list[str], sample: int = 200_000
) -> pl.DataFrame:
    """name, flagged, value for step features: flagged = the step is evidence of a present label
    or a root-cause attribution. `limit_names` features are kept, those in `prefer` first (in that
    order), then those with most rows; at most `sample` rows (a fixed-seed reservoir sample) come
    back, enough for a histogram."""
    return db.frame(
        f"""
        WITH flagged AS (
            SELECT DISTINCT l.trace_id, e.step FROM stats_labels l,
                 LATERAL (SELECT unnest(l.evidence_steps) AS step) e WHERE l.present AND l.decides
            UNION SELECT trace_id, step_idx FROM attributions WHERE step_idx IS NOT NULL),
        names AS (SELECT name FROM features WHERE step_idx >= 0 GROUP BY name
                  ORDER BY coalesce(list_position(?, name), 1e9), count(*) DESC, name
                  LIMIT {int(limit_names)})
        SELECT * FROM (
            SELECT f.name, fl.step IS NOT NULL AS flagged, f.value
            FROM features f JOIN names USING (name)
            JOIN (SELECT DISTINCT trace_id FROM stats_verdicts) v USING (trace_id)
            LEFT JOIN flagged fl ON fl.trace_id = f.trace_id AND fl.step = f.step_idx
            WHERE f.step_idx >= 0 AND f.value IS NOT NULL)
        USING SAMPLE reservoir({int(sample)} ROWS) REPEATABLE (1)
        """,
        [prefer],
    )


def handoff_edges(db: Database, framework: str | None) -> pl.DataFrame:
    """framework, source agent, target agent, hand-offs, traces: consecutive steps by different
    agents (or an explicit recipient), summed over the corpus."""
    only = f"AND {VALUE_COLUMNS['framework']} = ?" if framework else ""  # as the filter compares it
    return db.frame(
        f"""
        WITH s AS (
            SELECT trace_id, agent, coalesce(recipient,
                   lead(agent) OVER (PARTITION BY trace_id ORDER BY step_idx)) AS target
            FROM steps WHERE agent IS NOT NULL  -- a tool result is not an agent's turn (graph.handoff)
              AND coalesce(lower(role), '') <> 'tool' AND lower(kind) <> 'tool' AND tool_call_id IS NULL)
        SELECT coalesce(t.framework, '(none)') AS framework, s.agent AS source, s.target,
               count(*) AS handoffs, count(DISTINCT s.trace_id) AS traces
        FROM s JOIN traces t USING (trace_id)
        WHERE s.target IS NOT NULL AND s.target <> s.agent {only}
        GROUP BY ALL ORDER BY 1, 4 DESC, 2, 3
        """,
        [value_key("framework", framework)] if framework else None,
    )


def steps_of(db: Database, trace_ids: Sequence[str]) -> pl.DataFrame:
    """trace_id, step_idx, agent, recipient, content of some traces, in trace order."""
    return db.frame(
        "SELECT trace_id, step_idx, agent, recipient, content FROM steps "
        f"WHERE trace_id {IN_TEXTS} ORDER BY trace_id, step_idx",
        [texts(trace_ids)],
    )


def boilerplate_texts(db: Database, min_traces: int) -> set[str]:
    """Step texts (lower-cased, spaces collapsed) that occur in at least `min_traces` traces:
    canned replies like a terminal's "no code to execute", which repeat without meaning much."""
    rows = db.rows(
        """
        SELECT text FROM (SELECT trace_id, lower(trim(regexp_replace(content, '\\s+', ' ', 'g'))) AS text
                          FROM steps)
        GROUP BY text HAVING count(DISTINCT trace_id) >= ?
        """,
        [min_traces],
    )
    return {r[0] for r in rows}


def corpus_counts(db: Database) -> dict[str, int]:
    """Headline numbers for the report: the corpus and the current label selection."""
    row = db.rows(
        """
        SELECT (SELECT count(*) FROM traces), (SELECT count(*) FROM steps),
               (SELECT count(DISTINCT trace_id) FROM stats_verdicts),
               (SELECT count(*) FROM stats_labels WHERE decides),
               (SELECT count(DISTINCT source) FROM stats_labels WHERE decides),
               (SELECT count(DISTINCT trace_id) FROM stats_verdicts WHERE present)
        """
    )[0]
    keys = (
        "traces",
        "steps",
        "labelled traces",
        "labels counted",
        "label sources",
        "traces with a failure mode",
    )
    return dict(zip(keys, (int(v) for v in row), strict=True))


def attribution_positions(db: Database, within: CorpusFilter, bins: int = 10) -> pl.DataFrame:
    """bin, mistakes: where attributed mistake steps sit along the selected traces, as step /
    trace length in `bins` bins; one per trace, the most trusted source's (as in the blame)."""
    selection, params = selection_sql(within)
    return db.frame(
        f"""
        WITH chosen AS (
            SELECT a.trace_id, a.step_idx FROM attributions a
            WHERE a.step_idx IS NOT NULL AND a.trace_id IN ({selection})
            QUALIFY row_number() OVER (PARTITION BY a.trace_id
                ORDER BY {trust_rank("a.source")}, a.created_at DESC, a.attribution_id DESC) = 1
        )
        SELECT least(floor(c.step_idx / greatest(t.n_steps, 1) * ?), ? - 1)::INTEGER AS bin,
               count(*) AS mistakes
        FROM chosen c JOIN traces t USING (trace_id)
        GROUP BY bin ORDER BY bin
        """,
        [*params, bins, bins],
    )
