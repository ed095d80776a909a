"""The corpus file for the CLI: open it, list and show traces (export: services/export.py).

The CLI imports this module inside its commands only, so `tracefail --help` never loads
DuckDB or polars.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tracefail.store import Database, DatabaseLocked, StoreError, open_waiting
from tracefail.store.partitioned import is_partitioned
from tracefail.store.traces import get_trace, list_traces

__all__ = [
    "WRITE_WAIT_S",
    "Database",
    "DatabaseLocked",
    "StoreError",
    "get_trace",
    "list_traces",
    "may_write",
    "open_corpus",
]


# How long a command that writes waits for another process to let go of the file: a browser
# (`tracefail browse`) holds a read connection while in use and closes it 3 s after its last read
WRITE_WAIT_S = 10.0


def open_corpus(
    path: Path | str,
    *,
    read_only: bool = False,
    or_read: bool = False,
    wait_s: float = WRITE_WAIT_S,
    on_wait: Callable[[DatabaseLocked], None] | None = None,
) -> Database:
    """Open (or, when writable, create and migrate) a corpus; StoreError says why not.
    A writable open waits up to `wait_s` for another process' lock to go (a browser between
    filter changes), calling `on_wait(error)` once if it has to, then says who holds it.
    `or_read`: writable if no other process writes it and this one may, else read-only at
    once (while `tracefail serve` writes it, that is the copy serve publishes; a Parquet
    corpus; a file this user may only read), for commands that only cache when they can."""
    if read_only or (or_read and not may_write(path)):
        return Database(path, read_only=True)
    try:
        return open_waiting(path, 0.0 if or_read else wait_s, on_wait=on_wait)
    except DatabaseLocked:
        if or_read:
            return Database(path, read_only=True)
        raise


def may_write(path: Path | str) -> bool:
    """False where a writable open cannot succeed whoever holds the file: a Parquet corpus, a
    file this user may only read."""
    if str(path) == ":memory:":
        return True
    return not is_partitioned(path) and (not Path(path).exists() or os.access(path, os.W_OK))
