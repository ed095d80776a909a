"""DuckDB's own JSON reader over trace files: the plain baseline the ingest benchmark compares to.

It loads the files into a temporary table with `read_json` (no step splitting, no ids, no
quarantine), which is the least work any JSON-to-DuckDB load can do.
"""

from __future__ import annotations

from pathlib import Path

from tracefail.store.db import Database


def read_json_rows(db: Database, paths: list[Path], *, array: bool, max_object_bytes: int = 256 << 20) -> int:
    """Materialise `read_json` of `paths` into a temp table; returns the number of rows read."""
    files = [str(p) for p in paths]
    fmt = "array" if array else "auto"
    db.execute("DROP TABLE IF EXISTS temp.rawscan")
    db.execute(
        f"CREATE TEMP TABLE rawscan AS SELECT * FROM read_json(?, format = '{fmt}', union_by_name = true, "
        f"maximum_object_size = {int(max_object_bytes)})",
        [files],
    )
    return db.rows("SELECT count(*) FROM temp.rawscan")[0][0]
