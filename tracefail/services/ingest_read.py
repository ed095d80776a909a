"""The reading half of an ingest: a file, or a run of a big file's records, read into prepared
batches and rejections. Small inputs are read on the ingest's own thread; big ones by worker
processes (`ReadPool`), with the same code, so the two halves of the machine split the work
that is Python (decoding, splitting logs, hashing, building rows) while DuckDB writes."""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path

from tracefail.ingest import fidelity, registry
from tracefail.ingest.base import ColumnAdapter, RecordAdapter, Rejected
from tracefail.ingest.reader import MAX_RECORD_BYTES, RawRecord, SourceError
from tracefail.model import Trace
from tracefail.store import rows
from tracefail.store.rows import Prepared

BATCH = 200
BATCH_CHARS = 8 * 1024 * 1024  # flush early on big records, so memory stays bounded
# A worker reads a whole file up to this size; a bigger file of independent records (MAST-Data's
# arrays) is cut into runs of RUN_BYTES, and a bigger file of another format is read whole on
# the ingest's own thread, streaming.
UNIT_BYTES = 8 * 1024 * 1024
# Files up to this size are read in groups (see `grouped`).
SMALL_BYTES = 1024 * 1024
# Runs are smaller than whole-file units: the first ones are read here while the workers start,
# and with a few runs per worker none of them waits long on the last (50 MB MAST file: the
# ingest's own share of the reading 4.1 s CPU with 8 MB runs, 2.6 s with 2 MB).
RUN_BYTES = 2 * 1024 * 1024
# An ingest allocates millions of short-lived, acyclic objects (steps, their dicts, Arrow
# buffers); at Python's default gen-0 threshold (700) the collector ran ~1,300 times and each
# oldest-generation pass walked every object the imports left (polars, pyarrow, pydantic):
# 1.2-1.7 s of an 8 s, 50 MB MAST ingest. Objects older than the ingest are frozen out of the
# scans and collections run at GC_THRESHOLD allocations; both are restored afterwards. The
# threshold counts objects allocated and not yet freed: a batch holds ~100k (12k steps of a MAST
# batch, each with its dicts, and the labels) and frees them once written, so at 50k every batch
# triggered a scan of what it held (16 gen-0 collections, 1.1-1.5 s wall at load 10, of a
# `--workers 0` ingest of the 50 MB array); at 250k there were 2 and the same peak RSS.
GC_THRESHOLD = 250_000  # a group read at once (`_read_all`) runs with the collector off
PR_SET_PDEATHSIG = 1  # prctl(2)


@dataclass(frozen=True)
class Reject:
    """A file or record that goes to quarantine, and why (one line)."""

    file: Path
    record: str | None
    reason: str
    text: str = ""


@dataclass(frozen=True)
class Limits:
    max_field_chars: int
    max_record_bytes: int


@dataclass(frozen=True)
class Unit:
    """What one reader reads: a whole file, or a run of a big record file's records."""

    file: Path
    adapter: str
    size: int  # bytes of input
    records: tuple[RawRecord, ...] | None = None
    measured: bool = True  # whether its text is measured (`fidelity`): runs are sampled


@dataclass(frozen=True)
class Measured:
    """How much of a unit's text its traces keep (`ingest.fidelity`); None: not measured."""

    file: Path
    fidelity: fidelity.Fidelity | None


Item = Prepared | Reject | Measured
# A whole file over this size whose records cannot be cut into runs (any format but MAST-Data's
# arrays) is not measured: its stored text would be held in memory whole for the measure.
FIDELITY_MAX_BYTES = 32 * 1024 * 1024
# Of a file cut into runs (over UNIT_BYTES), the first run and every MEASURE_EVERY-th after it
# are measured: the measure costs about a third of the reading it checks, on every run it would
# add a quarter to a 50 MB MAST ingest; a sample of 1 in 8 runs adds ~3% (benchmarks/fidelity.py).
MEASURE_EVERY = 8


@contextmanager
def fewer_collections() -> Iterator[None]:
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def cut_marker(removed: int, limit: int) -> str:
    return f"\n[… {removed:,} more characters cut by tracefail: over the {limit:,}-character field limit]"


