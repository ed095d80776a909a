"""The failure signature of each failing trace, for clustering (`tracefail clusters`)."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from tracefail.store.db import Database

STEP_CHARS = 600  # of each step's text: the start of a message says what it is about
TRACE_CHARS = 30_000  # of a trace's agents' text and tool results together
EVIDENCE_CHARS = 1000  # of each evidence or mistake step (with rationales only)
ERROR_CHARS = 500  # of each error tool result


def failure_signatures(
    db: Database, source_patterns: Sequence[str], *, rationales: bool = False
) -> pl.DataFrame:
    """trace_id, framework, outcome, modes (present, from the chosen sources), text of every
    trace that failed or has a present mode or an attribution from those sources.

    The text is the trace's own: its task, what its agents said, its tool results and (again,
    so they weigh more) its errors. With `rationales` it also holds what the labellers wrote
    (rationales, attribution reasons) and the evidence and mistake steps they pointed at."""
    patterns = list(source_patterns)
    labels_of = " OR ".join("l.source LIKE ?" for _ in patterns) or "TRUE"
    attrs_of = " OR ".join("a.source LIKE ?" for _ in patterns) or "TRUE"
    labelled = f"""
        evidence AS (
            SELECT DISTINCT l.trace_id, unnest(l.evidence_steps) AS step_idx
            FROM labels l WHERE l.present AND ({labels_of})
            UNION
            SELECT a.trace_id, a.step_idx FROM attributions a
            WHERE a.step_idx IS NOT NULL AND ({attrs_of})
        ),
        evidence_text AS (
            SELECT e.trace_id, string_agg(left(s.content, {EVIDENCE_CHARS}), ' ' ORDER BY s.step_idx) AS text
            FROM evidence e JOIN steps s ON s.trace_id = e.trace_id AND s.step_idx = e.step_idx
            GROUP BY e.trace_id
        ),
        said AS (
            SELECT trace_id, string_agg(DISTINCT rationale, ' ' ORDER BY rationale) AS text FROM (
                SELECT l.trace_id, l.rationale FROM labels l WHERE l.present AND ({labels_of})
                UNION ALL SELECT a.trace_id, a.reason FROM attributions a WHERE {attrs_of})
            GROUP BY trace_id
        ),"""
    extra = "ev.text, sd.text" if rationales else "NULL"
    joins = (
        "LEFT JOIN evidence_text ev ON ev.trace_id = t.trace_id LEFT JOIN said sd ON sd.trace_id = t.trace_id"
        if rationales
        else ""
    )
    return db.frame(
        f"""
        WITH present AS (
            SELECT l.trace_id, list(DISTINCT l.mode_id ORDER BY l.mode_id) AS modes
            FROM labels l WHERE l.present AND ({labels_of}) GROUP BY l.trace_id
        ),
        attr AS (SELECT DISTINCT a.trace_id FROM attributions a WHERE {attrs_of}),
        {labelled if rationales else ""}
        spoken AS (
            SELECT trace_id,
                   left(string_agg(left(content, {STEP_CHARS}), ' ' ORDER BY step_idx), {TRACE_CHARS}) AS text
            FROM steps GROUP BY trace_id
        ),
        errors AS (
            SELECT trace_id, string_agg(left(content, {ERROR_CHARS}), ' ' ORDER BY step_idx) AS text
            FROM steps
            WHERE lower(status) LIKE '%error%'
               OR (kind = 'tool'
                   AND regexp_matches(left(content, 200), '(?i)error|exception|traceback|failed'))
            GROUP BY trace_id
        )
        SELECT t.trace_id, t.framework, t.outcome, coalesce(p.modes, []::VARCHAR[]) AS modes,
               concat_ws(' ', t.task, sp.text, er.text, {extra}) AS text
        FROM traces t
        LEFT JOIN present p ON p.trace_id = t.trace_id
        LEFT JOIN attr a ON a.trace_id = t.trace_id
        LEFT JOIN spoken sp ON sp.trace_id = t.trace_id
        LEFT JOIN errors er ON er.trace_id = t.trace_id
        {joins}
        WHERE t.outcome = 'failure' OR p.trace_id IS NOT NULL OR a.trace_id IS NOT NULL
        ORDER BY t.trace_id
        """,
        patterns * (6 if rationales else 2),
    )
