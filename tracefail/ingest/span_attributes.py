"""One span's flat attribute map as JSON (`{"gen_ai.operation.name": "chat", "ai.response.text":
...}`): what a span viewer's "copy attributes" gives. It is one trace of one step; `trace_id` /
`traceId` / `span_id` keys are used when present, else the content hash names it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest.base import Rejected
from tracefail.ingest.otel import spans_to_trace
from tracefail.ingest.reader import first_char, loads, parse_whole_object
from tracefail.model import Trace

_PREFIXES = ("gen_ai.", "ai.", "llm.", "gcp.vertex.agent.", "openinference.")


def _is_attribute_map(value: Any) -> bool:
    """Flat (no nested objects) with at least one GenAI-family key; plain keys such as `input`
    and `output` may sit beside them, as OpenInference writes."""
    return (
        isinstance(value, dict)
        and any(isinstance(k, str) and k.startswith(_PREFIXES) for k in value)
        and not any(isinstance(v, dict) for v in value.values())
    )


class SpanAttributesAdapter:
    name = "span-attributes"
    description = "One span's flat attribute map as JSON (GenAI, Vercel AI SDK, ADK or OpenInference keys)"
    suffixes = (".json",)

    def sniff(self, path: Path, head: str) -> bool:
        if first_char(head) != "{" or not any(f'"{prefix}' in head for prefix in _PREFIXES):
            return False
        try:
            return _is_attribute_map(loads(head))
        except ValueError:
            return False  # bigger than the head: too big for one span's attributes

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        yield from parse_whole_object(path, lambda attrs: [_span_trace(attrs, str(path))])


def _span_trace(attrs: dict[str, Any], source_file: str) -> Trace:
    """The one-step trace of one span's attribute map."""
    if not _is_attribute_map(attrs):
        raise ValueError("not a flat attribute map (dotted keys such as `gen_ai.operation.name`)")
    span: dict[str, Any] = {
        "span_id": attrs.get("span_id", attrs.get("spanId")),
        "parent_span_id": None,
        "name": attrs.get("name") or attrs.get("gen_ai.operation.name") or attrs.get("ai.operationId"),
        "attributes": attrs,
        "events": [],
        "start": None,
        "end": None,
        "status": None,
        "status_message": None,
        "service": None,
    }
    native = attrs.get("trace_id", attrs.get("traceId"))
    return spans_to_trace(str(native) if native else "", [span], source_file, {"format": "span-attributes"})
