"""Jaeger JSON (the query API's `{"data": [trace, ...]}` or one trace object): `spans` with
`tags`, `logs`, `references` and a `processes` map. Spans go through the OTel span mapper, so
GenAI tags read the same as OTLP attributes; logs become span events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest.base import Rejected, excerpt, parse_time, reason
from tracefail.ingest.content import mapping
from tracefail.ingest.otel import spans_to_trace
from tracefail.ingest.reader import first_char, parse_whole_object
from tracefail.model import Trace


def _tags(tags: Any) -> dict[str, Any]:
    return {
        t["key"]: t.get("value") for t in tags or [] if isinstance(t, dict) and isinstance(t.get("key"), str)
    }


def _span(span: dict[str, Any], processes: dict[str, Any]) -> dict[str, Any]:
    tags = _tags(span.get("tags"))
    parent = next(
        (
            ref.get("spanID")
            for ref in span.get("references") or []
            if isinstance(ref, dict)
            and ref.get("refType") == "CHILD_OF"
            and ref.get("traceID") == span.get("traceID")
        ),
        span.get("parentSpanID") or None,
    )
    start = span.get("startTime")
    duration = span.get("duration")
    events: list[dict[str, Any]] = []
    for log in span.get("logs") or []:
        fields = _tags(log.get("fields")) if isinstance(log, dict) else {}
        events.append({"name": str(fields.pop("event", "log")), "attributes": fields})
    logs = [e for e in events if e["name"] != "exception"]  # the span mapper words exceptions itself
    if logs and not any(k.startswith(("gen_ai.", "llm.", "output.")) for k in tags):  # logs are its text
        lines = [" ".join([e["name"], *(f"{k}={v}" for k, v in e["attributes"].items())]) for e in logs]
        tags = {**tags, "output.value": "\n".join(lines)}
    if span.get("warnings"):  # Jaeger's own notes on the span (clock skew, ...), kept as text
        tags = {**tags, "jaeger.warnings": span["warnings"]}
    error = tags.get("error") is True or str(tags.get("otel.status_code", "")).upper() == "ERROR"
    process = processes.get(str(span.get("processID"))) or {}
    return {
        "span_id": span.get("spanID"),
        "parent_span_id": parent,
        "name": span.get("operationName"),
        "attributes": tags,
        "events": events,
        "start": parse_time(start * 1000) if isinstance(start, int | float) else None,  # µs -> ns
        "end": parse_time((start + duration) * 1000) if isinstance(start, int | float) and duration else None,
        "status": "ERROR" if error else None,
        "status_message": tags.get("otel.status_description") or tags.get("error.message"),
        "service": process.get("serviceName") if isinstance(process, dict) else None,
    }


def trace_of(trace: dict[str, Any], source_file: str) -> Trace:
    spans = trace.get("spans")
    if not isinstance(spans, list) or not trace.get("traceID"):
        raise ValueError("not a Jaeger trace (needs `traceID` and a `spans` list)")
    processes = mapping(trace.get("processes"))
    normalised = [_span(s, processes) for s in spans if isinstance(s, dict)]
    return spans_to_trace(
        str(trace["traceID"]),
        normalised,
        source_file,
        {"format": "jaeger", **({"warnings": trace["warnings"]} if trace.get("warnings") else {})},
    )


class JaegerAdapter:
    name = "jaeger"
    description = "Jaeger JSON ({data: [{traceID, spans[tags, logs, references], processes}]} or one trace)"
    suffixes = (".json",)

    def sniff(self, path: Path, head: str) -> bool:
        return first_char(head) == "{" and '"traceID"' in head and '"operationName"' in head

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        yield from parse_whole_object(path, lambda document: _traces(document, str(path)))


def _traces(document: dict[str, Any], source_file: str) -> Iterator[Trace | Rejected]:
    """Each trace of a `{"data": [...]}` export (or the one trace the file is), rejected alone."""
    traces = document.get("data") if "data" in document else [document]
    if not isinstance(traces, list):
        raise ValueError("`data` is not a list of traces")
    for number, trace in enumerate(traces):
        try:
            if not isinstance(trace, dict):
                raise ValueError("not an object")
            yield trace_of(trace, source_file)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            yield Rejected(f"trace {number}", reason(exc), excerpt(str(trace)))
