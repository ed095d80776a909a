"""OpenTelemetry spans -> steps: OTLP JSON exports and TRAIL-style nested span trees.

Attributes may follow any of the three generations of the GenAI semantic conventions
(`gen_ai.prompt`/`gen_ai.completion` attributes; per-message events; `gen_ai.input.messages`/
`gen_ai.output.messages`) or OpenInference (`llm.output_messages.0.message.content`, flattened).
An LLM span repeats the whole conversation in its input, so a step's content is only what the
span produced (its output messages, a tool's result); the input is not stored per step.
"""

from __future__ import annotations

import base64
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracefail.ingest import fidelity
from tracefail.ingest.base import Rejected, as_int, excerpt, first_json, parse_time, reason, text_of, with_id
from tracefail.ingest.otel_vendors import normalise
from tracefail.ingest.reader import RawRecord, first_char, iter_jsonl, loads, parse_whole_object, read_whole
from tracefail.model import Step, StepKind, ToolCall, Trace

SOURCE = "otel"
_HEX = re.compile(r"[0-9a-fA-F]+")

_KINDS = {
    "LLM": StepKind.LLM,
    "TOOL": StepKind.TOOL,
    "AGENT": StepKind.AGENT,
    "CHAIN": StepKind.CHAIN,
    "RETRIEVER": StepKind.RETRIEVER,
    "EMBEDDING": StepKind.OTHER,
    "RERANKER": StepKind.RETRIEVER,
    "GUARDRAIL": StepKind.CHAIN,
    "EVALUATOR": StepKind.CHAIN,
}
_OPERATIONS = {
    "chat": StepKind.LLM,
    "text_completion": StepKind.LLM,
    "generate_content": StepKind.LLM,
    "execute_tool": StepKind.TOOL,
    "invoke_agent": StepKind.AGENT,
    "create_agent": StepKind.AGENT,
    "embeddings": StepKind.OTHER,
}


# --- attribute values ----------------------------------------------------------------------
def any_value(value: Any) -> Any:
    """Decode an OTLP AnyValue ({"stringValue": ...}, {"arrayValue": {"values": [...]}}, ...)."""
    if not isinstance(value, dict):
        return value
    for key, inner in value.items():
        if key == "arrayValue":
            return [any_value(v) for v in (inner or {}).get("values", [])]
        if key == "kvlistValue":
            return attributes((inner or {}).get("values", []))
        if key == "intValue":
            return as_int(inner)
        if key in ("stringValue", "boolValue", "doubleValue", "bytesValue"):
            return inner
    return None


def attributes(items: Any) -> dict[str, Any]:
    """OTLP `[{key, value}]` lists, or plain dicts (already decoded exports), as one dict."""
    if isinstance(items, dict):
        return dict(items)
    if not isinstance(items, list):
        return {}
    return {
        item["key"]: any_value(item.get("value"))
        for item in items
        if isinstance(item, dict) and isinstance(item.get("key"), str)
    }


