"""Fidelity of each adapter on its sample: the units in the file, counted with plain JSON code,
are all accounted for by stored steps, and no step that had text stores a JSON blob instead."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tracefail.ingest import registry
from tracefail.ingest.base import Rejected
from tracefail.model import Outcome, StepKind, Trace

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"


def load(relative: str) -> Any:
    path = SAMPLES / relative
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return json.loads(path.read_text())


def traces(relative: str, fmt: str) -> list[Trace]:
    return traces_at(SAMPLES / relative, fmt)


def traces_at(path: Path, fmt: str) -> list[Trace]:
    adapter = registry.detect(path)
    assert adapter.name == fmt
    items = list(adapter.parse(path))
    assert not [i for i in items if isinstance(i, Rejected)]
    return items  # type: ignore[return-value]


def is_json_blob(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict | list)
    except ValueError:
        return False


def otlp_spans(doc: dict[str, Any]) -> int:
    return sum(
        len(scope["spans"])
        for rs in doc.get("resourceSpans", doc.get("batches", []))
        for scope in rs.get("scopeSpans", rs.get("instrumentationLibrarySpans", []))
    )


def atif_units(doc: dict[str, Any]) -> int:
    return sum(1 + len((s.get("observation") or {}).get("results", [])) for s in doc["steps"])


def autogen_units(doc: dict[str, Any]) -> int:
    (thread,) = [s["message_thread"] for s in doc["agent_states"].values() if "message_thread" in s]
    return len(thread)


def claude_code_units(rows: list[dict[str, Any]]) -> int:
    """Entries with a message; content-less `system` and `progress` lines are counted apart."""
    return sum(
        len(r["message"]["content"]) if isinstance(r["message"]["content"], list) else 1
        for r in rows
        if "message" in r
    )


def codex_units(rows: list[dict[str, Any]]) -> int:
    """Response items (less reasoning that is only encrypted) and prompts said only in an event."""
    items = [
        r
        for r in rows
        if r["type"] == "response_item"
        and not (
            r["payload"]["type"] == "reasoning"
            and not r["payload"]["summary"]
            and not r["payload"]["content"]
        )
    ]
    said = {p["content"][0].get("text") for p in (r["payload"] for r in items) if p.get("role") == "user"}
    prompts = [r for r in rows if r["type"] == "event_msg" and r["payload"]["type"] == "user_message"]
    return len(items) + sum(1 for p in prompts if p["payload"]["message"] not in said)


def gemini_log_units(rows: list[dict[str, Any]]) -> int:
    """Messages of a Gemini CLI `.jsonl` log (the last write of each `id`) and their tool calls."""
    last = {r["id"]: r for r in rows if "id" in r}
    return sum(1 + len(m.get("toolCalls", [])) for m in last.values())


NO_DATA: set[str] = set()

# (sample, format, units in the file counted with plain JSON code, names of the steps whose source
# is JSON data with no text in it, which may stay JSON)
CASES: list[tuple[str, str, Callable[[Any], int], set[str]]] = [
    ("langfuse/agents_sdk_export.json", "langfuse", lambda d: len(d["observations"]), {"get_forecast"}),
    *[
        (f"langfuse/framework-traces/{name}.trace.json", "langfuse", lambda d: len(d["observations"]), data)
        for name, data in [
            ("openai-agents-2025-09-30", NO_DATA),
            ("microsoft-agent-2025-12-17", NO_DATA),
            ("vercel-aisdk-2025-11-17", {"getWeather"}),
            ("langgraph-js-2025-10-30", NO_DATA),  # LangChain dumpd() messages
            ("google-adk-2025-08-28", {"execute_tool say_hello"}),  # its tool returns a JSON object
            ("langgraph-python-2025-08-22", {"Web-Search", "tools"}),  # LangGraph ToolNode: the result
            ("agno-2025-06-11", {"duckduckgo_search"}),  # the search tool returns JSON results
            ("pydantic-ai-tools-2025-12-04", {"run_joke_generator"}),  # returns a JSON object
        ]
    ],
    ("otel/tempo_batches.json", "otel", otlp_spans, NO_DATA),
    ("otel/tempo_api_trace_pushing_spans.json", "otel", otlp_spans, NO_DATA),  # real, Tempo's own answer
    ("otel/agentevals/tempo_export_with_batches.json", "otel", otlp_spans, NO_DATA),  # real kagent/ADK run
    (
        "otel/adk_spans_and_logs.jsonl",
        "otel",
        lambda rows: sum(otlp_spans(r) for r in rows),
        NO_DATA,  # its tool's {"status": "error", "error_message": ...} reads as the message
    ),
    ("otel/vercel_ai_sdk.json", "otel", otlp_spans, {"ai.toolCall"}),
    ("otel/openinference_genai_span_attributes.json", "span-attributes", lambda d: 1, NO_DATA),
    ("jaeger/ui_01.json", "jaeger", lambda d: len(d["spans"]), NO_DATA),
    ("jaeger/agentevals/k8s.json", "jaeger", lambda d: sum(len(t["spans"]) for t in d["data"]), NO_DATA),
    ("phoenix/spans.json", "phoenix", len, NO_DATA),
    ("phoenix/openinference_spec_traces.json", "phoenix", len, NO_DATA),
    ("phoenix/openinference_spec_llm_tool_call.json", "phoenix", len, NO_DATA),
    *[
        (f"otel/vercel_ai_sdk_v6_{name}.json", "phoenix", len, NO_DATA)  # an OTel JS SDK span dump
        for name in ("generateText", "generateText_doGenerate")
    ],
    # real any-agent runs; their tools return JSON objects, and a last `call_llm` that writes the
    # run's structured answer (`{"steps": [...]}`) shares its name with the text-writing ones
    (
        "any-agent/GOOGLE_trace.json",
        "any-agent",
        lambda d: len(d["spans"]),
        {"execute_tool get_current_time", "execute_tool write_file", "execute_tool final_output"},
    ),
    *[
        (
            f"any-agent/{name}_trace.json",
            "any-agent",
            lambda d: len(d["spans"]),
            {"execute_tool get_current_time", "call_llm mistral/mistral-small-latest"},
        )
        for name in ("LANGCHAIN", "TINYAGENT")
    ],
    ("atif/trajectory.json", "atif", atif_units, NO_DATA),
    ("atif/trajectory.verifier.json", "atif", atif_units, NO_DATA),
    ("atif/nemo-agent-toolkit/exmp06_atif.json", "atif", atif_units, NO_DATA),  # ATIF-v1.7, NVIDIA
    *[
        (
            f"atif/harbor-golden/hello-world-context-summarization.trajectory{part}.json",
            "atif",
            atif_units,
            NO_DATA,
        )
        for part in ("", ".summarization-1-summary", ".summarization-1-questions", ".summarization-1-answers")
    ],
    *[
        (
            f"gemini-cli/{name}",
            "gemini-cli",
            lambda d: sum(1 + len(m.get("toolCalls", [])) for m in d["messages"]),
            NO_DATA,
        )
        for name in (
            "session-2025-10-21T08-15-5c1e7d2a.json",
            "vibecodingtracker/test_conversation_gemini.json",  # real, trimmed
        )
    ],
    ("gemini-cli/vibecodingtracker/gemini.jsonl", "gemini-cli", gemini_log_units, NO_DATA),  # real
    ("autogen/team_state.json", "autogen-state", autogen_units, NO_DATA),
    ("autogen/state_tutorial_team_state.json", "autogen-state", autogen_units, NO_DATA),
    ("adamast/traces.jsonl", "openai-chat", lambda rows: sum(len(r["messages"]) for r in rows), NO_DATA),
    ("adamast/trace-unified.json", "adamast", lambda d: d["raw_trajectory"].count("\n["), NO_DATA),
    (  # AdaMAST's own test fixture: `role: text` turns separated by blank lines
        "adamast/adamast_generation_trace.json",
        "adamast",
        lambda d: len(d["raw_trajectory"].split("\n\n")),
        NO_DATA,
    ),
    *[
        (f"claude-code/{name}.jsonl", "claude-code", claude_code_units, NO_DATA)
        for name in ("agent-a7f3c2e1", "agent-aac57f5")
    ],
    *[
        (f"codex/rollout-{name}.jsonl", "codex", codex_units, NO_DATA)
        for name in (
            "2025-11-12T09-00-00-019b1e2f-7a3c-7d4e-9f5a-6b7c8d9e0f1a",
            "2026-05-11T11-26-55-019e1625-789d-76c0-80ab-3724b5ddb799",  # real, Codex CLI 0.125
            "2026-05-11T13-28-45-019e1695-0522-7c83-8b39-0dd379793f80",  # real, Codex Desktop
        )
    ],
]


@pytest.mark.parametrize(("relative", "fmt", "count", "data"), CASES, ids=[c[0] for c in CASES])
def test_every_unit_becomes_a_step_and_text_stays_text(
    relative: str, fmt: str, count: Callable[[Any], int], data: set[str]
) -> None:
    found = traces(relative, fmt)
    steps = [s for t in found for s in t.steps]
    expected = count(load(relative)) + (1 if relative == "adamast/trace-unified.json" else 0)
    assert len(steps) == expected
    for step in steps:
        if step.content and step.name not in data:
            assert not is_json_blob(step.content), (relative, step.step_idx, step.content[:80])


def test_otlp_variants_keep_agents_tokens_calls_and_log_text() -> None:
    (adk,) = traces("otel/adk_spans_and_logs.jsonl", "otel")
    logs = load("otel/adk_spans_and_logs.jsonl")[1]["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    assert {r["spanId"] for r in logs} <= {s.span_id for s in adk.steps}  # every log record has its step
    assert adk.task == "What is the weather in Oslo?"
    assert adk.steps[1].tool_calls[0].name == "get_weather" and adk.steps[1].tokens_in == 64
    assert (
        adk.steps[3].content == "Sorry, I could not get the weather for Oslo right now."
    )  # from the log only
    assert {s.agent for s in adk.steps} == {"weather_agent"}
    assert adk.steps[2].content == "Weather for Oslo is not available."
    (vercel,) = traces("otel/vercel_ai_sdk.json", "otel")
    assert [s.kind for s in vercel.steps] == [StepKind.AGENT, StepKind.LLM, StepKind.TOOL, StepKind.LLM]
    assert vercel.steps[1].tool_calls[0].name == "searchTrains" and vercel.steps[3].tokens_out == 12
    assert vercel.steps[3].content.startswith("The 08:04 TGV") and vercel.task.startswith("Find me a train")
    (tempo,) = traces("otel/tempo_batches.json", "otel")
    assert tempo.steps[2].content == "shipped 2025-09-10, carrier DHL" and tempo.steps[0].agent == "support"
    (jaeger,) = traces("jaeger/ui_01.json", "jaeger")
    assert jaeger.steps[1].status == "error" and jaeger.steps[2].parent_span_id == "2"
    assert "some-event" in jaeger.steps[0].content and jaeger.steps[0].metadata["service"] == "service-x"


def test_langfuse_and_phoenix_keep_scores_errors_and_agents() -> None:
    (lf,) = traces("langfuse/agents_sdk_export.json", "langfuse")
    assert lf.outcome is Outcome.FAILURE and [s["name"] for s in lf.metadata["scores"]] == [
        "task_success",
        "helpfulness",
    ]
    assert lf.steps[1].tool_calls[0].name == "get_forecast" and lf.steps[1].tokens_in == 142
    assert lf.steps[3].status == "error" and "HTTP 503" in lf.steps[3].content
    assert lf.steps[4].content.startswith("No umbrella needed")
    (agents,) = traces("langfuse/framework-traces/openai-agents-2025-09-30.trace.json", "langfuse")
    assert agents.task == "What's the weather in Tokyo?"  # from a generation: the trace has no input
    assert agents.steps[2].tool_calls[0].name == "get_weather" and agents.steps[2].tokens_in == 55
    assert agents.steps[4].content.startswith("The weather in Tokyo is currently sunny")
    assert [s["name"] for s in agents.metadata["scores"]] == ["toxicity", "hallucination"]
    (vercel,) = traces("langfuse/framework-traces/vercel-aisdk-2025-11-17.trace.json", "langfuse")
    assert vercel.task == "What is the weather like today in San Francisco?"  # `{"prompt": ...}` JSON text
    assert vercel.steps[1].tool_calls[0].name == "getWeather"  # {toolCallId, toolName, input}
    (maf,) = traces("langfuse/framework-traces/microsoft-agent-2025-12-17.trace.json", "langfuse")
    assert (
        maf.steps[1].tool_calls[0].name == "get_weather" and maf.steps[1].content == ""
    )  # GenAI tool_call part
    (px,) = traces("phoenix/spans.json", "phoenix")
    assert px.trace_id == "otel:6f3c8a1d2b4e4f5a9c7d1e2f3a4b5c6d"
    assert [s.agent for s in px.steps] == ["orchestrator", "orchestrator", "poet", "poet", "orchestrator"]
    assert px.steps[1].tool_calls[0].name == "transfer_to_poet" and px.steps[4].status == "error"


def test_trajectory_formats_keep_outcomes_links_and_tools() -> None:
    (atif,) = traces("atif/trajectory.json", "atif")
    assert atif.metadata["subagents"][0]["session_id"] == "tb-hello-world-7f3e-verifier"
    assert atif.steps[4].agent == "tb-hello-world-7f3e-verifier" and atif.steps[2].tokens_in == 820
    (golden,) = traces("atif/harbor-golden/hello-world-context-summarization.trajectory.json", "atif")
    handoff = next(s for s in golden.steps if s.kind is StepKind.AGENT)
    linked = [r["session_id"] for r in handoff.metadata["subagent_trajectory_ref"]]
    for ref in linked:  # each referenced sub-agent file is there and is the trace it names
        (sub_trace,) = traces(
            f"atif/harbor-golden/hello-world-context-summarization.trajectory.{ref.split('-summarization-')[-1]}.json",
            "atif",
        )
        assert sub_trace.native_id == ref
    assert golden.steps[1].tool_calls[0].name == "bash_command" and golden.llm == "openai/gpt-4o"
    (gem,) = traces("gemini-cli/session-2025-10-21T08-15-5c1e7d2a.json", "gemini-cli")
    assert gem.steps[2].content.startswith("FAIL src/sum.test.js") and gem.steps[4].status == "error"
    (team,) = traces("autogen/team_state.json", "autogen-state")
    assert [s.agent for s in team.steps] == ["user", "writer", "writer", "writer", "writer", "critic"]
    assert team.steps[4].recipient == "critic" and team.steps[2].tool_call_id == "call_w1"
    (real,) = traces("autogen/state_tutorial_team_state.json", "autogen-state")
    assert real.native_id == "a55364ad-86fd-46ab-9449-dcb5260b1e06" and real.metadata["team"] == "RoundRobin"
    assert [(s.agent, s.tokens_out) for s in real.steps] == [("user", None), ("assistant_agent", 34)]
    demo = traces("adamast/traces.jsonl", "openai-chat")
    assert [(t.native_id, t.outcome) for t in demo] == [
        ("demo-1", Outcome.FAILURE),
        ("demo-2", Outcome.SUCCESS),
    ]
    (unified,) = traces("adamast/trace-unified.json", "adamast")
    assert unified.raw and unified.outcome is Outcome.SUCCESS and unified.framework == "claude_code"
    (sub,) = traces("claude-code/agent-a7f3c2e1.jsonl", "claude-code")
    assert sub.trace_id.endswith("/agent-a7f3c2e1") and sub.metadata["system_events"] == {"turn_duration": 1}
    assert sub.metadata["parent_trace_id"] == "claude-code:0c1e6a52-3f0e-4a7c-9d6b-2f1a8e5c7b90"
    (codex,) = traces("codex/rollout-2025-11-12T09-00-00-019b1e2f-7a3c-7d4e-9f5a-6b7c8d9e0f1a.jsonl", "codex")
    assert codex.steps[0].role == "user" and codex.task.startswith("What changed")
    assert codex.steps[2].name == "web_search" and codex.steps[4].status == "error"
    assert codex.steps[-1].tokens_in == 3100


def test_a_real_span_attribute_map_reads_its_new_output_only() -> None:
    (span,) = traces("otel/openinference_genai_span_attributes.json", "span-attributes")
    (step,) = span.steps
    assert step.content == "The weather in Paris is currently rainy with a temperature of 57°F."
    assert (step.tokens_in, step.tokens_out, step.model) == (97, 52, "gpt-4-0613")
    assert span.task == "Weather in Paris?"


def test_atif_v17_embedded_subagents_join_the_parent_trace_as_their_own_agents(tmp_path: Path) -> None:
    """Harbor's golden run with its three sub-agent files embedded the v1.7 way
    (`subagent_trajectories`, refs by `trajectory_id`): every sub-agent step is stored, right after
    the observation that returned it, under its own agent and linked to that observation."""
    golden = "atif/harbor-golden/hello-world-context-summarization.trajectory"
    doc = load(f"{golden}.json")
    parts = ("summary", "questions", "answers")
    subs = [{**load(f"{golden}.summarization-1-{p}.json"), "trajectory_id": f"sum-{p}"} for p in parts]
    for step in doc["steps"]:
        for result in (step.get("observation") or {}).get("results", []):
            for ref in result.get("subagent_trajectory_ref") or []:
                ref["trajectory_id"] = "sum-" + ref.pop("trajectory_path").split("-")[-1].removesuffix(
                    ".json"
                )
    doc.update(schema_version="ATIF-v1.7", subagent_trajectories=subs)
    path = tmp_path / "trajectory.json"
    path.write_text(json.dumps(doc))
    (trace,) = traces_at(path, "atif")
    assert len(trace.steps) == atif_units(doc) + sum(atif_units(sub) for sub in subs)
    handoff = next(s for s in trace.steps if s.kind is StepKind.AGENT)
    after = trace.steps[handoff.step_idx + 1 : handoff.step_idx + 1 + sum(atif_units(sub) for sub in subs)]
    names = [f"terminus-2-summarization-{p}" for p in parts]
    assert handoff.agent == names[0] and sorted(
        {s.agent for s in after} - {"user", "system", "tool"}
    ) == sorted(names)
    assert {s.parent_span_id for s in after} == {f"/subagent:sum-{p}" for p in parts}
    assert handoff.span_id == "/subagent:sum-summary" and trace.metadata["embedded_subagents"] == [
        f"sum-{p}" for p in parts
    ]
    older = {  # a pre-v1.7 producer embedding by session_id
        "schema_version": "ATIF-v1.6",
        "session_id": "parent",
        "steps": [
            {
                "step_id": 1,
                "source": "agent",
                "message": "delegating",
                "observation": {
                    "results": [{"content": "ok", "subagent_trajectory_ref": [{"session_id": "kid"}]}]
                },
            },
            {"step_id": 2, "source": "agent", "message": "thanks"},
        ],
        "subagent_trajectories": [
            {"session_id": "kid", "agent": {"name": "helper"}, "steps": [{"step_id": 1, "message": "did it"}]}
        ],
    }
    path.write_text(json.dumps(older))
    (linked,) = traces_at(path, "atif")
    assert [(s.agent, s.content) for s in linked.steps] == [
        ("agent", "delegating"),
        ("helper", "ok"),
        ("helper", "did it"),
        ("agent", "thanks"),
    ]
    doc["subagent_trajectories"] = [{"trajectory_id": "x"}]
    path.write_text(json.dumps(doc))
    (rejected,) = registry.detect(path).parse(path)
    assert isinstance(rejected, Rejected) and "subagent_trajectories[0]" in rejected.reason


def test_real_codex_rollouts_keep_desktop_prompts_web_searches_and_usage() -> None:
    (desktop,) = traces(
        "codex/rollout-2026-05-11T13-28-45-019e1695-0522-7c83-8b39-0dd379793f80.jsonl", "codex"
    )
    assert desktop.metadata["originator"] == "Codex Desktop"
    assert [s.role for s in desktop.steps] == ["user", "assistant", "tool", "assistant", "user", "assistant"]
    assert desktop.steps[4].content.startswith("there is a need for nikita")  # said only in an event_msg
    (cli,) = traces("codex/rollout-2026-05-11T11-26-55-019e1625-789d-76c0-80ab-3724b5ddb799.jsonl", "codex")
    search = next(s for s in cli.steps if s.name == "web_search")
    assert "OpenCode config compact" in search.content and search.status == "completed"
    assert cli.steps[3].tokens_in == 18703 and cli.metadata["unreadable_items"] == {"reasoning": 3}


def test_real_vercel_ai_sdk_v6_spans_keep_prompt_answer_usage_and_times() -> None:
    """OpenInference's captured AI SDK 6.0.68 spans (JS SDK dump): every call's answer is text."""
    calls = traces("otel/vercel_ai_sdk_v6_generateText.json", "phoenix")
    models = traces("otel/vercel_ai_sdk_v6_generateText_doGenerate.json", "phoenix")
    assert [t.task for t in calls] == ["Write a haiku about programming.", "What is 2 + 2?"]
    assert [s.content for t in calls for s in t.steps] == [s.content for t in models for s in t.steps]
    (haiku,) = calls[0].steps
    assert haiku.agent == "test-generate-text" and (haiku.tokens_in, haiku.tokens_out) == (14, 20)
    assert haiku.start_ts is not None and haiku.start_ts.isoformat() == "2026-02-03T15:19:52.241000"
    assert models[1].steps[0].content == "3 + 3 equals 6." and models[1].steps[0].kind is StepKind.LLM


def test_real_google_adk_spans_read_through_langfuse_keep_task_tool_and_usage() -> None:
    """ADK 1.12 spans as Langfuse stored them: the task is the runner's `new_message`, and the
    tool's result, kept only in `gcp.vertex.agent.tool_response`, is the tool step's content."""
    (adk,) = traces("langfuse/framework-traces/google-adk-2025-08-28.trace.json", "langfuse")
    assert adk.task == "hi"
    tool = next(s for s in adk.steps if s.kind is StepKind.TOOL)
    assert json.loads(tool.content) == {"greeting": "Hello Langfuse 👋"}
    assert [(c.name, c.id) for c in tool.tool_calls] == [
        ("say_hello", "adk-8bd8dc65-717d-4102-858b-3a1dd6b75a00")
    ]
    llm = [s for s in adk.steps if s.kind is StepKind.LLM]
    assert [c.name for c in llm[0].tool_calls] == ["say_hello"] and llm[
        1
    ].content.strip() == "Hello Langfuse 👋!"
    assert [(s.tokens_in, s.tokens_out) for s in llm] == [(28, 3), (39, 6)]


def test_a_real_tempo_export_of_an_adk_agent_keeps_tool_results_answers_and_exceptions() -> None:
    """kagent's helm_agent (Google ADK with OpenLLMetry and a2a spans) as Tempo exported it: ADK writes
    `llm_request`/`llm_response` as `{}` on its tool span, which must not hide `tool_response` (an
    MCP `{"content": [{"type": "text"}]}` result), and the a2a spans' `exception` events are kept."""
    relative = "otel/agentevals/tempo_export_with_batches.json"
    (run,) = traces(relative, "otel")
    assert run.task is not None and run.task.strip() == "list all helm releases" and run.llm == "gpt-4.1-mini"
    (tool,) = [s for s in run.steps if s.kind is StepKind.TOOL]
    assert tool.content.startswith("NAME") and "kagent-crds" in tool.content
    assert [(c.name, c.id) for c in tool.tool_calls] == [
        ("helm_list_releases", "call_w0eKlvnaE7S9GQJeSSs0gn05")
    ]
    adk_calls = [s for s in run.steps if s.name == "call_llm"]
    assert [c.name for c in adk_calls[0].tool_calls] == ["helm_list_releases"]
    assert adk_calls[1].content.startswith("There are two Helm releases currently deployed")
    assert [(s.tokens_in, s.tokens_out) for s in adk_calls] == [(2256, 13), (2392, 116)]
    assert {s.agent for s in run.steps if s.kind is StepKind.AGENT} == {"helm-agent", "helm_agent"}
    spans = [
        s for b in load(relative)["batches"] for sc in b["instrumentationLibrarySpans"] for s in sc["spans"]
    ]
    exceptions = [e for s in spans for e in s.get("events", []) if e["name"] == "exception"]
    kept = [s for s in run.steps if s.content.startswith("exception: asyncio.exceptions.CancelledError")]
    # one step per exception event; the spans' status stayed unset, and so does the steps'
    assert len(kept) == len(exceptions) == 5 and all(s.status is None for s in kept)
    linked = {s["spanId"] for s in spans} & {s.get("parentSpanId") for s in spans}  # parents in the file
    assert len({s.parent_span_id for s in run.steps} & {s.span_id for s in run.steps}) == len(linked)
    assert all(s.start_ts and s.end_ts for s in run.steps)


