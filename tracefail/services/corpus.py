"""The corpus file for the CLI: open it, list and show traces (export: services/export.py).

The CLI imports this module inside its commands only, so `tracefail --help` never loads
DuckDB or polars.
"""

from __future__ import annotations

import time
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


# How long a command that writes waits for another process to let go of the file: a browser
# (`tracefail browse`) holds a read connection while in use and closes it 3 s after its last read
WRITE_WAIT_S = 10.0
_RETRY_S = 0.25


def open_corpus(
    path: Path | str, *, read_only: bool = False, or_read: bool = False, wait_s: float = WRITE_WAIT_S
) -> Database:
    """Open (or, when writable, create and migrate) a corpus; StoreError says why not.
    A writable open waits up to `wait_s` for another process' lock to go (a browser between
    filter changes), then says who holds it. `or_read`: writable if no other process writes it,
    else read-only at once (while `tracefail serve` writes it, that is the copy serve
    publishes), for commands that only cache when they can."""
    deadline = time.monotonic() + (0.0 if read_only or or_read else wait_s)
    while True:
        try:
            return Database(path, read_only=read_only)
        except DatabaseLocked:
            if or_read:
                return Database(path, read_only=True)
            if time.monotonic() + _RETRY_S > deadline:
                raise
            time.sleep(_RETRY_S)
