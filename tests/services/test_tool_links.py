"""Linking tool results to their calls: by id, else by tool name, else the step just before;
never a guess when nothing matches."""

from __future__ import annotations

import json
from typing import Any

from tracefail.graph.handoff import handoff_graph
from tracefail.services.tool_links import parse_calls, tool_links


def _step(i: int, **fields: Any) -> dict[str, Any]:
    base = {"step_idx": i, "agent": None, "role": "assistant", "kind": "message", "name": None}
    base.update(fields)
    return base


def _calls(*calls: tuple[str | None, str, str]) -> str:
    return json.dumps([{"id": i, "name": n, "arguments": a} for i, n, a in calls])


def test_results_link_by_id_even_out_of_order() -> None:
    steps = [
        _step(0, tool_calls=_calls(("a", "search", '{"q": 1}'), ("b", "fetch", "{}"))),
        _step(1, role="tool", kind="tool", tool_call_id="b", status="error"),
        _step(2, role="tool", kind="tool", tool_call_id="a"),
    ]
    links = tool_links(steps)
    assert links.by_result[1].call_index == 1 and links.by_result[1].tool == "fetch"
    assert links.by_result[2].call_index == 0 and links.partner(0) == 2
    assert links.partner(1) == 0


def test_otel_spans_without_call_ids_link_by_tool_name() -> None:
    steps = [
        _step(0, name="call_llm", tool_calls=_calls((None, "get_time", "{}"))),
        _step(1, role="tool", kind="tool", name="execute_tool get_time", tool_call_id="own-span-id"),
        _step(2, name="call_llm", tool_calls=_calls((None, "write_file", "{}"))),
        _step(3, role="tool", kind="tool", name="execute_tool get_time"),  # nothing open for get_time
    ]
    links = tool_links(steps)
    assert links.by_result[1].call_step == 0
    assert 3 in links.results and 3 not in links.by_result  # unlinked, not paired with write_file
    assert (2, 0) not in links.by_call


def test_unreadable_tool_calls_are_skipped() -> None:
    assert parse_calls("not json") == [] and parse_calls('[{"arguments": "{}"}]') == []
    assert parse_calls([{"name": "x", "arguments": {"a": 1}}])[0].arguments == '{"a": 1}'


def test_tool_results_are_not_hand_offs() -> None:
    steps = [
        _step(0, agent="Planner"),
        _step(1, agent="tool", role="tool", kind="tool"),
        _step(2, agent="Planner"),
        _step(3, agent="Coder"),
    ]
    graph = handoff_graph(steps)
    assert list(graph.edges) == [("Planner", "Coder")]
    assert "tool" not in graph
