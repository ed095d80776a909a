"""Spans of an OTLP trace that is already stored -> the stored trace, rebuilt with all spans.

One path for `serve` (a trace's spans arrive over many requests) and for OTLP files (one
trace split over several exports, or a file trace that later gets live spans). A rebuilt
trace keeps its labels and attributions (they name the trace, not one version of its steps);
its features are deleted by `replace_traces`, since they were computed on the old steps.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tracefail.ingest.otlp_live import MergedSpans, SpanGroup, live_trace_id
from tracefail.store import Database
from tracefail.store import traces as trace_store

CACHED_SPANS = 200_000  # spans the live writer keeps decoded between writes, over all its traces


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


class SpanCache:
    """The merged spans of the traces the live writer wrote last, at most `max_spans` spans in
    all (least recently written out first): a trace that gains a few spans per request is then
    not read back and parsed again on every write. Right only while its owner is the corpus's
    one writer, which `serve`'s writer thread is (it holds DuckDB's write lock)."""

    def __init__(self, max_spans: int = CACHED_SPANS) -> None:
        self.max_spans = max_spans
        self._traces: OrderedDict[str, MergedSpans] = OrderedDict()
        self._spans = 0

    def get(self, trace_id: str) -> MergedSpans | None:
        return self._traces.get(trace_id)

    def put(self, trace_id: str, merged: MergedSpans) -> None:
        old = self._traces.pop(trace_id, None)
        self._spans -= old.n_spans if old else 0
        self._traces[trace_id] = merged
        self._spans += merged.n_spans
        while self._spans > self.max_spans and self._traces:
            self._spans -= self._traces.popitem(last=False)[1].n_spans


def merge_spans(
    db: Database, incoming: Sequence[IncomingSpans], run_id: str | None, cache: SpanCache | None = None
) -> MergeResult:
    """Merge each trace's spans into its stored version (if any) and write the traces that changed.
    With a `cache`, traces found there are not read back from the store."""
    ids = [live_trace_id(item.native_id) for item in incoming]
    known = {trace_id: cache.get(trace_id) for trace_id in ids} if cache else {}
    stored = trace_store.stored_raw(db, [trace_id for trace_id in ids if known.get(trace_id) is None])
    traces, unchanged, problems = [], [], []
    changed: dict[str, int] = {}
    merged_of: dict[str, MergedSpans] = {}
    for item, trace_id in zip(incoming, ids, strict=True):
        before = known.get(trace_id)
        if before is None and trace_id in stored and stored[trace_id] is None:
            problems.append((item.native_id, f"{trace_id} is stored without its spans (a span-tree "
                             "file, or a corpus older than span merging); its spans are not merged"))
            continue
        try:
            before = before or MergedSpans.of_raw(stored.get(trace_id))
            merged, conflicts = before.merge(item.groups, item.logs)
            problems.extend((item.native_id, conflict) for conflict in conflicts)
            if merged == before:
                unchanged.append(item.native_id)
                continue
            trace = merged.trace(item.native_id, item.source_file, item.fmt)
        except (ValueError, TypeError, KeyError) as exc:
            problems.append((item.native_id, f"cannot merge its spans: {exc}"))
            continue
        traces.append(trace)
        changed[item.native_id] = len(trace.steps)
        merged_of[trace_id] = merged
    written = trace_store.replace_traces(db, traces, run_id)
    if cache is not None:  # only once the write held: a failed write leaves the store's version
        for trace_id, merged in merged_of.items():
            cache.put(trace_id, merged)
    return MergeResult(written, changed, unchanged, problems)