def _cut_oversized(trace: Trace, limit: int) -> tuple[Trace, list[str]]:
    """The trace with every field over the limit cut (a marker says how much went), and one
    note per cut: a single huge field costs its own tail, never the trace or the ingest."""
    notes: list[str] = []
    columns = trace.step_columns
    if columns is not None:
        contents = _cut_contents(columns.content, limit, notes)
        if contents is not columns.content:
            columns = replace(columns, content=contents)
    steps = list(trace.steps)
    for i, step in enumerate(steps):
        if len(step.content) > limit:
            notes.append(
                f"step {step.step_idx} content is {len(step.content):,} characters, over the "
                f"{limit:,}-character field limit; stored cut, with a marker"
            )
            kept = step.content[:limit] + cut_marker(len(step.content) - limit, limit)
            steps[i] = step.model_copy(update={"content": kept})
    raw = trace.raw
    if raw and len(raw) > limit * 4:
        notes.append(
            f"raw text is {len(raw):,} characters, over the {limit * 4:,}-character limit; stored cut"
        )
        raw = raw[: limit * 4] + cut_marker(len(raw) - limit * 4, limit * 4)
    if not notes:
        return trace, notes
    cut = trace.model_copy(update={"steps": steps, "raw": raw})
    return (cut if columns is None else cut.with_columns(columns)), notes


def _cut_contents(contents: list[str], limit: int, notes: list[str]) -> list[str]:
    """Step contents (a column) with every one over the limit cut, as `_cut_oversized` cuts them;
    the same list where none is."""
    over = [i for i, content in enumerate(contents) if len(content) > limit]
    if not over:
        return contents
    contents = list(contents)
    for i in over:
        content = contents[i]
        notes.append(
            f"step {i} content is {len(content):,} characters, over the "
            f"{limit:,}-character field limit; stored cut, with a marker"
        )
        contents[i] = content[:limit] + cut_marker(len(content) - limit, limit)
    return contents


def _rejection(file: Path, exc: Exception) -> Reject:
    """Why a file could not be read on (from here), as its quarantine row."""
    if isinstance(exc, SourceError):
        return Reject(file, exc.record, str(exc), exc.excerpt)
    if isinstance(exc, UnicodeDecodeError):
        return Reject(file, None, f"not UTF-8 text at byte {exc.start} (binary data?)")
    if isinstance(exc, OSError):
        return Reject(file, None, f"cannot read: {exc.strerror or exc}")
    detail = str(exc).splitlines()[0] if str(exc) else ""  # an adapter bug: the rest of the batch goes on
    return Reject(file, None, f"{type(exc).__name__} while reading: {detail}")


def read(units: Sequence[Unit], limits: Limits) -> Iterator[Item]:
    """The units' traces in prepared batches (BATCH traces or BATCH_CHARS characters, no id
    twice in one batch; small files share batches), their rejections, and after each part of a
    unit how much of its text the traces keep (`Measured`), in file order. A broken file or an
    adapter bug rejects the rest of that file, never the batch."""
    token = MAX_RECORD_BYTES.set(limits.max_record_bytes)
    pending: list[tuple[Path, Trace]] = []
    pending_chars = 0
    seen: set[str] = set()
    try:
        for unit in units:
            try:
                for part, values, sampled in _parts(unit, limits):
                    stored = fidelity.Stored() if values is not None else None
                    for item in part:
                        if isinstance(item, Reject):
                            yield item
                            continue
                        if stored is not None:
                            stored.add(item)
                        if item.trace_id in seen:  # the store decides duplicate vs conflict against the first
                            yield from _prepared(pending)
                            pending, pending_chars, seen = [], 0, set()
                        seen.add(item.trace_id)
                        pending.append((unit.file, item))
                        pending_chars += rows.text_size(item)
                        if len(pending) >= BATCH or pending_chars >= BATCH_CHARS:
                            yield from _prepared(pending)
                            pending, pending_chars, seen = [], 0, set()
                    if stored is not None and values is not None:
                        measured = stored.measure(values())
                        yield Measured(unit.file, replace(measured, sampled=sampled))
                    elif not sampled:
                        yield Measured(unit.file, None)  # a whole file too big to measure
            except Exception as exc:
                yield _rejection(unit.file, exc)
    finally:
        MAX_RECORD_BYTES.reset(token)
    yield from _prepared(pending)


