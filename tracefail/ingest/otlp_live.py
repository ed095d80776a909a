"""OTLP span batches -> merged traces, for `tracefail serve` and for OTLP files.

An exporter sends a trace's spans in whatever requests its batching produces, so a live trace
is never complete, and a file export may hold only part of a trace: each stored OTLP trace
keeps its spans (and log records) as an OTLP/JSON document in `raw`, and new spans are merged
into that document (a span id sent twice is kept once; two different copies are a conflict)
before the trace is rebuilt with the span -> step mapping of `ingest/otel.py`.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracefail.ingest.otel import (
    SOURCE,
    _otlp_span,
    attach_logs,
    attributes,
    hex_id,
    otlp_log_events,
    spans_to_trace,
)
from tracefail.ingest.reader import loads
from tracefail.model import Trace, stable_id

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")

# One service's spans of one trace: (service.name, [OTLP/JSON span dicts]).
SpanGroup = tuple[str | None, list[dict[str, Any]]]


class BadRequest(ValueError):
    """The request cannot be read as an OTLP trace export; the message says why, in one line."""


def decode_body(body: bytes, content_type: str | None, content_encoding: str | None) -> dict[str, Any]:
    """An export request's body as an OTLP/JSON document, whichever encoding it came in."""
    encoding = (content_encoding or "identity").strip().lower()
    try:
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding != "identity":
            raise BadRequest(f"unsupported Content-Encoding {content_encoding!r} (use gzip or none)")
    except (OSError, EOFError, zlib.error) as exc:
        raise BadRequest(f"body is not valid {encoding} data ({exc})") from None
    media = (content_type or "").split(";")[0].strip().lower()
    if media == PROTOBUF:
        return _from_protobuf(body)
    if media in (JSON, ""):
        try:
            document = loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(f"body is not JSON ({exc})") from None
        if not isinstance(document, dict):
            raise BadRequest("body is not an OTLP/JSON export (expected an object with `resourceSpans`)")
        return document
    raise BadRequest(f"unsupported Content-Type {content_type!r} (use {PROTOBUF} or {JSON})")


def _from_protobuf(body: bytes) -> dict[str, Any]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise BadRequest(f"body is not an OTLP protobuf ExportTraceServiceRequest ({exc})") from None
    # ids come out base64 (protobuf bytes); spans_by_trace turns them into OTLP/JSON's hex
    return json_format.MessageToDict(request, use_integers_for_enums=True)


def spans_by_trace(document: dict[str, Any]) -> dict[str, list[SpanGroup]]:
    """The spans of one export document grouped by trace id; BadRequest if it is not OTLP."""
    resource_list = document.get("resourceSpans", document.get("batches"))  # batches: older Tempo
    if not isinstance(resource_list, list):
        raise BadRequest("not an OTLP trace export (no `resourceSpans` list)")
    grouped: dict[str, list[SpanGroup]] = defaultdict(list)
    for number, resource_spans in enumerate(resource_list):
        if not isinstance(resource_spans, dict):
            raise BadRequest(f"resourceSpans[{number}] is not an object")
        resource = attributes((resource_spans.get("resource") or {}).get("attributes"))
        service = resource.get("service.name")
        per_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        scopes = resource_spans.get("scopeSpans") or resource_spans.get("instrumentationLibrarySpans") or []
        for scope_spans in scopes:
            for span in (scope_spans.get("spans") if isinstance(scope_spans, dict) else None) or []:
                if not isinstance(span, dict) or not span.get("traceId") or not span.get("spanId"):
                    raise BadRequest(f"resourceSpans[{number}]: a span without `traceId` or `spanId`")
                # one id spelling (hex) whatever the sender used, so retries and files match
                span = {**span, **{key: hex_id(span[key]) for key in _ID_FIELDS if span.get(key)}}
                per_trace[span["traceId"]].append(span)
        for trace_id, spans in per_trace.items():
            grouped[trace_id].append((service if isinstance(service, str) else None, spans))
    return grouped


def live_trace_id(native_id: str) -> str:
    """The stored id of an OTLP trace: the same whether its spans came live or from a file."""
    return stable_id(SOURCE, native_id, "")


