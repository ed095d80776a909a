"""Claude Managed Agents sessions: the typed events of a session (`/v1/sessions/{id}/events`).

Each event has an `id` (`sevt_…`), a `type` and `processed_at`. The events a judge reads:
`user.message` and `agent.message` (content blocks), `agent.thinking`, the agent's tool calls
(`agent.tool_use` for built-in tools, `agent.mcp_tool_use` with `mcp_server_name`,
`agent.custom_tool_use` for tools the client runs: `name`, `input`) and their results
(`agent.tool_result` by `tool_use_id`, `agent.mcp_tool_result` by `mcp_tool_use_id`,
`user.custom_tool_result` by `custom_tool_use_id`; `is_error`), `user.tool_confirmation`
(`result` allow / deny, `deny_message`) and `session.error`. `span.model_request_end` carries a
model call's `model_usage`, which goes to the agent steps of that call. `session.status_*` and
`session.thread_status_*` events name the agent (`agent_name`) and why it stopped; they are
kept in the trace metadata, not as steps.

Accepted files: the events as a JSON list, a `{"data": [...]}` page of the list endpoint, JSONL
of events, and recordings of SDK calls (`["client.beta.sessions.events.stream", event]` per
line, as the LangSmith SDK's tests keep them), where `sessions.create` / `retrieve` give the
session (`id`, `agent.name`, `agent.model`, `agent.system`). Events sent by the client and
echoed back by the stream are read once (by their `id`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest import fidelity
from tracefail.ingest.base import Rejected, as_int, excerpt, parse_time, reason, text_of, with_id
from tracefail.ingest.content import mapping, readable
from tracefail.ingest.reader import first_char, loads, read_whole
from tracefail.model import Step, StepKind, ToolCall, Trace

_EVENT = re.compile(r'"type"\s*:\s*"(?:agent\.(?:message|\w*tool_use)|user\.message|session\.status_\w+)"')
_TOOL_USES = {"agent.tool_use", "agent.mcp_tool_use", "agent.custom_tool_use"}
# a result event -> the field that names the tool call it answers
_RESULTS = {
    "agent.tool_result": "tool_use_id",
    "agent.mcp_tool_result": "mcp_tool_use_id",
    "user.custom_tool_result": "custom_tool_use_id",
}
_STATUS = ("session.status_", "session.thread_status_", "span.model_request_start")


def _is_event(value: Any) -> bool:
    kind = value.get("type") if isinstance(value, dict) else None
    return isinstance(kind, str) and kind.split(".", 1)[0] in ("user", "agent", "session", "span")


def _collect(value: Any, events: list[dict[str, Any]], sessions: list[dict[str, Any]]) -> None:
    """Events and session objects anywhere in a list, a `data` page or an SDK call recording."""
    if isinstance(value, dict):
        if value.get("type") == "session":
            sessions.append(value)
        elif _is_event(value):
            events.append(value)
        elif isinstance(value.get("data"), list):
            _collect(value["data"], events, sessions)
        elif isinstance(value.get("events"), list):  # a request body the client sent
            _collect(value["events"], events, sessions)
    elif isinstance(value, list):
        for item in value:
            _collect(item, events, sessions)


def _documents(path: Path) -> list[tuple[str, str]]:
    """(where, JSON text) of the file's one document, or of each JSONL line."""
    text = read_whole(path)
    if path.suffix == ".json":
        return [("whole file", text)]
    return [(f"line {n}", line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _unique(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stream events once each; a sent event without an `id` only where the stream has none."""
    with_ids = {e["id"] for e in events if e.get("id")}
    seen: set[str] = set()
    out = []
    for event in events:
        if event.get("id"):
            if event["id"] in seen:
                continue
            seen.add(event["id"])
        elif with_ids:
            continue
        out.append(event)
    return out


def session_to_trace(events: list[dict[str, Any]], session: dict[str, Any], source_file: str) -> Trace:
    agent_spec = mapping(session.get("agent"))
    agent_name = agent_spec.get("name")
    model = mapping(agent_spec.get("model")).get("id") or agent_spec.get("model")
    steps: list[Step] = []
    read: list[dict[str, Any]] = []  # the event of each step
    calls: dict[str, str] = {}  # tool-use event id -> tool name
    request: list[Step] = []  # the agent steps of the model request now open
    status: list[dict[str, Any]] = []
    for event in events:
        kind = str(event["type"])
        when = parse_time(event.get("processed_at"))
        agent_name = event.get("agent_name") or agent_name
        if kind.startswith(_STATUS):
            if kind == "span.model_request_start":
                request = []
            else:
                status.append(event)
            continue
        if kind == "span.model_request_end":
            usage = mapping(event.get("model_usage"))
            for step in request[:1]:  # one call's usage, once
                step.tokens_in = as_int(usage.get("input_tokens"))
                step.tokens_out = as_int(usage.get("output_tokens"))
                step.metadata["model_usage"] = usage
            if event.get("is_error"):
                for step in request:
                    step.status = "error"
            request = []
            continue
        text, _ = readable(event.get("content"))
        step = Step(step_idx=len(steps), span_id=event.get("id"), name=kind, content=text, start_ts=when)
        if kind in _TOOL_USES:
            server, tool = event.get("mcp_server_name"), str(event.get("name") or "?")
            calls[str(event.get("id"))] = f"{server}.{tool}" if server else tool
            step.tool_calls = [
                ToolCall(
                    id=event.get("id"),
                    name=calls[str(event.get("id"))],
                    arguments=text_of(event.get("input")),
                )
            ]
        if kind.startswith("agent."):
            step.role, step.agent, step.model = "assistant", agent_name, model
            step.kind = StepKind.LLM
            request.append(step)
        if kind in _RESULTS:
            call_id = event.get(_RESULTS[kind])
            step.role, step.kind, step.agent = "tool", StepKind.TOOL, None
            step.tool_call_id = call_id
            step.name = calls.get(str(call_id), kind)
            step.status = "error" if event.get("is_error") else "ok"
        elif kind == "user.message":
            step.role, step.agent, step.kind = "user", "user", StepKind.MESSAGE
        elif kind == "user.tool_confirmation":
            step.role, step.agent, step.kind = "user", "user", StepKind.EVENT
            step.tool_call_id = event.get("tool_use_id")
            step.content = "\n".join(
                str(v) for v in (event.get("result"), event.get("deny_message")) if v not in (None, "")
            )
        elif kind == "session.error" or event.get("error"):
            step.kind, step.status = StepKind.EVENT, "error"
            step.content = step.content or text_of(event.get("error"))
        elif not kind.startswith("agent."):
            step.kind = StepKind.EVENT
        steps.append(step)
        read.append(event)
    if not steps:
        raise ValueError("the session has no message, tool or error events")
    task = next((s.content for s in steps if s.role == "user" and s.content), None)
    stored = fidelity.Stored.of_steps(steps, task)
    for step, event in zip(steps, read, strict=True):
        unread = stored.unread({k: v for k, v in event.items() if k not in ("content", "input")})
        if unread:
            step.metadata["event"] = unread
    kept = stored.unread({k: v for k, v in session.items() if k != "id"})
    stops = [e.get("stop_reason") for e in status if e.get("stop_reason")]
    return with_id(
        Trace(
            trace_id="",
            source="managed-agents",
            native_id=session.get("id") or _session_id(events),
            framework="Claude Managed Agents",
            llm=model if isinstance(model, str) else None,
            task=task,
            source_file=source_file,
            metadata=({"session": kept} if kept else {})
            | ({"stop_reasons": stops} if stops else {})
            | ({"agent": agent_name} if agent_name else {}),
            steps=steps,
        )
    )


def _session_id(events: list[dict[str, Any]]) -> str | None:
    return next((str(e["session_id"]) for e in events if e.get("session_id")), None)


class ManagedAgentsAdapter:
    name = "managed-agents"
    description = (
        "Claude Managed Agents session events (a list, a `data` page, JSONL, or SDK call recordings)"
    )
    suffixes = (".json", ".jsonl", ".ndjson")

    def sniff(self, path: Path, head: str) -> bool:
        return first_char(head) in "{[" and '"processed_at"' in head and bool(_EVENT.search(head))

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        """One session per file; a line that is not JSON is rejected, the rest still read."""
        events: list[dict[str, Any]] = []
        sessions: list[dict[str, Any]] = []
        for where, text in _documents(path):
            try:
                _collect(loads(text), events, sessions)
            except ValueError as exc:
                yield Rejected(where, reason(exc), excerpt(text))
        try:
            session = sessions[-1] if sessions else {}  # the latest state of the session
            yield session_to_trace(_unique(events), session, str(path))
        except (ValueError, TypeError) as exc:
            yield Rejected("whole file", reason(exc), "")
