"""Corpus export for the CLI: one file (JSONL, Parquet, CSV) or a Hive-partitioned Parquet folder."""

from __future__ import annotations

from pathlib import Path

from tracefail.store import Database
from tracefail.store.export import FORMATS, export_corpus
from tracefail.store.partitioned import PARTITION_KEYS, export_partitioned

__all__ = ["FORMATS", "PARTITION_KEYS", "export"]


def export(db: Database, fmt: str, out: Path, partition_by: str | None = None) -> int:
    """The number of traces written. `partition_by` (framework, llm or date) needs parquet and
    writes a folder every read-only command accepts as `--db`."""
    if partition_by is None:
        return export_corpus(db, fmt, out)
    if fmt != "parquet":
        raise ValueError(f"--partition-by needs --format parquet, not {fmt!r}")
    return export_partitioned(db, out, partition_by)
