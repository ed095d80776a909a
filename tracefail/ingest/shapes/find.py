"""Where in a JSON document the span collections, message lists and event streams are.

A document is walked from the top; the first (outermost) collection along each branch that has
a known shape is taken and not walked into, so the messages inside a span's attributes or an
event's model response stay that item's business. What is found is described in words, so a
file no reader can map is quarantined with the shapes it did hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["spans", "otlp", "messages", "events"]
Path = tuple[str | int, ...]

MAX_DEPTH = 24  # wrappers seen in real exports nest 1-4 deep; deeper is data, not a wrapper

SPAN_ID_KEYS = ("spanId", "span_id", "spanID")
TRACE_ID_KEYS = ("traceId", "trace_id", "traceID")
PARENT_KEYS = (
    "parentSpanId",
    "parentSpanContext",
    "parent_span_id",
    "parentId",
    "parent_id",
    "parentID",
    "parent_run_id",
)
CHILD_KEYS = ("child_runs", "child_spans", "children")
OTLP_KEYS = ("resourceSpans", "batches")
ROLE_KEYS = ("role", "sender", "speaker", "from", "author")
TEXT_KEYS = ("content", "text", "message", "parts", "tool_calls", "function_call", "value")
MESSAGE_TYPES = ("Message", "message")  # AutoGen core `{"type": "AssistantMessage", ...}`


@dataclass(frozen=True)
class Found:
    """One collection: its kind, where it is, its items and the object holding it (its record)."""

    kind: Kind
    path: Path
    items: list[Any]
    record: dict[str, Any] | None
    record_path: Path | None


def is_span(item: Any) -> bool:
    """An object with a span id and a trace or parent id (OTLP, Zipkin, Jaeger, OTel SDK
    `to_json()`, MLflow, Phoenix `context`, LangSmith runs with `run_type`)."""
    if not isinstance(item, dict):
        return False
    context = item.get("context", item.get("spanContext"))
    if isinstance(context, dict) and any(k in context for k in SPAN_ID_KEYS) and "name" in item:
        return True
    if any(item.get(k) is not None for k in SPAN_ID_KEYS):
        return any(k in item for k in (*TRACE_ID_KEYS, *PARENT_KEYS, *CHILD_KEYS, "references", "span_name"))
    if "id" in item and any(k in item for k in TRACE_ID_KEYS):  # Zipkin v2 names the span id `id`
        return any(k in item for k in ("name", "timestamp", "localEndpoint", "duration"))
    return "id" in item and "run_type" in item  # a LangSmith run


def wrapped(item: dict[str, Any]) -> dict[str, Any] | None:
    """The message a session-log line wraps (`{type, id, parentId, timestamp, message: {role,
    content}}`: Pi, Claude Code), or None."""
    inner = item.get("message")
    return inner if isinstance(inner, dict) and is_message(inner) else None


def is_message(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    if wrapped(item) is not None:
        return True
    kind = item.get("type")
    if isinstance(kind, str) and kind.endswith(MESSAGE_TYPES) and ("content" in item or "source" in item):
        return True
    if not any(isinstance(item.get(k), str) for k in ROLE_KEYS):
        return False
    return any(k in item for k in TEXT_KEYS)


def is_event(item: Any) -> bool:
    """An action / observation event (OpenHands) or a step record that says what was done and
    what came back (SWE-agent trajectory entries, smolagents steps)."""
    if not isinstance(item, dict):
        return False
    if "action" in item or "observation" in item:
        return any(k in item for k in ("source", "timestamp", "id", "observation", "thought", "args"))
    kind = item.get("type")
    return isinstance(kind, str) and kind.endswith("Event") and len(item) > 1


_TESTS = (("spans", is_span), ("messages", is_message), ("events", is_event))


def classify(items: list[Any]) -> Kind | None:
    """The shape of a list when most of its objects have it (a stray header line does not
    stop a conversation from being one), or a typed log's conversation (`typed_messages`)."""
    objects = [item for item in items if isinstance(item, dict)]
    if not objects:
        return None
    for kind, test in _TESTS:
        hits = sum(1 for item in objects if test(item))
        if hits and hits * 2 >= len(objects):
            return kind  # type: ignore[return-value]
    return "messages" if len(typed_messages(objects)) >= 2 else None


def typed_messages(objects: list[Any]) -> list[dict[str, Any]]:
    """In a log whose records all say their `type` (session headers, model changes, messages),
    the records of the types whose every record is a message: the conversation, however many
    other records a short session has. Empty when some record has no `type`."""
    if not all(isinstance(o, dict) and isinstance(o.get("type"), str) for o in objects):
        return []
    not_messages = {o["type"] for o in objects if not is_message(o)}
    return [o for o in objects if o["type"] not in not_messages]


def find(document: Any) -> list[Found]:
    """Every outermost collection of a known shape, in document order."""
    found: list[Found] = []
    _walk(document, (), None, None, found, 0)
    return found


def _walk(
    value: Any, path: Path, record: Any, record_path: Path | None, out: list[Found], depth: int
) -> None:
    if depth > MAX_DEPTH:
        return
    if isinstance(value, dict):
        if any(isinstance(value.get(k), list) for k in OTLP_KEYS):
            out.append(Found("otlp", path, [value], record, record_path))
            return
        for key, inner in value.items():
            _walk(inner, (*path, key), value, path, out, depth + 1)
        return
    if not isinstance(value, list):
        return
    kind = classify(value)
    if kind is not None:
        out.append(Found(kind, path, value, record if isinstance(record, dict) else None, record_path))
        return
    for index, inner in enumerate(value):
        _walk(inner, (*path, index), record, record_path, out, depth + 1)


def describe(document: Any) -> str:
    """What a document holds, in words: 'a list of 12 objects with keys a, b, c'."""
    return _describe(document, 0)


def _keys(objects: list[dict[str, Any]]) -> str:
    seen: dict[str, None] = {}
    for item in objects[:50]:
        seen.update(dict.fromkeys(map(str, item)))
    names = list(seen)
    return ", ".join(names[:8]) + (f" (+{len(names) - 8} more)" if len(names) > 8 else "")


def _describe(value: Any, depth: int) -> str:
    if isinstance(value, dict):
        text = f"an object with keys {_keys([value])}" if value else "an empty object"
        inner = _largest_list(value)
        if inner is not None and depth < 3:
            key, items = inner
            text += f"; `{key}` is {_describe(items, depth + 1)}"
        return text
    if isinstance(value, list):
        objects = [v for v in value if isinstance(v, dict)]
        if objects:
            return f"a list of {len(value)} objects with keys {_keys(objects)}"
        kinds = sorted({type(v).__name__ for v in value})
        return f"a list of {len(value)} {'/'.join(kinds) or 'values'}"
    return f"a JSON {type(value).__name__}"


def _largest_list(value: dict[str, Any]) -> tuple[str, list[Any]] | None:
    lists = [(key, inner) for key, inner in value.items() if isinstance(inner, list) and inner]
    return max(lists, key=lambda pair: len(pair[1])) if lists else None


def iter_strings(value: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """Every string inside `value` with its path (keys are not text)."""
    stack: list[tuple[Path, Any]] = [(path, value)]
    while stack:
        where, current = stack.pop()
        if isinstance(current, str):
            yield where, current
        elif isinstance(current, dict):
            stack.extend(((*where, k), v) for k, v in reversed(list(current.items())))
        elif isinstance(current, list):
            stack.extend(((*where, i), v) for i, v in reversed(list(enumerate(current))))
