"""Ingest facade: files -> adapters -> store, with quarantine and counts. No printing here."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tracefail.ingest import registry
from tracefail.ingest.base import Adapter, Rejected, excerpt
from tracefail.ingest.otlp_live import spans_of
from tracefail.ingest.reader import MAX_RECORD_BYTES, SourceError
from tracefail.model import Trace
from tracefail.services.span_merge import IncomingSpans, merge_spans
from tracefail.store import Database
from tracefail.store import runs as run_store
from tracefail.store import traces as trace_store
from tracefail.store.db import StoreError
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


def formats() -> list[tuple[str, str]]:
    """(name, description) of every format ingest understands, in detection order."""
    return [(adapter.name, adapter.description) for adapter in registry.ADAPTERS]


def trace_files(paths: list[Path]) -> list[Path]:
    """The files an ingest of `paths` reads: files as given, folders walked for known endings."""
    return registry.expand(paths)


BATCH = 200
BATCH_CHARS = 8 * 1024 * 1024  # flush early on big records, so memory stays bounded
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
# DuckDB caches every block it writes up to its memory_limit (80% of RAM by default), so an
# uncapped bulk load grows with the file; written blocks are on disk, evicting them is free.
# Not lower: a batch pins ~40 MiB (uncommitted rows, index nodes) and at a 32 MiB cap a commit
# runs out of memory, which DuckDB treats as fatal for the whole database.
DB_MEMORY_CAP = 128 * 1024 * 1024
# An ingest allocates millions of short-lived, acyclic objects (steps, their dicts, Arrow
# buffers); at Python's default gen-0 threshold (700) the collector ran ~1,300 times and each
# oldest-generation pass walked every object the imports left (polars, pyarrow, pydantic):
# 1.2-1.7 s of an 8 s, 50 MB MAST ingest. Objects older than the ingest are frozen out of the
# scans and collections run at GC_THRESHOLD allocations; both are restored afterwards.
GC_THRESHOLD = 50_000


@contextmanager
def _fewer_collections() -> Iterator[None]:
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


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
    run_id: str | None = None

    def as_dict(self) -> dict[str, int]:
        keys = ("files", "traces", "steps", "labels", "attributions", "duplicates", "updated",
                "quarantined")
        return {k: getattr(self, k) for k in keys}


def _text_of(trace: Trace) -> str:
    """The start of a trace's text, for a quarantine row a human will read."""
    return trace.raw[:2000] if trace.raw else "\n".join(s.content[:2000] for s in trace.steps[:3])[:2000]


def _oversized(trace: Trace, limit: int) -> str | None:
    for step in trace.steps:
        if len(step.content) > limit:
            return (
                f"step {step.step_idx} content is {len(step.content):,} characters, over the "
                f"{limit:,}-character field limit"
            )
    if trace.raw and len(trace.raw) > limit * 4:
        return f"raw text is {len(trace.raw):,} characters, over the {limit * 4:,}-character limit"
    return None


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


