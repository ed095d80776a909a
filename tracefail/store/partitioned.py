"""A corpus as Hive-partitioned Parquet: written by `export --format parquet --partition-by`, read
back by every read-only command through DuckDB views in an in-memory database.

Layout: one folder per table (`traces/`, `steps/`, `labels/`, ...). Tables keyed by trace are
split by the trace's framework, llm or date (`traces/framework=AG2/data_0.parquet`), so a reader
that filters on the key reads only its partitions' rows (each file's statistics hold its one key
value); the other tables are one file each. The
reader creates the current schema in memory and replaces each exported table by a view that
casts the Parquet columns to the schema's types, so queries see exactly what the DuckDB file had.

A location with `://` (s3://, gs://, http(s)://) is read by DuckDB's httpfs extension, loaded
from its PyPI wheel. Plain HTTP cannot list a folder, so every export also writes `_files.json`
(each table's Parquet paths, relative to the root) and a URL corpus is read through it; a local
folder is globbed, so partitions copied into it later are seen. Partition values are read from
the files (export writes the key columns into them too), not from the path: DuckDB escapes a
value's spaces in folder names (`framework=Claude%20Code`), so over http(s) the path is
percent-encoded once more to reach the file and would no longer decode to the value.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb

from tracefail.store.db import Database, StoreError
from tracefail.store.extensions import load_extension

PARTITION_KEYS = {
    "framework": "t.framework",
    "llm": "t.llm",
    # the day the trace ran (its first step), else the day it was ingested
    "date": "CAST(coalesce((SELECT min(s.start_ts) FROM steps s WHERE s.trace_id = t.trace_id), "
    "t.ingested_at) AS DATE)",
}
MANIFEST = "_files.json"
_URL = re.compile(r"^([a-z][a-z0-9+.-]*):/+(.*)$", re.IGNORECASE)


class PartitionError(StoreError):
    """A Parquet corpus that cannot be written or read; one line naming the location."""


MAX_MANIFEST_BYTES = 16 * 1024 * 1024  # a 2 GiB `_files.json` from a hostile server took 10.7 GB


def location(path: str | Path) -> str:
    """The corpus location as text; `s3:/b/c` (what pathlib makes of `s3://b/c`) is a URL again,
    with `.` and `..` segments (also written `%2e`) resolved, as the HTTP client would."""
    text = str(path)
    match = _URL.match(text)
    if not (match and len(match.group(1)) > 1):
        return text
    host, _, rest = match.group(2).partition("/")
    query = ""
    if "?" in rest:
        rest, query = rest.split("?", 1)
        query = "?" + query
    dotted = re.sub("%2e", ".", rest, flags=re.IGNORECASE)
    parts: list[str] = []
    for part in dotted.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return (
        f"{match.group(1)}://{host}/{'/'.join(parts)}{query}".rstrip("/")
        if rest
        else f"{match.group(1)}://{host}"
    )


def file_urls(connection: duckdb.DuckDBPyConnection, where: str) -> list[str]:
    """Every file a URL corpus may read (its manifest and the Parquet files it lists), exactly:
    the sandbox allows these paths, never a prefix that `..` could climb out of."""
    root = where.rstrip("/")
    return [f"{root}/{MANIFEST}", *(u for urls in _url_lists(connection, where).values() for u in urls)]


def is_partitioned(path: str | Path) -> bool:
    """A folder or a URL is a Parquet corpus; a file is a DuckDB corpus."""
    text = location(path)
    return is_url(text) or Path(text).is_dir()


def is_url(where: str) -> bool:
    return "://" in where


def prepare(connection: duckdb.DuckDBPyConnection, where: str) -> None:
    """Before any lock-down: a URL corpus needs httpfs (from its wheel, never downloaded)."""
    if is_url(where):
        load_extension(connection, "httpfs")
        # read the stored secrets (s3 credentials) now: the sandbox later forbids their folder
        connection.execute("SELECT count(*) FROM duckdb_secrets()")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# every trace with its `raw` text, also of traces that keep it as spans (see migration 004)
_TRACES = "(SELECT t.* REPLACE (r.raw AS raw) FROM traces t JOIN trace_raw r USING (trace_id))"


def _tables(connection: duckdb.DuckDBPyConnection) -> list[tuple[str, bool]]:
    """(table, keyed by trace) for every base table of the schema."""
    rows = connection.execute(
        "SELECT table_name, bool_or(column_name = 'trace_id') FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name IN (SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_type = 'BASE TABLE') GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return [(name, bool(keyed)) for name, keyed in rows]


def export_partitioned(db: Database, out: Path, by: str) -> int:
    """Write every table under `out` (a new or empty folder); returns the number of traces."""
    try:
        return _export(db.connection, out, by)
    except duckdb.Error as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PartitionError(f"{out}: cannot write ({detail})") from None


def _export(connection: duckdb.DuckDBPyConnection, out: Path, by: str) -> int:
    if by not in PARTITION_KEYS:
        raise PartitionError(f"--partition-by {by!r}: choose one of {', '.join(PARTITION_KEYS)}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PartitionError(f"{out}: exists and is not an empty folder; export to a new folder")
    out.mkdir(parents=True, exist_ok=True)
    keys = f"(SELECT t.trace_id, {PARTITION_KEYS[by]} AS key FROM traces t)"
    for table, keyed in _tables(connection):
        if table == "trace_spans":
            continue  # the `raw` of live traces, written into their `traces` rows
        target = out / table
        if not keyed:
            target.mkdir()
            connection.execute(f"COPY {table} TO {_quote(str(target / 'data_0.parquet'))} (FORMAT parquet)")
            continue
        rows = _TRACES if table == "traces" else table
        if table == "traces" and by != "date":
            query = f"SELECT * FROM {rows}"  # the key is one of its own columns
        else:
            query = f"SELECT x.*, k.key AS {by} FROM {rows} x LEFT JOIN {keys} k USING (trace_id)"
        connection.execute(
            f"COPY ({query}) TO {_quote(str(target))} "
            f"(FORMAT parquet, COMPRESSION zstd, PARTITION_BY ({by}), WRITE_PARTITION_COLUMNS true)"
        )
    _write_manifest(out)
    return int(_scalar(connection, "SELECT count(*) FROM traces"))


def _write_manifest(out: Path) -> None:
    """{table: [Parquet paths relative to `out`]}: what a reader over plain HTTP cannot list."""
    tables = {
        folder.name: sorted(p.relative_to(out).as_posix() for p in folder.rglob("*.parquet"))
        for folder in sorted(out.iterdir())
        if folder.is_dir()
    }
    (out / MANIFEST).write_text(json.dumps({"tables": tables}, indent=1) + "\n", encoding="utf-8")


def _sources(connection: duckdb.DuckDBPyConnection, where: str) -> dict[str, str]:
    """table -> what read_parquet reads for it (a glob, or a list of URLs), for tables with files."""
    if is_url(where):
        return {
            table: "[" + ", ".join(_quote(url) for url in urls) + "]"
            for table, urls in _url_lists(connection, where).items()
        }
    found = {}
    for table, _ in _tables(connection):
        files = _quote(f"{where.rstrip('/')}/{table}/**/*.parquet")
        if _scalar(connection, f"SELECT count(*) FROM glob({files})"):
            found[table] = files
    return found


def _url_lists(connection: duckdb.DuckDBPyConnection, where: str) -> dict[str, list[str]]:
    """table -> the URLs of its Parquet files, from the manifest (size-capped; paths that would
    climb out of the corpus with `..` are refused)."""
    root = where.rstrip("/")
    manifest = _quote(f"{root}/{MANIFEST}")
    try:
        size = _scalar(connection, f"SELECT size FROM read_blob({manifest})")
        if size is not None and size > MAX_MANIFEST_BYTES:
            raise ValueError(f"{size:,} bytes, over the {MAX_MANIFEST_BYTES:,}-byte limit")
        text = _scalar(connection, f"SELECT content FROM read_text({manifest})")
        listed = json.loads(text)["tables"]
        for paths in listed.values():
            for path in paths:
                if ".." in re.sub("%2e", ".", path, flags=re.IGNORECASE).split("/"):
                    raise ValueError(f"listed path {path!r} climbs out of the corpus")
    except (duckdb.Error, ValueError, KeyError, TypeError, AttributeError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PartitionError(
            f"{where}: no readable {MANIFEST} (a URL corpus is read through the manifest its "
            f"export wrote; {detail})"
        ) from None
    # http(s) sends the path as written, so a folder named `framework=Claude%20Code` is asked
    # for as `Claude%2520Code`; s3 and gs encode object keys themselves
    encode = root.lower().startswith(("http://", "https://"))
    return {
        table: [f"{root}/{quote(path, safe='/=') if encode else path}" for path in paths]
        for table, paths in listed.items()
        if paths
    }


def mount(connection: duckdb.DuckDBPyConnection, where: str, latest: int) -> None:
    """Replace the (freshly migrated, empty) tables by views over the Parquet files at `where`."""
    try:
        sources = _sources(connection, where)
        if "traces" not in sources:
            raise PartitionError(f"{where}: not a tracefail Parquet corpus (no traces/ Parquet files)")
        for table, _ in _tables(connection):
            if table not in sources:
                continue  # nothing exported for it: the empty table stays
            source = f"read_parquet({sources[table]}, hive_partitioning = false, union_by_name = true)"
            if table == "schema_version":
                exported = _scalar(connection, f"SELECT max(version) FROM {source}")
                if exported != latest:
                    raise PartitionError(
                        f"{where}: exported at schema version {exported}, this tracefail reads "
                        f"{latest}; export it again with this version"
                    )
            columns = connection.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
            select = ", ".join(f'CAST("{name}" AS {kind}) AS "{name}"' for name, kind in columns)
            connection.execute(f"DROP TABLE {table}")
            connection.execute(f"CREATE VIEW {table} AS SELECT {select} FROM {source}")
    except duckdb.Error as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PartitionError(f"{where}: cannot read as a Parquet corpus ({detail})") from None


def _scalar(connection: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """The first column of the one row an aggregate query returns."""
    row = connection.execute(sql).fetchone()
    assert row is not None, sql  # aggregates always return one row
    return row[0]