def test_the_openinference_tool_call_example_keeps_the_call_the_answer_and_usage() -> None:
    """OpenInference's own two-span example of an OpenAI tool call (`span_kind` is the OTel kind
    there; the OpenInference kind is in the attributes), joined into one list."""
    (run,) = traces("phoenix/openinference_spec_llm_tool_call.json", "phoenix")
    assert run.task == "what is 23 times 87" and [s.kind for s in run.steps] == [StepKind.LLM] * 2
    call, answer = run.steps
    assert [(c.name, json.loads(c.arguments)) for c in call.tool_calls] == [("multiply", {"a": 23, "b": 87})]
    assert answer.content == "The product of 23 times 87 is 2001."
    assert [(s.tokens_in, s.tokens_out) for s in run.steps] == [(229, 21), (259, 14)]
    assert {s.parent_span_id for s in run.steps} == {"2fe8a793-2cf1-42d7-a1df-bd7d46e017ef"}


def test_a_real_jaeger_agent_run_keeps_its_failure_answer_and_exception_logs() -> None:
    """kagent's k8s_agent run that agentevals' README uses as the failing example: asked to list Helm
    releases, it answered without calling a tool. Its four a2a `exception` logs read as one line each,
    not as a dump of every field with the stack trace."""
    relative = "jaeger/agentevals/k8s.json"
    (run,) = traces(relative, "jaeger")
    assert run.task == "list all Helm releases"
    assert not [s for s in run.steps if s.kind is StepKind.TOOL or s.tool_calls]  # the failure
    (adk_call,) = [s for s in run.steps if s.name == "call_llm"]
    assert adk_call.agent == "k8s_agent" and adk_call.content.startswith("To list all Helm releases")
    assert (adk_call.tokens_in, adk_call.tokens_out) == (2203, 139)
    logs = [log for s in load(relative)["data"][0]["spans"] for log in s.get("logs", [])]
    kept = [s.content for s in run.steps if "CancelledError" in s.content]
    assert len(logs) == 4 and kept == ["exception: asyncio.exceptions.CancelledError"] * 4


