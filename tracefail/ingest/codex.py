"""Codex CLI session rollouts (~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl): one file, one trace.

Current files wrap each line as {timestamp, type, payload} with `session_meta`, `turn_context`,
`response_item` (message, function_call, function_call_output, reasoning, web_search_call, ...)
and `event_msg` (UI events that mostly repeat the response items). From the events we keep what
exists nowhere else: a `user_message` whose text no response item carries (Codex Desktop writes
the prompt only there) and `token_count` usage, which goes on the assistant step before it.
Older files start with a bare {id, timestamp, instructions} line followed by bare response
items; both are read. Items with nothing readable (real rollouts are full of `reasoning` that is
only `encrypted_content`) are counted by type in `unreadable_items` rather than stored empty.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest import fidelity
from tracefail.ingest.base import Rejected, as_int, excerpt, first_json, parse_time, reason, text_of, with_id
from tracefail.ingest.content import mapping, parse_json_text
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
        output = parse_json_text(
            item.get("output")
        )  # shell output: '{"output": ..., "metadata": {exit_code}}'
        failed = False
        if isinstance(output, dict):  # {"content": ..., "success": bool} in some versions
            meta = mapping(output.get("metadata"))
            failed = output.get("success") is False or bool(meta.get("exit_code"))
            output = output.get("content", output.get("output", output))
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
    if kind == "web_search_call":
        action = mapping(item.get("action"))
        return Step(
            step_idx=0,
            agent="assistant",
            role="assistant",
            kind=StepKind.TOOL,
            name="web_search",
            content=" ".join(  # search: its query; find_in_page / open_page: the url and pattern
                str(action[k]) for k in ("query", "url", "pattern") if action.get(k)
            ),
            tool_calls=[
                ToolCall(
                    id=item.get("id"), name="web_search", arguments=json.dumps(action, ensure_ascii=False)
                )
            ],
            start_ts=when,
            model=model,
            status=item.get("status"),
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


def _event(payload: dict[str, Any], ts: Any, steps: list[Step], prompts: list[Step]) -> None:
    """The parts of a UI event no response item carries: a user prompt, token usage."""
    kind = payload.get("type")
    if kind == "user_message" and payload.get("message"):
        prompts.append(
            Step(
                step_idx=0,
                agent="user",
                role="user",
                content=text_of(payload["message"]),
                start_ts=parse_time(ts),
            )
        )
    elif kind == "token_count" and isinstance(payload.get("info"), dict):
        usage = payload["info"].get("last_token_usage") or {}
        last = next((s for s in reversed(steps) if s.role == "assistant"), None)
        if last is not None and isinstance(usage, dict) and last.tokens_in is None:
            last.tokens_in = as_int(usage.get("input_tokens"))
            last.tokens_out = as_int(usage.get("output_tokens"))


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
        prompts: list[Step] = []  # event_msg user_message steps, kept when no response item says them
        unreadable: dict[str, int] = {}
        records: list[dict[str, Any]] = []  # every line: what no step keeps goes to the metadata
        for raw in iter_jsonl(path):
            try:
                line = raw.json()
                if not isinstance(line, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                yield Rejected(raw.locator, reason(exc), excerpt(raw.text))
                continue
            records.append(line)
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
            elif kind == "event_msg" and isinstance(payload, dict):
                _event(payload, line.get("timestamp"), steps, prompts)
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
                else:  # e.g. reasoning that is only `encrypted_content`: counted, not stored empty
                    unread = str(item.get("type"))
                    unreadable[unread] = unreadable.get(unread, 0) + 1
        said = {s.content.strip() for s in steps if s.role == "user"}
        for prompt in prompts:
            if prompt.content.strip() not in said:
                at = next(
                    (
                        i
                        for i, s in enumerate(steps)
                        if s.start_ts and prompt.start_ts and s.start_ts > prompt.start_ts
                    ),
                    len(steps),
                )
                steps.insert(at, prompt)
        for index, step in enumerate(steps):
            step.step_idx = index
        if not steps:
            yield Rejected("whole file", "no response items (messages, tool calls) in the session")
            return
        task = next(
            (s.content for s in steps if s.role == "user" and s.content and not s.content.startswith("<")),
            None,
        )
        models = [s.model for s in steps if s.model]
        stored = fidelity.Stored.of_steps(steps, task)
        kept = [
            {"type": line.get("type"), **found}
            for line in records
            for found in [stored.unread(mapping(line.get("payload")) or line)]
            if found
        ]
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
                    **{
                        k: meta[k]
                        for k in ("cwd", "cli_version", "originator", "git", "timestamp")
                        if meta.get(k)
                    },
                    **({"unreadable_items": unreadable} if unreadable else {}),
                    # instructions, turn contexts, UI events: their text no step carries
                    **({"records": kept} if kept else {}),
                },
                steps=steps,
            )
        )
