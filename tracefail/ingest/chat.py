"""OpenAI-style chat messages -> steps, and the OpenAI chat JSONL format built on it.

Several formats (OpenAI fine-tuning/eval JSONL, tau-bench `traj`, Inspect `messages`) carry the
same message shape: `role`, `content` (text or parts), optional `name`, assistant `tool_calls`
and tool `tool_call_id`. They all go through `message_steps` so they map the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest.base import Rejected, excerpt, first_json, reason, text_of, with_id
from tracefail.ingest.reader import iter_jsonl
from tracefail.model import Outcome, Step, StepKind, ToolCall, Trace


def tool_calls_of(message: dict[str, Any]) -> list[ToolCall]:
    """OpenAI `tool_calls` ({id, function{name, arguments}}), Inspect ({id, function, arguments}),
    LangChain ({id, name, args}) and the legacy single `function_call`; arguments kept as the JSON
    text the source gave."""
    calls = list(message.get("tool_calls") or [])
    if isinstance(message.get("function_call"), dict):
        calls.append({"function": message["function_call"]})
    out = []
    for call in calls:
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        if isinstance(function, dict):
            name, arguments = function.get("name"), function.get("arguments")
        else:
            name, arguments = function or call.get("name"), call.get("arguments", call.get("args"))
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        out.append(ToolCall(id=call.get("id"), name=str(name or "?"), arguments=arguments or ""))
    return out


def message_steps(messages: list[Any], *, first_idx: int = 0) -> list[Step]:
    """One step per message. The speaker is `name` when given (multi-agent logs), else the role;
    a tool message's `name`/`function` is the tool, not a speaker."""
    steps = []
    for offset, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(f"message {offset} is not an object")
        role = message.get("role")
        is_tool = role in ("tool", "function")
        tool_name = message.get("function") or message.get("name") if is_tool else None
        error = message.get("error")
        steps.append(
            Step(
                step_idx=first_idx + offset,
                agent=str(message["name"])
                if message.get("name") and not is_tool
                else (str(role) if role else None),
                role=role,
                kind=StepKind.TOOL if is_tool else StepKind.MESSAGE,
                name=str(tool_name) if tool_name else None,
                content=text_of(message.get("content")),
                tool_calls=tool_calls_of(message),
                tool_call_id=message.get("tool_call_id"),
                model=message.get("model") if isinstance(message.get("model"), str) else None,
                status="error" if error else None,
                metadata={"error": error} if error else {},
            )
        )
    return steps


def outcome_of(value: Any) -> Outcome:
    """A record's `outcome` (AdaMAST writes `{"status": "failure", "score": 0.0}`; others a word)."""
    if isinstance(value, dict):
        value = value.get("status", value.get("outcome"))
    if isinstance(value, bool):
        return Outcome.SUCCESS if value else Outcome.FAILURE
    word = str(value or "").strip().lower()
    if word in ("success", "succeeded", "pass", "passed", "resolved", "correct"):
        return Outcome.SUCCESS
    if word in ("failure", "failed", "fail", "error", "incorrect", "unresolved"):
        return Outcome.FAILURE
    return Outcome.UNKNOWN


def first_user_text(messages: list[Any]) -> str | None:
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            return text_of(message.get("content")) or None
    return None


class OpenAIChatAdapter:
    name = "openai-chat"
    description = "OpenAI chat JSONL: one conversation per line ({messages, tools?}); `name` is the agent"
    suffixes = (".jsonl", ".ndjson")

    def sniff(self, path: Path, head: str) -> bool:
        first = first_json(head)
        return isinstance(first, dict) and isinstance(first.get("messages"), list)

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        for raw in iter_jsonl(path):
            try:
                record = raw.json()
                if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
                    raise ValueError("not a chat record (needs a `messages` list)")
                messages = record["messages"]
                if not messages:
                    raise ValueError("`messages` is empty")
                native = record.get("id") or record.get("conversation_id") or record.get("trace_id")
                yield with_id(
                    Trace(
                        trace_id="",
                        source="openai-chat",
                        native_id=str(native) if native is not None else None,
                        llm=record.get("model") if isinstance(record.get("model"), str) else None,
                        task=record["task"]
                        if isinstance(record.get("task"), str)
                        else first_user_text(messages),
                        outcome=outcome_of(record.get("outcome")),
                        source_file=str(path),
                        metadata={k: v for k, v in record.items() if k not in {"messages", "id"}},
                        steps=message_steps(messages),
                    )
                )
            except ValueError as exc:
                yield Rejected(raw.locator, reason(exc), excerpt(raw.text))
