"""Which step's tool call each tool result answers, so the trace view can link and jump between them.

Sources disagree on how much they say: chat formats give a call id on both sides, OpenTelemetry
spans often give the result its own id and the call none. A result is matched by call id first,
else to the latest earlier unanswered call of the tool it names, else (naming none) to the single
unanswered call of the step just before it. A result with no such call stays unlinked (no guess).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ToolCallView:
    """One requested call, with its arguments as the source gave them."""

    id: str | None
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolLink:
    call_step: int
    call_index: int  # position of the call within the calling step's tool_calls
    result_step: int
    tool: str


@dataclass(frozen=True)
class ToolLinks:
    calls: dict[int, list[ToolCallView]]  # calling step -> its calls
    by_call: dict[tuple[int, int], ToolLink]  # (calling step, call index) -> link
    by_result: dict[int, ToolLink]  # result step -> link
    results: frozenset[int]  # every step that is a tool result, linked or not

    def partner(self, step: int) -> int | None:
        """The other end of the step's first link: a result's call, a call's first result."""
        if step in self.by_result:
            return self.by_result[step].call_step
        linked = [link.result_step for (s, _), link in sorted(self.by_call.items()) if s == step]
        return linked[0] if linked else None


def parse_calls(raw: Any) -> list[ToolCallView]:
    """A step's `tool_calls` column (JSON text or a list) as typed calls; unreadable entries skipped."""
    if raw is None or raw == "":
        return []
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return []
    if not isinstance(items, list):
        return []
    calls = []
    for item in items:
        if isinstance(item, Mapping) and item.get("name"):
            arguments = item.get("arguments")
            if not isinstance(arguments, str):
                arguments = "" if arguments is None else json.dumps(arguments, ensure_ascii=False)
            calls.append(ToolCallView(item.get("id"), str(item["name"]), arguments))
    return calls


def is_result(step: Mapping[str, Any]) -> bool:
    role, kind = (step.get("role") or "").lower(), (step.get("kind") or "").lower()
    return bool(step.get("tool_call_id")) or role == "tool" or kind in {"tool", "tool_result"}


def _result_tool(step: Mapping[str, Any]) -> str | None:
    own = parse_calls(step.get("tool_calls"))
    if own:
        return own[0].name
    name = step.get("name") or ""
    return name.removeprefix("execute_tool ").strip() or None


def tool_links(steps: Sequence[Mapping[str, Any]]) -> ToolLinks:
    calls: dict[int, list[ToolCallView]] = {}
    results: set[int] = set()
    open_calls: list[tuple[int, int]] = []  # (step, call index) not yet answered, in trace order
    by_call: dict[tuple[int, int], ToolLink] = {}
    by_result: dict[int, ToolLink] = {}
    for i, step in enumerate(steps):
        if not is_result(step):
            parsed = parse_calls(step.get("tool_calls"))
            if parsed:
                calls[i] = parsed
                open_calls += [(i, k) for k in range(len(parsed))]
            continue
        results.add(i)
        match = _match(step, i, calls, open_calls)
        if match is None:
            continue
        open_calls.remove(match)
        link = ToolLink(match[0], match[1], i, calls[match[0]][match[1]].name)
        by_call[match] = link
        by_result[i] = link
    return ToolLinks(calls, by_call, by_result, frozenset(results))


def _match(
    step: Mapping[str, Any],
    index: int,
    calls: dict[int, list[ToolCallView]],
    open_calls: list[tuple[int, int]],
) -> tuple[int, int] | None:
    call_id = step.get("tool_call_id")
    if call_id:
        for key in open_calls:
            if calls[key[0]][key[1]].id == call_id:
                return key  # an id that names no call falls through: some spans carry only their own id
    tool = _result_tool(step)
    if tool:  # a result that names its tool is matched by that name or not at all
        for key in reversed(open_calls):
            if calls[key[0]][key[1]].name == tool:
                return key
        return None
    previous = [key for key in open_calls if key[0] == index - 1]
    return previous[0] if len(previous) == 1 else None