@dataclass(frozen=True)
class Check:
    """What an ingest of one file would store, without storing it."""

    file: Path
    adapter: str
    traces: int
    steps: int
    rejects: tuple[Reject, ...]
    fidelity: fidelity.Fidelity | None


def check(file: Path, forced: str | None, limits: Limits) -> Check:
    """Read `file` as ingest would (same detection, adapter, limits and measure), keeping only
    counts, rejections and the fidelity figure with the lost lines."""
    traces = steps = 0
    rejects: list[Reject] = []
    measured: fidelity.Fidelity | None = fidelity.Fidelity(0, 0)
    name = ""
    token = MAX_RECORD_BYTES.set(limits.max_record_bytes)
    try:
        for unit in units(file, forced, parallel=False):
            if isinstance(unit, Reject):
                rejects.append(unit)
                continue
            name = unit.adapter
            try:
                for part, values, _ in _parts(unit, limits, sample=False):
                    stored = fidelity.Stored()
                    for item in part:
                        if isinstance(item, Reject):
                            rejects.append(item)
                            continue
                        traces += 1
                        steps += item.step_count
                        if values is not None:
                            stored.add(item)
                    if values is None or measured is None:
                        measured = None
                    else:
                        measured = measured + stored.measure(values())
            except Exception as exc:
                rejects.append(_rejection(file, exc))
    finally:
        MAX_RECORD_BYTES.reset(token)
    return Check(file, name, traces, steps, tuple(rejects), measured)


# A part's traces, its text lines (None: not measured), and whether the file's figure is a
# sample (a run of a file whose runs are measured 1 in MEASURE_EVERY).
Part = tuple[Iterator[Trace | Reject], Callable[[], set[str]] | None, bool]


def _parts(unit: Unit, limits: Limits, sample: bool = True) -> Iterator[Part]:
    """The unit's traces in parts, each with the text lines of the input it was read from (None
    where that is not measured): a run of records, or a whole file; a big whole file of a
    RecordAdapter is read in runs, as a worker pool reads it, so that measuring it holds one
    run's text at a time. `sample`: only the runs marked `measured`, else all."""
    adapter = registry.by_name(unit.adapter)
    if unit.records is not None:  # runs are cut only from a RecordAdapter's files
        records = unit.records
        traces = (
            adapter.columns_from_records(unit.file, records)
            if isinstance(adapter, ColumnAdapter)
            else adapter.from_records(unit.file, records)  # type: ignore[attr-defined]
        )
        if unit.measured or not sample:
            yield (
                _checked(traces, unit, limits),
                lambda: fidelity.text_lines(fidelity.record_values(records)),
                sample,
            )
        else:
            yield _checked(traces, unit, limits), None, sample
    elif isinstance(adapter, RecordAdapter) and unit.size > UNIT_BYTES:
        for number, run in enumerate(runs(adapter, unit.file, parsed=True)):
            size = sum(r.size for r in run)
            yield from _parts(
                Unit(unit.file, unit.adapter, size, run, number % MEASURE_EVERY == 0), limits, sample
            )
    else:
        file = unit.file
        measured = unit.size <= FIDELITY_MAX_BYTES
        values = (lambda: fidelity.text_lines(fidelity.file_values(file))) if measured else None
        traces = adapter.parse_columns(file) if isinstance(adapter, ColumnAdapter) else adapter.parse(file)
        yield _checked(traces, unit, limits), values, False


def _checked(traces: Iterable[Trace | Rejected], unit: Unit, limits: Limits) -> Iterator[Trace | Reject]:
    """The traces, and a Reject for each record its adapter or the field limits refuse."""
    for item in traces:
        if isinstance(item, Rejected):
            yield Reject(unit.file, item.record, item.reason, item.excerpt)
            continue
        item, notes = _cut_oversized(item, limits.max_field_chars)
        for note in notes:
            yield Reject(unit.file, item.native_id or item.trace_id, note, _opening(item))
        yield item


