"""Rows in `runs`: every ingest, feature, label or calibration job is one row."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from typing import Any

import polars as pl

from tracefail.store.db import Database, now


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a job's config: the key that makes batch work idempotent."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def interrupt_dead_runs(db: Database) -> int:
    """Mark 'running' rows of processes that are gone as 'interrupted'; returns how many.

    Only one process can hold a corpus open for writing, so while we write, a running row
    started by another process id (or by a version that stored none) belongs to a killed run.
    """
    where = "status = 'running' AND coalesce(TRY_CAST(json_extract(config, '$._pid') AS INTEGER), -1) <> ?"
    stale = db.rows(f"SELECT count(*) FROM runs WHERE {where}", [os.getpid()])[0][0]
    if stale:
        db.execute(f"UPDATE runs SET status = 'interrupted' WHERE {where}", [os.getpid()])
    return int(stale)


def start_run(db: Database, kind: str, config: dict[str, Any]) -> str:
    """A new 'running' row (its process id kept in the config); dead runs are closed first."""
    interrupt_dead_runs(db)
    run_id = f"{kind}-{now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    stored = json.dumps({**config, "_pid": os.getpid()}, default=str)
    db.execute(
        "INSERT INTO runs (run_id, kind, config, config_hash, status, started_at) "
        "VALUES (?, ?, ?, ?, 'running', ?)",
        [run_id, kind, stored, config_hash(config), now()],
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
        [status, now(), json.dumps(counts or {}), n_errors, tokens_in, tokens_out, cost_usd, now(), run_id],
    )


def update_counts(db: Database, run_id: str, counts: dict[str, Any]) -> None:
    """The counts of a run still going (a server commits them with its data, so a killed run
    still says what it stored)."""
    db.execute("UPDATE runs SET counts = ? WHERE run_id = ?", [json.dumps(counts), run_id])


def list_runs(db: Database, kind: str | None = None) -> pl.DataFrame:
    if kind:
        return db.frame("SELECT * FROM runs WHERE kind = ? ORDER BY started_at, run_id", [kind])
    return db.frame("SELECT * FROM runs ORDER BY started_at, run_id")