@dataclass(frozen=True)
class MergedSpans:
    """A trace's spans and OTLP log records as its stored `raw` document holds them: per
    service, the first copy of each span id in arrival order. Each merge reads the stored
    `raw` back and rebuilds the whole trace from it (a write costs O(spans so far);
    `benchmarks/otlp_merge.py` measures it)."""

    services: dict[str | None, dict[str, dict[str, Any]]] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of_raw(cls, raw: str | None) -> MergedSpans:
        """What a stored `raw` holds (nothing for a new trace)."""
        return cls().merge(*spans_of(raw))[0]

    def merge(
        self, groups: list[SpanGroup], logs: list[dict[str, Any]] | None = None
    ) -> tuple[MergedSpans, list[str]]:
        """These spans plus `groups` (and log records), as a new value, and one line per conflict.

        A span id seen twice is kept once, its first copy: a retry changes nothing, and a second
        copy that says something else is a conflict (which copy is right is not ours to guess).
        """
        services = {service: dict(spans) for service, spans in self.services.items()}
        seen = {span_id: service for service, spans in services.items() for span_id in spans}
        conflicts: list[str] = []
        for service, spans in groups:
            for span in spans:
                span_id = str(span["spanId"])
                if span_id not in seen:
                    seen[span_id] = service
                    services.setdefault(service, {})[span_id] = span
                    continue
                first_service = seen[span_id]
                first = services[first_service][span_id]
                if (first_service, first) != (service, span) and (
                    _otlp_span(first, first_service) != _otlp_span(span, service)
                ):  # compared decoded: protobuf and JSON spell the same span apart
                    conflicts.append(
                        f"span {span_id} arrived again with different content; the first copy is kept"
                    )
        records = {**self.records, **{_key(r): r for r in logs or []}}
        return MergedSpans(services, records), conflicts

    def trace(self, trace_id: str, source_file: str, fmt: str = "otlp-live") -> Trace:
        """The trace rebuilt from all these spans, with them as its `raw` OTLP/JSON document."""
        document: dict[str, Any] = {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": []
                        if service is None
                        else [{"key": "service.name", "value": {"stringValue": service}}]
                    },
                    "scopeSpans": [{"spans": list(spans.values())}],
                }
                for service, spans in self.services.items()
            ]
        }
        if self.records:
            document["resourceLogs"] = [{"scopeLogs": [{"logRecords": list(self.records.values())}]}]
        grouped = {
            trace_id: [
                _otlp_span(span, service)
                for service, spans in self.services.items()
                for span in spans.values()
            ]
        }
        attach_logs(grouped, list(otlp_log_events(document)))
        trace = spans_to_trace(trace_id, grouped[trace_id], source_file, {"format": fmt})
        trace.raw = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        return trace


def merge_trace(
    trace_id: str,
    stored_raw: str | None,
    groups: list[SpanGroup],
    source_file: str,
    *,
    logs: list[dict[str, Any]] | None = None,
    fmt: str = "otlp-live",
) -> tuple[Trace, list[str]]:
    """The trace holding the stored spans (if any) plus `groups` (and OTLP log records, which
    become events of their spans), rebuilt from all of them, and one line per conflict."""
    merged, conflicts = MergedSpans.of_raw(stored_raw).merge(groups, logs)
    return merged.trace(trace_id, source_file, fmt), conflicts


def log_records(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The log records of an OTLP/JSON document that belong to a trace, by (hex) trace id."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for resource_logs in document.get("resourceLogs") or []:
        scopes = resource_logs.get("scopeLogs") or resource_logs.get("instrumentationLibraryLogs") or []
        for scope_logs in scopes:
            for record in scope_logs.get("logRecords") or []:
                if isinstance(record, dict) and record.get("traceId"):
                    found[str(hex_id(record["traceId"]))].append(record)
    return found


def spans_of(raw: str | None) -> tuple[list[SpanGroup], list[dict[str, Any]]]:
    """The span groups and log records kept in a trace's `raw` OTLP document."""
    if not raw:
        return [], []
    document = loads(raw)
    groups = [group for groups in spans_by_trace(document).values() for group in groups]
    return groups, [r for records in log_records(document).values() for r in records]


def _key(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False)
