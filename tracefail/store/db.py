"""The DuckDB connection and the numbered migrations. Only `tracefail.store` uses this module."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from tracefail.store.rows import now

DEFAULT_DB = "tracefail.duckdb"
ROW_GROUP_ROWS = 122_880  # DuckDB's default row group size: a checkpoint rewrites the last one
# Strings longer than this live outside DuckDB's column segments, in blocks a scan or checkpoint
# of the segment keeps pinned; shorter ones are inline and evictable
OVERFLOW_BYTES = 4096
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
# DuckDB's words when another process holds the file; a bare "lock" also matched "block" in a
# corrupt file's message and any path with "lock" in it, and then a writer waited for nobody
_LOCK_HELD = "Could not set lock on file"
LOCK_RETRY_S = 0.1  # how often `open_waiting` tries again: a refused open costs microseconds


class StoreError(Exception):
    """A store problem a user can act on; the message is one line naming the file."""


class DatabaseLocked(StoreError):
    """Another process holds the file's write lock; waiting and retrying can succeed.
    `holder` is DuckDB's "(PID n)" of that process, empty when DuckDB did not say."""

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder


def snapshot_path(path: str | Path) -> Path:
    """Where a corpus being written by `tracefail serve` publishes its read-only copy."""
    path = Path(path)
    return path.with_name(path.name + ".live-snapshot")


_SANDBOX: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,
    # no spilling: DuckDB lets a query read its temp folder (`<cwd>/.tmp/` for a Parquet corpus),
    # and a query stays within its memory limit instead of filling the disk
    "temp_directory": "",
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no detail"


