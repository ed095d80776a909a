"""Action / observation event streams -> steps.

OpenHands writes `{id, timestamp, source, action, args, message, tool_call_metadata}` for what
an agent did and `{..., observation, content, extras, cause}` for what came back; SWE-agent's
`trajectory` entries hold `{thought, action, observation, response}`; typed `…Event` records
(`{"type": "ToolCallRequestEvent", source, content}`) carry the same. An action becomes a step
with the action as a tool call, an observation a tool step with its result; a `message` action
is a message step.
"""

from __future__ import annotations

import json
from typing import Any

from tracefail.ingest.base import parse_time
from tracefail.ingest.content import mapping, readable
from tracefail.model import Step, StepKind, ToolCall

CONSUMED = frozenset(
    {"action", "observation", "source", "message", "content", "args", "thought", "timestamp", "id"}
    | {"cause", "type", "response", "tool_call_metadata"}
)
_ERROR_OBSERVATIONS = ("error", "user_rejected", "reject")


def _text(*values: Any) -> str:
    """The distinct texts of `values`, in order (an action's `message` often repeats its thought)."""
    out: list[str] = []
    for value in values:
        text = readable(value)[0] if value not in (None, "") else ""
        if text and not any(text in seen for seen in out):
            out.append(text)
    return "\n".join(out)


def _arguments(args: Any) -> str:
    if isinstance(args, str):
        return args
    if isinstance(args, dict):
        args = {k: v for k, v in args.items() if k not in ("thought",)}
    return json.dumps(args, ensure_ascii=False)


def event_step(event: dict[str, Any], idx: int) -> Step:
    meta: dict[str, Any] = mapping(event.get("tool_call_metadata"))
    source = event.get("source") if isinstance(event.get("source"), str) else None
    # older OpenHands histories put an action's arguments beside `action`, not under `args`
    args = (
        event["args"]
        if isinstance(event.get("args"), dict)
        else {k: v for k, v in event.items() if k not in CONSUMED}
    )
    when = parse_time(event.get("timestamp"))
    if "observation" in event and "action" not in event:
        kind = str(event.get("observation"))
        extras = event["extras"] if isinstance(event.get("extras"), dict) else event
        nested = mapping(extras.get("metadata"))
        exit_code = extras.get("exit_code", nested.get("exit_code"))
        failed = kind in _ERROR_OBSERVATIONS or (isinstance(exit_code, int) and exit_code not in (0, -1))
        return Step(
            step_idx=idx,
            agent=source,
            role="tool",
            kind=StepKind.TOOL,
            name=str(meta.get("function_name") or kind),
            content=_text(event.get("content"), event.get("message")),
            tool_call_id=meta.get("tool_call_id"),
            start_ts=when,
            status="error" if failed else None,
        )
    action = event.get("action")
    if action in ("message", "system", "recall") or (action is None and "observation" not in event):
        return Step(
            step_idx=idx,
            agent=source,
            role="user" if source == "user" else "assistant",
            kind=StepKind.MESSAGE,
            name=str(action or event.get("type") or "message"),
            content=_text(
                args.get("content"), event.get("message"), event.get("content"), event.get("thought")
            ),
            status="error" if event.get("error") else None,
            start_ts=when,
        )
    if "observation" in event:  # one record with both (SWE-agent trajectory entries)
        return Step(
            step_idx=idx,
            agent=source or "agent",
            role="assistant",
            kind=StepKind.TOOL,
            name="action",
            content=_text(event.get("thought"), event.get("response"), event.get("observation")),
            tool_calls=[ToolCall(name=str(action).split(" ", 1)[0] or "?", arguments=str(action))],
            start_ts=when,
        )
    name = str(meta.get("function_name") or action)
    return Step(
        step_idx=idx,
        agent=source,
        role="assistant",
        kind=StepKind.MESSAGE,
        name=str(action),
        content=_text(args.get("thought", event.get("thought")), event.get("message")),
        tool_calls=[ToolCall(id=meta.get("tool_call_id"), name=name, arguments=_arguments(args))],
        start_ts=when,
    )


def steps_of(events: list[Any]) -> list[Step]:
    return [event_step(e, i) for i, e in enumerate(e for e in events if isinstance(e, dict))]


def first_user(events: list[Any]) -> str | None:
    for event in events:
        if isinstance(event, dict) and event.get("source") == "user" and event.get("action") == "message":
            return _text(mapping(event.get("args")).get("content"), event.get("message")) or None
    return None