def indexed(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """Un-flatten `prefix.N.rest` keys into a list of {rest: value} dicts ordered by N."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.(.+)$")
    groups: dict[int, dict[str, Any]] = defaultdict(dict)
    for key, value in attrs.items():
        match = pattern.match(key)
        if match:
            groups[int(match.group(1))][match.group(2)] = value
    return [groups[i] for i in sorted(groups)]


def _json_value(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return loads(value)
        except ValueError:
            return value
    return value


# --- messages in the three GenAI generations and OpenInference ----------------------------------
def _parts_message(message: dict[str, Any]) -> tuple[str, list[ToolCall], str | None]:
    """Generation-3 message {role, parts: [{type: text|tool_call|tool_call_response|reasoning}]}."""
    texts, calls, call_id = [], [], None
    for part in message.get("parts") or []:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "tool_call":
            args = part.get("arguments")
            calls.append(
                ToolCall(
                    id=part.get("id"),
                    name=str(part.get("name") or "?"),
                    arguments=args if isinstance(args, str) else json.dumps(args),
                )
            )
        elif kind == "tool_call_response":
            call_id = part.get("id")
            texts.append(text_of(part.get("result", part.get("response"))))
        else:
            texts.append(text_of(part.get("content", part.get("text"))))
    return "\n".join(t for t in texts if t), calls, call_id


def _openai_message(message: dict[str, Any]) -> tuple[str, list[ToolCall], str | None]:
    from tracefail.ingest.chat import tool_calls_of

    if "parts" in message:
        return _parts_message(message)
    nested = message.get("message")
    inner: dict[str, Any] = nested if isinstance(nested, dict) else message
    return text_of(inner.get("content")), tool_calls_of(inner), inner.get("tool_call_id")


def _oi_message(flat: dict[str, Any]) -> tuple[str, list[ToolCall], str | None]:
    """An OpenInference message from its flattened keys (`message.content`, `message.tool_calls.0...`)."""
    content = flat.get("message.content")
    if content is None:
        content = "\n".join(str(p.get("message_content.text", "")) for p in indexed(flat, "message.contents"))
    calls = [
        ToolCall(
            id=c.get("tool_call.id"),
            name=str(c.get("tool_call.function.name") or "?"),
            arguments=text_of(c.get("tool_call.function.arguments")),
        )
        for c in indexed(flat, "message.tool_calls")
    ]
    return text_of(content), calls, flat.get("message.tool_call_id")


def output_of(attrs: dict[str, Any], events: list[dict[str, Any]]) -> tuple[str, list[ToolCall], str | None]:
    """What the span produced, newest convention first; ("", [], None) when it says nothing."""
    outputs = _json_value(attrs.get("gen_ai.output.messages"))  # generation 3
    for event in events:
        if event["name"] == "gen_ai.client.inference.operation.details" and outputs is None:
            outputs = _json_value(event["attributes"].get("gen_ai.output.messages"))
    if isinstance(outputs, list):
        return _join([_openai_message(m) for m in outputs if isinstance(m, dict)])
    choices = [e for e in events if e["name"] == "gen_ai.choice"]  # generation 2
    if choices:
        found = []
        for event in choices:
            body = event["attributes"]
            message = _json_value(body.get("message", body.get("gen_ai.event.content", body.get("body"))))
            if isinstance(message, dict):
                found.append(_openai_message(message))
            elif isinstance(message, str):
                found.append((message, [], None))
            elif "message.content" in body or "content" in body:
                found.append((text_of(body.get("message.content", body.get("content"))), [], None))
        return _join(found)
    oi = indexed(attrs, "llm.output_messages")  # OpenInference
    if oi:
        return _join([_oi_message(m) for m in oi])
    completion = indexed(attrs, "gen_ai.completion")  # generation 1 (indexed, OpenLLMetry style)
    if completion:
        return _join([_openai_message(_nest_tool_calls(m)) for m in completion])
    if "gen_ai.completion" in attrs:
        value = _json_value(attrs["gen_ai.completion"])
        if isinstance(value, list):
            return _join(
                [_openai_message(m) if isinstance(m, dict) else (text_of(m), [], None) for m in value]
            )
        return text_of(value), [], None
    result = attrs.get("gen_ai.tool.call.result", attrs.get("output.value"))
    return ("" if result is None else text_of(result)), [], None


def _nest_tool_calls(flat: dict[str, Any]) -> dict[str, Any]:
    message = {k: v for k, v in flat.items() if "." not in k}
    calls = indexed(flat, "tool_calls")
    if calls:
        message["tool_calls"] = [
            {"id": c.get("id"), "function": {"name": c.get("name"), "arguments": c.get("arguments")}}
            for c in calls
        ]
    return message


def _join(found: list[tuple[str, list[ToolCall], str | None]]) -> tuple[str, list[ToolCall], str | None]:
    text = "\n".join(t for t, _, _ in found if t)
    calls = [c for _, cs, _ in found for c in cs]
    call_id = next((i for _, _, i in found if i), None)
    return text, calls, call_id


def first_input_text(attrs: dict[str, Any], events: list[dict[str, Any]]) -> str | None:
    """The first user message a span saw: the task, when the trace has no better source."""
    candidates: list[tuple[str | None, str]] = []
    inputs = _json_value(attrs.get("gen_ai.input.messages"))
    if isinstance(inputs, list):
        candidates += [(m.get("role"), _openai_message(m)[0]) for m in inputs if isinstance(m, dict)]
    candidates += [
        (e["name"].split(".")[1], text_of(e["attributes"].get("content")))
        for e in events
        if e["name"] == "gen_ai.user.message"
    ]
    candidates += [(m.get("message.role"), _oi_message(m)[0]) for m in indexed(attrs, "llm.input_messages")]
    candidates += [(m.get("role"), text_of(m.get("content"))) for m in indexed(attrs, "gen_ai.prompt")]
    return next((text for role, text in candidates if role == "user" and text), None)


# --- spans -> steps ----------------------------------------------------------------------------
def _status(status: Any) -> str | None:
    if isinstance(status, dict):
        status = status.get("code")
    text = str(status or "").upper()
    if text in ("2", "STATUS_CODE_ERROR", "ERROR"):
        return "error"
    if text in ("1", "STATUS_CODE_OK", "OK"):
        return "ok"
    return None


def span_kind(attrs: dict[str, Any]) -> StepKind:
    """What a span did, from its attributes: the OpenInference span kind, else the GenAI
    operation, else a model (an LLM call) or a tool name (a tool run: Koog's tool spans name
    `gen_ai.tool.name` without an operation)."""
    oi = str(attrs.get("openinference.span.kind") or "").upper()
    if oi in _KINDS:
        return _KINDS[oi]
    operation = str(attrs.get("gen_ai.operation.name") or "")
    if operation in _OPERATIONS:
        return _OPERATIONS[operation]
    if "llm.model_name" in attrs or "gen_ai.request.model" in attrs:
        return StepKind.LLM
    if "gen_ai.tool.name" in attrs:
        return StepKind.TOOL
    return (
        StepKind.CHAIN
        if any(k.startswith(("gen_ai.", "llm.", "input.", "output.")) for k in attrs)
        else StepKind.OTHER
    )


# Where spans name their agent: the GenAI convention, OpenInference, Pydantic AI (Logfire); then
# the GenAI convention's agent id (Koog's spans name an agent only by its id, a UUID in the real export).
AGENT_KEYS = ("gen_ai.agent.name", "agent.name", "agent_name", "gen_ai.agent.id")


def span_agent(attrs: dict[str, Any]) -> str | None:
    """The agent a span's attributes name, if any."""
    return next((str(attrs[k]) for k in AGENT_KEYS if attrs.get(k)), None)


def crew_task_agents(spans_attrs: Iterable[dict[str, Any]]) -> dict[str, str]:
    """CrewAI task id -> the role of the agent that runs it. CrewAI's telemetry lists a crew's
    tasks in `crew_tasks` (JSON text of `{id, agent_role, ...}`) on its crew spans, and its task
    spans name only `task_id`."""
    roles: dict[str, str] = {}
    for attrs in spans_attrs:
        if "crew_tasks" not in attrs:  # all but a crew's one or two spans: skip the JSON decode
            continue
        tasks = _json_value(attrs["crew_tasks"])
        for task in tasks if isinstance(tasks, list) else ():
            if isinstance(task, dict) and task.get("id") and task.get("agent_role"):
                roles[str(task["id"])] = str(task["agent_role"])
    return roles


def crew_role(attrs: dict[str, Any], roles: Mapping[str, str]) -> str | None:
    """The role of the agent that runs the CrewAI task a span names by `task_id`, if listed."""
    task = attrs.get("task_id")
    return roles.get(str(task)) if task is not None else None


def _exceptions(events: list[dict[str, Any]]) -> list[str]:
    """`exception` span events as `exception: <type>: <message>` lines (an exception a span recorded
    is failure evidence even when its status stayed unset); the stack trace stays in the raw span."""
    found = []
    for event in events:
        if event["name"] == "exception":
            attrs = event["attributes"]
            said = [str(attrs[k]) for k in ("exception.type", "exception.message") if attrs.get(k)]
            found.append(": ".join(["exception", *said]))
    return found


def tool_call_id(attrs: dict[str, Any], default: str | None = None) -> str | None:
    """A tool span's call id. Microsoft Agent Framework's is a `[run id, call id]` pair, which
    arrives as an array (or JSON text decoded to one); it is kept as the JSON text the model's
    `tool_call` part names it by."""
    value = attrs.get("gen_ai.tool.call.id", attrs.get("tool_call.id", default))
    return value if value is None or isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def span_step(span: dict[str, Any], crew_roles: Mapping[str, str] | None = None) -> tuple[Step, str | None]:
    """One normalised span -> (a step with step_idx 0, the task text it reveals); `crew_roles`
    (`crew_task_agents` of the trace's spans) names the agent of a CrewAI task span."""
    attrs, events = normalise(span["attributes"]), span["events"]
    kind = span_kind(attrs)
    content, calls, call_id = output_of(attrs, events)
    problem = span["status_message"] or attrs.get("error.message") or attrs.get("exception.message")
    if _status(span["status"]) == "error" and problem and str(problem) not in content:
        content = f"{content}\nerror: {problem}".strip()
    for exception in _exceptions(events):
        if exception not in content:
            content = f"{content}\n{exception}".strip()
    tool_name = attrs.get("gen_ai.tool.name", attrs.get("tool.name"))
    if kind is StepKind.TOOL and not calls and tool_name:
        args = attrs.get("gen_ai.tool.call.arguments", attrs.get("tool.parameters", attrs.get("input.value")))
        call_id = tool_call_id(attrs, call_id)
        calls = [
            ToolCall(
                id=call_id, name=str(tool_name), arguments=args if isinstance(args, str) else text_of(args)
            )
        ]
    usage_in = attrs.get(
        "gen_ai.usage.input_tokens",
        attrs.get("gen_ai.usage.prompt_tokens", attrs.get("llm.token_count.prompt")),
    )
    usage_out = attrs.get(
        "gen_ai.usage.output_tokens",
        attrs.get("gen_ai.usage.completion_tokens", attrs.get("llm.token_count.completion")),
    )
    step = Step(
        step_idx=0,
        agent=span_agent(attrs)
        or crew_role(attrs, crew_roles or {})
        or (span["name"] if kind is StepKind.AGENT else None),
        role={StepKind.LLM: "assistant", StepKind.TOOL: "tool"}.get(kind),
        kind=kind,
        name=span["name"],
        content=content,
        tool_calls=calls,
        tool_call_id=call_id if kind is StepKind.TOOL else None,
        span_id=span["span_id"],
        parent_span_id=span["parent_span_id"],
        model=attrs.get("gen_ai.response.model")
        or attrs.get("gen_ai.request.model")
        or attrs.get("llm.model_name"),
        tokens_in=as_int(usage_in),
        tokens_out=as_int(usage_out),
        start_ts=span["start"],
        end_ts=span["end"],
        status=_status(span["status"]),
        metadata={
            k: v
            for k, v in {"status_message": span["status_message"], "service": span["service"]}.items()
            if v
        },
    )
    root_input = _json_value(attrs.get("input.value")) if span["parent_span_id"] is None else None
    if isinstance(root_input, dict):  # smolagents/TRAIL roots wrap the task: {"task": "..."}
        root_input = next(
            (root_input[k] for k in ("task", "input", "question") if isinstance(root_input.get(k), str)), None
        )
    return step, first_input_text(attrs, events) or root_input


def keep_unread(steps: list[Step], spans: list[dict[str, Any]], stored: fidelity.Stored) -> fidelity.Stored:
    """Attributes and events that hold text no step keeps (system instructions, tool
    definitions, an LLM span's input, stack traces, vendor prompts) go to their step's metadata
    (`attributes`, `events`) as the source gave them, where search, the judge and the TUI read
    them. Spans are read in step order, so text that repeats (the system prompt of every LLM
    call) is kept once, at its first span. `stored`: the text of all the trace's steps and its
    task; it comes back holding the kept entries too (a growing trace carries it on)."""
    for step, span in zip(steps, spans, strict=True):
        unread = stored.unread(span["attributes"])
        events = [
            {"name": event["name"], **({"attributes": attrs} if attrs else {})}
            for event in span["events"]
            for attrs in [stored.unread(event["attributes"])]
            if attrs or stored.unread({"name": event["name"]})
        ]
        if unread:
            step.metadata["attributes"] = unread
        if events:
            step.metadata["events"] = events
    return stored


def span_order_key(span: dict[str, Any], position: int) -> tuple[bool, int | float | Any, int]:
    """Where a span goes in its trace: by start time (spans without one last), then as listed."""
    return (span["start"] is None, span["start"] or 0, position)


def inherit_agents(steps: list[Step]) -> None:
    """A span without its own agent belongs to the nearest agent above it. Each span is walked
    once (settled spans end a walk), so a 20k-span parent chain is linear, and a cycle ends."""
    by_id = {step.span_id: step for step in steps}
    settled: set[int] = set()
    for step in steps:
        chain: list[Step] = []
        node: Step | None = step
        while node is not None and node.agent is None and id(node) not in settled:
            chain.append(node)
            settled.add(id(node))
            node = by_id.get(node.parent_span_id)
        agent = node.agent if node is not None else None
        for waiting in chain:
            waiting.agent = agent


@dataclass
class SpanSteps:
    """A trace's spans mapped to steps, with what a later span's mapping needs of them."""

    steps: list[Step]
    own_agents: dict[str | None, str | None]  # span id -> the agent it names itself
    stored: fidelity.Stored  # the steps' text, the task and the entries kept in metadata
    task: str | None
    task_span: str | None  # the span that gave the task


def map_spans(spans: list[dict[str, Any]]) -> SpanSteps:
    """Normalised spans -> steps in trace order, each with its agent and unread text."""
    order = sorted(range(len(spans)), key=lambda i: span_order_key(spans[i], i))
    steps, task, task_span = [], None, None
    roles = crew_task_agents(span["attributes"] for span in spans)
    for idx, i in enumerate(order):
        step, seen_task = span_step(spans[i], roles)
        step.step_idx = idx
        steps.append(step)
        if not task:  # the first task text seen, in step order
            task = seen_task if isinstance(seen_task, str) else None
            task_span = step.span_id if task else None
    own = {step.span_id: step.agent for step in steps}  # before inheriting
    inherit_agents(steps)
    stored = keep_unread(steps, [spans[i] for i in order], fidelity.Stored.of_steps(steps, task))
    return SpanSteps(steps, own, stored, task, task_span)


# Span attributes that name the session (conversation) a trace belongs to: OpenInference and
# Langfuse's OTel keys, the GenAI conventions' conversation id, Google ADK's.
SESSION_KEYS = ("session.id", "langfuse.session.id", "gen_ai.conversation.id", "gcp.vertex.agent.session_id")


def session_of(spans: list[dict[str, Any]]) -> str | None:
    """The first session id a span names (the ops dashboard groups traces by it)."""
    for span in spans:
        attrs = span["attributes"]
        for key in SESSION_KEYS:
            if attrs.get(key) not in (None, ""):
                return str(attrs[key])
    return None


def spans_to_trace(
    trace_id: str, spans: list[dict[str, Any]], source_file: str, metadata: dict[str, Any]
) -> Trace:
    if not spans:
        raise ValueError("the trace has no spans")
    mapped = map_spans(spans)
    session = session_of(spans)  # in metadata, outside the content hash
    metadata = metadata | {"session_id": session} if session else metadata
    return otel_trace(trace_id, mapped.steps, mapped.task, source_file, metadata)


def otel_trace(
    trace_id: str, steps: list[Step], task: str | None, source_file: str, metadata: dict[str, Any]
) -> Trace:
    """The trace of these steps (its id from the OTLP trace id)."""
    models = [s.model for s in steps if s.model]
    return with_id(
        Trace(
            trace_id="",
            source=SOURCE,
            native_id=trace_id,
            llm=models[0] if models else None,
            task=task,
            source_file=source_file,
            metadata=metadata,
            steps=steps,
        )
    )


def _otlp_span(span: dict[str, Any], service: str | None) -> dict[str, Any]:
    events = [
        {"name": e.get("name", ""), "attributes": attributes(e.get("attributes"))}
        for e in span.get("events") or []
    ]
    status = span.get("status") or {}
    return {
        "span_id": hex_id(span.get("spanId")),
        "parent_span_id": hex_id(span.get("parentSpanId")),
        "name": span.get("name"),
        "attributes": attributes(span.get("attributes")),
        "events": events,
        "start": parse_time(span.get("startTimeUnixNano")),
        "end": parse_time(span.get("endTimeUnixNano")),
        "status": status,
        "status_message": status.get("message") if isinstance(status, dict) else None,
        "service": service,
    }


def hex_id(value: Any) -> str | None:
    """Trace and span ids as hex: OTLP/JSON says hex, but protobuf-to-JSON dumps (older Tempo
    exports among them) write base64, and the same trace must get the same id either way."""
    if not value:
        return None
    text = str(value)
    if _HEX.fullmatch(text):
        return text.lower()
    try:
        return base64.b64decode(text, validate=True).hex()
    except ValueError:
        return text


def otlp_log_events(document: dict[str, Any]) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """(traceId, spanId, event) for every log record of an OTLP/JSON logs document. GenAI
    instrumentations (Google ADK among them) log messages as `gen_ai.*` log records instead of
    span events; the record body becomes the event's `message`, as generation 2 puts it."""
    from tracefail.ingest.content import readable

    for resource_logs in document.get("resourceLogs") or []:
        for scope_logs in (
            resource_logs.get("scopeLogs") or resource_logs.get("instrumentationLibraryLogs") or []
        ):
            for record in scope_logs.get("logRecords") or []:
                if not isinstance(record, dict) or not record.get("traceId"):
                    continue  # a log line outside any trace is not a step of one
                attrs = attributes(record.get("attributes"))
                body = any_value(record.get("body"))
                text, calls = readable(
                    body.get("content", body.get("message", body)) if isinstance(body, dict) else body
                )
                message = {
                    "role": (body.get("role") if isinstance(body, dict) else None) or "assistant",
                    "content": text,
                    "tool_calls": [
                        {"id": c.id, "function": {"name": c.name, "arguments": c.arguments}} for c in calls
                    ],
                }
                yield (
                    str(hex_id(record["traceId"])),
                    hex_id(record.get("spanId")),
                    {
                        "name": record.get("eventName") or attrs.get("event.name") or "log",
                        "attributes": {**attrs, "message": message},
                        "time": parse_time(record.get("timeUnixNano") or record.get("observedTimeUnixNano")),
                    },
                )


def attach_logs(grouped: dict[str, list[dict[str, Any]]], logs: list[tuple[str, str | None, dict]]) -> None:
    """Log records join their span's events; a record whose span is not in the file is its own step."""
    by_span = {span["span_id"]: span for spans in grouped.values() for span in spans}
    for trace_id, span_id, event in logs:
        if span_id in by_span:
            by_span[span_id]["events"].append(event)
            continue
        message = event["attributes"]["message"]
        grouped[trace_id].append(
            {
                "span_id": None,
                "parent_span_id": span_id,
                "name": event["name"],
                "attributes": {"output.value": message["content"]},
                "events": [],
                "start": event["time"],
                "end": None,
                "status": None,
                "status_message": None,
                "service": None,
            }
        )


_OTLP_KEYS = ("resourceSpans", "batches", "resourceLogs")


class OtlpAdapter:
    name = "otel"
    description = (
        "OpenTelemetry OTLP/JSON resourceSpans (GenAI semconv 1-3, OpenInference, Google ADK, Vercel AI), "
        "Grafana Tempo `batches`, `gen_ai.*` log records (resourceLogs); .json/.jsonl"
    )
    suffixes = (".json", ".jsonl", ".ndjson")

    def sniff(self, path: Path, head: str) -> bool:
        if path.suffix == ".json":
            return first_char(head) == "{" and any(f'"{key}"' in head for key in _OTLP_KEYS)
        first = first_json(head)
        return isinstance(first, dict) and any(key in first for key in _OTLP_KEYS)

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        from tracefail.ingest.otlp_live import SpanGroup, file_traces, log_records, spans_by_trace

        documents = (
            iter_jsonl(path) if path.suffix != ".json" else iter([RawRecord("whole file", read_whole(path))])
        )
        grouped: dict[str, list[SpanGroup]] = defaultdict(list)
        logs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for raw in documents:  # a trace's spans may be spread over several export batches
            try:
                document = raw.json()
                if not isinstance(document, dict) or not any(key in document for key in _OTLP_KEYS):
                    raise ValueError(
                        "not an OTLP/JSON export (no `resourceSpans`, `batches` or `resourceLogs`)"
                    )
                has_spans = "resourceSpans" in document or "batches" in document
                spans = spans_by_trace(document) if has_spans else {}
                records = log_records(document)
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                yield Rejected(raw.locator, reason(exc), excerpt(raw.text))
                continue
            for trace_id, groups in spans.items():
                grouped[trace_id].extend(groups)
            for trace_id, found in records.items():
                logs[trace_id].extend(found)
        yield from file_traces(grouped, logs, str(path))


# --- TRAIL-style span trees: {trace_id, spans: [{span_id, span_attributes, child_spans: [...]}]} ----
def _tree_span(span: dict[str, Any], parent: str | None, out: list[dict[str, Any]]) -> None:
    attrs = attributes(span.get("span_attributes", span.get("attributes")))
    start = parse_time(span.get("start_time", span.get("timestamp")))
    end = parse_time(span.get("end_time"))
    out.append(
        {
            "span_id": span.get("span_id"),
            "parent_span_id": span.get("parent_span_id") or parent,
            "name": span.get("span_name", span.get("name")),
            "attributes": attrs,
            "events": [
                {
                    "name": e.get("name", e.get("event_name", "")),
                    "attributes": attributes(e.get("attributes", e.get("event_attributes"))),
                }
                for e in span.get("events") or []
                if isinstance(e, dict)
            ],
            "start": start,
            "end": end,
            "status": span.get("status_code"),
            "status_message": span.get("status_message"),
            "service": None,
        }
    )
    for child in span.get("child_spans") or []:
        if isinstance(child, dict):
            _tree_span(child, span.get("span_id"), out)


class SpanTreeAdapter:
    name = "span-tree"
    description = "OpenInference span trees as JSON ({trace_id, spans[].child_spans}; TRAIL benchmark files)"
    suffixes = (".json",)

    def sniff(self, path: Path, head: str) -> bool:
        return (
            first_char(head) == "{"
            and '"spans"' in head
            and ('"child_spans"' in head or '"span_attributes"' in head)
        )

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        yield from parse_whole_object(path, lambda document: [_span_tree_trace(document, path)])


def _span_tree_trace(document: dict[str, Any], path: Path) -> Trace:
    """The trace of a `{"spans": [...]}` document whose spans nest their children."""
    if not isinstance(document.get("spans"), list):
        raise ValueError("not a span tree (needs a `spans` list)")
    spans: list[dict[str, Any]] = []
    for span in document["spans"]:
        _tree_span(span, None, spans)
    first = spans[0]["attributes"].get("trace_id") if spans else None
    native = document.get("trace_id") or first or path.stem
    return spans_to_trace(str(native), spans, str(path), {"format": "span-tree"})
