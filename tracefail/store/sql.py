"""User SQL (`tracefail sql`): one SELECT-like statement on a sandboxed, read-only connection."""

from __future__ import annotations

import signal
import threading

import duckdb
import polars as pl

from tracefail.store.db import Database, StoreError

# What a query may be. PRAGMA/SET/COPY/EXPORT/ATTACH/INSTALL/LOAD/CALL and every write parse
# to other types; `PRAGMA version`-style table pragmas parse to SELECT and only read.
_ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_query(sql: str) -> None:
    """Refuse anything but one read-only statement, naming what was refused."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise StoreError("SQL error: " + _one_line(str(exc))) from None
    if len(statements) != 1:
        raise StoreError(f"sql runs exactly one read-only statement; got {len(statements)} statements")
    kind = statements[0].type
    if kind not in _ALLOWED:
        raise StoreError(
            f"sql is read-only: {kind.name} statements are refused (only SELECT, WITH, "
            "VALUES, FROM, DESCRIBE, SUMMARIZE, EXPLAIN)"
        )


def run_query(db: Database, sql: str, timeout: float | None = None) -> pl.DataFrame:
    """Run user SQL on `db`, which the caller opened with `sandbox=True`; interrupted after
    `timeout` seconds."""
    check_query(sql)
    timer = threading.Timer(timeout, db.connection.interrupt) if timeout else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    # Ctrl-C does not reach a running DuckDB query on its own: the handler interrupts it
    on_main = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGINT, lambda *_: db.connection.interrupt()) if on_main else None
    try:
        relation = db.connection.sql(sql)
        if relation is None:
            return pl.DataFrame()
        if any("INTERVAL" in str(t) for t in relation.types):  # Arrow has no polars equivalent
            relation = relation.project(
                ", ".join(
                    f"CAST({_quote(n)} AS VARCHAR) AS {_quote(n)}" if "INTERVAL" in str(t) else _quote(n)
                    for n, t in zip(relation.columns, relation.types, strict=True)
                )
            )
        return relation.pl()
    except duckdb.InterruptException:
        if timer is not None and timer.finished.is_set():
            raise StoreError(f"SQL error: the query ran past its {timeout:g}-second time limit") from None
        raise KeyboardInterrupt from None
    except duckdb.OutOfMemoryException as exc:
        raise StoreError(
            f"SQL error: the query needs more memory than its limit ({_one_line(str(exc))})"
        ) from None
    except duckdb.Error as exc:
        raise StoreError("SQL error: " + _one_line(str(exc))) from None
    finally:
        if timer is not None:
            timer.cancel()
        if on_main:
            signal.signal(signal.SIGINT, before)
