"""OTLP span batches -> merged traces, for `tracefail serve` and for OTLP files.

An exporter sends a trace's spans in whatever requests its batching produces, so a live trace
is never complete, and a file export may hold only part of a trace: each stored OTLP trace
keeps its spans (and log records) as an OTLP/JSON document in `raw`, and new spans are merged
into that document (a span id sent twice is kept once; two different copies are a conflict)
before the trace is rebuilt with the span -> step mapping of `ingest/otel.py`.
"""

from __future__ import annotations

import json
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracefail.ingest import base
from tracefail.ingest.otel import (
    SOURCE,
    _otlp_span,
    attach_logs,
    attributes,
    hex_id,
    otlp_log_events,
    span_step,
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

    status = 400


class TooLarge(BadRequest):
    """The request (or what it decompresses to) is over a size limit: HTTP 413."""

    status = 413


MAX_BODY = 16 * 1024 * 1024  # bytes of a request, compressed or not, and of what it inflates to
MAX_FIELD = 4 * 1024 * 1024  # characters of one string in a span
MAX_DEPTH = 32  # containers nested in one span (an attribute's kvlist in an array in ...)
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class Rejected:
    """One span (or request) that was not taken, why, and its content (quarantined with it)."""

    record: str
    reason: str
    content: str


def inflate(body: bytes, encoding: str, limit: int = MAX_BODY) -> bytes:
    """Decompress `body` a chunk at a time and stop at `limit` bytes of output: a 1 MB gzip of
    zeros is 1 GB inflated, and `gzip.decompress` would hold all of it before any check."""
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    out: list[bytes] = []
    size = 0
    rest = body
    try:
        while rest:  # gzip allows several members back to back
            inflater = zlib.decompressobj(wbits)
            data = rest
            while data and not inflater.eof:
                piece = inflater.decompress(data, min(_CHUNK, limit - size + 1))
                size += len(piece)
                if size > limit:
                    raise TooLarge(f"body inflates to over the {limit:,}-byte limit")
                out.append(piece)
                data = inflater.unconsumed_tail
            if not inflater.eof:
                raise BadRequest(f"body is not valid {encoding} data (truncated)")
            rest = inflater.unused_data
            if encoding != "gzip":
                break
    except zlib.error as exc:
        raise BadRequest(f"body is not valid {encoding} data ({exc})") from None
    return b"".join(out)


def decode_body(body: bytes, content_type: str | None, content_encoding: str | None) -> dict[str, Any]:
    """An export request's body as an OTLP/JSON document, whichever encoding it came in."""
    encoding = (content_encoding or "identity").strip().lower()
    if len(body) > MAX_BODY:
        raise TooLarge(f"body of {len(body):,} bytes is over the {MAX_BODY:,}-byte limit")
    if encoding in ("gzip", "deflate"):
        body = inflate(body, encoding)
    elif encoding != "identity":
        raise BadRequest(f"unsupported Content-Encoding {content_encoding!r} (use gzip or none)")
    media = (content_type or "").split(";")[0].strip().lower()
    if media == PROTOBUF:
        return _from_protobuf(body)
    if media in (JSON, ""):
        try:
            document = loads(body)  # bounded: deep nesting is a ValueError naming the depth limit
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(f"body cannot be read as JSON ({exc})") from None
        if not isinstance(document, dict):
            raise BadRequest("body is not an OTLP/JSON export (expected an object with `resourceSpans`)")
        return document
    raise BadRequest(f"unsupported Content-Type {content_type!r} (use {PROTOBUF} or {JSON})")


def _from_protobuf(body: bytes) -> dict[str, Any]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:  # protobuf stops at 100 nested messages: deep nesting lands here
        raise BadRequest(f"body is not an OTLP protobuf ExportTraceServiceRequest ({exc})") from None
    return request_document(request)


def request_document(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """A decoded protobuf export (HTTP body or gRPC message) as an OTLP/JSON document."""
    # ids come out base64 (protobuf bytes); the span readers turn them into OTLP/JSON's hex
    return json_format.MessageToDict(request, use_integers_for_enums=True)


def _resource_groups(document: dict[str, Any]) -> list[tuple[str | None, list[Any]]]:
    """(service.name, [span candidates]) per resource of an export; BadRequest where the
    envelope (not one span) has the wrong shape, naming where."""
    resource_list = document.get("resourceSpans", document.get("batches"))  # batches: older Tempo
    if not isinstance(resource_list, list):
        raise BadRequest("not an OTLP trace export (no `resourceSpans` list)")
    found = []
    for number, resource_spans in enumerate(resource_list):
        where = f"resourceSpans[{number}]"
        if not isinstance(resource_spans, dict):
            raise BadRequest(f"{where} is not an object")
        resource = resource_spans.get("resource") or {}
        if not isinstance(resource, dict):
            raise BadRequest(f"{where}.resource is not an object")
        service = attributes(resource.get("attributes")).get("service.name")
        scopes = resource_spans.get("scopeSpans") or resource_spans.get("instrumentationLibrarySpans") or []
        if not isinstance(scopes, list):
            raise BadRequest(f"{where}.scopeSpans is not a list")
        spans: list[Any] = []
        for scope_number, scope_spans in enumerate(scopes):
            listed = scope_spans.get("spans") if isinstance(scope_spans, dict) else None
            if not isinstance(listed, list | None):
                raise BadRequest(f"{where}.scopeSpans[{scope_number}].spans is not a list")
            spans.extend(listed or [])
        found.append((service if isinstance(service, str) else None, spans))
    return found


def spans_by_trace(document: dict[str, Any]) -> dict[str, list[SpanGroup]]:
    """The spans of one export document grouped by trace id; BadRequest if it is not OTLP."""
    grouped: dict[str, list[SpanGroup]] = defaultdict(list)
    for number, (service, spans) in enumerate(_resource_groups(document)):
        per_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for span in spans:
            if not isinstance(span, dict) or not span.get("traceId") or not span.get("spanId"):
                raise BadRequest(f"resourceSpans[{number}]: a span without `traceId` or `spanId`")
            span = _hex_ids(span)
            per_trace[span["traceId"]].append(span)
        for trace_id, trace_spans in per_trace.items():
            grouped[trace_id].append((service, trace_spans))
    return grouped


def accept_spans(document: dict[str, Any]) -> tuple[dict[str, list[SpanGroup]], list[Rejected]]:
    """The spans of a live export that can be stored, by trace id, and those that cannot, each
    with why: every span is checked (ids, sizes, nesting, and mapped to a step once) on arrival,
    so one bad span is refused alone instead of failing the write of everything queued with it."""
    grouped: dict[str, list[SpanGroup]] = defaultdict(list)
    rejected: list[Rejected] = []
    for number, (service, spans) in enumerate(_resource_groups(document)):
        per_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for span_number, span in enumerate(spans):
            record = f"resourceSpans[{number}] span {span_number}"
            problem = _span_problem(span, service)
            if problem:
                rejected.append(Rejected(record, problem, _content(span)))
                continue
            span = _hex_ids(span)
            per_trace[span["traceId"]].append(span)
        for trace_id, trace_spans in per_trace.items():
            grouped[trace_id].append((service, trace_spans))
    return grouped, rejected


def _hex_ids(span: dict[str, Any]) -> dict[str, Any]:
    """One id spelling (hex) whatever the sender used, so retries and files match."""
    return {**span, **{key: hex_id(span[key]) for key in _ID_FIELDS if span.get(key)}}


def _span_problem(span: Any, service: str | None) -> str | None:
    """Why this span cannot be stored, in one line; None when it can."""
    if not isinstance(span, dict):
        return f"a span is a {type(span).__name__}, not an object"
    for key in ("traceId", "spanId"):
        if not isinstance(span.get(key), str) or not span[key] or len(span[key]) > 64:
            return f"`{key}` is missing or not an id string"
    if span.get("parentSpanId") is not None and not isinstance(span["parentSpanId"], str):
        return "`parentSpanId` is not an id string"
    stack: list[tuple[Any, int]] = [(span, 1)]
    while stack:  # iterative: a span nested 10,000 deep must not exhaust Python's stack here
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep"
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str) and len(value) > MAX_FIELD:
            return f"a field of {len(value):,} characters is over the {MAX_FIELD:,}-character limit"
    try:
        span_step(_otlp_span(_hex_ids(span), service))
    except Exception as exc:  # whatever the mapping trips on, this span alone is refused
        return f"cannot be read as a span ({type(exc).__name__}: {exc})"
    return None


def _content(span: Any) -> str:
    """The start of a refused span's JSON, kept in quarantine so it can be looked at and resent."""
    try:
        return json.dumps(span, ensure_ascii=False, default=str)[:2000]
    except (ValueError, RecursionError):
        return repr(span)[:2000]


def live_trace_id(native_id: str) -> str:
    """The stored id of an OTLP trace: the same whether its spans came live or from a file."""
    return stable_id(SOURCE, native_id, "")


@dataclass(frozen=True)
class MergedSpans:
    """A trace's spans and OTLP log records as its stored `raw` document holds them: per
    service, the first copy of each span id in arrival order. A trace is rebuilt from it
    where the writer holds no `GrowingTrace` of it (see `otlp_growing`)."""

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


def file_traces(
    grouped: dict[str, list[SpanGroup]], logs: dict[str, list[dict[str, Any]]], source_file: str
) -> Iterator[Trace | base.Rejected]:
    """The traces of an OTLP/JSON file, each built by `merge_trace` (the path live spans take, so a
    later file or `serve` can merge into it); a trace that cannot be built is rejected alone."""
    for trace_id in [*grouped, *(t for t in logs if t not in grouped)]:
        try:
            trace, conflicts = merge_trace(
                trace_id, None, grouped.get(trace_id, []), source_file, logs=logs.get(trace_id), fmt="otlp"
            )
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            yield base.Rejected(f"trace {trace_id}", base.reason(exc))
            continue
        yield from (base.Rejected(f"trace {trace_id}", conflict) for conflict in conflicts)
        yield trace


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