def test_a_real_any_agent_run_keeps_its_agent_calls_tokens_links_and_answer() -> None:
    """any-agent's Google ADK run: ids are integers in the file (hex here, as OTel writes them),
    the model's tool calls come from `gen_ai.output`, and the spans whose parents ADK did not
    record still belong to the one agent of the run."""
    doc = json.loads((SAMPLES / "any-agent/GOOGLE_trace.json").read_text())  # not orjson: 128-bit ids
    (run,) = traces("any-agent/GOOGLE_trace.json", "any-agent")
    assert (
        run.native_id
        == f"{doc['spans'][0]['context']['trace_id']:032x}"
        == "cdbd7b99cef221c28dd6d03c27d09b4c"
    )
    assert run.framework == "any-agent/google" and run.llm == "mistral/mistral-small-latest"
    assert run.task and run.task.startswith("Find what year it is in the America/New_York timezone")
    assert run.metadata["final_output"] == json.dumps(doc["final_output"])
    assert [s.kind for s in run.steps] == [StepKind.AGENT] + [StepKind.LLM, StepKind.TOOL] * 3
    assert {s.agent for s in run.steps} == {"any_agent"}
    first_call, first_tool = run.steps[1], run.steps[2]
    assert [(c.name, json.loads(c.arguments)) for c in first_call.tool_calls] == [
        ("get_current_time", {"timezone": "America/New_York"})
    ]
    assert (first_call.tokens_in, first_call.tokens_out) == (672, 16) and first_call.content == ""
    assert first_call.parent_span_id == f"{17348474965005769013:016x}" == "f0c22a1083ed1935"
    assert first_tool.tool_call_id == "jbUWqgIUr" and '"is_dst": true' in first_tool.content
    assert first_tool.start_ts == datetime(2025, 9, 16, 12, 43, 6, 853654)
    assert run.steps[0].parent_span_id is None and run.steps[0].status is None  # `unset`
    assert all(s.status == "ok" for s in run.steps[1:])
    (langchain,) = traces("any-agent/LANGCHAIN_trace.json", "any-agent")
    said, answer = langchain.steps[-2:]
    assert said.content.startswith("Here are the steps I have taken:") and not said.tool_calls
    assert json.loads(answer.content) == json.loads(langchain.metadata["final_output"])
    assert {s.parent_span_id for s in langchain.steps[1:]} == {langchain.steps[0].span_id}