_UNITS = {
    "b": 1,
    "bytes": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def _setting_bytes(text: str) -> float:
    """DuckDB's memory setting text ("18.8 GiB", "256.0 MiB", "0 bytes") as bytes."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", text or "")
    if not match:
        return float("inf")
    return float(match.group(1)) * _UNITS.get(match.group(2).lower() or "b", float("inf"))


# migrations that (re)create the full-text index's tables or drop some of its documents: the
# index is caught up right after them
SEARCH_INDEX_MIGRATIONS = (6, 7, 9)


def migrations() -> list[tuple[int, str, str]]:
    """(number, file name, SQL) for every shipped migration, in order."""
    found = []
    for entry in resources.files("tracefail.store.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def latest_version() -> int:
    return migrations()[-1][0]


def open_waiting(
    path: str | Path,
    wait_s: float,
    *,
    read_only: bool = False,
    on_wait: Callable[[DatabaseLocked], None] | None = None,
) -> Database:
    """Open `path`, waiting up to `wait_s` for another process to let go of it (a browser
    between filter changes, a writer finishing), then raise its `DatabaseLocked`, which names
    the holder. `on_wait(error)` is called once, when the first try finds the file held, so a
    command that waits can say why it is silent. Only the lock is waited for: any other
    error is raised at once."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return Database(path, read_only=read_only)
        except DatabaseLocked as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            if on_wait is not None:
                on_wait(exc)
                on_wait = None
        time.sleep(min(LOCK_RETRY_S, left))


class Database:
    """One corpus file (or `:memory:`), migrated to the current schema on open."""

    def __init__(
        self,
        path: str | Path = DEFAULT_DB,
        *,
        read_only: bool = False,
        sandbox: bool = False,
        memory_limit: str | None = None,
    ) -> None:
        """`sandbox` opens the file for untrusted SQL: read-only, no file or network access
        outside it, no extension install or autoload, and a configuration that cannot be changed.
        `memory_limit` (DuckDB's text, "1GB") caps the connection's memory."""
        from tracefail.store.partitioned import is_partitioned

        self.path = str(path)
        self._held = False  # inside bulk_write: transaction() joins the held transaction
        self.read_only = read_only = read_only or sandbox
        self.sandbox = sandbox
        self._config = {
            **(_SANDBOX if sandbox else {}),
            **({"memory_limit": memory_limit} if memory_limit else {}),
        }
        self.snapshot_of: str | None = None  # set when this reads serve's published copy
        if is_partitioned(self.path):
            self._open_partitioned(sandbox)
            return
        if read_only and self.path != ":memory:" and not Path(self.path).exists():
            raise StoreError(f"{self.path}: no such database (run `tracefail ingest` first)")
        try:
            self.connection = duckdb.connect(self.path, read_only=read_only, config=self._config)
        except duckdb.IOException as exc:
            text = str(exc)
            locked = _LOCK_HELD in text
            held_by = " ".join(re.findall(r"\(PID \d+\)", text)[:1])
            if locked and read_only and snapshot_path(self.path).exists():
                # `serve` holds the file and publishes a copy after its commits: read that
                self.snapshot_of, self.path = self.path, str(snapshot_path(self.path))
                self.connection = duckdb.connect(
                    self.path, read_only=True, config=_SANDBOX if sandbox else {}
                )
            elif locked and read_only:
                raise DatabaseLocked(
                    f"{self.path}: the database is open for writing in another process {held_by}".rstrip()
                    + "; wait for it to finish or open it read-only later",
                    held_by,
                ) from None
            elif locked:  # a writer or a reader (`tracefail browse` reads) holds it
                raise DatabaseLocked(
                    f"{self.path}: the database is open in another process {held_by}".rstrip()
                    + "; wait for it to finish (an idle `tracefail browse` lets go of it within "
                    "seconds) and try again",
                    held_by,
                ) from None
            elif "Permission denied" in text:  # not a broken file: say what the user can change
                doing = "read" if read_only else "write"
                raise StoreError(f"{self.path}: this user may not {doing} it (permission denied)") from None
            else:
                raise StoreError(
                    f"{self.path}: cannot open as a DuckDB database ({_first_line(text)})"
                ) from None
        except duckdb.Error as exc:
            detail = _first_line(str(exc))
            raise StoreError(f"{self.path}: cannot open as a DuckDB database ({detail})") from None
        # DuckDB draws its own progress bar on stdout for slow queries; stdout carries our data
        self.connection.execute("SET enable_progress_bar = false")
        self._migrate()
        if sandbox:
            self.connection.execute("SET lock_configuration = true")

    def _open_partitioned(self, sandbox: bool) -> None:
        """A Parquet corpus folder or URL: the schema in memory, its tables as views (read-only).
        In the sandbox only the corpus' own location stays readable."""
        from tracefail.store.partitioned import PartitionError, file_urls, is_url, location, mount, prepare

        self.path = location(self.path)
        if not self.read_only:
            raise StoreError(
                f"{self.path}: a Parquet corpus is read-only; write to the DuckDB file it was "
                "exported from, then export again"
            )
        config = {k: v for k, v in self._config.items() if k != "enable_external_access"}
        self.connection = duckdb.connect(":memory:", config=config)
        self.connection.execute("SET enable_progress_bar = false")
        try:
            prepare(self.connection, self.path)
        except StoreError:
            self.connection.close()
            raise
        if sandbox and is_url(self.path):  # exact files: the HTTP client resolves `..` itself
            self.connection.execute("SET allowed_paths = ?", [file_urls(self.connection, self.path)])
            self.connection.execute("SET enable_external_access = false")
        elif sandbox:
            root = self.path.rstrip("/") + "/"
            self.connection.execute("SET allowed_directories = [?]", [root])
            self.connection.execute("SET enable_external_access = false")
        self.read_only = False  # the in-memory schema is created, then replaced by views
        self._migrate()
        self.read_only = True
        try:
            mount(self.connection, self.path, latest_version())
        except PartitionError:
            self.connection.close()
            raise
        if sandbox:
            self.connection.execute("SET lock_configuration = true")

    def _one(self, sql: str) -> Any:
        """The first column of the single row a scalar query returns."""
        row = self.connection.execute(sql).fetchone()
        assert row is not None, sql  # aggregates and settings always return one row
        return row[0]

    # --- schema -----------------------------------------------------------------------------
    def schema_version(self) -> int:
        exists = self._one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
        )
        if not exists:
            return 0
        return int(self._one("SELECT max(version) FROM schema_version") or 0)

    def _migrate(self) -> None:
        current = self.schema_version()
        latest = latest_version()
        if current > latest:
            raise StoreError(
                f"{self.path}: schema version {current} is newer than this tracefail "
                f"understands ({latest}); upgrade tracefail"
            )
        pending = [m for m in migrations() if m[0] > current]
        if not pending:
            return
        if self.read_only:
            raise StoreError(
                f"{self.path}: schema version {current} needs migrating to {latest}; "
                "open it once without read-only (any write command) to upgrade"
            )
        if current == 0 and self._has_foreign_tables():
            raise StoreError(f"{self.path}: a DuckDB file, but not a tracefail database")
        for number, name, sql in pending:
            with self.transaction():
                if number == 1:
                    self.connection.execute(
                        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                        "name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
                    )
                self.connection.execute(sql)
                self.connection.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [number, name, now()])
        if any(number in SEARCH_INDEX_MIGRATIONS for number, _, _ in pending):
            from tracefail.store.search import catch_up  # search builds on this module

            catch_up(self)  # the corpus' steps into the new full-text index, once

    def _has_foreign_tables(self) -> bool:
        count = self._one("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main'")
        return bool(count)

    # --- access -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All-or-nothing writes: a killed process leaves either everything or nothing.
        Inside `bulk_write` this joins the held transaction, which commits at its own points."""
        if self._held:
            yield self.connection
            return
        self.connection.execute("BEGIN TRANSACTION")
        try:
            yield self.connection
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        else:
            self.connection.execute("COMMIT")

    @contextmanager
    def bulk_write(self) -> Iterator[Callable[[], None]]:
        """One transaction held across many writes; the caller commits by calling what this
        yields (it opens the next one), and the end commits the rest.

        Why: each commit of a few MB costs DuckDB a WAL write and soon a checkpoint that
        rewrites the table's open row group, so per-batch commits made up most of an ingest's
        database time; one commit of tens of MB goes straight to the data file. An error rolls
        back to the last commit point (nothing committed before it is lost) and is raised.
        """
        if self._held:
            raise RuntimeError("bulk_write does not nest")

        def commit() -> None:
            self.connection.execute("COMMIT")
            self.connection.execute("BEGIN TRANSACTION")

        self.connection.execute("BEGIN TRANSACTION")
        self._held = True
        try:
            yield commit
        except BaseException:
            self._held = False
            with suppress(duckdb.Error):  # a dead connection must not mask the original error
                self.connection.execute("ROLLBACK")
            raise
        self._held = False
        self.connection.execute("COMMIT")

    def _reset(self, name: str) -> str:
        """Reset size setting `name` to its default and return the statement that brings the
        current value back: RESET where it was the default (exact, where its text is rounded),
        else SET to that text."""
        setting = f"SELECT current_setting('{name}')"
        before = self._one(setting)
        self.connection.execute(f"RESET {name}")
        return f"RESET {name}" if self._one(setting) == before else f"SET {name} = '{before}'"

    @contextmanager
    def memory_capped(self, limit_bytes: int) -> Iterator[Callable[[int], None]]:
        """Cap DuckDB's buffer pool for a long write, then restore the previous limit. Yields
        `at_least(n)`, which raises the cap to `n` bytes (never above the previous limit).

        DuckDB keeps every block it writes cached up to `memory_limit` (80% of RAM by default),
        so a bulk load's RSS grows with the data written. Capped, written blocks are evicted
        (they are on disk already). A lower limit set by the user is kept. But a checkpoint
        pins every long string of a row group it rewrites, so the caller sizes the cap by the
        text bytes of the open row groups (140 steps of 1 MiB were fatal at a fixed 128 MiB).
        """
        ceiling = _setting_bytes(self._one("SELECT current_setting('memory_limit')"))
        if ceiling <= limit_bytes:
            yield lambda wanted: None
            return
        restore = self._reset("memory_limit")
        current = int(limit_bytes)

        def at_least(wanted: int) -> None:
            nonlocal current
            wanted = int(min(wanted, ceiling))
            if wanted > current:
                self.connection.execute(f"SET memory_limit = '{wanted}B'")
                current = wanted

        try:
            self.connection.execute(f"SET memory_limit = '{current}B'")
        except duckdb.Error:  # cannot evict down to the cap right now: run uncapped
            self.connection.execute(restore)
            yield lambda wanted: None
            return
        try:
            yield at_least
        except BaseException:
            with suppress(duckdb.Error):  # a dead connection must not mask the original error
                self.connection.execute(restore)
            raise
        self.connection.execute(restore)

    def open_text_bytes(self, table: str, column: str) -> int:
        """UTF-8 bytes of `column`'s long (OVERFLOW_BYTES+) strings in `table`'s last, still open
        row group: what DuckDB pins when a checkpoint rewrites that group."""
        group = ROW_GROUP_ROWS
        last = f"(SELECT coalesce(max(rowid), 0) // {group} * {group} FROM {table})"
        long = f"sum(strlen({column})) FILTER (WHERE strlen({column}) > {OVERFLOW_BYTES})"
        return int(self._one(f"SELECT coalesce({long}, 0) FROM {table} WHERE rowid >= {last}"))

    def open_rows(self, table: str) -> int:
        """Rows in `table`'s last row group (by position: deleted rows keep theirs)."""
        return int(self._one(f"SELECT coalesce(max(rowid) + 1, 0) FROM {table}")) % ROW_GROUP_ROWS

    @contextmanager
    def threads_capped(self, threads: int) -> Iterator[None]:
        """Cap DuckDB's worker threads for a long write, then restore the previous number.

        An ingest's reading (its own thread, or reader processes) keeps the other cores busy;
        DuckDB's parallel insert and checkpoint on top of it cost ~40% more CPU for the same
        rows (1.2 s against 1.8-2.3 s for a 50 MB MAST file's batches, measured).
        """
        before = int(self._one("SELECT current_setting('threads')"))
        if before <= threads:
            yield
            return
        self.connection.execute(f"SET threads = {int(threads)}")
        try:
            yield
        finally:
            with suppress(duckdb.Error):  # a dead connection must not mask the original error
                self.connection.execute(f"SET threads = {before}")

    @contextmanager
    def checkpoint_each_commit(self) -> Iterator[None]:
        """Write each commit straight into the database file, then restore the threshold.

        DuckDB logs a commit to the write-ahead log and checkpoints later, once the log passed
        `checkpoint_threshold` (16 MB): a bulk load's rows went to disk twice, and the log half
        of it (0.3 s of a 50 MB MAST file's 0.6 s commit) came on top of the checkpoint that
        followed at the next commit or at close. At a zero threshold a commit checkpoints
        instead of logging (measured: commit 0.5 s, close 0.01 s against 0.6 s and 0.3 s).
        """
        restore = self._reset("checkpoint_threshold")
        self.connection.execute("SET checkpoint_threshold = '0B'")
        try:
            yield
        finally:
            with suppress(duckdb.Error):  # a dead connection must not mask the original error
                self.connection.execute(restore)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyConnection:
        return self.connection.execute(sql, params or [])

    def frame(self, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        """A query result as a polars DataFrame (Arrow under the hood, no row loop)."""
        relation = self.connection.sql(sql, params=list(params) if params else None)
        return relation.pl() if relation is not None else pl.DataFrame()

    def rows(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.connection.execute(sql, params or []).fetchall()

    def publish_snapshot(self) -> None:
        """Publish what is committed as a read-only copy readers open while this process holds
        the file (DuckDB lets no other process open it, not even to read). A checkpoint moves
        the log into the file, the file is copied beside it and renamed over the last copy, so
        a reader opens either the old copy or the new one, never half of one; readers that have
        the old one open keep it until they close it. Costs a file copy: the caller spaces them."""
        self.connection.execute("CHECKPOINT")
        target = snapshot_path(self.path)
        partial = target.with_name(target.name + ".partial")
        # copied by a child process: DuckDB's lock is a POSIX record lock, which this process
        # would drop for good by opening and closing the file itself
        copy = (
            [cp, self.path, str(partial)]
            if (cp := shutil.which("cp"))
            else [
                sys.executable,
                "-c",
                "import shutil, sys; shutil.copyfile(*sys.argv[1:])",
                self.path,
                str(partial),
            ]
        )
        subprocess.run(copy, check=True, capture_output=True)
        os.replace(partial, target)

    def drop_snapshot(self) -> None:
        """Remove the published copy (the file itself is readable again once this one closes)."""
        snapshot_path(self.path).unlink(missing_ok=True)

    def cursor(self) -> Database:
        """Another connection to this open database, for one thread (DuckDB's connections are not
        shared between threads): no file open, no lock, no migration check; close it when done."""
        if self.sandbox:  # its configuration is locked: a cursor could not turn the progress bar off
            raise StoreError(f"{self.path}: a sandboxed database hands out no cursors")
        twin = copy.copy(self)
        twin.connection = self.connection.cursor()
        twin._held = False  # its own transactions
        twin.connection.execute("SET enable_progress_bar = false")
        return twin

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
