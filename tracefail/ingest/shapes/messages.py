"""Chat messages of any common shape -> steps, through the shared `chat.message_steps`.

Shapes: `{role, content, name?, tool_calls?, tool_call_id?}` (OpenAI and its many copies),
`{sender|speaker|from|author, recipient?, content|text|message}` (multi-agent logs), typed
messages `{"type": "AssistantMessage" | "UserMessage" | "SystemMessage" |
"FunctionExecutionResultMessage", source, content}` (AutoGen core), SWE-agent's `agent` key,
ShareGPT conversations `{from: human | gpt | system | function_call | observation, value}`
(a `function_call` value is the call's `{name, arguments}` JSON), content as a string, a list
of parts of any provider (`content.readable`) or JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tracefail.ingest.base import parse_time
from tracefail.ingest.chat import message_steps
from tracefail.ingest.content import parse_json_text, readable
from tracefail.ingest.shapes.find import typed_messages, wrapped
from tracefail.model import Step, StepKind

_TIME_KEYS = ("timestamp", "created_at", "createdAt", "time")

_TYPED_ROLES = {
    "AssistantMessage": "assistant",
    "UserMessage": "user",
    "SystemMessage": "system",
    "FunctionExecutionResultMessage": "tool",
    "ToolMessage": "tool",
    "HumanMessage": "user",
    "AIMessage": "assistant",
    "TextMessage": None,  # AgentChat: the speaker is `source`
}
# Role values that name a standard role another way (LangChain, Gemini, Pi's `toolResult`).
_ROLE_ALIASES = {"human": "user", "ai": "assistant", "model": "assistant", "toolResult": "tool"}
_SPEAKER_KEYS = ("name", "agent", "source", "sender", "speaker", "from", "author")
# Words that name a role, not a speaker, wherever a speaker key holds them (ShareGPT's `from`).
_ROLE_WORDS = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
    "function": "tool",
}


def _role(message: dict[str, Any]) -> str | None:
    kind = message.get("type")
    if isinstance(kind, str) and kind in _TYPED_ROLES:
        return _TYPED_ROLES[kind] or (message.get("role") if isinstance(message.get("role"), str) else None)
    role = message.get("role")
    if isinstance(role, str):
        return _ROLE_ALIASES.get(role, role)
    said = message.get("from")
    return _ROLE_WORDS.get(said.lower()) if isinstance(said, str) else None


def _body(message: dict[str, Any]) -> Any:
    for key in ("content", "text", "message", "parts", "value"):
        if key in message and message[key] not in (None, ""):
            return message[key]
    return None


def normal_message(message: dict[str, Any]) -> dict[str, Any]:
    """One message of any shape as the `{role, name, content, tool_calls, tool_call_id, error}`
    that `chat.message_steps` maps."""
    role = _role(message)
    body = _body(message)
    error = message.get("error") or None
    ids = message.get("tool_call_ids")  # SWE-agent
    call_id = (
        message.get("tool_call_id")
        or message.get("toolCallId")
        or message.get("call_id")
        or (ids[0] if isinstance(ids, list) and ids else None)
    )
    tool_name = message.get("toolName") if isinstance(message.get("toolName"), str) else None
    if isinstance(body, list) and body and all(isinstance(p, dict) and "call_id" in p for p in body):
        # AutoGen FunctionExecutionResult: [{content, call_id, is_error, name}]
        call_id = call_id or body[0].get("call_id")
        tool_name = body[0].get("name")
        error = error or ("tool error" if any(p.get("is_error") for p in body) else None)
        role = role or "tool"
    if message.get("from") == "function_call" and isinstance(body, str):
        body = parse_json_text(body)  # ShareGPT: the call as `{name, arguments}` JSON text
    text, calls = readable(body)
    if (not calls and isinstance(message.get("tool_calls"), list | dict)) or message.get("function_call"):
        from tracefail.ingest.chat import tool_calls_of

        calls = calls or tool_calls_of(message)
    if message.get("is_error") or message.get("isError"):
        error = error or "tool error"
    # SWE-agent tags every message, the user's and the tools' too, with the `agent` it belongs
    # to: a speaker only for the model's own turns
    keys = _SPEAKER_KEYS if role not in ("user", "system", "tool") else _SPEAKER_KEYS[:1] + _SPEAKER_KEYS[2:]
    speaker = next(
        (
            message[k]
            for k in keys
            if isinstance(message.get(k), str) and message[k].lower() not in _ROLE_WORDS
        ),
        None,
    )
    if role is None:  # a speaker key holding a role word (AgentChat `source: "user"`) is the role
        said = next((message[k] for k in _SPEAKER_KEYS if isinstance(message.get(k), str)), "")
        role = _ROLE_WORDS.get(said.lower()) or ("assistant" if speaker else None)
    if role in ("tool", "function"):
        speaker = message.get("name") or tool_name
        call_id = call_id or message.get("id")  # tau2-bench: a tool message's `id` is its call's
    return {
        "role": role,
        "name": speaker,
        "content": text,
        "tool_calls": [{"id": c.id, "function": {"name": c.name, "arguments": c.arguments}} for c in calls],
        "tool_call_id": call_id,
        "model": message.get("model"),
        "error": error,
    }


def indexed(messages: list[Any]) -> list[tuple[int, dict[str, Any]]]:
    """The items that become steps, with their index in the list: every object, or in a typed
    log only the message records (its other records' text is kept by `leftover`)."""
    objects = [(i, m) for i, m in enumerate(messages) if isinstance(m, dict)]
    typed = {id(m) for m in typed_messages([m for _, m in objects])}
    return [(i, m) for i, m in objects if id(m) in typed] if typed else objects


def _unwrapped(message: dict[str, Any]) -> dict[str, Any]:
    return wrapped(message) or message


def _when(message: dict[str, Any]) -> datetime | None:
    """When a message was written: its (or its wrapper's) timestamp, if it says."""
    for record in (message, _unwrapped(message)):
        for key in _TIME_KEYS:
            if record.get(key) is not None and (when := parse_time(record[key])) is not None:
                return when
    return None


def steps_of(messages: list[Any]) -> list[Step]:
    """One step per message object (other items of the list are not messages: skipped); a
    `recipient` is kept as the hand-off target; a wrapped message (a session-log line) is read
    inside its wrapper, with the wrapper's timestamp."""
    objects = [m for _, m in indexed(messages)]
    steps = message_steps([normal_message(_unwrapped(m)) for m in objects])
    calls: dict[str, str] = {}
    pending: list[str] = []  # tools called and not yet answered, oldest first
    for step, message in zip(steps, objects, strict=True):
        calls.update({call.id: call.name for call in step.tool_calls if call.id})
        pending.extend(call.name for call in step.tool_calls)
        if step.kind is StepKind.TOOL and not step.name:
            # a result names the tool its call named; without ids, the oldest call not answered
            if step.tool_call_id in calls:
                step.name = calls[step.tool_call_id]
            elif step.tool_call_id is None and pending:
                step.name = pending[0]
        if step.kind is StepKind.TOOL and step.name in pending:
            pending.remove(step.name)
        recipient = message.get("recipient")
        if isinstance(recipient, str):
            step.recipient = recipient
        elif isinstance(recipient, dict) and isinstance(recipient.get("name"), str):
            step.recipient = recipient["name"]
        if step.role == "system" and step.kind is StepKind.MESSAGE:
            step.name = step.name or "system"
        step.start_ts = _when(message)
    return steps


def first_user(messages: list[Any]) -> str | None:
    for message in (_unwrapped(m) if isinstance(m, dict) else m for m in messages):
        if isinstance(message, dict) and _role(message) == "user" and not message.get("is_demo"):
            text = readable(_body(message))[0]
            if text:
                return text
    return None