def test_an_atif_continuation_file_keeps_its_own_id(tmp_path: Path) -> None:
    head = load("atif/harbor-golden/hello-world-context-summarization.trajectory.json")
    head["continued_trajectory_ref"] = "trajectory.cont-1.json"
    (tmp_path / "trajectory.json").write_text(json.dumps(head))
    (tmp_path / "trajectory.cont-1.json").write_text(json.dumps({**head, "continued_trajectory_ref": None}))
    (first,) = traces_at(tmp_path / "trajectory.json", "atif")
    (second,) = traces_at(tmp_path / "trajectory.cont-1.json", "atif")
    assert first.metadata["continued_in"] == "trajectory.cont-1.json"
    assert (first.native_id, second.native_id) == ("NORMALIZED_SESSION_ID", "NORMALIZED_SESSION_ID/cont-1")


def test_a_gemini_cli_jsonl_log_replays_to_the_same_session(tmp_path: Path) -> None:
    """The `.jsonl` log of gemini-cli's chatRecordingService: rewrites by id, a rewind, a $set."""
    session = load("gemini-cli/session-2025-10-21T08-15-5c1e7d2a.json")
    messages = session.pop("messages")
    first_call = next(m for m in messages if m.get("toolCalls"))
    records: list[dict[str, Any]] = [session]
    for message in messages:  # a message with tool calls is written first without them, then again
        records += [{**message, "toolCalls": []}, message] if message is first_call else [message]
    records += [{"id": "oops", "type": "user", "content": "never mind"}, {"$rewindTo": "oops"}]
    records.append({"$set": {"summary": "Fix the failing sum test"}})
    path = tmp_path / "session-2025-10-21T08-15-5c1e7d2a.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    (logged,) = traces_at(path, "gemini-cli")
    (whole,) = traces("gemini-cli/session-2025-10-21T08-15-5c1e7d2a.json", "gemini-cli")
    assert [(s.kind, s.content) for s in logged.steps] == [(s.kind, s.content) for s in whole.steps]
    assert logged.trace_id == whole.trace_id and logged.metadata["summary"] == "Fix the failing sum test"


