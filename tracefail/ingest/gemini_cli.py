"""Gemini CLI sessions (`~/.gemini/tmp/<project hash>/chats/session-*.json`): `sessionId`,
`startTime`, and `messages[]` of type user / gemini / info / error / warning with `content`
(and `displayContent`, what the user typed), `thoughts`, `toolCalls[]` (`name`, `args`,
`result[].functionResponse`, `status`), `tokens` and `model`. Each message is a step and each
tool call a tool step with its result.

Since 2026 the CLI writes `session-*.jsonl` instead (`chatRecordingService.ts`): a metadata line
(`sessionId`, `projectHash`, ...), then one line per message write (a message written again
under the same `id` replaces the earlier one in place), `{"$rewindTo": id}` (drop that message
and all after it), and `{"$set": {...}}` (metadata updates; a `messages` list there replaces the
whole history). The log is replayed the same way the CLI loads it, then read like a `.json`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest import fidelity
from tracefail.ingest.base import Rejected, as_int, parse_time, with_id
from tracefail.ingest.content import mapping, readable
from tracefail.ingest.reader import first_char, loads, parse_whole_object
from tracefail.model import Step, StepKind, ToolCall, Trace

_ROLES = {"user": "user", "gemini": "assistant", "model": "assistant"}


def session_to_trace(doc: dict[str, Any], source_file: str, log: list[Any] | None = None) -> Trace:
    """The session as a trace; `log`: the lines of a `.jsonl` session it was replayed from,
    whose rewritten and rewound writes keep their text in the metadata (`log_writes`)."""
    messages = doc.get("messages")
    if not isinstance(messages, list):
        raise ValueError("not a Gemini CLI session (needs a `messages` list)")
    steps: list[Step] = []
    for number, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(f"message {number} is not an object")
        kind = str(message.get("type") or "")
        text, _ = readable(message.get("content"))
        tokens = mapping(message.get("tokens"))
        thoughts = [t for t in message.get("thoughts") or [] if isinstance(t, dict)]
        calls = [c for c in message.get("toolCalls") or [] if isinstance(c, dict)]
        when = parse_time(message.get("timestamp"))
        steps.append(
            Step(
                step_idx=len(steps),
                agent="gemini" if kind == "gemini" else kind or None,
                role=_ROLES.get(kind, "system"),
                kind=StepKind.LLM
                if kind == "gemini"
                else StepKind.MESSAGE
                if kind == "user"
                else StepKind.EVENT,
                name=None if kind in _ROLES else kind,
                content=text,
                tool_calls=[
                    ToolCall(
                        id=c.get("id"),
                        name=str(c.get("name") or "?"),
                        arguments=a if isinstance(a := c.get("args"), str) else json.dumps(a or {}),
                    )
                    for c in calls
                ],
                model=message.get("model"),
                tokens_in=as_int(tokens.get("input")),
                tokens_out=as_int(tokens.get("output")),
                start_ts=when,
                status="error" if kind == "error" else None,
                metadata=_message_metadata(message, text, thoughts, tokens),
            )
        )
        for call in calls:
            output, _ = readable(call.get("result"))
            status = str(call.get("status") or "").lower()
            steps.append(
                Step(
                    step_idx=len(steps),
                    agent="tool",
                    role="tool",
                    kind=StepKind.TOOL,
                    name=str(call.get("displayName") or call.get("name") or "?"),
                    content=output or readable(call.get("resultDisplay"))[0],
                    tool_call_id=call.get("id"),
                    start_ts=parse_time(call.get("timestamp")) or when,
                    status="error"
                    if status in ("error", "cancelled")
                    else "ok"
                    if status == "success"
                    else None,
                )
            )
    task = next((s.content for s in steps if s.role == "user" and s.content), None)
    models = [s.model for s in steps if s.model]
    stored = fidelity.Stored.of_steps(steps, task)
    unread = [  # tool result displays (diffs), info texts: what no step took
        {"id": m.get("id"), **found}
        for m in messages
        for found in [stored.unread({k: v for k, v in m.items() if k != "id"})]
        if found
    ]
    writes = [
        found for line in log or [] if isinstance(line, dict) for found in [stored.unread(line)] if found
    ]
    more = stored.unread({k: v for k, v in doc.items() if k not in ("messages", "sessionId")})
    return with_id(
        Trace(
            trace_id="",
            source="gemini-cli",
            native_id=str(doc.get("sessionId") or "") or None,
            framework="Gemini CLI",
            llm=models[0] if models else None,
            task=task,
            source_file=source_file,
            metadata={
                k: doc[k]
                for k in ("projectHash", "startTime", "lastUpdated", "summary", "kind")
                if doc.get(k)
            }
            | ({"session": more} if more else {})
            | ({"messages": unread} if unread else {})
            | ({"log_writes": writes} if writes else {}),
            steps=steps,
        )
    )


def _message_metadata(
    message: dict[str, Any], text: str, thoughts: list[dict[str, Any]], tokens: dict[str, Any]
) -> dict[str, Any]:
    """Thoughts; what the user typed when the CLI expanded it (`/init` becomes a long prompt in
    `content`, `displayContent` keeps `/init`); token counts `input`/`output` leave out (`output`
    excludes thinking: total = input + output + thoughts + tool)."""
    metadata: dict[str, Any] = {}
    if thoughts:
        metadata["thoughts"] = [f"{t.get('subject', '')}: {t.get('description', '')}" for t in thoughts]
    shown, _ = readable(message.get("displayContent"))
    if shown and shown != text:
        metadata["display_content"] = shown
    extra = {k: n for k in ("cached", "thoughts", "tool") if (n := as_int(tokens.get(k)))}
    if extra:
        metadata["tokens"] = extra
    return metadata


def replay(lines: list[Any]) -> dict[str, Any]:
    """The conversation record a `.jsonl` session log ends at, as the CLI's loader builds it."""
    metadata: dict[str, Any] = {}
    messages: dict[str, dict[str, Any]] = {}
    for record in lines:
        if not isinstance(record, dict):
            continue
        if isinstance(record.get("$rewindTo"), str):
            ids = list(messages)
            cut = ids.index(record["$rewindTo"]) if record["$rewindTo"] in ids else 0
            for key in ids[cut:]:
                del messages[key]
        elif isinstance(record.get("id"), str):
            messages[record["id"]] = record
        elif isinstance(record.get("$set"), dict):
            if isinstance(record["$set"].get("messages"), list):
                messages = {
                    m["id"]: m for m in record["$set"]["messages"] if isinstance(m, dict) and "id" in m
                }
            metadata |= {k: v for k, v in record["$set"].items() if k != "messages"}
        elif isinstance(record.get("sessionId"), str):
            metadata |= {k: v for k, v in record.items() if k != "messages"}
            messages |= {
                m["id"]: m for m in record.get("messages") or [] if isinstance(m, dict) and "id" in m
            }
    return {**metadata, "messages": list(messages.values())}


def _is_metadata_line(line: str) -> bool:
    try:
        record = loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and "sessionId" in record and "projectHash" in record


class GeminiCliAdapter:
    name = "gemini-cli"
    description = (
        "Gemini CLI session JSON or JSONL log (~/.gemini/tmp/*/chats/session-*.json[l]; messages, toolCalls)"
    )
    suffixes = (".json", ".jsonl")

    def sniff(self, path: Path, head: str) -> bool:
        if path.suffix == ".jsonl":
            return _is_metadata_line(head.split("\n", 1)[0])
        return (
            first_char(head) == "{"
            and '"sessionId"' in head
            and '"messages"' in head
            and ('"type": "gemini"' in head or '"type":"gemini"' in head or '"projectHash"' in head)
        )

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        log: list[Any] = []

        def parse_lines(text: str) -> Any:
            log.extend(loads(line) for line in text.splitlines() if line.strip())
            return replay(log)

        yield from parse_whole_object(
            path,
            lambda doc: [session_to_trace(doc, str(path), log)],
            parse_lines if path.suffix == ".jsonl" else loads,
        )
