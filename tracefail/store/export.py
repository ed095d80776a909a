"""Corpus export straight from DuckDB (COPY streams; nothing is built up in Python)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tracefail.store.db import Database, StoreError
from tracefail.store.selection import CorpusFilter, count_traces, selection_sql

FORMATS = ("jsonl", "parquet", "csv")

_NESTED = """
    SELECT t.* EXCLUDE (raw),
           coalesce((SELECT list(s ORDER BY s.step_idx) FROM (SELECT * EXCLUDE (trace_id) FROM steps
                     WHERE steps.trace_id = t.trace_id) s), []) AS steps,
           coalesce((SELECT list(l ORDER BY l.label_id) FROM (SELECT * EXCLUDE (trace_id) FROM labels
                     WHERE labels.trace_id = t.trace_id) l), []) AS labels,
           coalesce((SELECT list(a ORDER BY a.attribution_id) FROM (SELECT * EXCLUDE (trace_id)
                     FROM attributions WHERE attributions.trace_id = t.trace_id) a), []) AS attributions
    FROM traces t ORDER BY t.trace_id
"""

# CSV cannot nest: one row per step, with the trace's columns and its labels as JSON text.
_FLAT = """
    SELECT t.trace_id, t.source, t.framework, t.llm, t.benchmark, t.outcome, t.n_steps,
           s.* EXCLUDE (trace_id),
           (SELECT to_json(list(l)) FROM (SELECT mode_id, present, probability, source,
                   evidence_steps FROM labels WHERE labels.trace_id = t.trace_id) l) AS trace_labels,
           (SELECT to_json(list(a)) FROM (SELECT agent, step_idx, source FROM attributions
                   WHERE attributions.trace_id = t.trace_id) a) AS trace_attributions
    FROM traces t JOIN steps s USING (trace_id)
    ORDER BY t.trace_id, s.step_idx
"""


def _formula_safe(db: Database, query: str) -> str:
    """`query` with every text cell a spreadsheet would run as a formula (OWASP: a leading =, +,
    -, @, tab or CR) prefixed with a quote, so it shows as text."""
    relation = db.connection.sql(query)
    columns = []
    for name, kind in zip(relation.columns, relation.types, strict=True):
        column = '"' + name.replace('"', '""') + '"'
        if str(kind) in ("VARCHAR", "JSON"):
            column = (f"CASE WHEN regexp_matches({column}, '^[-=+@\\t\\r]') "
                      f"THEN chr(39) || {column} ELSE {column} END AS {column}")
        columns.append(column)
    return f"SELECT {', '.join(columns)} FROM ({query})"


def export_corpus(db: Database, fmt: str, out: Path) -> int:
    """Write the corpus to `out`; returns the number of traces written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    target = str(out).replace("'", "''")
    if fmt == "jsonl":
        sql = f"COPY ({_NESTED}) TO '{target}' (FORMAT json)"
    elif fmt == "parquet":
        sql = f"COPY ({_NESTED}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
    else:
        sql = f"COPY ({_formula_safe(db, _FLAT)}) TO '{target}' (FORMAT csv, HEADER)"
    try:
        db.execute(sql)
    except duckdb.IOException as exc:
        raise StoreError(
            f"{out}: cannot write ({str(exc).splitlines()[0].removeprefix('IO Error: ')})"
        ) from None
    return db.rows("SELECT count(*) FROM traces")[0][0]


def export_selection(db: Database, f: CorpusFilter, out: Path) -> int:
    """The selected traces with steps, labels and attributions as JSONL (one trace a line)."""
    selection, params = selection_sql(f)
    target = str(out).replace("'", "''")
    nested = f"SELECT * FROM ({_NESTED}) n WHERE n.trace_id IN ({selection})"
    db.execute(f"COPY ({nested}) TO '{target}' (FORMAT json)", params)
    return count_traces(db, f)