def test_a_real_gemini_cli_log_keeps_rewritten_calls_results_models_and_typed_commands() -> None:
    """Gemini CLI writes a message again under its `id` once its tool calls have run: the last
    write wins, each call's `functionResponse` output is its tool step's text."""
    rows = load("gemini-cli/vibecodingtracker/gemini.jsonl")
    (gem,) = traces("gemini-cli/vibecodingtracker/gemini.jsonl", "gemini-cli")
    last = {r["id"]: r for r in rows if "id" in r}
    calls = [c for m in last.values() for c in m.get("toolCalls", [])]
    tools = [s for s in gem.steps if s.kind is StepKind.TOOL]
    assert [s.tool_call_id for s in tools] == [c["id"] for c in calls]
    outputs = [c["result"][0]["functionResponse"]["response"]["output"] for c in calls]
    assert [s.content for s in tools] == outputs
    assert all(s.status == "ok" for s in tools) and tools[-1].name == "Edit"
    first = gem.steps[2]  # written at line 6 with no calls, again at line 8 with five
    assert [c.name for c in first.tool_calls] == ["update_topic"] + ["read_file"] * 4
    assert json.loads(first.tool_calls[1].arguments) == last[rows[5]["id"]]["toolCalls"][1]["args"]
    assert (first.model, first.tokens_in, first.tokens_out) == ("gemini-3-flash-preview", 13906, 185)
    assert first.metadata["tokens"] == {"thoughts": 306} and first.metadata["thoughts"][0].startswith(
        "Initiating File Generation: "
    )
    assert {s.model for s in gem.steps if s.model} == {"gemini-3-flash-preview", "gemini-3.1-pro-preview"}
    assert gem.steps[1].metadata["display_content"] == "/init" and gem.task == gem.steps[1].content
    assert gem.steps[1].content.startswith("\nYou are an AI agent")
    assert [s.content for s in gem.steps if s.name == "info"] == [
        "Empty GEMINI.md created. Now analyzing the project to populate it.",
        "Request cancelled.",
    ]
    assert gem.native_id == "0ab84937-9fe7-4284-986a-33c832af0b6a"
    assert gem.metadata["lastUpdated"] == rows[-1]["$set"]["lastUpdated"]  # from the last `$set`
    assert gem.steps[-1].start_ts == datetime(2026, 4, 23, 12, 58, 35, 591000)
    session = load("gemini-cli/vibecodingtracker/test_conversation_gemini.json")  # the older `.json`
    (old,) = traces("gemini-cli/vibecodingtracker/test_conversation_gemini.json", "gemini-cli")
    asked = session["messages"][0]["content"][0]["text"]  # content as a list of parts
    assert old.task == asked and [s.name for s in old.steps[2:5]] == ["ReadFile"] * 3
    assert (
        old.steps[2].content
        == session["messages"][1]["toolCalls"][0]["result"][0]["functionResponse"]["response"]["output"]
    )
    assert old.steps[-1].metadata["tokens"] == {"cached": 20092, "thoughts": 423}


