"""DuckDB's own JSON reader over trace files: the plain baseline the ingest benchmark compares to.

It loads the files into a table of the database file with `read_json` and checkpoints it (no
step splitting, no ids, no quarantine): the least work any JSON-to-DuckDB load that keeps its
data can do. With `persist=False` the table is a temporary one, held in memory and never
written, which is what earlier rounds of the benchmark compared with.
"""

from __future__ import annotations

from pathlib import Path

from tracefail.store.db import Database


def read_json_rows(
    db: Database, paths: list[Path], *, array: bool, persist: bool = True, max_object_bytes: int = 256 << 20
) -> int:
    """Materialise `read_json` of `paths` into a table; returns the number of rows read."""
    files = [str(p) for p in paths]
    fmt = "array" if array else "auto"
    db.execute("DROP TABLE IF EXISTS rawscan")
    db.execute(
        f"CREATE {'' if persist else 'TEMP '}TABLE rawscan AS SELECT * FROM read_json(?, format = '{fmt}', "
        f"union_by_name = true, maximum_object_size = {int(max_object_bytes)})",
        [files],
    )
    if persist:
        db.execute("CHECKPOINT")
    return db.rows("SELECT count(*) FROM rawscan")[0][0]
