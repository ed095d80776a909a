"""Arize Phoenix / OpenInference span exports: a JSON array (or JSONL) of span objects with
`context.trace_id`, `context.span_id`, `parent_id`, `span_kind`, `start_time`, `status_code` and
`attributes` either nested (`{"llm": {"input_messages": [...]}}`) or flattened
(`llm.input_messages.0.message.content`). Nested attributes are flattened to OpenInference's
dotted keys, so the OTel span mapper reads them; spans are grouped into one trace per trace id."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
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


def _span(span: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    context = mapping(span.get("context"))
    trace_id = context.get("trace_id") or span.get("trace_id")
    if not trace_id:
        raise ValueError("a span without `context.trace_id`")
    attrs = flatten(parse_json_text(span.get("attributes")) or {})  # some exports keep it as JSON text
    if span.get("span_kind") and "openinference.span.kind" not in attrs:
        attrs["openinference.span.kind"] = span["span_kind"]
    return str(trace_id), {
        "span_id": context.get("span_id") or span.get("span_id"),
        "parent_span_id": span.get("parent_id") or None,
        "name": span.get("name"),
        "attributes": attrs,
        "events": [
            {"name": e.get("name", ""), "attributes": flatten(attributes(e.get("attributes")))}
            for e in span.get("events") or []
            if isinstance(e, dict)
        ],
        "start": parse_time(span.get("start_time")),
        "end": parse_time(span.get("end_time")),
        "status": span.get("status_code"),
        "status_message": span.get("status_message") or None,
        "service": None,
    }


class PhoenixAdapter:
    name = "phoenix"
    description = (
        "Arize Phoenix / OpenInference span export: JSON array or JSONL of spans with `context.trace_id`"
    )
    suffixes = (".json", ".jsonl", ".ndjson")

    def sniff(self, path: Path, head: str) -> bool:
        if path.suffix == ".json":
            return (
                first_char(head) == "["
                and '"context"' in head
                and '"trace_id"' in head
                and '"span_kind"' in head
            )
        first = first_json(head)
        return (
            isinstance(first, dict)
            and isinstance(first.get("context"), dict)
            and "trace_id" in first["context"]
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