def test_a_sub_agent_transcript_lands_beside_its_parent_session(db, tmp_path: Path) -> None:
    from tracefail.services.ingest import ingest

    folder = tmp_path / "claude"
    folder.mkdir()
    parent = "0c1e6a52-3f0e-4a7c-9d6b-2f1a8e5c7b90.jsonl"
    for name in (parent, "agent-a7f3c2e1.jsonl"):
        (folder / name).write_bytes((SAMPLES / "claude-code" / name).read_bytes())
    heartbeat = {"type": "progress", "sessionId": parent[:-6], "parentToolUseID": "toolu_task"}
    with (folder / parent).open("a") as fh:  # how Claude Code 2.1 names the Task call of a sub-agent
        fh.write(json.dumps({**heartbeat, "data": {"type": "agent_progress", "agentId": "a7f3c2e1"}}) + "\n")
    (head,) = traces_at(folder / parent, "claude-code")
    assert head.metadata["subagent_calls"] == {"a7f3c2e1": "toolu_task"}
    assert head.metadata["system_events"]["progress:agent_progress"] == 1
    report = ingest(db, [folder])
    assert (report.traces, report.quarantined) == (2, 0), report.messages  # no collision on sessionId
    parent_steps = len(
        traces("claude-code/0c1e6a52-3f0e-4a7c-9d6b-2f1a8e5c7b90.jsonl", "claude-code")[0].steps
    )
    assert report.steps == parent_steps + 4


