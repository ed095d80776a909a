"""A JSON / JSONL document -> traces, by the shapes found in it.

Rules (docs/formats.md repeats them for users):
- span collections anywhere (and OTLP exports anywhere) are grouped by trace id, across the
  whole file, and mapped by the OTel span mapper: one trace per trace id;
- message lists and event streams become one trace per object that holds them (its record:
  a JSONL line, an array element, a wrapper); when a record holds several, the longest is the
  steps and the others are kept as text; a top-level list is one trace;
- a record's other fields are the trace's metadata; its id (`id`, `instance_id`, `session_id`,
  ...) the native id; its `task` / `instruction` / `problem_statement` / ... (else the first
  user message) the task;
- every string with words that no step, tool call or metadata took is kept (`leftover`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest.base import Rejected, excerpt, reason, with_id
from tracefail.ingest.chat import outcome_of
from tracefail.ingest.otel import spans_to_trace
from tracefail.ingest.reader import iter_jsonl, loads, read_whole
from tracefail.ingest.shapes import events, leftover, messages
from tracefail.ingest.shapes.find import TRACE_ID_KEYS, Found, describe, find
from tracefail.ingest.shapes.spans import NormalSpan, group, instructions, otlp_group
from tracefail.model import Step, Trace

JSONL = (".jsonl", ".ndjson")
ID_KEYS = ("id", "instance_id", "session_id", "conversation_id", "thread_id", "run_id", "trace_id", "task_id")
TASK_KEYS = ("task", "instruction", "problem_statement", "question", "query", "goal", "prompt", "input")
OUTCOME_KEYS = ("outcome", "resolved", "success", "status", "exit_status")

Prepare = Callable[[Any], Any]


class NothingFound(ValueError):
    """No span, message or event collection anywhere in the document."""


def read_path(path: Path, source: str, prepare: Prepare | None = None) -> Iterator[Trace | Rejected]:
    """The traces of a JSON or JSONL file (a JSONL file is one list of its lines); a bad line is
    rejected and the others go on; a file with no known shape is rejected saying what it holds."""
    if path.suffix in JSONL:
        document: Any = []
        for raw in iter_jsonl(path):
            try:
                document.append(raw.json())
            except ValueError as exc:
                yield Rejected(raw.locator, reason(exc), excerpt(raw.text))
        text = ""
    else:
        text = read_whole(path)
        try:
            document = loads(text)
        except ValueError as exc:
            yield Rejected("whole file", reason(exc), excerpt(text))
            return
    try:
        if prepare is not None:
            document = prepare(document)
        yield from read_document(document, source, str(path))
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        yield Rejected("whole file", reason(exc), excerpt(text))


def read_document(document: Any, source: str, source_file: str) -> list[Trace | Rejected]:
    found = find(document)
    if not found:
        raise NothingFound(f"no spans, messages or events found: {describe(document)}")
    owners: dict[tuple[Any, ...], Trace | Step] = {}
    out: list[Trace | Rejected] = []
    out.extend(_span_traces([f for f in found if f.kind in ("spans", "otlp")], source, source_file, owners))
    out.extend(
        _record_traces([f for f in found if f.kind in ("messages", "events")], source, source_file, owners)
    )
    traces = [t for t in out if isinstance(t, Trace)]
    if not traces and not out:
        raise NothingFound(f"no steps found: {describe(document)}")
    leftover.keep(document, traces, owners)
    for trace in traces:
        with_id(trace)  # metadata may have grown; ids rest on source + native id or the content
    return out


def _span_traces(
    found: list[Found], source: str, source_file: str, owners: dict[tuple[Any, ...], Trace | Step]
) -> Iterator[Trace | Rejected]:
    spans: dict[str, list[tuple[NormalSpan, tuple[Any, ...]]]] = defaultdict(list)
    records: dict[str, tuple[dict[str, Any] | None, tuple[Any, ...] | None]] = {}
    for item in found:
        if item.kind == "otlp":
            grouped = otlp_group(item.items[0], item.path)
        else:
            processes = (item.record or {}).get("processes")
            services = (
                {str(k): str(v.get("serviceName")) for k, v in processes.items() if isinstance(v, dict)}
                if isinstance(processes, dict)
                else None
            )
            grouped = group(item.items, item.path, services)
        for trace_id, pairs in grouped.items():
            if trace_id == "?":  # the ids sit on the record around the spans (TRAIL trees)
                trace_id = str(
                    next((v for k, v in (item.record or {}).items() if k in TRACE_ID_KEYS and v), "?")
                )
            spans[trace_id].extend(pairs)
            records.setdefault(trace_id, (item.record, item.record_path))
    single = len(spans) == 1
    for trace_id, pairs in spans.items():
        try:
            trace = spans_to_trace(trace_id, [s for s, _ in pairs], source_file, {"format": source})
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            yield Rejected(f"trace {trace_id}", reason(exc))
            continue
        trace.source = source
        trace.metadata.update(instructions([s for s, _ in pairs]))
        record, record_path = records[trace_id]
        if single and record is not None and record_path is not None:
            owners[record_path] = trace
        by_span = {step.span_id: step for step in trace.steps}
        for span, where in pairs:
            step = by_span.get(span["span_id"])
            if step is not None:
                owners[where] = step
        yield trace


def _record_traces(
    found: list[Found], source: str, source_file: str, owners: dict[tuple[Any, ...], Trace | Step]
) -> Iterator[Trace | Rejected]:
    by_record: dict[tuple[Any, ...] | None, list[Found]] = defaultdict(list)
    for item in found:
        by_record[item.record_path if item.record is not None else item.path].append(item)
    for where, candidates in by_record.items():
        best = max(candidates, key=lambda f: (len(f.items), f.kind == "messages"))
        try:
            trace = _record_trace(best, candidates, source, source_file)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            yield Rejected(".".join(map(str, where or ())) or "whole file", reason(exc))
            continue
        if where is not None:
            owners[where] = trace
        objects = (
            messages.indexed(best.items)
            if best.kind == "messages"
            else [(i, x) for i, x in enumerate(best.items) if isinstance(x, dict)]
        )
        for step, (index, _) in zip(trace.steps, objects, strict=False):
            owners[(*best.path, index)] = step
        yield trace


def _record_trace(best: Found, candidates: list[Found], source: str, source_file: str) -> Trace:
    module = messages if best.kind == "messages" else events
    steps = module.steps_of(best.items)
    if not steps:
        raise ValueError(f"the {best.kind} list is empty")
    record = best.record or {}
    taken = {f.path[-1] for f in candidates if f.record is best.record and f.path}
    native = next(
        (record[k] for k in ID_KEYS if isinstance(record.get(k), str | int) and record[k] != ""), None
    )
    task = next((record[k] for k in TASK_KEYS if isinstance(record.get(k), str) and record[k].strip()), None)
    outcome = next((record[k] for k in OUTCOME_KEYS if k in record), None)
    models = [s.model for s in steps if s.model]
    return Trace(
        trace_id="",
        source=source,
        native_id=str(native) if native is not None else None,
        llm=record["model"] if isinstance(record.get("model"), str) else (models[0] if models else None),
        task=task or module.first_user(best.items),
        outcome=outcome_of(outcome),
        source_file=source_file,
        metadata={k: v for k, v in record.items() if k not in taken},
        steps=steps,
    )