def ingest(
    db: Database,
    paths: list[Path],
    *,
    format_name: str | None = None,
    max_field_chars: int = MAX_FIELD_CHARS,
    max_record_bytes: int | None = None,
    on_file: Callable[[Path, int, int], None] | None = None,
    on_record: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest files or folders. Bad files and records are quarantined; good ones always land.

    Memory is bounded by one batch (BATCH records or BATCH_CHARS characters) plus DuckDB's
    capped buffer pool and the index of at most COMMIT_STEPS uncommitted steps, whatever the
    size of the input.
    """
    token = MAX_RECORD_BYTES.set(max_record_bytes) if max_record_bytes else None
    try:
        with _fewer_collections(), db.memory_capped(DB_MEMORY_CAP), db.bulk_write() as commit:
            return _ingest(db, paths, format_name, max_field_chars, on_file, on_record, commit)
    except IngestStopped as exc:  # rolled back to the last commit point, which kept the run row
        run_store.finish_run(db, exc.run_id, status="failed")
        raise
    finally:
        if token is not None:
            MAX_RECORD_BYTES.reset(token)


def _ingest(
    db: Database,
    paths: list[Path],
    format_name: str | None,
    max_field_chars: int,
    on_file: Callable[[Path, int, int], None] | None,
    on_record: Callable[[int], None] | None,
    commit: Callable[[], None],
) -> IngestReport:
    forced = registry.by_name(format_name) if format_name else None
    files = registry.expand(paths)
    report = IngestReport()
    report.run_id = run_store.start_run(
        db, "ingest", {"paths": [str(p) for p in paths], "format": format_name}
    )
    commit()  # the run row outlives a failure

    def reject(file: Path, record: str | None, reason: str, text: str = "") -> None:
        report.quarantined += 1
        where = f"{file}: {record}: " if record else f"{file}: "
        report.messages.append(where + reason)
        trace_store.quarantine(db, str(file), record, reason, excerpt(text, 2000), report.run_id)

    pending: list[Trace] = []
    pending_chars = 0
    uncommitted_chars = uncommitted_steps = 0

    def store_batch() -> None:
        added = trace_store.add_traces(db, pending, report.run_id)
        report.traces += added.traces
        report.steps += added.steps
        report.labels += added.labels
        report.attributions += added.attributions
        updated = update_shipped(db, added.same_content, report.run_id)
        report.duplicates += added.duplicates - len(updated)
        report.updated += len(updated)
        report.notes.extend(
            f"{t.source_file}: {t.native_id or t.trace_id}: newer dataset labels, attribution or "
            "outcome stored (the older ones are kept)" for t in updated
        )
        for trace, problem in _merge_otlp(db, [t for t, _ in added.conflicts if _is_otlp(t)], report):
            reject(Path(trace.source_file or "?"), trace.native_id, problem)
        for trace, reason in (c for c in added.conflicts if not _is_otlp(c[0])):
            reject(
                Path(trace.source_file or "?"),
                trace.native_id or trace.trace_id,
                f"{reason}; the stored copy is kept",
                _text_of(trace),
            )

    def flush() -> None:
        nonlocal pending_chars, uncommitted_chars, uncommitted_steps
        uncommitted_chars += pending_chars
        uncommitted_steps += sum(len(trace.steps) for trace in pending)
        pending_chars = 0
        if not pending:
            return
        try:
            store_batch()
        except Exception as exc:  # not the current file's fault: stop, keep what was committed
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise IngestStopped(
                f"{db.path}: storing a batch of {len(pending)} traces failed ({detail}); the ingest "
                "stopped and kept what it had committed before; run it again to continue",
                str(report.run_id),
            ) from exc
        pending.clear()
        if uncommitted_chars >= COMMIT_CHARS or uncommitted_steps >= COMMIT_STEPS:
            commit()
            uncommitted_chars = uncommitted_steps = 0

    seen_in_batch: set[str] = set()
    for number, file in enumerate(files, start=1):
        report.files += 1
        if on_file:
            on_file(file, number, len(files))
        if not file.exists():
            reject(file, None, "no such file")
            continue
        if not file.is_file():  # a FIFO or device would block or never end
            reject(file, None, "not a regular file (a FIFO, device or socket); skipped")
            continue
        try:
            adapter: Adapter = forced or registry.detect(file)
            for count, item in enumerate(adapter.parse(file), start=1):
                if on_record:
                    on_record(count)
                if isinstance(item, Rejected):
                    reject(file, item.record, item.reason, item.excerpt)
                    continue
                problem = _oversized(item, max_field_chars)
                if problem:
                    reject(file, item.native_id or item.trace_id, problem, _text_of(item))
                    continue
                if item.trace_id in seen_in_batch:
                    flush()  # let the store decide duplicate vs conflict against the first copy
                    seen_in_batch.clear()
                seen_in_batch.add(item.trace_id)
                pending.append(item)
                pending_chars += len(item.raw or "") + sum(len(step.content) for step in item.steps)
                if len(pending) >= BATCH or pending_chars >= BATCH_CHARS:
                    flush()
                    seen_in_batch.clear()
        except IngestStopped:
            raise
        except SourceError as exc:
            reject(file, exc.record, str(exc), exc.excerpt)
        except UnicodeDecodeError as exc:
            reject(file, None, f"not UTF-8 text at byte {exc.start} (binary data?)")
        except OSError as exc:
            reject(file, None, f"cannot read: {exc.strerror or exc}")
        except Exception as exc:  # an adapter bug must not cost the rest of the batch
            reject(
                file,
                None,
                f"{type(exc).__name__} while reading: {str(exc).splitlines()[0] if str(exc) else ''}",
            )
    flush()  # batches span files: one transaction per file would dominate on small files
    run_store.finish_run(
        db,
        report.run_id,
        counts=report.as_dict(),
        n_errors=report.quarantined,
        status="done",
    )
    return report
