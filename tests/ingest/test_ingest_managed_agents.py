"""Claude Managed Agents session events, on the real sessions the LangSmith SDK's tests recorded
(`data_samples/managed-agents/`): every event the judge needs is a step, tool calls meet their
results, a denied tool call is an error, and no text of the file is lost."""

from __future__ import annotations

import json
from pathlib import Path

from tracefail.ingest import fidelity, registry
from tracefail.ingest.base import Rejected
from tracefail.ingest.managed_agents import ManagedAgentsAdapter
from tracefail.model import StepKind, Trace

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples" / "managed-agents"


def session(name: str) -> tuple[Trace, list[dict]]:
    path = SAMPLES / name
    assert registry.detect(path).name == "managed-agents"
    (trace,) = list(ManagedAgentsAdapter().parse(path))
    assert isinstance(trace, Trace)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return trace, rows


def streamed(rows: list[dict]) -> list[dict]:
    return [event for method, event in rows if method == "client.beta.sessions.events.stream"]


def test_a_custom_tool_session_keeps_the_call_its_client_result_usage_and_agent() -> None:
    trace, rows = session("anthropic_managed_custom_tools.jsonl")
    created = rows[0][1]
    assert trace.trace_id == f"managed-agents:{created['id']}" and trace.llm == "claude-sonnet-5"
    assert trace.task == "What's the weather in Prague?"
    kinds = {"user.message", "agent.custom_tool_use", "user.custom_tool_result", "agent.message"}
    events = [e for e in streamed(rows) if e["type"] in kinds]
    assert [s.span_id for s in trace.steps] == [e["id"] for e in events]  # sent events read once
    use, result, answer = trace.steps[1:]
    assert (use.agent, use.role, use.tool_calls[0].name) == ("Coding Assistant", "assistant", "get_weather")
    assert json.loads(use.tool_calls[0].arguments) == {"location": "Prague"}
    assert (result.kind, result.name, result.tool_call_id, result.status) == (
        StepKind.TOOL,
        "get_weather",
        use.span_id,
        "ok",
    )
    assert result.content == "It's 23°C and sunny in Prague."
    ends = [e for e in streamed(rows) if e["type"] == "span.model_request_end"]
    assert (use.tokens_in, use.tokens_out) == (2, ends[0]["model_usage"]["output_tokens"])
    assert answer.content.startswith("It's currently **23°C and sunny** in Prague")
    assert all(s.start_ts is not None for s in trace.steps)
    assert trace.metadata["agent"] == "Coding Assistant"
    assert trace.metadata["session"]["agent"]["system"].startswith("You are a helpful coding assistant")


def test_a_denied_mcp_call_is_a_user_decision_and_an_error_result() -> None:
    trace, rows = session("anthropic_managed_mcp_tools_reject.jsonl")
    names = [s.name for s in trace.steps]
    deny = trace.steps[names.index("user.tool_confirmation")]
    assert deny.content == "deny\nThis tool is not allowed in this demo."
    rejected, fetched = [s for s in trace.steps if s.kind is StepKind.TOOL]
    mcp_call = trace.steps[names.index("agent.mcp_tool_use")].tool_calls[0]
    assert (rejected.status, rejected.name, rejected.tool_call_id) == (
        "error",
        "exa.web_search_exa",
        mcp_call.id,
    )
    assert rejected.content.startswith("Permission to use mcp__exa__web_search_exa has been rejected")
    assert fetched.name == "web_fetch" and fetched.status == "ok"
    assert {s.agent for s in trace.steps if s.role == "assistant"} == {"Exa assistant"}
    kept = fidelity.measure([rows], [trace])
    assert kept.kept == kept.lines, kept.lost


def test_an_events_page_reads_the_same_and_a_broken_line_is_named(tmp_path: Path) -> None:
    recorded, rows = session("anthropic_managed_custom_tools.jsonl")
    page = tmp_path / "events.json"
    page.write_text(json.dumps({"data": streamed(rows), "next_page": None}))
    (from_page,) = list(registry.detect(page).parse(page))
    assert isinstance(from_page, Trace) and from_page.native_id is None  # the page names no session
    assert [s.content for s in from_page.steps] == [s.content for s in recorded.steps]
    broken = tmp_path / "session.jsonl"
    broken.write_text("\n".join([json.dumps(e) for e in streamed(rows)[:6]] + ["{not json"]))
    items = list(ManagedAgentsAdapter().parse(broken))
    (bad,) = [i for i in items if isinstance(i, Rejected)]
    assert bad.record == "line 7" and "line 7" not in bad.reason
    assert next(i for i in items if isinstance(i, Trace)).steps[0].content == "What's the weather in Prague?"
