"""Codex CLI session rollouts (~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl): one file, one trace.

Current files wrap each line as {timestamp, type, payload} with `session_meta`, `turn_context`,
`response_item` (message, function_call, function_call_output, reasoning, ...) and `event_msg`
(UI events that repeat the response items, skipped). Older files start with a bare
{id, timestamp, instructions} line followed by bare response items; both are read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest.base import Rejected, excerpt, first_json, parse_time, reason, text_of, with_id
from tracefail.ingest.reader import iter_jsonl
from tracefail.model import Step, StepKind, ToolCall, Trace

_CALLS = {"function_call", "custom_tool_call", "local_shell_call"}
_OUTPUTS = {"function_call_output", "custom_tool_call_output"}


def item_step(item: dict[str, Any], ts: Any, model: str | None) -> Step | None:
    """A response item as a step (step_idx 0), or None for items that carry nothing readable."""
    kind = item.get("type") if isinstance(item.get("type"), str) else None
    when = parse_time(ts)
    if kind == "message":
        role = item.get("role")
        return Step(
            step_idx=0,
            agent=role,
            role=role,
            content=text_of(item.get("content")),
            start_ts=when,
            model=model if role == "assistant" else None,
        )
    if kind in _CALLS:
        args = item.get("arguments", item.get("input", item.get("action")))
        call = ToolCall(
            id=item.get("call_id") or item.get("id"),
            name=str(item.get("name") or kind),
            arguments=args if isinstance(args, str) else json.dumps(args, ensure_ascii=False),
        )
        return Step(
            step_idx=0,
            agent="assistant",
            role="assistant",
            tool_calls=[call],
            start_ts=when,
            model=model,
            status=item.get("status"),
        )
    if kind in _OUTPUTS:
        output = item.get("output")
        if isinstance(output, dict):  # {"content": ..., "success": bool} in some versions
            failed = output.get("success") is False
            output = output.get("content", output)
        else:
            failed = False
        return Step(
            step_idx=0,
            agent="tool",
            role="tool",
            kind=StepKind.TOOL,
            content=text_of(output),
            tool_call_id=item.get("call_id"),
            start_ts=when,
            status="error" if failed else None,
        )
    if kind == "reasoning":
        summary = "\n".join(text_of(s.get("text")) for s in item.get("summary") or [] if isinstance(s, dict))
        text = summary or text_of(item.get("content"))
        return (
            Step(
                step_idx=0,
                agent="assistant",
                role="assistant",
                name="reasoning",
                content=text,
                start_ts=when,
                model=model,
            )
            if text
            else None
        )
    return None


class CodexAdapter:
    name = "codex"
    description = (
        "Codex CLI session rollout JSONL (~/.codex/sessions/**/rollout-*.jsonl); one session per file"
    )
    suffixes = (".jsonl",)

    def sniff(self, path: Path, head: str) -> bool:
        first = first_json(head)
        if not isinstance(first, dict):
            return False
        if first.get("type") in ("session_meta", "response_item", "turn_context"):
            return True
        return "instructions" in first and "id" in first and "timestamp" in first  # pre-envelope files

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        steps: list[Step] = []
        meta: dict[str, Any] = {}
        model = None
        for raw in iter_jsonl(path):
            try:
                line = raw.json()
                if not isinstance(line, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                yield Rejected(raw.locator, reason(exc), excerpt(raw.text))
                continue
            kind, payload = line.get("type"), line.get("payload")
            if kind is not None and not isinstance(kind, str):
                yield Rejected(raw.locator, "`type` is not text", excerpt(raw.text))
                continue
            if kind == "session_meta" and isinstance(payload, dict):
                meta = payload
            elif kind == "turn_context" and isinstance(payload, dict):
                model = payload.get("model") or model
            elif kind is None and not meta and "instructions" in line and "id" in line:
                meta = line
            else:
                item = payload if kind == "response_item" else line  # older files: bare items
                if (
                    not isinstance(item, dict)
                    or kind == "event_msg"
                    or (kind != "response_item" and "payload" in line)
                ):
                    continue
                try:
                    step = item_step(item, line.get("timestamp"), model)
                except (TypeError, ValueError, AttributeError) as exc:  # a malformed item costs only itself
                    yield Rejected(raw.locator, f"malformed item: {reason(exc)}", excerpt(raw.text))
                    continue
                if step:
                    step.step_idx = len(steps)
                    steps.append(step)
        if not steps:
            yield Rejected("whole file", "no response items (messages, tool calls) in the session")
            return
        task = next(
            (s.content for s in steps if s.role == "user" and s.content and not s.content.startswith("<")),
            None,
        )
        models = [s.model for s in steps if s.model]
        yield with_id(
            Trace(
                trace_id="",
                source="codex",
                native_id=str(meta.get("id") or path.stem),
                framework="Codex CLI",
                llm=models[0] if models else None,
                task=task,
                source_file=str(path),
                metadata={
                    k: meta[k]
                    for k in ("cwd", "cli_version", "originator", "git", "timestamp")
                    if meta.get(k)
                },
                steps=steps,
            )
        )