def _opening(trace: Trace) -> str:
    columns = trace.step_columns
    contents = columns.content[:3] if columns is not None else [step.content for step in trace.steps[:3]]
    return rows.opening_text(trace.raw, contents)


def _prepared(pending: list[tuple[Path, Trace]]) -> Iterator[Item]:
    """The (file, trace) pairs' traces as one prepared batch; if some text cannot be stored (a
    lone surrogate that a JSON escape produced is not UTF-8), each trace alone, and the ones
    that fail are rejected."""
    if not pending:
        return
    try:
        yield rows.prepare([trace for _, trace in pending])
        return
    except UnicodeEncodeError:
        pass
    for file, trace in pending:
        try:
            yield rows.prepare([trace])
        except UnicodeEncodeError as exc:
            readable = _opening(trace).encode("utf-8", "replace").decode("utf-8")
            reason = f"holds text that cannot be stored as UTF-8 ({exc.reason})"
            yield Reject(file, trace.native_id or trace.trace_id, reason, readable)


def units(file: Path, forced: str | None, parallel: bool) -> Iterator[Unit | Reject]:
    """How `file` is read: whole, or (for a worker pool) in runs of records of a big record file;
    a Reject when it cannot be read at all, or after the runs read before its record scan broke."""
    if not file.exists():
        yield Reject(file, None, "no such file")
        return
    if not file.is_file():  # a FIFO or device would block or never end
        yield Reject(file, None, "not a regular file (a FIFO, device or socket); skipped")
        return
    try:
        adapter = registry.by_name(forced) if forced else registry.detect(file)
        size = file.stat().st_size
        if not (parallel and isinstance(adapter, RecordAdapter) and size > UNIT_BYTES):
            yield Unit(file, adapter.name, size)
            return
        for number, run in enumerate(runs(adapter, file)):
            yield Unit(file, adapter.name, sum(r.size for r in run), run, number % MEASURE_EVERY == 0)
    except Exception as exc:
        yield _rejection(file, exc)


def runs(adapter: RecordAdapter, file: Path, parsed: bool = False) -> Iterator[tuple[RawRecord, ...]]:
    """The file's records in runs of RUN_BYTES; if the record scan breaks, the records read
    before it, then the error. `parsed`: the runs are read in this process (see
    `RecordAdapter.records`)."""
    run: list[RawRecord] = []
    size = 0
    try:
        for record in adapter.records(file, parsed):
            run.append(record)
            size += record.size
            if size >= RUN_BYTES:
                yield tuple(run)
                run, size = [], 0
    except Exception:
        if run:
            yield tuple(run)
        raise
    if run:
        yield tuple(run)


Group = list[Unit]


def grouped(stream: Iterable[Unit | Reject]) -> Iterator[Group | Reject]:
    """Consecutive whole files of up to SMALL_BYTES read as one group (up to BATCH files or
    UNIT_BYTES): they share prepared batches, where a batch per file made the Arrow tables'
    fixed cost a third of a Who&When ingest, and, in a pool, one hand-over."""
    group: Group = []
    size = 0
    for unit in stream:
        if isinstance(unit, Unit) and unit.records is None and unit.size <= SMALL_BYTES:
            group.append(unit)
            size += unit.size
            if len(group) >= BATCH or size >= UNIT_BYTES:
                yield group
                group, size = [], 0
            continue
        if group:
            yield group
            group, size = [], 0
        yield [unit] if isinstance(unit, Unit) else unit
    if group:
        yield group


