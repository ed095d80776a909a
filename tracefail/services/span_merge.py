"""Spans of an OTLP trace that is already stored -> the stored trace, with the new spans in it.

One path for `serve` (a trace's spans arrive over many requests) and for OTLP files (one
trace split over several exports, or a file trace that later gets live spans). A trace that
grew keeps its labels and attributions (they name the trace, not one version of its steps);
its features are deleted, since they were computed on the old steps.

A write costs O(new spans) where it can: the last state of each recently written trace is
kept (`GrowingTrace`, checked against the stored content hash, so a restart, another writer
or a rolled-back commit only costs a rebuild), new spans are mapped alone, only the steps
that change are written, and the new spans are appended to the trace's `trace_spans` rows,
which hold its `raw` (the `trace_raw` view puts them together). Otherwise the trace is rebuilt
from its `raw`. A trace with OTLP log records keeps its `raw` whole in its row (it is rebuilt
on every write).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tracefail.ingest.otlp_growing import GrowingTrace, Grown, Rebuild
from tracefail.ingest.otlp_live import MergedSpans, SpanGroup, live_trace_id
from tracefail.model import Trace
from tracefail.store import Database
from tracefail.store import traces as trace_store

_GROWING: OrderedDict[tuple[str, str], GrowingTrace] = OrderedDict()
MAX_GROWING = 32  # traces whose state is kept (each holds its spans and steps)


@dataclass(frozen=True)
class IncomingSpans:
    """One trace's new spans (and OTLP log records) and where they came from."""

    native_id: str
    groups: list[SpanGroup]
    source_file: str
    fmt: str
    logs: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class MergeResult:
    written: trace_store.AddResult
    changed: dict[str, int]  # native id -> steps, of traces that gained spans (or were new)
    unchanged: list[str]  # native ids whose spans were all stored already
    problems: list[tuple[str, str]]  # (native id, why it or one of its spans was not merged)


def merge_spans(db: Database, incoming: Sequence[IncomingSpans], run_id: str | None) -> MergeResult:
    """Merge each trace's spans into its stored version (if any) and write the traces that changed."""
    ids = [live_trace_id(item.native_id) for item in incoming]
    hashes = trace_store.stored_hashes(db, ids)
    unchanged: list[str] = []
    problems: list[tuple[str, str]] = []
    changed: dict[str, int] = {}
    grown: list[trace_store.GrownTrace] = []
    keep: dict[tuple[str, str], GrowingTrace] = {}
    rebuild: list[tuple[IncomingSpans, str]] = []
    for item, trace_id in zip(incoming, ids, strict=True):
        state = _GROWING.pop((db.path, trace_id), None)
        if state is None or trace_id not in hashes or hashes[trace_id] != state.digest:
            rebuild.append((item, trace_id))
            continue
        try:
            update, conflicts = state.grow(item.groups, item.logs, item.source_file, item.fmt)
        except Rebuild:
            rebuild.append((item, trace_id))  # the state was left half-changed: it is dropped
            continue
        except (ValueError, TypeError, KeyError) as exc:
            problems.append((item.native_id, f"cannot merge its spans: {exc}"))
            continue
        problems.extend((item.native_id, conflict) for conflict in conflicts)
        keep[(db.path, trace_id)] = state
        if update is None:
            unchanged.append(item.native_id)
            continue
        grown.append(_row(update))
        changed[item.native_id] = update.n_steps
    traces = _rebuilt(db, rebuild, hashes, keep, changed, unchanged, problems)
    spans = {
        trace.trace_id: keep[(db.path, trace.trace_id)].rows()
        for trace in traces
        if (db.path, trace.trace_id) in keep
    }
    written = trace_store.replace_traces(db, traces, run_id, spans)
    more = trace_store.grow_traces(db, grown, run_id)
    written.traces += more.traces
    written.steps += more.steps
    for key, state in keep.items():
        _GROWING[key] = state
    while len(_GROWING) > MAX_GROWING:
        _GROWING.popitem(last=False)
    return MergeResult(written, changed, unchanged, problems)


def _row(update: Grown) -> trace_store.GrownTrace:
    return trace_store.GrownTrace(
        update.header, update.digest, update.n_steps, update.steps, update.stored_steps, update.spans
    )


def _rebuilt(
    db: Database,
    rebuild: list[tuple[IncomingSpans, str]],
    hashes: dict[str, str],
    keep: dict[tuple[str, str], GrowingTrace],
    changed: dict[str, int],
    unchanged: list[str],
    problems: list[tuple[str, str]],
) -> list[Trace]:
    """The traces that gained spans, each built from all its spans (stored and new)."""
    stored = trace_store.stored_raw(db, [trace_id for _, trace_id in rebuild if trace_id in hashes])
    traces = []
    for item, trace_id in rebuild:
        if trace_id in stored and stored[trace_id] is None:
            problems.append(
                (
                    item.native_id,
                    f"{trace_id} is stored without its spans (a span-tree "
                    "file, or a corpus older than span merging); its spans are not merged",
                )
            )
            continue
        try:
            before = MergedSpans.of_raw(stored.get(trace_id))
            merged, conflicts = before.merge(item.groups, item.logs)
            problems.extend((item.native_id, conflict) for conflict in conflicts)
            if merged == before:
                unchanged.append(item.native_id)
                continue
            if merged.records:
                trace = merged.trace(item.native_id, item.source_file, item.fmt)
            else:
                trace, state = GrowingTrace.build(item.native_id, merged, item.source_file, item.fmt)
                keep[(db.path, trace_id)] = state
        except (ValueError, TypeError, KeyError) as exc:
            problems.append((item.native_id, f"cannot merge its spans: {exc}"))
            continue
        traces.append(trace)
        changed[item.native_id] = len(trace.steps)
    return traces
