"""The corpus file for the CLI: open it, list and show traces (export: services/export.py).

The CLI imports this module inside its commands only, so `tracefail --help` never loads
DuckDB or polars.
"""

from __future__ import annotations

from pathlib import Path

from tracefail.store import Database, DatabaseLocked, StoreError
from tracefail.store.traces import get_trace, list_traces

__all__ = [
    "Database",
    "StoreError",
    "get_trace",
    "list_traces",
    "open_corpus",
]


def open_corpus(path: Path | str, *, read_only: bool = False, or_read: bool = False) -> Database:
    """Open (or, when writable, create and migrate) a corpus; StoreError says why not.
    `or_read`: writable if no other process writes it, else read-only (while `tracefail serve`
    writes it, that is the copy serve publishes), for commands that only cache when they can."""
    try:
        return Database(path, read_only=read_only)
    except DatabaseLocked:
        if not or_read:
            raise
        return Database(path, read_only=True)
