"""AutoGen AgentChat saved team state (`await team.save_state()` dumped as JSON): `TeamState`
with `agent_states`, where the group chat manager's `message_thread` holds the conversation in
order. Each message is a step: `source` is the agent, `TextMessage` content is text,
`ToolCallRequestEvent` carries calls, `ToolCallExecutionEvent` results (with `is_error`),
`HandoffMessage` its `target`, and `models_usage` the token counts. Real dumps (the AgentChat
state tutorial) key `agent_states` by `<name>/<team_id>` and carry `team_id`, the trace's id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest.base import Rejected, as_int, parse_time, with_id
from tracefail.ingest.content import mapping, readable
from tracefail.ingest.reader import first_char, parse_whole_object
from tracefail.model import Step, StepKind, ToolCall, Trace


def manager_thread(doc: dict[str, Any]) -> tuple[str, list[Any]]:
    """(manager state type, message thread) of a TeamState; ValueError when it has none."""
    states = doc.get("agent_states")
    if not isinstance(states, dict):
        raise ValueError("not an AutoGen TeamState (needs `agent_states`)")
    for state in states.values():
        if isinstance(state, dict) and isinstance(state.get("message_thread"), list):
            return str(state.get("type") or ""), state["message_thread"]
    raise ValueError("no group chat manager state with a `message_thread`")


def _step(index: int, message: dict[str, Any]) -> Step:
    kind = str(message.get("type") or "")
    usage = mapping(message.get("models_usage"))
    content = message.get("content")
    calls: list[ToolCall] = []
    call_id = None
    status = None
    step_kind = StepKind.MESSAGE
    if kind == "ToolCallRequestEvent" and isinstance(content, list):
        calls = [
            ToolCall(
                id=c.get("id"),
                name=str(c.get("name") or "?"),
                arguments=a if isinstance(a := c.get("arguments"), str) else json.dumps(a or {}),
            )
            for c in content
            if isinstance(c, dict)
        ]
        text = ""
    elif kind == "ToolCallExecutionEvent" and isinstance(content, list):
        results = [c for c in content if isinstance(c, dict)]
        text = "\n".join(readable(r.get("content"))[0] for r in results)
        call_id = next((r.get("call_id") for r in results if r.get("call_id")), None)
        status = "error" if any(r.get("is_error") for r in results) else "ok"
        step_kind = StepKind.TOOL
    else:
        text, calls = readable(content)
    return Step(
        step_idx=index,
        agent=str(message.get("source") or "?"),
        recipient=message.get("target") if kind == "HandoffMessage" else None,
        role="user"
        if message.get("source") == "user"
        else "tool"
        if step_kind is StepKind.TOOL
        else "assistant",
        kind=step_kind,
        name=kind or None,
        content=text,
        tool_calls=calls,
        tool_call_id=call_id,
        tokens_in=as_int(usage.get("prompt_tokens")),
        tokens_out=as_int(usage.get("completion_tokens")),
        start_ts=parse_time(message.get("created_at")),
        status=status,
    )


def state_to_trace(doc: dict[str, Any], source_file: str, name: str) -> Trace:
    manager, thread = manager_thread(doc)
    steps = []
    for number, message in enumerate(thread):
        if not isinstance(message, dict):
            raise ValueError(f"message {number} is not an object")
        steps.append(_step(number, message))
    task = next((s.content for s in steps if s.agent == "user" and s.content), None)
    trace = Trace(
        trace_id="",
        source="autogen",
        native_id=str(doc["team_id"]) if doc.get("team_id") else None,  # real states carry it
        framework="AutoGen AgentChat",
        task=task,
        source_file=source_file,
        metadata={"team": manager.removesuffix("ManagerState") or None, "file": name},
        steps=steps,
    )
    return with_id(trace)


class AutoGenStateAdapter:
    name = "autogen-state"
    description = "AutoGen AgentChat saved team state JSON (TeamState; the manager's message_thread)"
    suffixes = (".json",)

    def sniff(self, path: Path, head: str) -> bool:
        return first_char(head) == "{" and '"agent_states"' in head and '"TeamState"' in head

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        yield from parse_whole_object(path, lambda doc: [state_to_trace(doc, str(path), path.name)])