def test_a_broken_record_of_a_new_format_is_quarantined_with_its_place(db, tmp_path: Path) -> None:
    from tracefail.services.ingest import ingest

    good = tmp_path / "spans.json"
    spans = load("phoenix/spans.json")
    spans.insert(2, {"name": "no context", "span_kind": "LLM", "context": {"span_id": "x"}})
    good.write_text(json.dumps(spans))
    bad = tmp_path / "trajectory.json"
    bad.write_text('{"schema_version": "ATIF-v1.6", "steps": {"not": "a list"}}')
    report = ingest(db, [good, bad])
    assert report.traces == 1 and report.steps == 5 and report.quarantined == 2
    assert any("record 2" in m and "context.trace_id" in m for m in report.messages), report.messages
    assert any("trajectory.json: whole file" in m and "steps" in m for m in report.messages), report.messages


def test_base64_ids_of_protobuf_dumps_read_as_the_same_hex_trace(tmp_path: Path) -> None:
    import base64

    doc = load("otel/tempo_batches.json")
    for span in doc["batches"][0]["instrumentationLibrarySpans"][0]["spans"]:
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:
                span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    path = tmp_path / "tempo_b64.json"
    path.write_text(json.dumps(doc))
    (b64,) = list(registry.detect(path).parse(path))
    (hexed,) = traces("otel/tempo_batches.json", "otel")
    assert b64.trace_id == hexed.trace_id and [s.parent_span_id for s in b64.steps] == [
        s.parent_span_id for s in hexed.steps
    ]


def test_a_real_tempo_answer_reads_its_base64_ids_service_and_times() -> None:
    """Tempo's guide pushed span 1234 of trace 0123456789abcdef (Zipkin, 100 ms from
    1608239395286533 us); its `/api/traces` answer carries them base64-encoded."""
    (tempo,) = traces("otel/tempo_api_trace_pushing_spans.json", "otel")
    assert tempo.native_id == "0123456789abcdef".zfill(32)
    (step,) = tempo.steps
    assert (step.span_id, step.parent_span_id, step.name) == ("1234".zfill(16), None, "span from bash!")
    assert step.metadata["service"] == "shell script"
    assert step.start_ts is not None and step.end_ts is not None
    assert step.start_ts.replace(tzinfo=None) == datetime(2020, 12, 17, 21, 9, 55, 286533)  # UTC
    assert (step.end_ts - step.start_ts).total_seconds() == pytest.approx(0.1)


