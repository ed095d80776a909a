"""Inputs of attribution learning: steps with their text, reference attributions, failed traces."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from tracefail.store.db import Database
from tracefail.store.text_list import IN_TEXTS, texts


def steps_for(db: Database, trace_ids: Sequence[str]) -> pl.DataFrame:
    """(trace_id, step_idx, agent, role, kind, content) of these traces, in step order."""
    return db.frame(
        "SELECT trace_id, step_idx, agent, role, kind, coalesce(content, '') AS content FROM steps "
        f"WHERE trace_id {IN_TEXTS} ORDER BY trace_id, step_idx",
        [texts(trace_ids)],
    )


def reference_attributions(db: Database, source_like: str) -> pl.DataFrame:
    """The newest attribution per trace among sources matching a LIKE pattern."""
    return db.frame(
        "SELECT trace_id, agent, step_idx, source FROM attributions "
        "WHERE source LIKE ? AND step_idx IS NOT NULL "
        "QUALIFY row_number() OVER (PARTITION BY trace_id ORDER BY created_at DESC, attribution_id DESC) = 1 "
        "ORDER BY trace_id",
        [source_like],
    )


def unattributed_failures(db: Database, source_like: str) -> list[str]:
    """Traces that did not succeed and have no attribution from the reference sources yet."""
    rows = db.rows(
        "SELECT trace_id FROM traces WHERE outcome <> 'success' AND trace_id NOT IN "
        "(SELECT trace_id FROM attributions WHERE source LIKE ? AND step_idx IS NOT NULL) ORDER BY trace_id",
        [source_like],
    )
    return [r[0] for r in rows]


def attribution_sources(db: Database, source_like: str) -> pl.DataFrame:
    """Every source's newest attribution per trace (for disagreement between sources)."""
    return db.frame(
        "SELECT trace_id, source, step_idx FROM attributions WHERE source LIKE ? AND step_idx IS NOT NULL "
        "QUALIFY row_number() OVER "
        "(PARTITION BY trace_id, source ORDER BY created_at DESC, attribution_id DESC) = 1",
        [source_like],
    )


TRACE_COLUMNS = ("framework", "llm", "benchmark", "source", "outcome", "task")


def trace_column(db: Database, trace_ids: Sequence[str], column: str) -> dict[str, str | None]:
    """One column of `traces` (or `metadata.KEY`) per trace: the domain a trace belongs to when
    evaluation holds out whole systems, or the task text features compare steps against."""
    if column.startswith("metadata."):
        key = column.removeprefix("metadata.")
        expr, params = "metadata ->> ?", [key, texts(trace_ids)]
    elif column in TRACE_COLUMNS:
        expr, params = column, [texts(trace_ids)]
    else:
        known = ", ".join(TRACE_COLUMNS)
        raise ValueError(f"unknown trace column {column!r}; use one of {known} or metadata.KEY")
    rows = db.rows(f"SELECT trace_id, {expr} FROM traces WHERE trace_id {IN_TEXTS}", params)
    return {trace_id: value for trace_id, value in rows}


def unvalidated(db: Database, source: str) -> tuple[int, str | None]:
    """How many of a source's attributions were stored as not validated on this corpus, and why."""
    row = db.rows(
        "SELECT count(*), min((metadata ->> 'transfer')) FROM attributions "
        "WHERE source = ? AND (metadata ->> 'validated') = 'false'",
        [source],
    )[0]
    return int(row[0]), row[1]
