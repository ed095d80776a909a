"""Reads behind the trace screen: one trace's steps, labels, attributions and per-step
features, step search, and the corpus table's per-trace sparklines."""

from __future__ import annotations

import polars as pl

from tracefail.model import HEADLINE_FEATURES
from tracefail.store.db import Database
from tracefail.store.labels import mode_labels
from tracefail.store.stats import trust_rank
from tracefail.store.text_list import IN_TEXTS, texts

# Per-step uncertainty features the sparkline prefers, best first.
SPARK_FEATURES = tuple(f for f in HEADLINE_FEATURES if f.startswith("tok."))


def sparklines(db: Database, trace_ids: list[str]) -> tuple[str | None, dict[str, list[float]]]:
    """Per-step values of the first uncertainty feature stored for these traces, by trace."""
    if not trace_ids:
        return None, {}
    rows = db.rows(
        "SELECT name, trace_id, list(value ORDER BY step_idx) FROM features "
        f"WHERE trace_id {IN_TEXTS} AND name {IN_TEXTS} AND step_idx >= 0 "
        "GROUP BY name, trace_id",
        [texts(trace_ids), texts(SPARK_FEATURES)],
    )
    name = next((n for n in SPARK_FEATURES if any(r[0] == n for r in rows)), None)
    values = {trace_id: [v for v in vs if v is not None] for n, trace_id, vs in rows if n == name}
    return name, values


def trace_steps(db: Database, trace_id: str) -> pl.DataFrame:
    return db.frame(
        "SELECT step_idx, span_id, parent_span_id, agent, recipient, role, kind, name, content, "
        "tool_calls, tool_call_id, status, model, tokens_in, tokens_out, start_ts, end_ts, metadata "
        "FROM steps WHERE trace_id = ? ORDER BY step_idx",
        [trace_id],
    )


def trace_labels(db: Database, trace_id: str) -> pl.DataFrame:
    """One trace's labels in the trace screen's order: by mode, then source, newest last."""
    return mode_labels(db, trace_id=trace_id).sort("mode_id", "source", "label_id")


def step_features(db: Database, trace_id: str) -> dict[str, list[float | None]]:
    """Per-step values by feature name (index = step_idx), from the newest extractor version."""
    rows = db.rows(
        """
        SELECT name, step_idx, value FROM features
        WHERE trace_id = ? AND step_idx >= 0
        QUALIFY rank() OVER (PARTITION BY name ORDER BY extractor_version DESC, model) = 1
        ORDER BY name, step_idx
        """,
        [trace_id],
    )
    out: dict[str, list[float | None]] = {}
    for name, step_idx, value in rows:
        values = out.setdefault(name, [])
        values.extend([None] * (step_idx + 1 - len(values)))
        values[step_idx] = value
    return out


def flagged_steps(db: Database, trace_id: str) -> list[int]:
    """Steps worth jumping to: evidence of present labels (any source) and attributed mistake
    steps, within the trace. The CLI's graph and the TUI's timeline both mark these."""
    rows = db.rows(
        """
        SELECT DISTINCT step FROM (
            SELECT unnest(evidence_steps) AS step FROM labels WHERE trace_id = ? AND present
            UNION ALL SELECT step_idx FROM attributions WHERE trace_id = ? AND step_idx IS NOT NULL)
        WHERE step >= 0 AND step < (SELECT n_steps FROM traces WHERE trace_id = ?)
        ORDER BY step
        """,
        [trace_id, trace_id, trace_id],
    )
    return [r[0] for r in rows]


MIN_VALIDATION_N = 10  # traces shared with references before a machine source's agreement is shown


def trusted_attributions(db: Database, trace_id: str) -> list[dict]:
    """Each source's newest attribution of the trace, most trusted source first (human,
    dataset, llm-judge, ranker, heuristic; then newest): the first is the one shown as "the"
    mistake. `agent` is the blamed step's speaker where the step names one (a reply may have
    named someone else: `claimed`); `validation` says how far a machine source agrees with the
    human/dataset references on the traces both attributed."""
    rows = db.frame(
        f"""
        WITH mine AS (
            SELECT a.source, a.agent AS claimed, a.step_idx, s.agent AS speaker, a.reason, a.created_at,
                   {trust_rank("a.source")} AS rank
            FROM attributions a LEFT JOIN steps s ON s.trace_id = a.trace_id AND s.step_idx = a.step_idx
            WHERE a.trace_id = ? AND (a.agent IS NOT NULL OR a.step_idx IS NOT NULL)
            QUALIFY row_number() OVER (PARTITION BY a.source
                                       ORDER BY a.created_at DESC, a.attribution_id DESC) = 1
        ),
        ref AS (
            SELECT trace_id, agent FROM attributions
            WHERE {trust_rank("source")} <= 1 AND agent IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY trace_id
                ORDER BY {trust_rank("source")}, created_at DESC, attribution_id DESC) = 1
        ),
        theirs AS (
            SELECT source, trace_id, agent FROM attributions
            WHERE source IN (SELECT source FROM mine WHERE rank > 1)
            QUALIFY row_number() OVER (PARTITION BY source, trace_id
                                       ORDER BY created_at DESC, attribution_id DESC) = 1
        ),
        agreement AS (
            SELECT t.source, count(*) AS n, count(*) FILTER (WHERE t.agent = r.agent) AS k
            FROM theirs t JOIN ref r USING (trace_id) GROUP BY t.source
        )
        SELECT m.source, coalesce(m.speaker, m.claimed) AS agent, m.claimed, m.step_idx, m.reason, m.rank,
               coalesce(g.n, 0) AS n, coalesce(g.k, 0) AS k
        FROM mine m LEFT JOIN agreement g USING (source)
        ORDER BY m.rank, m.created_at DESC, m.source
        """,
        [trace_id],
    ).to_dicts()
    for row in rows:
        if row["rank"] <= 1:
            row["validation"] = "reference"
        elif row["n"] >= MIN_VALIDATION_N:
            row["validation"] = f"agent agrees with references on {row['k']}/{row['n']} traces"
        else:
            row["validation"] = f"not validated ({row['n']} traces shared with references)"
    return rows
