"""Judge-side queries: resumable label writes, taxonomies, calibrations, and eval inputs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import polars as pl

from tracefail.model import Attribution, Label
from tracefail.store.db import Database, now
from tracefail.store.traces import insert_attributions, insert_labels


def save_taxonomy(db: Database, taxonomy_id: str, version: str, name: str, definition: dict) -> None:
    """Insert or replace the definition of one taxonomy version."""
    with db.transaction():
        db.execute("DELETE FROM taxonomies WHERE taxonomy_id = ? AND version = ?", [taxonomy_id, version])
        db.execute(
            "INSERT INTO taxonomies VALUES (?, ?, ?, ?, ?)",
            [taxonomy_id, version, name, json.dumps(definition, ensure_ascii=False), now()],
        )


def done_trace_ids(db: Database, source: str) -> set[str]:
    """Traces already judged by this judge config: a trace's labels are written all at once."""
    rows = db.rows(
        "SELECT trace_id FROM labels WHERE source = ? "
        "UNION SELECT trace_id FROM attributions WHERE source = ?",
        [source, source],
    )
    return {r[0] for r in rows}


def save_judgement(db: Database, labels: Sequence[Label], attributions: Sequence[Attribution]) -> None:
    """One trace's labels and attribution in one transaction: a kill leaves all of it or none."""
    save_judgements(db, [(labels, attributions)])


def save_judgements(db: Database, judged: Sequence[tuple[Sequence[Label], Sequence[Attribution]]]) -> None:
    """Whole traces that finished together, in one transaction: each trace is all there or absent
    after a kill, and a busy driver commits once per batch instead of once per trace."""
    with db.transaction():
        insert_labels(db, [label for labels, _ in judged for label in labels])
        insert_attributions(db, [a for _, attributions in judged for a in attributions])


def interrupt_stale_runs(db: Database, kind: str, config_hash: str) -> int:
    """Runs still 'running' when we hold the write lock were killed; say so in their rows."""
    stale = db.rows(
        "SELECT run_id FROM runs WHERE kind = ? AND config_hash = ? AND status = 'running'",
        [kind, config_hash],
    )
    db.execute(
        "UPDATE runs SET status = 'interrupted' WHERE kind = ? AND config_hash = ? AND status = 'running'",
        [kind, config_hash],
    )
    return len(stale)


def judge_sources(db: Database) -> list[tuple[str, int, int]]:
    """(source, mode labels with an answer, attributions naming a step or agent), newest first,
    of every machine source eval and calibrate can use (`llm-judge:` and `ranker:`; a failed run
    that stored nothing is not among them)."""
    rows = db.rows(
        """
        SELECT source, count(*) FILTER (WHERE task = 'modes'), count(*) FILTER (WHERE task = 'attribution')
        FROM (
            SELECT source, created_at, 'modes' AS task FROM labels
            WHERE (source LIKE 'llm-judge:%' OR source LIKE 'ranker:%') AND present IS NOT NULL
            UNION ALL SELECT source, created_at, 'attribution' FROM attributions
            WHERE (source LIKE 'llm-judge:%' OR source LIKE 'ranker:%')
              AND (agent IS NOT NULL OR step_idx IS NOT NULL))
        GROUP BY source ORDER BY max(created_at) DESC, source
        """
    )
    return [(source, int(modes), int(attributed)) for source, modes, attributed in rows]


def stored_sources(db: Database) -> list[str]:
    """Every label or attribution source name in the corpus, sorted."""
    rows = db.rows("SELECT source FROM labels UNION SELECT source FROM attributions ORDER BY 1")
    return [r[0] for r in rows]


def mode_labels(db: Database, source_like: str = "%", trace_id: str | None = None) -> pl.DataFrame:
    """Mode labels whose source matches a LIKE pattern (e.g. 'human:%'), of one trace or of
    all, newest last: the one label query behind evaluation, the trace screen and run diffs."""
    return db.frame(
        "SELECT label_id, trace_id, taxonomy_id, taxonomy_version, mode_id, present, probability, "
        "raw_probability, evidence_steps, agent, rationale, source, metadata, created_at FROM labels "
        "WHERE source LIKE ? AND trace_id = coalesce(?::VARCHAR, trace_id) ORDER BY label_id",
        [source_like, trace_id],
    )


def attributions(db: Database, source_like: str = "%", trace_id: str | None = None) -> pl.DataFrame:
    """Attributions whose source matches a LIKE pattern, of one trace or of all, newest last."""
    return db.frame(
        "SELECT attribution_id, trace_id, agent, step_idx, reason, probability, source, metadata "
        "FROM attributions WHERE source LIKE ? AND trace_id = coalesce(?::VARCHAR, trace_id) "
        "ORDER BY attribution_id",
        [source_like, trace_id],
    )


def save_calibrations(db: Database, rows: Sequence[dict[str, Any]]) -> None:
    created = now()
    with db.transaction():
        for row in rows:
            db.execute(
                "INSERT INTO calibrations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    row["judge_source"],
                    row["taxonomy_id"],
                    row["taxonomy_version"],
                    row["mode_id"],
                    row["method"],
                    json.dumps(row["params"]),
                    row["reference"],
                    row["n"],
                    row["ece_before"],
                    row["ece_after"],
                    row.get("run_id"),
                    created,
                ],
            )


def latest_calibrations(
    db: Database, judge_source: str, taxonomy_id: str, version: str
) -> dict[str, tuple[str, dict[str, float]]]:
    """mode id -> (method, params) of the newest calibration for this judge and taxonomy."""
    rows = db.rows(
        """
        SELECT mode_id, method, params FROM calibrations
        WHERE judge_source = ? AND taxonomy_id = ? AND taxonomy_version = ?
        QUALIFY row_number() OVER (PARTITION BY mode_id ORDER BY created_at DESC, method DESC) = 1
        """,
        [judge_source, taxonomy_id, version],
    )
    return {mode: (method, json.loads(params)) for mode, method, params in rows}
