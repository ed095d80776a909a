"""Spans of an OTLP trace that is already stored -> the stored trace, rebuilt with all spans.

One path for `serve` (a trace's spans arrive over many requests) and for OTLP files (one
trace split over several exports, or a file trace that later gets live spans). A rebuilt
trace keeps its labels and attributions (they name the trace, not one version of its steps);
its features are deleted by `replace_traces`, since they were computed on the old steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tracefail.ingest.otlp_live import MergedSpans, SpanGroup, live_trace_id
from tracefail.store import Database
from tracefail.store import traces as trace_store


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
    stored = trace_store.stored_raw(db, ids)
    traces, unchanged, problems = [], [], []
    changed: dict[str, int] = {}
    for item, trace_id in zip(incoming, ids, strict=True):
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
            trace = merged.trace(item.native_id, item.source_file, item.fmt)
        except (ValueError, TypeError, KeyError) as exc:
            problems.append((item.native_id, f"cannot merge its spans: {exc}"))
            continue
        traces.append(trace)
        changed[item.native_id] = len(trace.steps)
    written = trace_store.replace_traces(db, traces, run_id)
    return MergeResult(written, changed, unchanged, problems)
