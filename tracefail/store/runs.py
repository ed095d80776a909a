"""Rows in `runs`: every ingest, feature, label or calibration job is one row."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import polars as pl

from tracefail.store.db import Database, now


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a job's config: the key that makes batch work idempotent."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def start_run(db: Database, kind: str, config: dict[str, Any]) -> str:
    run_id = f"{kind}-{now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    db.execute(
        "INSERT INTO runs (run_id, kind, config, config_hash, status, started_at) "
        "VALUES (?, ?, ?, ?, 'running', ?)",
        [run_id, kind, json.dumps(config, default=str), config_hash(config), now()],
    )
    return run_id


def finish_run(
    db: Database,
    run_id: str,
    *,
    status: str = "done",
    counts: dict[str, Any] | None = None,
    n_errors: int = 0,
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost_usd: float = 0.0,
) -> None:
    db.execute(
        """
        UPDATE runs SET status = ?, finished_at = ?, counts = ?, n_errors = ?, tokens_in = ?,
               tokens_out = ?, cost_usd = ?,
               elapsed_s = date_diff('millisecond', started_at, ?) / 1000.0
        WHERE run_id = ?
        """,
        [status, now(), json.dumps(counts or {}), n_errors, tokens_in, tokens_out, cost_usd,
         now(), run_id],
    )


def list_runs(db: Database, kind: str | None = None) -> pl.DataFrame:
    if kind:
        return db.frame("SELECT * FROM runs WHERE kind = ? ORDER BY started_at", [kind])
    return db.frame("SELECT * FROM runs ORDER BY started_at")
