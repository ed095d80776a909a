"""`tracefail sql`: user SQL on a sandboxed, read-only corpus connection."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from tracefail.store import Database, StoreError
from tracefail.store.sql import run_query as store_query


class QueryError(Exception):
    """A refused or failed query, or a corpus that cannot be opened; one line."""


DEFAULT_MEMORY_LIMIT = "1GB"  # one `string_agg` over a corpus reached 10.3 GB unbounded
DEFAULT_TIMEOUT = 300.0


def run_query(
    path: Path, sql: str, memory_limit: str = DEFAULT_MEMORY_LIMIT, timeout: float | None = DEFAULT_TIMEOUT
) -> pl.DataFrame:
    """One read-only statement within `memory_limit` (DuckDB's text) and `timeout` seconds; see
    `Database(sandbox=True)` for what the connection cannot do."""
    try:
        with Database(path, sandbox=True, memory_limit=memory_limit) as db:
            return store_query(db, sql, timeout)
    except StoreError as exc:
        raise QueryError(str(exc)) from None


def _flat(dtype: pl.DataType) -> bool:
    return (
        dtype.is_numeric()
        or dtype in (pl.String, pl.Boolean, pl.Date, pl.Datetime, pl.Time, pl.Null, pl.Categorical)
        or isinstance(dtype, pl.Datetime)
    )


def csv_text(frame: pl.DataFrame) -> str:
    """CSV of any result: list, struct, interval and other non-flat cells become JSON text."""
    encoded = frame.with_columns(
        pl.Series(
            name,
            [
                None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                for v in frame[name].to_list()
            ],
            dtype=pl.String,
        )
        for name, dtype in frame.schema.items()
        if not _flat(dtype)
    )
    return encoded.write_csv()