def _read_all(group: Group, limits: Limits) -> list[Item]:
    """A group read at once (at most about UNIT_BYTES of input), with the cyclic collector off:
    what a group allocates is bounded and acyclic (steps, their dicts, strings), and collections
    triggered by it only walked it (0.2-0.4 s of a worker's 3.5 s on the 50 MB MAST file)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return list(read(group, limits))
    finally:
        if enabled:
            gc.enable()


def cores() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers(load: float | None = None) -> int:
    """Reader processes for a big input at the current load (the 1-minute load average unless
    given): as many as the cores other processes leave idle, plus one, where at least one is idle,
    else none (0: read in this process). On 2 cores, the 50 MB MAST array with 2 readers took
    0.81x the time of one process at load 0.6 and 1.25x at load 2.5: readers that wait for a core
    only add their start-up and hand-overs (benchmarks/ingest.py, docs/benchmarks.md)."""
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    idle = cores() - load
    return min(cores(), int(idle) + 1) if idle >= 1 else 0


def _started() -> None:
    """A worker is up (the pool starts its processes lazily)."""


PARENT_CHECK_SECONDS = 0.5


def _die_with(ingest_pid: int) -> None:
    """A worker's initializer: it ends when the ingest does, even by SIGKILL (12 readers were
    left running after 4 kills). The kernel signals it when its parent, the forkserver, dies
    (Linux); a thread watching the ingest's pid covers the rest."""
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    def watch() -> None:
        while True:
            try:
                os.kill(ingest_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # the pid is alive (taken by another user's process)
                pass
            time.sleep(PARENT_CHECK_SECONDS)

    threading.Thread(target=watch, name="tracefail-parent-watch", daemon=True).start()


class ReadPool:
    """Units read by worker processes, handed back in submission order, at most two per worker
    ahead of the consumer (memory stays bounded by a few units).

    Workers fork from a forkserver that imported the readers once: the ingest's own process has
    DuckDB's threads running, which a plain fork must not copy, and spawning imports everything
    again in each worker. The forkserver's imports take a second or more; until a worker is up,
    units are read here instead, so that second is not lost. Like any user of spawned
    processes, a script calling this must guard its entry point with `if __name__ == "__main__"`.
    """

    def __init__(self, workers: int, limits: Limits) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        self._pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_die_with, initargs=(os.getpid(),)
        )
        self._limits = limits
        self._ahead = 2 * workers
        self._queued: deque[Future[list[Item]] | list[Item]] = deque()
        self._up: Future[None] = Future()
        # the first submit blocks until the forkserver has imported the readers: not here
        threading.Thread(
            target=self._start, args=(workers,), name="tracefail-read-pool-start", daemon=True
        ).start()

    def _start(self, workers: int) -> None:
        """Start every worker at once (the pool would start one per unit while none is idle:
        the second came 0.8 s after the first), and say so when one is up."""
        try:
            started = [self._pool.submit(_started) for _ in range(workers)]
            wait(started, return_when=FIRST_COMPLETED)
            next(f for f in started if f.done()).result()
            self._up.set_result(None)
        except BaseException as exc:  # no workers (e.g. an unguarded __main__): all is read here
            self._up.set_exception(exc)

    def submit(self, group: Group | Reject) -> Iterator[Item]:
        """Queue a group and yield what is ready, in order. A group is read here while no worker
        is up (or if none could start), and so is a big file that is not cut into runs, streaming,
        after what is queued; a Reject is queued as already read."""
        if isinstance(group, Reject):
            self._queued.append([group])
        elif len(group) == 1 and group[0].records is None and group[0].size > UNIT_BYTES:
            yield from self.drain()
            yield from read(group, self._limits)
        elif not self._up.done() or self._up.exception() is not None:
            self._queued.append(_read_all(group, self._limits))
        else:
            self._queued.append(self._pool.submit(_read_all, group, self._limits))
        while len(self._queued) > self._ahead or (self._queued and isinstance(self._queued[0], list)):
            yield from self._next()

    def drain(self) -> Iterator[Item]:
        while self._queued:
            yield from self._next()

    def _next(self) -> list[Item]:
        head = self._queued.popleft()
        return head if isinstance(head, list) else head.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def read_in_process(group: Group | Reject, limits: Limits) -> Iterator[Item]:
    """A group read on this thread, streaming (any size of file)."""
    if isinstance(group, Reject):
        yield group
    else:
        yield from read(group, limits)