def test_langfuse_jsonl_export_one_trace_per_line(tmp_path: Path) -> None:
    export = load("langfuse/agents_sdk_export.json")
    second = json.loads(json.dumps(export))
    second["trace"]["id"] = "another"
    path = tmp_path / "export.jsonl"
    path.write_text(json.dumps(export) + "\n" + json.dumps(second) + "\n")
    found = traces_at(path, "langfuse")
    assert [t.native_id for t in found] == ["5f0e2c1a9b7d4e3f8a6b1c2d3e4f5a6b", "another"]
    assert [len(t.steps) for t in found] == [len(export["observations"])] * 2


def test_langfuse_spans_are_read_by_their_otel_attributes() -> None:
    """Langfuse files OTel spans it cannot place as plain SPANs; the span's attributes (kept in
    `metadata.attributes`) still say which are tool runs and which agent ran them."""
    (agno,) = traces("langfuse/framework-traces/agno-2025-06-11.trace.json", "langfuse")
    search = next(s for s in agno.steps if s.name == "duckduckgo_search")  # OpenInference TOOL
    assert search.kind is StepKind.TOOL and search.role == "tool"
    assert search.tool_calls[0].name == "duckduckgo_search"
    assert json.loads(search.tool_calls[0].arguments) == {"query": "currently trending on Twitter"}
    (koog,) = traces("langfuse/framework-traces/koog-2025-08-26.trace.json", "langfuse")
    tools = [s for s in koog.steps if s.kind is StepKind.TOOL]  # SPANs with only `gen_ai.tool.name`
    assert [(s.tool_calls[0].name, s.content) for s in tools] == [
        ("ByeTool", "Bye my dear Bob!"),
        ("HelloTool", "Hello my darling Bob!"),
    ]
    # the model's calls arrive as OpenAI tool-call objects in a JSON list inside the content
    (chat,) = [s for s in koog.steps if s.tool_calls and s.kind is not StepKind.TOOL]
    assert [(c.id, c.name) for c in chat.tool_calls] == [
        ("call_n2HaWg9KFP0BZDqXv6G4b3nJ", "HelloTool"),
        ("call_dOeEHJDI0liHrCdFWTpkTsuO", "ByeTool"),
    ]
    assert "HelloTool" not in chat.content  # not also kept as JSON text
    (jokes,) = traces("langfuse/framework-traces/pydantic-ai-tools-2025-12-04.trace.json", "langfuse")
    agents = [(s.name, s.agent) for s in jokes.steps]  # Pydantic AI's `agent_name` / `gen_ai.agent.name`
    assert agents[1] == ("joke_agent run", "joke_agent")
    assert agents[-1] == ("chat gpt-4o-mini", "evaluator_agent")
    assert {a for _, a in agents} == {None, "joke_agent", "evaluator_agent"}  # the root names none
    assert [s.agent for s in jokes.steps if s.kind is StepKind.TOOL] == ["joke_agent"] * 3


def test_langfuse_spans_name_koog_agents_by_id_and_crewai_tasks_by_their_agent_role() -> None:
    """Koog names an agent only by `gen_ai.agent.id` (its agent and run spans share it, the run
    has its own UUID in the span name); CrewAI's task spans name a `task_id`, whose agent role
    CrewAI lists in `crew_tasks` on its crew spans."""
    (koog,) = traces("langfuse/framework-traces/koog-2025-08-26.trace.json", "langfuse")
    assert {s.agent for s in koog.steps} == {"f9f77d1a-437f-4ba6-890e-b592a50cbd21"}
    (crew,) = traces("langfuse/framework-traces/crewai-2025-07-11.trace.json", "langfuse")
    task = next(s for s in crew.steps if s.name == "Task._execute_core")
    assert task.kind is StepKind.AGENT and task.agent == "Software developer"
    below = [s for s in crew.steps if s.parent_span_id == task.span_id]
    assert below and {s.agent for s in below} == {"Software developer"}  # the model call it made
    crew_level = [s.agent for s in crew.steps if s.name in ("Crew.kickoff", "Crew Created")]
    assert crew_level == [None, None]  # a crew is no agent


MS_AGENT = "langfuse/seeder/microsoft-agent-2025-10-14.json"


def test_a_tool_call_id_that_is_a_pair_is_kept_as_its_json_text() -> None:
    """Microsoft Agent Framework (Langfuse's seeder export of 2025-10) names a tool call by a
    `[run id, call id]` pair, in `gen_ai.tool.call.id`; the whole trace was rejected ("id: Input
    should be a valid string")."""
    (trace,) = traces(MS_AGENT, "langfuse")
    (tool,) = [s for s in trace.steps if s.kind is StepKind.TOOL]
    assert tool.tool_calls[0].id == '["run_9guMCbt68iSVgtsx6WdKMA18", "call_Sz1QP8T7fuJkIECGDLFWOorq"]'
    assert (tool.tool_calls[0].name, tool.content) == (
        "get_weather",
        "The weather in Portland is stormy with a high of 19°C.",
    )


def test_the_model_names_that_pair_as_the_tool_span_does() -> None:
    (trace,) = traces(MS_AGENT, "langfuse")
    (tool,) = [s for s in trace.steps if s.kind is StepKind.TOOL]
    asked = next(s for s in trace.steps if s.kind is StepKind.LLM and s.tool_calls)
    assert asked.tool_calls[0].id == tool.tool_calls[0].id
