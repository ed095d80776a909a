"""Rows in `features`: one trace's features are replaced in one transaction, so a killed run
leaves each trace either complete or absent, and a rerun never duplicates rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from tracefail.store.db import Database
from tracefail.store.text_list import IN_TEXTS, texts

# Written last for every trace, so its presence means "this trace is done".
DONE_MARKER = "len.trace_tokens"

_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("step_idx", pa.int32()),
        ("model", pa.string()),
        ("extractor_version", pa.string()),
        ("name", pa.string()),
        ("value", pa.float64()),
        ("run_id", pa.string()),
    ]
)


def done_traces(db: Database, model: str, version: str) -> set[str]:
    """Traces that already have features from this model and extractor version."""
    rows = db.rows(
        "SELECT DISTINCT trace_id FROM features WHERE model = ? AND extractor_version = ? "
        "AND step_idx = -1 AND name = ?",
        [model, version, DONE_MARKER],
    )
    return {r[0] for r in rows}


def replace_features(
    db: Database,
    trace_id: str,
    model: str,
    version: str,
    rows: Sequence[tuple[int, str, float]],
    run_id: str | None,
) -> None:
    """Store one trace's (step_idx, name, value) rows, replacing any earlier ones for the key."""
    arrow_rows = pa.Table.from_pylist(  # noqa: F841 - scanned by name below
        [
            {
                "trace_id": trace_id,
                "step_idx": step,
                "model": model,
                "extractor_version": version,
                "name": name,
                "value": value,
                "run_id": run_id,
            }
            for step, name, value in rows
        ],
        schema=_SCHEMA,
    )
    with db.transaction() as connection:
        connection.execute(
            "DELETE FROM features WHERE trace_id = ? AND model = ? AND extractor_version = ?",
            [trace_id, model, version],
        )
        connection.execute(
            f"INSERT INTO features ({', '.join(_SCHEMA.names)}) "
            f"SELECT {', '.join(_SCHEMA.names)} FROM arrow_rows"
        )


def feature_frame(
    db: Database,
    *,
    trace_ids: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    model: str | None = None,
) -> pl.DataFrame:
    """Long-format feature rows (trace_id, step_idx, model, extractor_version, name, value)."""
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if trace_ids is not None:
        where.append(f"trace_id {IN_TEXTS}")
        params.append(texts(trace_ids))
    if names is not None:
        where.append(f"name {IN_TEXTS}")
        params.append(texts(names))
    if model is not None:
        where.append("model = ?")
        params.append(model)
    return db.frame(
        "SELECT trace_id, step_idx, model, extractor_version, name, value FROM features "
        f"WHERE {' AND '.join(where)} ORDER BY trace_id, step_idx, name",
        params,
    )
