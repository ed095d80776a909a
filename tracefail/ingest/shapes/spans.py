"""Span objects of any exporter -> the normalised span the OTel span mapper (`otel.span_step`)
reads, grouped by trace.

The same span arrives under many spellings: OTLP protobuf-JSON (`traceId`/`spanId` in hex,
base64 or as integers, `startTimeUnixNano`, `[{key, value}]` attributes), Zipkin v2 (`id`,
`parentId`, `timestamp`+`duration` in µs, `tags`, `annotations`, `localEndpoint`), Jaeger
(`traceID`, `spanID`, `references`, `startTime` µs, typed `tags`, `logs`), the OTel SDK's
`span.to_json()` (`context{trace_id, span_id}` as `0x…`, `parent_id`, ISO times, `status
{status_code}`), MLflow (`mlflow.spanInputs` / `spanOutputs` / `spanType`) and LangSmith runs
(`id`, `parent_run_id`, `run_type`, `inputs`, `outputs`, `error`). Text attributes that no
semantic convention names are mapped by the last part of their name (`…output`, `…completion`,
`…result`, `…input`, `…prompt`, `…args`, `…error`) for any vendor prefix.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from tracefail.ingest.base import parse_time
from tracefail.ingest.content import parse_json_text, readable
from tracefail.ingest.otel import _otlp_span, attributes, hex_id
from tracefail.ingest.reader import loads
from tracefail.ingest.shapes.find import CHILD_KEYS, PARENT_KEYS, SPAN_ID_KEYS, TRACE_ID_KEYS

NormalSpan = dict[str, Any]

_OUTPUT = re.compile(
    r"(?:^|[._])(?:outputs?|completions?|results?|response|answer|span_?outputs)(?:\.value)?$", re.I
)
_INPUT = re.compile(
    r"(?:^|[._])(?:inputs?|prompts?|args|arguments|parameters|span_?inputs)(?:\.value)?$", re.I
)
_SYSTEM = re.compile(
    r"(?:^|[._])(?:system_?instructions?|system_?prompt|system_?message|instructions)$", re.I
)
_TOOLS = re.compile(r"(?:^|[._])(?:tool_?definitions?|tools|functions|available_?tools)$", re.I)
FLAT_DEPTH = 8
_ERROR = re.compile(r"(?:^|[._])(?:error|exception)(?:\.message)?$", re.I)
_KIND_KEYS = (
    "openinference.span.kind",
    "mlflow.spanType",
    "traceloop.span.kind",
    "run_type",
    "span_kind",
    "type",
)
_KINDS = {
    "llm": "LLM",
    "chat_model": "LLM",
    "chat_model_call": "LLM",
    "chat": "LLM",
    "generation": "LLM",
    "tool": "TOOL",
    "agent": "AGENT",
    "chain": "CHAIN",
    "workflow": "CHAIN",
    "task": "CHAIN",
    "retriever": "RETRIEVER",
    "embedding": "EMBEDDING",
    "parser": "CHAIN",
    "prompt": "CHAIN",
}


def span_id(value: Any) -> str | None:
    """An id as hex: `0x`-prefixed (OTel SDK), integers (Zipkin/OTLP dumps), base64 or hex text."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return format(value, "x")
    text = str(value)
    if text.lower().startswith("0x"):
        return text[2:].lower()
    return hex_id(text)


