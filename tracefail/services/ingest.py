"""Ingest facade: files -> adapters -> store, with quarantine and counts. No printing here."""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tracefail.ingest import registry
from tracefail.ingest.base import excerpt
from tracefail.ingest.fidelity import TARGET, Fidelity
from tracefail.ingest.otlp_live import spans_of
from tracefail.ingest.reader import MAX_RECORD_BYTES
from tracefail.model import Trace
from tracefail.services import ingest_read
from tracefail.services.ingest_read import (
    Check,
    Item,
    Limits,
    Measured,
    ReadPool,
    Reject,
    Unit,
    default_workers,
    fewer_collections,
    grouped,
    read_in_process,
    units,
)
from tracefail.services.span_merge import IncomingSpans, merge_spans
from tracefail.store import Database
from tracefail.store import runs as run_store
from tracefail.store import traces as trace_store
from tracefail.store.db import OVERFLOW_BYTES, ROW_GROUP_ROWS, StoreError
from tracefail.store.rows import Prepared
from tracefail.store.shipped import update_shipped

SUFFIXES = registry.SUFFIXES


class IngestStopped(StoreError):
    """Writing a batch failed: the ingest stopped, rolled back to its last commit point."""

    def __init__(self, message: str, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class UnknownFormat(ValueError):
    """`--format` names no adapter; the message lists the known ones."""


def check_format(name: str) -> None:
    try:
        registry.by_name(name)
    except KeyError as exc:
        raise UnknownFormat(str(exc.args[0])) from None


def check_file(path: Path, *, format_name: str | None = None, max_record_bytes: int | None = None) -> Check:
    """What `ingest` would make of one file (adapter, traces, steps, rejections, and the text it
    would lose), without writing a corpus."""
    return ingest_read.check(
        path, format_name, Limits(MAX_FIELD_CHARS, max_record_bytes or MAX_RECORD_BYTES.get())
    )


def formats() -> list[tuple[str, str]]:
    """(name, description) of every format ingest understands, in detection order."""
    return [(adapter.name, adapter.description) for adapter in registry.READERS]


def trace_files(paths: list[Path]) -> list[Path]:
    """The files an ingest of `paths` reads: files as given, folders walked for known endings."""
    return registry.expand(paths)


# Batches are written into one held transaction, committed every COMMIT_CHARS characters or
# COMMIT_STEPS steps: each DuckDB commit checkpoints and rewrites the open row group of `traces`
# (all `raw` text so far), so per-batch commits made the database time grow with the square of
# the input. Uncommitted rows spill to disk, but their primary-key index nodes stay in memory
# (at the cap below a commit out of memory is fatal), hence the step bound (~350k uncommitted
# steps of a 200 MB MAST file were measured fine). A failure rolls back to the last commit;
# everything committed before it stays.
COMMIT_CHARS = 256 * 1024 * 1024
COMMIT_STEPS = 250_000
MAX_FIELD_CHARS = 16 * 1024 * 1024
# From this much input an ingest reads in worker processes: starting them (the forkserver
# imports the readers once, ~1 s) costs less than a single reader would take on the rest.
PARALLEL_BYTES = 32 * 1024 * 1024
# DuckDB caches every block it writes up to its memory_limit (80% of RAM by default), so an
# uncapped bulk load grows with the file; written blocks are on disk, evicting them is free.
# Not lower: a batch pins ~40 MiB (uncommitted rows, index nodes) and at a 32 MiB cap a commit
# runs out of memory, which DuckDB treats as fatal for the whole database. A commit's
# checkpoint also pins the long strings of the row groups it rewrites, so the cap grows by
# OPEN_TEXT_FACTOR times the bytes of long strings in the open row groups (`_OpenText`).
DB_MEMORY_CAP = 128 * 1024 * 1024
OPEN_TEXT_FACTOR = 2
# Store tasks (batches, quarantine rows, commits) the reader may run ahead of the writer: one
# batch being written and one prepared keep both halves busy; more only holds memory.
STORE_DEPTH = 2
# How often (seconds) the reading thread, long stretches of Python, must offer the GIL to the
# store thread. The store thread gives it up in every DuckDB and polars call and needs it back
# after each, hundreds of times a batch: at the interpreter's 5 ms it waited most of that, at
# 0.5 ms a 50 MB MAST ingest with `--workers 0` took 0.87x the time for the same CPU (three
# alternating rounds, docs/benchmarks.md).
GIL_SWITCH_S = 0.0005


@dataclass
class IngestReport:
    files: int = 0
    traces: int = 0
    steps: int = 0
    labels: int = 0
    attributions: int = 0
    duplicates: int = 0
    updated: int = 0  # same steps, new shipped labels/attribution/outcome; or OTLP spans merged
    quarantined: int = 0
    messages: list[str] = field(default_factory=list)  # one line per problem: "file: record: reason"
    notes: list[str] = field(default_factory=list)  # one line per trace updated in place
    readers: dict[str, str] = field(default_factory=dict)  # file -> the format that read it
    reader_processes: int = 0  # worker processes that read (0: all read in the ingest's process)
    run_id: str | None = None
    # per file read, in order: how much of its text the stored traces keep (None: not measured)
    fidelity: dict[str, Fidelity | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        keys = ("files", "traces", "steps", "labels", "attributions", "duplicates", "updated", "quarantined")
        return {k: getattr(self, k) for k in keys}

    @property
    def text(self) -> Fidelity:
        """All measured files together: text lines and how many are retrievable."""
        return sum((f for f in self.fidelity.values() if f is not None), Fidelity(0, 0))

    def below_target(self) -> dict[str, Fidelity]:
        """The files that keep less than TARGET of their text lines."""
        return {file: f for file, f in self.fidelity.items() if f is not None and f.share < TARGET}

    def fidelity_counts(self) -> dict[str, object]:
        """What the run row keeps of the measure: the totals and the files below TARGET."""
        total = self.text
        return {
            "text_lines": total.lines,
            "text_lines_kept": total.kept,
            "files_not_measured": sum(f is None for f in self.fidelity.values()),
            "files_below_target": {file: [f.kept, f.lines] for file, f in self.below_target().items()},
        }


def _is_otlp(trace: Trace) -> bool:
    """A trace built from OTLP spans, whose `raw` keeps them: another file's spans merge into it."""
    return trace.metadata.get("format") == "otlp" and bool(trace.raw)


def _merge_otlp(db: Database, traces: list[Trace], report: IngestReport) -> list[tuple[Trace, str]]:
    """Merge the spans of OTLP traces already stored (one trace split over several files, or a
    trace `serve` received) into the stored trace; returns what could not be merged, and why."""
    if not traces:
        return []
    by_native = {trace.native_id: trace for trace in traces}
    incoming = []
    for trace in by_native.values():
        groups, logs = spans_of(trace.raw)
        incoming.append(IncomingSpans(str(trace.native_id), groups, str(trace.source_file), "otlp", logs))
    merged = merge_spans(db, incoming, report.run_id)
    report.duplicates += len(merged.unchanged)
    report.updated += len(merged.changed)
    report.notes.extend(
        f"{by_native[native].source_file}: trace {native}: spans merged into the stored trace "
        f"(now {steps} steps; its labels are kept, its features deleted)"
        for native, steps in merged.changed.items()
    )
    return [(by_native[native], problem) for native, problem in merged.problems]


class _StoreThread:
    """The store's half of an ingest, run on one thread in order, at most STORE_DEPTH tasks
    behind the reading. DuckDB releases the GIL while it writes, so reading, splitting and
    hashing the next batch overlap with writing this one; every use of the connection goes
    through here, so two threads never use it at once. After a task fails the rest are
    skipped and the failure is raised to the reader at its next hand-over."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracefail-ingest-store")
        self._queued: deque[Future[None]] = deque()
        self._failed = False

    def run(self, work: Callable[[], None]) -> None:
        self._queued.append(self._pool.submit(self._guarded, work))
        while len(self._queued) > STORE_DEPTH or (self._queued and self._queued[0].done()):
            self._queued.popleft().result()

    def _guarded(self, work: Callable[[], None]) -> None:
        if self._failed:
            return
        try:
            work()
        except BaseException:
            self._failed = True
            raise

    def drain(self) -> None:
        while self._queued:
            self._queued.popleft().result()

    def __enter__(self) -> _StoreThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self._failed = True  # on the way out after an error nothing more is written
        self._pool.shutdown(wait=True, cancel_futures=True)


def ingest(
    db: Database,
    paths: list[Path],
    *,
    format_name: str | None = None,
    max_field_chars: int = MAX_FIELD_CHARS,
    max_record_bytes: int | None = None,
    workers: int | None = None,
    on_file: Callable[[Path, int, int], None] | None = None,
    on_record: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest files or folders. Bad files and records are quarantined; good ones always land.

    `workers` reader processes (None: for an input of PARALLEL_BYTES or more one more than the
    cores the load leaves idle, none where less than one is, `default_workers`; for less, none;
    0 or 1: none) read while this process writes; the report says how many did. Memory is
    bounded by a few units and batches plus DuckDB's capped buffer pool and the index of at most
    COMMIT_STEPS uncommitted steps, whatever the size of the input.
    """
    limits = Limits(max_field_chars, max_record_bytes or MAX_RECORD_BYTES.get())
    files = registry.expand(paths)
    if workers is None:
        workers = default_workers() if _input_bytes(files) >= PARALLEL_BYTES else 0
    pool = ReadPool(workers, limits) if workers > 1 else None
    try:
        open_text = _OpenText(db)
        with (
            fewer_collections(),
            quick_gil_handover(),
            db.memory_capped(DB_MEMORY_CAP + OPEN_TEXT_FACTOR * open_text.bytes) as at_least,
            db.threads_capped(1),
            db.checkpoint_each_commit(),
            db.bulk_write() as commit,
            _StoreThread() as store,
        ):

            def written(batch: Prepared) -> None:
                open_text.add(batch)
                at_least(DB_MEMORY_CAP + OPEN_TEXT_FACTOR * open_text.bytes)

            report = _ingest(
                db, paths, files, format_name, limits, pool, on_file, on_record, commit, store, written
            )
            report.reader_processes = workers if pool is not None else 0
            return report
    except IngestStopped as exc:  # rolled back to the last commit point, which kept the run row
        run_store.finish_run(db, exc.run_id, status="failed")
        raise
    finally:
        if pool is not None:
            pool.close()


@contextmanager
def quick_gil_handover() -> Iterator[None]:
    """Run with the GIL offered every GIL_SWITCH_S (or the shorter interval already set),
    then restore the interpreter's interval."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, GIL_SWITCH_S))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


class _OpenText:
    """Text bytes in the last, open row groups of `traces` and `steps`, counted as batches are
    written (a table's count starts again when its rows pass a row group's end): the memory a
    commit's checkpoint pins, whatever the mix of step sizes."""

    def __init__(self, db: Database) -> None:
        self._raw = db.open_text_bytes("traces", "raw")
        self._steps = sum(db.open_text_bytes("steps", c) for c in ("content", "tool_calls", "metadata"))
        self._trace_rows = db.open_rows("traces")
        self._step_rows = db.open_rows("steps")

    @property
    def bytes(self) -> int:
        return self._raw + self._steps

    def add(self, batch: Prepared) -> None:
        raw, steps = batch.text_bytes(OVERFLOW_BYTES)
        self._trace_rows += len(batch.headers)
        self._step_rows += batch.steps.num_rows
        self._raw = raw if self._trace_rows >= ROW_GROUP_ROWS else self._raw + raw
        self._steps = steps if self._step_rows >= ROW_GROUP_ROWS else self._steps + steps
        self._trace_rows %= ROW_GROUP_ROWS
        self._step_rows %= ROW_GROUP_ROWS


def _input_bytes(files: list[Path]) -> int:
    total = 0
    for file in files:
        with suppress(OSError):
            total += file.stat().st_size
    return total


def _ingest(
    db: Database,
    paths: list[Path],
    files: list[Path],
    format_name: str | None,
    limits: Limits,
    pool: ReadPool | None,
    on_file: Callable[[Path, int, int], None] | None,
    on_record: Callable[[int], None] | None,
    commit: Callable[[], None],
    store: _StoreThread,
    written: Callable[[Prepared], None],
) -> IngestReport:
    """Reads here (or in `pool`); everything that touches `db` goes to `store`, in order."""
    if format_name:
        registry.by_name(format_name)
    report = IngestReport()
    report.run_id = run_store.start_run(
        db, "ingest", {"paths": [str(p) for p in paths], "format": format_name}
    )
    commit()  # the run row outlives a failure

    def quarantine(file: Path, record: str | None, reason: str, text: str) -> None:
        report.quarantined += 1
        where = f"{file}: {record}: " if record else f"{file}: "
        report.messages.append(where + reason)
        trace_store.quarantine(db, str(file), record, reason, excerpt(text, 2000), report.run_id)

    def store_batch(batch: Prepared) -> None:
        try:
            added = trace_store.add_prepared(db, batch, report.run_id)
            written(batch)
            report.traces += added.traces
            report.steps += added.steps
            report.labels += added.labels
            report.attributions += added.attributions
            updated = update_shipped(db, added.same_content, report.run_id)
            report.duplicates += added.duplicates - len(updated)
            report.updated += len(updated)
            report.notes.extend(
                f"{t.source_file}: {t.native_id or t.trace_id}: newer dataset labels, attribution "
                "or outcome stored (the older ones are kept)"
                for t in updated
            )
            otlp = [t for t, _ in added.conflicts if _is_otlp(t)]
            for trace, problem in _merge_otlp(db, otlp, report):
                quarantine(Path(trace.source_file or "?"), trace.native_id, problem, "")
            others = [c for c in added.conflicts if not _is_otlp(c[0])]
            refreshed = trace_store.refresh_grown(db, batch, [t for t, _ in others], report.run_id)
            grown = {t.trace_id for t in refreshed.headers} if refreshed is not None else set()
            if refreshed is not None:
                update_shipped(db, refreshed, report.run_id)
                report.updated += len(grown)
                report.notes.extend(
                    f"{t.source_file}: {t.native_id or t.trace_id}: a later export of the stored trace (its "
                    "spans and more) replaced it; its labels are kept, its features deleted"
                    for t in refreshed.headers
                )
            for trace, reason in (c for c in others if c[0].trace_id not in grown):
                quarantine(
                    Path(trace.source_file or "?"),
                    trace.native_id or trace.trace_id,
                    f"{reason}; the stored copy is kept",
                    batch.opening(trace.trace_id),
                )
        except Exception as exc:  # not the current file's fault: stop, keep what was committed
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise IngestStopped(
                f"{db.path}: storing a batch of {len(batch.headers)} traces failed ({detail}); the "
                "ingest stopped and kept what it had committed before; run it again to continue",
                str(report.run_id),
            ) from exc

    pending: list[Prepared] = []
    pending_ids: set[str] = set()
    pending_traces = pending_chars = uncommitted_chars = uncommitted_steps = records = 0

    def flush() -> None:
        nonlocal pending, pending_ids, pending_traces, pending_chars, uncommitted_chars, uncommitted_steps
        if not pending:
            return
        batch = Prepared.joined(pending)
        uncommitted_chars += batch.chars
        uncommitted_steps += batch.steps.num_rows
        pending, pending_ids, pending_traces, pending_chars = [], set(), 0, 0
        store.run(partial(store_batch, batch))
        if uncommitted_chars >= COMMIT_CHARS or uncommitted_steps >= COMMIT_STEPS:
            store.run(commit)
            uncommitted_chars = uncommitted_steps = 0

    def take(item: Item) -> None:
        """Small files' batches are joined up to BATCH traces or BATCH_CHARS characters (a DuckDB
        write per file would dominate on a folder of small files); an id seen in the batch
        being joined flushes it first, so the store decides duplicate or conflict."""
        nonlocal pending_traces, pending_chars, records
        if isinstance(item, Measured):
            key = str(item.file)
            known = report.fidelity.get(key)
            if key not in report.fidelity or item.fidelity is None:
                report.fidelity[key] = item.fidelity
            elif known is not None:
                report.fidelity[key] = known + item.fidelity
            return
        if isinstance(item, Reject):
            records += 1
            store.run(partial(quarantine, item.file, item.record, item.reason, item.text))
            return
        ids = {header.trace_id for header in item.headers}
        if ids & pending_ids:
            flush()
        pending.append(item)
        pending_ids.update(ids)
        pending_traces += len(item.headers)
        pending_chars += item.chars
        records += len(item.headers)
        if pending_traces >= ingest_read.BATCH or pending_chars >= ingest_read.BATCH_CHARS:
            flush()
        if on_record:
            on_record(records)

    def every_unit() -> Iterator[Unit | Reject]:
        for number, file in enumerate(files, start=1):
            report.files += 1
            if on_file:
                on_file(file, number, len(files))
            for unit in units(file, format_name, pool is not None):
                if isinstance(unit, Unit):
                    report.readers.setdefault(str(file), unit.adapter)
                yield unit

    try:
        for group in grouped(every_unit()):
            for item in pool.submit(group) if pool else read_in_process(group, limits):
                take(item)
        for item in pool.drain() if pool else ():
            take(item)
    except BrokenProcessPool as exc:
        raise IngestStopped(
            f"{db.path}: a reading process died (out of memory?); the ingest stopped and kept what "
            "it had committed before; run it again, with --workers 0 to read in one process",
            str(report.run_id),
        ) from exc
    flush()
    store.drain()
    run_store.finish_run(
        db,
        report.run_id,
        counts={**report.as_dict(), "fidelity": report.fidelity_counts()},
        n_errors=report.quarantined,
        status="done",
    )
    return report
