"""Corpus export straight from DuckDB (COPY streams; nothing is built up in Python).

Readers get data, not encodings: JSON columns are nested JSON in JSONL and JSON text in Parquet
and CSV (never DuckDB's binary JSON), timestamps are ISO 8601 in UTC with the zone written
out (Parquet: TIMESTAMP WITH TIME ZONE), numeric row ids are strings. JSONL and Parquet nest
one trace a row; CSV cannot nest, so it is one row per step with labels and attributions in
their own files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from tracefail.store.db import Database, StoreError
from tracefail.store.selection import CorpusFilter, count_traces, selection_sql

FORMATS = ("jsonl", "parquet", "csv")
_COPY = {"jsonl": "FORMAT json", "parquet": "FORMAT parquet, COMPRESSION zstd", "csv": "FORMAT csv, HEADER"}


def _formula_safe(db: Database, query: str, params: Sequence[Any] | None = None) -> str:
    """`query` with every text cell a spreadsheet would run as a formula (OWASP: a leading =, +,
    -, @, tab or CR) prefixed with a quote, so it shows as text."""
    relation = db.connection.sql(query, params=list(params)) if params else db.connection.sql(query)
    columns = []
    for name, kind in zip(relation.columns, relation.types, strict=True):
        column = '"' + name.replace('"', '""') + '"'
        if str(kind) in ("VARCHAR", "JSON"):
            column = (
                f"CASE WHEN regexp_matches({column}, '^[-=+@\\t\\r]') "
                f"THEN chr(39) || {column} ELSE {column} END AS {column}"
            )
        columns.append(column)
    return f"SELECT {', '.join(columns)} FROM ({query})"


def _columns(db: Database, table: str, fmt: str, skip: Sequence[str] = ()) -> str:
    """The table's columns as the export writes them (see the module docstring)."""
    out = []
    for name, kind in db.rows(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? AND table_schema = 'main' ORDER BY ordinal_position",
        [table],
    ):
        if name in skip:
            continue
        if kind == "JSON" and fmt != "jsonl":
            expr = f"{name}::VARCHAR"
        elif kind == "TIMESTAMP":
            expr = (
                f"timezone('UTC', {name})"
                if fmt == "parquet"
                else f"strftime({name}, '%Y-%m-%dT%H:%M:%S.%f') || '+00:00'"
            )
        elif kind == "BIGINT" and name.endswith("_id"):
            expr = f"{name}::VARCHAR"
        else:
            expr = name
        out.append(f"{expr} AS {name}")
    return ", ".join(out)


def _nested(db: Database, fmt: str, where: str) -> str:
    def child(table: str, order: str) -> str:
        cols = _columns(db, table, fmt, skip=("trace_id",))
        return (
            f"coalesce((SELECT list(x ORDER BY x.{order}) FROM (SELECT {cols} FROM {table} "
            f"WHERE {table}.trace_id = t.trace_id) x), []) AS {table}"
        )

    return (
        f"SELECT {_columns(db, 'traces', fmt, skip=('raw',))}, {child('steps', 'step_idx')}, "
        f"{child('labels', 'label_id')}, {child('attributions', 'attribution_id')} "
        f"FROM traces t WHERE {where} ORDER BY t.trace_id"
    )


def sections(db: Database, fmt: str, where: str = "TRUE", features: bool = False) -> dict[str, str]:
    """Section name -> SELECT of the export; `where` filters traces (alias t, column trace_id)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    chosen = f"trace_id IN (SELECT t.trace_id FROM traces t WHERE {where})"
    if fmt == "csv":
        trace_cols = "t.trace_id, t.source, t.framework, t.llm, t.benchmark, t.outcome, t.n_steps"
        out = {
            "steps": f"SELECT {trace_cols}, s.* EXCLUDE (trace_id) FROM traces t "
            f"JOIN (SELECT {_columns(db, 'steps', fmt)} FROM steps) s USING (trace_id) "
            f"WHERE {where} ORDER BY t.trace_id, s.step_idx",
            "labels": f"SELECT {_columns(db, 'labels', fmt)} FROM labels WHERE {chosen} "
            "ORDER BY trace_id, label_id",
            "attributions": f"SELECT {_columns(db, 'attributions', fmt)} FROM attributions "
            f"WHERE {chosen} ORDER BY trace_id, attribution_id",
        }
    else:
        out = {"traces": _nested(db, fmt, where)}
    if features:
        out["features"] = (
            f"SELECT {_columns(db, 'features', fmt)} FROM features WHERE {chosen} "
            "ORDER BY trace_id, step_idx, name"
        )
    return out


def write(db: Database, sql: str, fmt: str, out: Path, params: Sequence[Any] | None = None) -> None:
    """COPY one section to one file; an unwritable path is a one-line StoreError."""
    target = str(out).replace("'", "''")
    if fmt == "csv":
        sql = _formula_safe(db, sql, params)
    options = _COPY[fmt] + (", FORCE_QUOTE (mode_id)" if fmt == "csv" and " mode_id" in sql else "")
    try:
        db.execute(f"COPY ({sql}) TO '{target}' ({options})", list(params or []))
    except duckdb.IOException as exc:
        raise StoreError(
            f"{out}: cannot write ({str(exc).splitlines()[0].removeprefix('IO Error: ')})"
        ) from None


def count(db: Database, where: str = "TRUE", params: Sequence[Any] | None = None) -> int:
    return db.rows(f"SELECT count(*) FROM traces t WHERE {where}", list(params or []))[0][0]


def export_selection(db: Database, f: CorpusFilter, out: Path) -> int:
    """The selected traces with steps, labels and attributions as JSONL (one trace a line)."""
    selection, params = selection_sql(f)
    write(db, sections(db, "jsonl", f"t.trace_id IN ({selection})")["traces"], "jsonl", out, params)
    return count_traces(db, f)