def _first(item: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((item[k] for k in keys if item.get(k) not in (None, "")), None)


def _events(item: dict[str, Any]) -> list[dict[str, Any]]:
    """Span events, Zipkin annotations and Jaeger logs as `{name, attributes}`."""
    events = []
    for event in item.get("events") or []:
        if isinstance(event, dict):
            events.append(
                {
                    "name": str(event.get("name", "")),
                    "attributes": attributes(event.get("attributes")),
                }
            )
    for note in item.get("annotations") or []:  # Zipkin v2
        if isinstance(note, dict):
            events.append({"name": str(note.get("value", "")), "attributes": {}})
    for log in item.get("logs") or []:  # Jaeger
        if isinstance(log, dict):
            fields = _typed(log.get("fields"))
            events.append({"name": str(fields.pop("event", "log")), "attributes": fields})
    return events


def _typed(items: Any) -> dict[str, Any]:
    """Jaeger `[{key, type, value}]` tags (and OTLP `[{key, value}]`, and plain dicts)."""
    if isinstance(items, list) and items and isinstance(items[0], dict) and "type" in items[0]:
        return {str(t.get("key")): t.get("value") for t in items if isinstance(t, dict)}
    return attributes(items)


def _status(item: dict[str, Any], attrs: dict[str, Any]) -> tuple[Any, str | None]:
    status = item.get("status")
    message = None
    if isinstance(status, dict):
        message = status.get("message", status.get("description"))
        status = status.get("code", status.get("status_code"))
    status = status or item.get("status_code") or item.get("statusCode")
    error = item.get("error") or attrs.get("error") or attrs.get("otel.status_description")
    if error and str(error).lower() not in ("false", "0"):
        status = "ERROR"
        message = message or (error if isinstance(error, str) and error.lower() != "true" else None)
    message = message or item.get("status_message") or item.get("statusMessage")
    return status, (readable(message)[0] if message else None) or None


def _times(item: dict[str, Any]) -> tuple[Any, Any]:
    start = _first(
        item, ("startTimeUnixNano", "start_time_unix_nano", "start_time", "startTime", "timestamp")
    )
    end = _first(item, ("endTimeUnixNano", "end_time_unix_nano", "end_time", "endTime"))
    start_ts, end_ts = parse_time(_hrtime(start)), parse_time(_hrtime(end))
    duration = item.get("duration")
    if end_ts is None and start_ts is not None and isinstance(duration, int | float):
        from datetime import timedelta

        end_ts = start_ts + timedelta(microseconds=duration)  # Zipkin and Jaeger: µs
    return start_ts, end_ts


def _hrtime(value: Any) -> Any:
    """OTel JS spans write times as `[seconds, nanoseconds]`."""
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return value[0] * 1_000_000_000 + value[1]
    return value


def flat_attributes(
    value: Any, prefix: str = "", out: dict[str, Any] | None = None, depth: int = 0
) -> dict[str, Any]:
    """Nested attribute objects (Phoenix `{"llm": {"output_messages": [...]}}`) as the dotted,
    indexed keys the OpenInference conventions name (`llm.output_messages.0.message.content`);
    below FLAT_DEPTH levels a value stays whole (no convention nests deeper)."""
    out = {} if out is None else out
    if isinstance(value, dict) and value and depth < FLAT_DEPTH:
        for key, inner in value.items():
            flat_attributes(inner, f"{prefix}.{key}" if prefix else str(key), out, depth + 1)
    elif (
        isinstance(value, list)
        and value
        and all(isinstance(v, dict) for v in value)
        and prefix
        and depth < FLAT_DEPTH
    ):
        for index, inner in enumerate(value):
            flat_attributes(inner, f"{prefix}.{index}", out, depth + 1)
    elif prefix:
        out[prefix] = value
    return out


def instructions(spans: list[NormalSpan]) -> dict[str, list[Any]]:
    """The distinct system prompts and tool definitions a trace's spans carry, as attributes or
    inside JSON attributes (ADK's `llm_request.config.system_instruction` / `tools`), under any
    vendor prefix: they are the trace's, not any one step's (each LLM span repeats them)."""
    found: dict[str, list[Any]] = {"system_prompts": [], "tool_definitions": []}
    for span in spans:
        _instructions(span["attributes"], found, 0)
    return {kind: values for kind, values in found.items() if values}


def _instructions(value: Any, found: dict[str, list[Any]], depth: int) -> None:
    value = parse_json_text(value)
    if not isinstance(value, dict) or depth > 4:
        return
    for key, inner in value.items():
        if inner in (None, "", [], {}):
            continue
        kind = "system_prompts" if _SYSTEM.search(key) else "tool_definitions" if _TOOLS.search(key) else None
        if kind is None:
            _instructions(inner, found, depth + 1)
        elif inner not in found[kind]:
            found[kind].append(inner)


def _parent(item: dict[str, Any]) -> str | None:
    parent = _first(item, PARENT_KEYS)
    if isinstance(parent, dict):  # OTel JS `parentSpanContext`
        parent = _first(parent, SPAN_ID_KEYS)
    if parent is None:
        for ref in item.get("references") or []:  # Jaeger: the CHILD_OF reference of the same trace
            if isinstance(ref, dict) and ref.get("refType", "CHILD_OF") == "CHILD_OF":
                parent = ref.get("spanID", ref.get("span_id"))
                break
    return span_id(parent)


def vendor_text(attrs: dict[str, Any], item: dict[str, Any]) -> None:
    """Fill the keys the span mapper reads (`output.value`, `input.value`, `error.message`,
    `openinference.span.kind`) from text attributes named by their last part, any prefix."""
    for key in _KIND_KEYS:
        value = _json_scalar(attrs.get(key, item.get(key)))
        if isinstance(value, str) and value.lower() in _KINDS:
            attrs.setdefault("openinference.span.kind", _KINDS[value.lower()])
            break
    pairs = list(attrs.items()) + [
        (k, item[k]) for k in ("outputs", "output", "inputs", "input") if k in item
    ]
    for key, value in pairs:
        if value in (None, "", {}, []) or key in ("output.value", "input.value"):
            continue
        if _OUTPUT.search(key) and "output.value" not in attrs:
            text, calls = readable(_unwrap(value))
            attrs["output.value"] = text or str(value)
            if calls and "gen_ai.output.messages" not in attrs:  # the calls a model's output made
                attrs["gen_ai.output.messages"] = [
                    {
                        "role": "assistant",
                        "content": text,
                        "tool_calls": [
                            {"id": c.id, "function": {"name": c.name, "arguments": c.arguments}}
                            for c in calls
                        ],
                    }
                ]
        elif _INPUT.search(key) and "input.value" not in attrs:
            attrs["input.value"] = value
            messages = parse_json_text(value)
            messages = messages.get("messages") if isinstance(messages, dict) else None
            if isinstance(messages, list) and messages:  # a chat input: its user turn is the task
                attrs.setdefault("gen_ai.input.messages", messages)
        elif _ERROR.search(key) and isinstance(value, str):
            attrs.setdefault("error.message", value)


def _json_scalar(value: Any) -> Any:
    """MLflow writes every attribute as JSON text, strings too (`"\"CHAT_MODEL\""`)."""
    if isinstance(value, str) and value.startswith('"') and value.endswith('"'):
        try:
            return loads(value)
        except ValueError:
            return value
    return value


def _unwrap(value: Any) -> Any:
    """LangChain/LangSmith LLM outputs hold `generations: [[{text, message}]]`; chains `{output}`."""
    value = parse_json_text(value)
    if isinstance(value, dict) and isinstance(value.get("generations"), list):
        flat = [g for group in value["generations"] for g in (group if isinstance(group, list) else [group])]
        return [g.get("message", g.get("text")) if isinstance(g, dict) else g for g in flat]
    return value


def normalise(item: dict[str, Any], services: dict[str, str] | None = None) -> tuple[str, NormalSpan]:
    """(trace id, the span as the mapper reads it) of one span object of any exporter."""
    context: dict[str, Any] = next(
        (item[k] for k in ("context", "spanContext") if isinstance(item.get(k), dict)), {}
    )
    trace = span_id(_first(item, TRACE_ID_KEYS) or _first(context, TRACE_ID_KEYS))
    own = span_id(_first(item, SPAN_ID_KEYS) or _first(context, SPAN_ID_KEYS) or item.get("id"))
    attrs = _typed(item.get("attributes", item.get("tags", item.get("span_attributes"))))
    if any(isinstance(v, dict) for v in attrs.values()):
        attrs = flat_attributes(attrs)
    for key in ("extra", "metadata"):  # LangSmith runs keep invocation params and metadata here
        if isinstance(item.get(key), dict):
            attrs.setdefault(key, item[key])
    vendor_text(attrs, item)
    status, message = _status(item, attrs)
    start, end = _times(item)
    service = None
    endpoint = item.get("localEndpoint")
    if isinstance(endpoint, dict):
        service = endpoint.get("serviceName")
    elif services and item.get("processID") in services:
        service = services[item["processID"]]
    resource = item.get("resource")
    if service is None and isinstance(resource, dict):
        service = attributes(resource.get("attributes")).get("service.name")
    return str(trace or "?"), {
        "span_id": own,
        "parent_span_id": _parent(item),
        "name": _first(item, ("name", "operationName", "span_name")),
        "attributes": attrs,
        "events": _events(item),
        "start": start,
        "end": end,
        "status": status,
        "status_message": message,
        "service": service if isinstance(service, str) else None,
    }


def flatten_runs(
    items: list[Any], path: tuple[Any, ...] = ()
) -> list[tuple[dict[str, Any], tuple[Any, ...]]]:
    """Run trees (`child_runs`, `child_spans`, `children`) as one flat list of (span, its path),
    parents first; a child without a parent id gets its parent's."""
    out: list[tuple[dict[str, Any], tuple[Any, ...]]] = []
    stack = [
        (item, (*path, i), None) for i, item in reversed(list(enumerate(items))) if isinstance(item, dict)
    ]
    while stack:
        item, where, parent = stack.pop()
        key = next((k for k in CHILD_KEYS if isinstance(item.get(k), list)), None)
        flat = {k: v for k, v in item.items() if k != key}
        if parent is not None and not any(flat.get(k) for k in PARENT_KEYS):
            flat["parent_id"] = parent
        out.append((flat, where))
        if key is not None:
            own = _first(item, SPAN_ID_KEYS) or item.get("id")
            children = list(enumerate(item[key]))
            stack.extend((c, (*where, key, i), own) for i, c in reversed(children) if isinstance(c, dict))
    return out


def group(
    items: list[Any], path: tuple[Any, ...] = (), services: dict[str, str] | None = None
) -> dict[str, list[tuple[NormalSpan, tuple[Any, ...]]]]:
    """Spans by trace id, in file order, each with its path in the document."""
    grouped: dict[str, list[tuple[NormalSpan, tuple[Any, ...]]]] = defaultdict(list)
    for item, where in flatten_runs(items, path):
        trace, span = normalise(item, services)
        grouped[trace].append((span, where))
    return grouped


def otlp_group(
    document: dict[str, Any], path: tuple[Any, ...] = ()
) -> dict[str, list[tuple[NormalSpan, tuple[Any, ...]]]]:
    """An OTLP/JSON export's spans by trace, through the OTLP adapter's span reading."""
    grouped: dict[str, list[tuple[NormalSpan, tuple[Any, ...]]]] = defaultdict(list)
    top = "resourceSpans" if isinstance(document.get("resourceSpans"), list) else "batches"
    for r, resource_spans in enumerate(document.get(top) or []):
        if not isinstance(resource_spans, dict):
            continue
        resource = attributes((resource_spans.get("resource") or {}).get("attributes"))
        service = resource.get("service.name")
        scope_key = "scopeSpans" if "scopeSpans" in resource_spans else "instrumentationLibrarySpans"
        for s, scope in enumerate(resource_spans.get(scope_key) or []):
            for i, span in enumerate((scope.get("spans") if isinstance(scope, dict) else None) or []):
                if not isinstance(span, dict):
                    continue
                span = {
                    **span,
                    **{k: span_id(span[k]) for k in ("traceId", "spanId", "parentSpanId") if span.get(k)},
                }
                normal = _otlp_span(span, service if isinstance(service, str) else None)
                vendor_text(normal["attributes"], {})
                where = (*path, top, r, scope_key, s, "spans", i)
                grouped[str(span.get("traceId") or "?")].append((normal, where))
    return grouped
