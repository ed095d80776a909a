"""Claude Code session logs (~/.claude/projects/<project>/<session>.jsonl): one file, one trace.

Each line is an entry (`type` user/assistant/system/summary/...) whose `message.content` is
text or blocks. Every block becomes a step: text and thinking are messages, `tool_use` a tool
call, `tool_result` (inside a user entry) the tool's answer. `uuid`/`parentUuid` are kept as
span ids so the conversation tree (and side chains of sub-agents) survives. Content-less lines
(`system` `turn_duration`, `progress` hook runs and sub-agent heartbeats) are counted in
`system_events`, not stored as empty steps; an `agent_progress` line names the Task call that
spawned a sub-agent, kept as `subagent_calls`.
A broken line (e.g. the half-written last line of a live session) is quarantined alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest import fidelity
from tracefail.ingest.base import Rejected, as_int, excerpt, parse_time, reason, text_of, with_id
from tracefail.ingest.content import mapping
from tracefail.ingest.reader import iter_jsonl, loads
from tracefail.model import Step, StepKind, ToolCall, Trace

_SKIP = {"summary", "file-history-snapshot", "queue-operation"}


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def entry_steps(entry: dict[str, Any]) -> list[Step]:
    """Steps for one entry, with step_idx 0; the caller numbers them."""
    kind = entry.get("type")
    message = mapping(entry.get("message"))
    if kind == "system":
        message = {"role": "system", "content": entry.get("content", "")}
    role = message.get("role", kind)
    agent = f"{role} (sidechain)" if entry.get("isSidechain") and role == "assistant" else role
    usage = mapping(message.get("usage"))
    base = {
        "agent": agent,
        "role": role,
        "parent_span_id": entry.get("parentUuid"),
        "model": message.get("model"),
        "start_ts": parse_time(entry.get("timestamp")),
    }
    steps = []
    for number, block in enumerate(_blocks(message.get("content"))):
        span = entry.get("uuid") if number == 0 else f"{entry.get('uuid')}#{number}"
        btype = block.get("type")
        if btype == "tool_use":
            call = ToolCall(
                id=block.get("id"),
                name=str(block.get("name") or "?"),
                arguments=json.dumps(block.get("input"), ensure_ascii=False),
            )
            step = Step(step_idx=0, span_id=span, kind=StepKind.MESSAGE, tool_calls=[call], **base)
        elif btype == "tool_result":
            step = Step(
                step_idx=0,
                span_id=span,
                kind=StepKind.TOOL,
                content=text_of(block.get("content")),
                tool_call_id=block.get("tool_use_id"),
                status="error" if block.get("is_error") else None,
                **{**base, "agent": "tool", "role": "tool"},
            )
        elif btype == "thinking":
            step = Step(
                step_idx=0, span_id=span, name="thinking", content=str(block.get("thinking", "")), **base
            )
        elif btype == "text":
            step = Step(step_idx=0, span_id=span, content=str(block.get("text", "")), **base)
        else:  # images and future block types: keep that they happened, not their bytes
            step = Step(step_idx=0, span_id=span, kind=StepKind.EVENT, name=str(btype), **base)
        steps.append(step)
    if steps and usage:
        steps[0].tokens_in = as_int(usage.get("input_tokens"))
        steps[0].tokens_out = as_int(usage.get("output_tokens"))
    for step in steps:
        if entry.get("isSidechain"):
            step.metadata["sidechain"] = True
    return steps


class ClaudeCodeAdapter:
    name = "claude-code"
    description = "Claude Code session JSONL (~/.claude/projects/*/*.jsonl); one session per file"
    suffixes = (".jsonl",)

    def sniff(self, path: Path, head: str) -> bool:
        # newer sessions may open with `file-history-snapshot` lines: look at the first few
        for line in head.splitlines()[:5]:
            try:
                entry = loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and (
                "parentUuid" in entry
                or "sessionId" in entry
                or (entry.get("type") == "summary" and "leafUuid" in entry)
            ):
                return True
        return False

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        steps: list[Step] = []
        session, summary, task, agent_id = None, None, None, None
        system_events: dict[str, int] = {}
        subagent_calls: dict[str, Any] = {}
        entries: list[dict[str, Any]] = []  # every entry: what no step keeps goes to the metadata
        for raw in iter_jsonl(path):
            try:
                entry = raw.json()
                if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
                    raise ValueError("not a Claude Code entry (no `type` text)")
            except ValueError as exc:
                yield Rejected(raw.locator, reason(exc), excerpt(raw.text))
                continue
            entries.append(entry)
            session = session or entry.get("sessionId")
            agent_id = agent_id or entry.get("agentId")
            if entry["type"] == "system" and not entry.get("content"):  # turn_duration and the like
                subtype = str(entry.get("subtype") or "system")
                system_events[subtype] = system_events.get(subtype, 0) + 1
                continue
            if entry["type"] == "progress":  # hook runs, sub-agent heartbeats: counted, not steps
                data = mapping(entry.get("data"))
                subtype = f"progress:{data.get('type') or 'progress'}"
                system_events[subtype] = system_events.get(subtype, 0) + 1
                if data.get("type") == "agent_progress" and data.get("agentId"):  # which Task ran it
                    subagent_calls[str(data["agentId"])] = entry.get("parentToolUseID")
                continue
            if entry["type"] == "summary":
                summary = summary or entry.get("summary")
            if entry["type"] in _SKIP or entry.get("isMeta"):
                continue
            try:
                new_steps = entry_steps(entry)
            except (TypeError, ValueError, AttributeError) as exc:  # a malformed entry costs only itself
                yield Rejected(raw.locator, f"malformed entry: {reason(exc)}", excerpt(raw.text))
                continue
            for step in new_steps:
                step.step_idx = len(steps)
                steps.append(step)
                if task is None and step.role == "user" and step.kind is StepKind.MESSAGE and step.content:
                    task = step.content
        if not steps:
            yield Rejected("whole file", "no user or assistant entries in the session")
            return
        models = [s.model for s in steps if s.model]
        metadata: dict[str, Any] = {"summary": summary} if summary else {}
        if session:  # a sub-agent's transcript shares its parent's session
            metadata["session_id"] = session
        if system_events:
            metadata["system_events"] = system_events
        if subagent_calls:
            metadata["subagent_calls"] = subagent_calls  # agentId -> the Task tool_use that spawned it
        stored = fidelity.Stored.of_steps(steps, task, summary)
        unread = [  # tool results' own records (a refused call), summaries, meta and hook entries
            {"uuid": entry.get("uuid"), "type": entry["type"], **found}
            for entry in entries
            for found in [stored.unread({k: v for k, v in entry.items() if k not in ("uuid", "type")})]
            if found
        ]
        if unread:
            metadata["entries"] = unread
        native = session or path.stem
        if agent_id:  # a sub-agent transcript: its own trace, linked to the parent session's
            metadata.update(agent_id=agent_id, parent_trace_id=f"claude-code:{native}")
            native = f"{native}/agent-{agent_id}"
            for step in steps:
                if step.role == "assistant":
                    step.agent = f"agent-{agent_id}"
        yield with_id(
            Trace(
                trace_id="",
                source="claude-code",
                native_id=native,
                framework="Claude Code",
                llm=models[0] if models else None,
                task=task,
                source_file=str(path),
                metadata=metadata,
                steps=steps,
            )
        )
