"""`tracefail export`: the corpus, or the traces a filter selects, as files other tools read; or
the whole corpus as Hive-partitioned Parquet that read-only commands accept as `--db`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracefail.services.filter_language import FilterError, corpus_filter
from tracefail.store import Database
from tracefail.store import export as store_export
from tracefail.store.partitioned import PARTITION_KEYS, export_partitioned
from tracefail.store.selection import selection_sql

__all__ = ["PARTITION_KEYS", "ExportResult", "ExportUsageError", "export"]


class ExportUsageError(ValueError):
    """An export that cannot work as asked (format, filter, output path); one line."""


@dataclass(frozen=True)
class ExportResult:
    traces: int
    paths: list[Path]


def export(
    db: Database,
    output: Path,
    *,
    fmt: str = "jsonl",
    filter_text: str = "",
    features: bool = False,
    partition_by: str | None = None,
) -> ExportResult:
    """Write the selected traces. One section (JSONL/Parquet traces) goes to `output` as a file;
    several (CSV's steps/labels/attributions, or `features`) go into `output` as a folder.
    `partition_by` (framework, llm or date) writes every table of the corpus as a Parquet folder."""
    if fmt not in store_export.FORMATS:
        raise ExportUsageError(f"--format {fmt}: choose one of {', '.join(store_export.FORMATS)}")
    if partition_by is not None:
        if fmt != "parquet" or partition_by not in PARTITION_KEYS:
            raise ExportUsageError(
                f"--partition-by must be one of {', '.join(PARTITION_KEYS)}, with --format parquet"
            )
        if filter_text.strip():
            raise ExportUsageError("--partition-by writes the whole corpus; it takes no --filter")
        # every table, features included, goes into the folder
        return ExportResult(export_partitioned(db, output, partition_by), [output])
    where: str = "TRUE"
    params: list[Any] = []
    if filter_text.strip():
        try:
            selection, params = selection_sql(corpus_filter(db, filter_text))
        except FilterError as exc:
            raise ExportUsageError(f"--filter: {exc}") from None
        where = f"t.trace_id IN ({selection})"
    parts = store_export.sections(db, fmt, where, features=features)
    if len(parts) == 1:
        paths = [output]
    else:
        if output.suffix and not output.is_dir():
            raise ExportUsageError(
                f"-o {output}: this export has {len(parts)} files ({', '.join(parts)}); give a folder"
            )
        output.mkdir(parents=True, exist_ok=True)
        paths = [output / f"{name}.{fmt}" for name in parts]
    for sql, path in zip(parts.values(), paths, strict=True):
        store_export.write(db, sql, fmt, path, params)
    return ExportResult(store_export.count(db, where, params), paths)
