"""Arize Phoenix / OpenInference span exports: a JSON array (or JSONL) of span objects with
`context.trace_id`, `context.span_id`, `parent_id`, `span_kind`, `start_time`, `status_code` and
`attributes` either nested (`{"llm": {"input_messages": [...]}}`) or flattened
(`llm.input_messages.0.message.content`). Nested attributes are flattened to OpenInference's
dotted keys, so the OTel span mapper reads them; spans are grouped into one trace per trace id.

The same list shape comes from the OpenTelemetry JS SDK when its finished spans are dumped as
JSON (`InMemorySpanExporter`, as OpenInference's own Vercel AI SDK fixtures are captured):
`spanContext.traceId`/`spanId`, `parentSpanId`, `status.code` (0 unset, 1 ok, 2 error) and
`startTime`/`endTime` as `[seconds, nanoseconds]`; it is read here too."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tracefail.ingest.base import Rejected, excerpt, first_json, parse_time, reason
from tracefail.ingest.content import mapping, parse_json_text
from tracefail.ingest.otel import attributes, spans_to_trace
from tracefail.ingest.reader import RawRecord, first_char, iter_json_array, iter_jsonl
from tracefail.model import Trace


def flatten(value: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nested attribute objects and lists as OpenInference dotted keys (`a.b.0.c`)."""
    out = {} if out is None else out
    if isinstance(value, dict):
        for key, inner in value.items():
            flatten(inner, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        for index, inner in enumerate(value):
            flatten(inner, f"{prefix}.{index}", out)
    elif prefix:
        out[prefix] = value
    return out


def _time(value: Any) -> datetime | None:
    """ISO text or epoch numbers, or the JS SDK's `[seconds, nanoseconds]` HrTime."""
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return datetime.fromtimestamp(value[0] + value[1] / 1e9, UTC).replace(tzinfo=None)
    return parse_time(value)


def _span(span: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    context = mapping(span.get("context")) or mapping(span.get("spanContext"))
    trace_id = context.get("trace_id") or context.get("traceId") or span.get("trace_id")
    if not trace_id:
        raise ValueError("a span without `context.trace_id` (or `spanContext.traceId`)")
    status = mapping(span.get("status"))
    attrs = flatten(parse_json_text(span.get("attributes")) or {})  # some exports keep it as JSON text
    if span.get("span_kind") and "openinference.span.kind" not in attrs:
        attrs["openinference.span.kind"] = span["span_kind"]
    return str(trace_id), {
        "span_id": context.get("span_id") or context.get("spanId") or span.get("span_id"),
        "parent_span_id": span.get("parent_id") or span.get("parentSpanId") or None,
        "name": span.get("name"),
        "attributes": attrs,
        "events": [
            {"name": e.get("name", ""), "attributes": flatten(attributes(e.get("attributes")))}
            for e in span.get("events") or []
            if isinstance(e, dict)
        ],
        "start": _time(span.get("start_time", span.get("startTime"))),
        "end": _time(span.get("end_time", span.get("endTime"))),
        "status": span.get("status_code", status.get("code")),
        "status_message": span.get("status_message") or status.get("message") or None,
        "service": None,
    }


class PhoenixAdapter:
    name = "phoenix"
    description = (
        "Arize Phoenix / OpenInference span export, or an OTel JS SDK span dump: JSON array or JSONL "
        "of spans with `context.trace_id` (`spanContext.traceId`)"
    )
    suffixes = (".json", ".jsonl", ".ndjson")

    def sniff(self, path: Path, head: str) -> bool:
        if path.suffix == ".json":
            return first_char(head) == "[" and (
                ('"context"' in head and '"trace_id"' in head and '"span_kind"' in head)
                or ('"spanContext"' in head and '"traceId"' in head and '"attributes"' in head)
            )
        first = first_json(head)
        return isinstance(first, dict) and (
            "trace_id" in mapping(first.get("context")) or "traceId" in mapping(first.get("spanContext"))
        )

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        records: Iterator[RawRecord] = iter_json_array(path) if path.suffix == ".json" else iter_jsonl(path)
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for raw in records:
            try:
                span = raw.json()
                if not isinstance(span, dict):
                    raise ValueError("a span is not an object")
                trace_id, normalised = _span(span)
                grouped[trace_id].append(normalised)
            except (ValueError, TypeError, AttributeError) as exc:
                yield Rejected(raw.locator, reason(exc), excerpt(raw.text))
        for trace_id, spans in grouped.items():
            try:
                yield spans_to_trace(trace_id, spans, str(path), {"format": "phoenix"})
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                yield Rejected(f"trace {trace_id}", reason(exc))
