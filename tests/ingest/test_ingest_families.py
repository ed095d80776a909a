"""Families read through the generic structural reader, on real files of the tools that write
them: detection, steps that match the file's messages / events / spans one to one, tool names
and error status kept, and no text of the file lost."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tracefail.ingest import registry
from tracefail.ingest.base import Rejected, parse_time
from tracefail.ingest.reader import iter_jsonl
from tracefail.ingest.shapes.find import iter_strings
from tracefail.ingest.shapes.leftover import Placed, is_text
from tracefail.model import StepKind, Trace

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"


def read(path: Path, expected_reader: str) -> list[Trace]:
    reader = registry.detect(path)
    assert reader.name == expected_reader
    items = list(reader.parse(path))
    assert not [i for i in items if isinstance(i, Rejected)]
    return [i for i in items if isinstance(i, Trace)]


def document(path: Path) -> Any:
    if path.suffix == ".jsonl":
        return [raw.json() for raw in iter_jsonl(path)]
    return json.loads(path.read_text(encoding="utf-8"))


def lost(path: Path, traces: list[Trace]) -> list[str]:
    """Strings with words in the file that no step, tool call, task or metadata holds."""
    placed = Placed()
    for trace in traces:
        placed.add_trace(trace)
    return [text for _, text in iter_strings(document(path)) if is_text(text) and not placed.holds(text)]


FAMILIES = [
    ("swe-agent/swe-agent__test-repo-i1.traj", "swe-agent", 1, 12),
    ("swe-agent/function_calling_simple.traj", "swe-agent", 1, 12),
    ("openhands/basic.json", "openhands", 1, 4),
    ("openhands/basic_interactions.json", "openhands", 1, 6),
    ("openhands/resolver_output.jsonl", "openhands", 2, 52),
    ("zipkin/simple-db-p6.json", "zipkin", 1, 5),
    ("langsmith/langsmith_js_wrap_openai_default.json", "langsmith", 1, 1),
    ("langsmith/langsmith_py_wrap_openai_reasoning.json", "langsmith", 1, 1),
    ("tau2-bench/claude-sonnet-4-5_airline_2_of_50.json", "tau2-bench", 2, 32),
    ("smolagents/gpt-4o__tool-calling__math__2025-07-24_3_of_50.jsonl", "smolagents", 3, 25),
    ("smolagents/gpt-4o__code__math__2025-09-08_2_of_37.jsonl", "smolagents", 2, 4),
    ("smolagents/gpt-4o__vanilla__simpleqa__2025-07-25_2_of_50.jsonl", "smolagents", 2, 4),
    ("confident-ai/openai_agents_handoff_spanish_schema.json", "confident-ai", 1, 5),
    ("confident-ai/strands_async_parallel_tools_schema.json", "confident-ai", 1, 7),
    ("confident-ai/googleadk_tool_schema.json", "confident-ai", 1, 5),
]


@pytest.mark.parametrize(("relative", "family", "n_traces", "n_steps"), FAMILIES)
def test_family_is_detected_and_no_text_is_lost(
    relative: str, family: str, n_traces: int, n_steps: int
) -> None:
    path = SAMPLES / relative
    traces = read(path, family)
    assert len(traces) == n_traces
    assert sum(len(t.steps) for t in traces) == n_steps
    assert all(t.source == family for t in traces)
    assert lost(path, traces) == []


def test_swe_agent_steps_are_the_history_messages() -> None:
    path = SAMPLES / "swe-agent/function_calling_simple.traj"
    (trace,) = read(path, "swe-agent")
    history = document(path)["history"]
    assert [s.role for s in trace.steps] == [m["role"] for m in history]
    assert [s.content for s in trace.steps] == [m["content"] for m in history]
    assert trace.native_id == "function_calling_simple"
    assert trace.task is not None and trace.task.startswith("We're currently solving the following issue")
    calls = [c.name for s in trace.steps for c in s.tool_calls]
    tools = [s.name for s in trace.steps if s.kind is StepKind.TOOL]
    assert calls[:2] == ["find_file", "open"] and tools == calls  # each result names its call's tool


def test_openhands_actions_and_observations() -> None:
    path = SAMPLES / "openhands/basic.json"
    (trace,) = read(path, "openhands")
    events = document(path)
    assert len(trace.steps) == len(events)
    assert [s.agent for s in trace.steps] == [e["source"] for e in events]
    edit, result = trace.steps[1], trace.steps[2]
    assert (
        edit.tool_calls[0].name == "str_replace_editor"
        and "/workspace/game_2048.py" in edit.tool_calls[0].arguments
    )
    assert result.kind is StepKind.TOOL and result.name == "str_replace_editor"
    assert result.tool_call_id == edit.tool_calls[0].id == "toolu_017nBp7UfiGqyrA7j77HgtFP"
    assert trace.task == events[0]["args"]["content"]


def test_openhands_output_jsonl_is_one_run_per_line_with_its_outcome() -> None:
    path = SAMPLES / "openhands/resolver_output.jsonl"
    traces = read(path, "openhands")
    lines = document(path)
    assert [len(t.steps) for t in traces] == [len(line["history"]) for line in lines]
    assert [t.task for t in traces] == [line["instruction"] for line in lines]
    assert [t.native_id for t in traces] == [f"neubig/pr-viewer#{line['issue']['number']}" for line in lines]
    assert [t.outcome.value for t in traces] == [
        "success" if line["success"] else "failure" for line in lines
    ]


def test_zipkin_spans_keep_ids_parents_services_and_tags() -> None:
    path = SAMPLES / "zipkin/simple-db-p6.json"
    (trace,) = read(path, "zipkin")
    spans = document(path)
    assert trace.native_id == "19f84f102048e047"
    assert {s.span_id for s in trace.steps} == {s["id"] for s in spans}
    root = next(s for s in trace.steps if s.parent_span_id is None)
    assert root.name == "http:/book" and trace.steps[0] is root  # ordered by start time
    assert all(s.metadata.get("service") == "bootifulmeters" for s in trace.steps)
    kept = json.dumps([s.metadata for s in trace.steps])
    assert "insert into api_book_aud" in kept  # a tag with words: kept as step text


def test_generic_reader_finds_messages_inside_wrappers(tmp_path: Path) -> None:
    """The rule, on the smallest file that shows it: `{"result": {"data": [...]}}` wrappers."""
    path = tmp_path / "wrapped.json"
    messages = [
        {"role": "user", "content": "Book me a table for two tonight."},
        {"role": "assistant", "content": [{"type": "text", "text": "Which restaurant would you like?"}]},
    ]
    path.write_text(json.dumps({"result": {"data": {"id": "c1", "messages": messages}}}))
    (trace,) = read(path, "generic")
    assert (
        trace.native_id == "c1" and [s.content for s in trace.steps][1] == "Which restaurant would you like?"
    )


def test_a_file_of_no_known_shape_says_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([{"a": 1, "b": 2, "c": 3}] * 12))
    (rejected,) = list(registry.detect(path).parse(path))
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "no spans, messages or events found: a list of 12 objects with keys a, b, c"


@pytest.mark.parametrize(("relative", "n_steps"), [("local.traj.json", 6), ("github_issue.traj.json", 22)])
def test_generic_reader_alone_reads_mini_swe_agent(relative: str, n_steps: int) -> None:
    """A family the issue does not name, with no adapter: its messages are the steps."""
    path = SAMPLES / "mini-swe-agent" / relative
    (trace,) = read(path, "generic")
    messages = document(path)  # this release's trajectory: the bare list of chat messages
    assert len(trace.steps) == n_steps == len(messages)
    assert [s.role for s in trace.steps] == [m["role"] for m in messages]
    assert [s.content for s in trace.steps] == [m["content"] for m in messages]
    assert trace.task is not None and trace.task.startswith("Please solve this issue")
    assert lost(path, traces=[trace]) == []


@pytest.mark.parametrize(
    "name", ["langsmith_js_wrap_openai_default.json", "langsmith_py_wrap_openai_reasoning.json"]
)
def test_langsmith_post_and_patch_halves_are_one_run(name: str) -> None:
    path = SAMPLES / "langsmith" / name
    (trace,) = read(path, "langsmith")
    batch = document(path)
    (post,), (patch,) = batch["post"], batch["patch"]
    (step,) = trace.steps
    assert step.span_id == post["id"] and trace.native_id == post["trace_id"]
    assert step.kind is StepKind.LLM and step.name == "ChatOpenAI"
    assert step.content == patch["outputs"]["choices"][0]["message"]["content"]  # from the patch
    assert step.start_ts is not None and step.end_ts is not None and step.end_ts > step.start_ts
    assert trace.task == post["inputs"]["messages"][0]["content"]  # from the post


def test_tau2_simulations_are_traces_with_their_task_and_reward() -> None:
    path = SAMPLES / "tau2-bench/claude-sonnet-4-5_airline_2_of_50.json"
    traces = read(path, "tau2-bench")
    results = document(path)
    tasks = {t["id"]: t for t in results["tasks"]}
    for trace, sim in zip(traces, results["simulations"], strict=True):
        assert trace.native_id == sim["id"]
        assert [s.role for s in trace.steps] == [m["role"] for m in sim["messages"]]
        assert trace.outcome.value == ("success" if sim["reward_info"]["reward"] == 1.0 else "failure")
        assert trace.metadata["task_definition"] == tasks[sim["task_id"]]
        calls = {c.id: c.name for s in trace.steps for c in s.tool_calls}
        tools = [s for s in trace.steps if s.kind is StepKind.TOOL]
        assert tools and all(s.name == calls[s.tool_call_id] for s in tools)  # results keep their tool


def test_generic_reader_alone_reads_sharegpt_tool_calls() -> None:
    """ShareGPT conversations (`from`/`value`, `function_call` and `observation` turns): no adapter."""
    path = SAMPLES / "sharegpt/glaive_toolcall_en_demo_4_of_300.json"
    traces = read(path, "generic")
    records = document(path)
    assert [len(t.steps) for t in traces] == [len(r["conversations"]) for r in records]
    roles = {"human": "user", "gpt": "assistant", "function_call": "assistant", "observation": "tool"}
    for trace, record in zip(traces, records, strict=True):
        assert [s.role for s in trace.steps] == [roles[m["from"]] for m in record["conversations"]]
        for step, turn in zip(trace.steps, record["conversations"], strict=True):
            if turn["from"] == "function_call":
                call = json.loads(turn["value"])
                assert [(c.name, json.loads(c.arguments)) for c in step.tool_calls] == [
                    (call["name"], call["arguments"])
                ]
        calls = [c.name for s in trace.steps for c in s.tool_calls]
        assert [s.name for s in trace.steps if s.kind is StepKind.TOOL] == calls  # results name their tool
        assert trace.metadata["tools"] == record["tools"]
    assert lost(path, traces) == []


@pytest.mark.parametrize(
    ("name", "n_steps"),
    [("customer_service.af", 4), ("test_basic_agent_with_blocks_tools_messages_v2.af", 7)],
)
def test_generic_reader_alone_reads_letta_agent_files(name: str, n_steps: int) -> None:
    """Letta agent files are JSON under their own ending: `--format generic` reads them."""
    path = SAMPLES / "letta" / name
    items = list(registry.by_name("generic").parse(path))
    assert not [i for i in items if isinstance(i, Rejected)]
    (trace,) = items
    assert isinstance(trace, Trace)
    agent = document(path)
    messages = agent["agents"][0]["messages"] if "agents" in agent else agent["messages"]
    assert len(trace.steps) == n_steps == len(messages)
    assert [s.role for s in trace.steps] == [m["role"] for m in messages]
    assert trace.steps[0].content.startswith("You are")  # the system prompt is a step
    sent = [c for s in trace.steps for c in s.tool_calls]
    assert sent and all(c.name == "send_message" for c in sent)
    assert lost(path, [trace]) == []


def test_mlflow_span_rules(tmp_path: Path) -> None:
    """The rules MLflow traces rely on, for the generic reader (no real MLflow file was found to
    ship, so there is no `mlflow` family yet): `0x` ids in `context`, ns times, and every
    attribute as JSON text, written here after MLflow's documented trace schema."""
    question = "When is the next launch window for Mars, given a dry mass of 10000 kg?"
    answer = "The next optimal launch window for a Hohmann transfer is on November 26, 2026 UTC."
    spans = [
        {
            "name": "agent",
            "context": {"span_id": "0xb802165d133a33aa", "trace_id": "0x9b8bd0b2e018d77f936e48a09e54fd44"},
            "parent_id": None,
            "start_time": 1731388531754725000,
            "end_time": 1731388550226771000,
            "status_code": "OK",
            "status_message": "",
            "attributes": {
                "mlflow.spanType": json.dumps("CHAT_MODEL"),
                "mlflow.spanInputs": json.dumps({"messages": [{"role": "user", "content": question}]}),
                "mlflow.spanOutputs": json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": answer}}]}
                ),
            },
            "events": [],
        },
        {
            "name": "lookup",
            "context": {"span_id": "0x2e7cd730be70865b", "trace_id": "0x9b8bd0b2e018d77f936e48a09e54fd44"},
            "parent_id": "0xb802165d133a33aa",
            "start_time": 1731388531755172000,
            "end_time": 1731388531755252000,
            "status_code": "ERROR",
            "status_message": "the ephemeris service timed out after 30 seconds",
            "attributes": {
                "mlflow.spanType": json.dumps("TOOL"),
                "mlflow.spanInputs": json.dumps({"body": "Mars"}),
            },
            "events": [],
        },
    ]
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({"info": {"request_id": "tr-1"}, "data": {"spans": spans}}))
    (trace,) = read(path, "generic")
    root, tool = trace.steps
    assert trace.native_id == "9b8bd0b2e018d77f936e48a09e54fd44" and trace.task == question
    assert (root.kind, root.content, root.span_id) == (StepKind.LLM, answer, "b802165d133a33aa")
    assert (tool.kind, tool.parent_span_id, tool.status) == (StepKind.TOOL, "b802165d133a33aa", "error")
    assert "ephemeris service timed out" in tool.content
    assert root.start_ts is not None and tool.end_ts is not None and tool.end_ts > root.start_ts


def test_autogen_core_typed_messages_by_the_generic_rules() -> None:
    """AutoGen core's LLM message history (`UserMessage` / `AssistantMessage` with `source`), as
    the real AgentChat state file holds it under `llm_messages`: the generic reader forced on that
    file maps the history (and the manager's `TextMessage` thread) with roles and speakers."""
    path = SAMPLES / "autogen/state_tutorial_team_state.json"
    items = list(registry.by_name("generic").parse(path))
    traces = [t for t in items if isinstance(t, Trace)]
    state = document(path)["agent_states"]
    history = next(s for s in state.values() if s.get("agent_state"))["agent_state"]["llm_messages"]
    core = next(t for t in traces if t.metadata.get("type") == "AssistantAgentState")
    assert [(s.role, s.agent, s.content) for s in core.steps] == [
        ({"UserMessage": "user", "AssistantMessage": "assistant"}[m["type"]], m["source"], m["content"])
        for m in history
    ]
    assert all(s.role in ("user", "assistant") for t in traces for s in t.steps)


def test_wrapped_otlp_is_the_same_trace_as_the_plain_export() -> None:
    """Jaeger's API v3 answers FindTraces with the export under `result` and GetTrace with it
    bare: the first goes to `otlp-json`, the second to `otel`, and both store one trace."""
    wrapped = read(SAMPLES / "otlp-json/jaeger_apiv3_FindTraces.json", "otlp-json")
    plain = read(SAMPLES / "otlp-json/jaeger_apiv3_GetTrace.json", "otel")
    assert (
        [t.trace_id for t in wrapped]
        == [t.trace_id for t in plain]
        == ["otel:000000000000009600000000000000a0"]
    )
    assert wrapped[0].content_hash() == plain[0].content_hash()
    (step,) = wrapped[0].steps
    assert (step.name, step.span_id, step.status) == ("foobar", "00000000000000b4", "error")


def test_an_array_of_otlp_export_requests(tmp_path: Path) -> None:
    """The rule for arrays of export requests, on the two real exports above side by side."""
    documents = [document(SAMPLES / "otlp-json/jaeger_apiv3_GetTrace.json")] * 2
    path = tmp_path / "requests.json"
    path.write_text(json.dumps(documents))
    (trace,) = read(path, "otlp-json")  # the same span twice: one trace, one step
    assert trace.trace_id == "otel:000000000000009600000000000000a0" and len(trace.steps) == 1


def test_smolagents_tool_roles_become_calls_and_results() -> None:
    path = SAMPLES / "smolagents/gpt-4o__tool-calling__math__2025-07-24_3_of_50.jsonl"
    traces = read(path, "smolagents")
    runs = document(path)
    for trace, run in zip(traces, runs, strict=True):
        assert trace.task == run["question"] and len(trace.steps) == len(run["intermediate_steps"])
        roles = [m["role"] for m in run["intermediate_steps"]]
        assert [s.kind is StepKind.TOOL for s in trace.steps] == [r == "tool-response" for r in roles]
        called = [s.tool_calls[0].name for s, r in zip(trace.steps, roles, strict=True) if r == "tool-call"]
        assert called[-1] == "final_answer" and json.loads(trace.steps[-2].tool_calls[0].arguments) == {
            "answer": run["answer"]
        }
    failed = [s for t in traces for s in t.steps if s.status == "error"]
    assert [(s.name, s.content.split("\n")[0]) for s in failed] == [("python_interpreter", "Error:")]
    assert all(
        s.name for t in traces for s in t.steps if s.kind is StepKind.TOOL
    )  # every result names its tool


def test_smolagents_runs_without_memory_are_the_question_and_the_answer() -> None:
    """The runner writes the bare model's answer as a `vanilla` run's steps, and an empty list
    when the run raised, the answer being the exception (every run of this 2025-09 file)."""
    vanilla = SAMPLES / "smolagents/gpt-4o__vanilla__simpleqa__2025-07-25_2_of_50.jsonl"
    for trace, run in zip(read(vanilla, "smolagents"), document(vanilla), strict=True):
        assert [(s.role, s.content, s.status) for s in trace.steps] == [
            ("user", run["question"], None),
            ("assistant", run["answer"], None),
        ]
    crashed = SAMPLES / "smolagents/gpt-4o__code__math__2025-09-08_2_of_37.jsonl"
    for trace, run in zip(read(crashed, "smolagents"), document(crashed), strict=True):
        assert run["intermediate_steps"] == [] and trace.task == run["question"]
        answer = trace.steps[-1]
        assert answer.status == "error" and answer.content.startswith("Error in generating model output:")


def test_confident_ai_span_lists_are_one_trace_with_agents_tools_and_usage() -> None:
    """deepeval keeps a trace's spans in five lists by type, linked by `uuid` / `parentUuid`; its
    chat `input` is the root's and no trace of its own."""
    path = SAMPLES / "confident-ai/openai_agents_handoff_spanish_schema.json"
    doc = document(path)
    (trace,) = read(path, "confident-ai")
    spans = [
        s for key in ("baseSpans", "agentSpans", "llmSpans", "retrieverSpans", "toolSpans") for s in doc[key]
    ]
    assert sorted(str(s.span_id) for s in trace.steps) == sorted(s["uuid"] for s in spans)
    by_id = {s["uuid"]: s for s in spans}
    assert all(by_id[str(s.span_id)].get("parentUuid") == s.parent_span_id for s in trace.steps)
    assert [(s.name, s.agent) for s in trace.steps if s.kind is StepKind.AGENT] == [
        ("TriageAgent", "TriageAgent"),
        ("SpanishAgent", "SpanishAgent"),
    ]
    llm = [s for s in trace.steps if s.kind is StepKind.LLM]
    assert sorted((s.model, s.tokens_in, s.tokens_out) for s in llm) == sorted(
        (x["model"], x["inputTokenCount"], x["outputTokenCount"]) for x in doc["llmSpans"]
    )
    assert trace.task == "Hola" and all(s.start_ts for s in trace.steps)
    # the triage model's output is a Responses API `function_call` item: the hand-off is a call
    handoff = next(s for s in llm if s.agent == "TriageAgent")
    assert [(c.name, c.arguments) for c in handoff.tool_calls] == [("transfer_to_spanishagent", "{}")]
    strands = SAMPLES / "confident-ai/strands_async_parallel_tools_schema.json"
    (run,) = read(strands, "confident-ai")
    tools = [s for s in run.steps if s.kind is StepKind.TOOL]
    assert sorted((s.tool_calls[0].name, s.content) for s in tools) == [
        ("get_time", "3:00 PM JST"),
        ("get_weather", "Sunny, 72F"),
    ]
    (adk,) = read(SAMPLES / "confident-ai/googleadk_tool_schema.json", "confident-ai")
    (tool,) = [s for s in adk.steps if s.kind is StepKind.TOOL]
    assert json.loads(tool.tool_calls[0].arguments) == {"operation": "multiply", "b": 8, "a": 7}


def test_system_prompts_and_tool_definitions_are_the_traces() -> None:
    """ADK repeats the system instruction and tool declarations inside every `llm_request`
    attribute: the generic reader keeps them once, on the trace, and none of the file's text is
    lost (the `jaeger` adapter takes this file by default; the generic reader is forced here)."""
    path = SAMPLES / "jaeger/agentevals/k8s.json"
    items = list(registry.by_name("generic").parse(path))
    (trace,) = [i for i in items if isinstance(i, Trace)]
    (prompt,) = trace.metadata["system_prompts"]
    assert prompt.startswith("# Kubernetes AI Agent System Prompt")
    (tools,) = trace.metadata["tool_definitions"]
    assert "function_declarations" in json.dumps(tools)
    assert len(trace.steps) == len(document(path)["data"][0]["spans"])
    assert lost(path, [trace]) == []


# Sessions of newer versions than the adapters were written against (Claude Code 2.1.152, Codex
# CLI 0.135.0, a Gemini CLI recording whose user content is a list of parts) and of an agent no
# adapter names (Pi): real files from kvsankar/agent-history, text redacted by that project.
NEWER_SESSIONS = [
    ("claude-code/agent-history/session-01.jsonl", "claude-code", ["user", "assistant"], "claude-opus-4-7"),
    ("codex/agent-history/session-01.jsonl", "codex", ["developer", "user", "user", "assistant"], "gpt-5.5"),
    ("gemini-cli/agent-history/session-01.json", "gemini-cli", ["user", "assistant"], "gemini-2.5-flash"),
    ("pi/agent-history/session-01.jsonl", "generic", ["user", "assistant"], "gpt-5.5"),
]


@pytest.mark.parametrize(("relative", "reader", "roles", "model"), NEWER_SESSIONS)
def test_newer_session_files_keep_roles_times_and_model(
    relative: str, reader: str, roles: list[str], model: str
) -> None:
    path = SAMPLES / relative
    (trace,) = read(path, reader)
    assert [s.role for s in trace.steps] == roles
    assert all(s.start_ts is not None and s.start_ts.year == 2026 for s in trace.steps)
    assert trace.llm == model and trace.task == "[REDACTED_PROMPT]"
    assert trace.steps[-1].content == "[REDACTED_ASSISTANT_TEXT]"  # the text itself was redacted


def _pi_session(tmp_path: Path) -> Path:
    """A Pi session with a tool call that fails, written after the entry types of
    badlogic/pi-mono @ 25754f05 `packages/coding-agent/docs/session.md` (no real session with
    tool calls was found): headers, then `message` entries wrapping `{role, content}`."""
    lines = [
        {"type": "session", "version": 3, "id": "s1", "timestamp": "2026-06-05T05:24:28.246Z", "cwd": "/w"},
        {"type": "model_change", "id": "m0", "parentId": None, "provider": "anthropic", "modelId": "claude"},
        {
            "type": "message",
            "id": "a1",
            "parentId": "m0",
            "timestamp": "2026-06-05T05:24:29.000Z",
            "message": {"role": "user", "content": [{"type": "text", "text": "List the files here"}]},
        },
        {
            "type": "message",
            "id": "a2",
            "parentId": "a1",
            "timestamp": "2026-06-05T05:24:30.000Z",
            "message": {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Running ls."},
                    {"type": "toolCall", "id": "call_1", "name": "bash", "arguments": {"command": "ls"}},
                ],
                "model": "claude-sonnet-4-5",
                "stopReason": "toolUse",
            },
        },
        {
            "type": "message",
            "id": "a3",
            "parentId": "a2",
            "timestamp": "2026-06-05T05:24:31.000Z",
            "message": {
                "role": "toolResult",
                "toolCallId": "call_1",
                "toolName": "bash",
                "content": [{"type": "text", "text": "ls: cannot open directory: Permission denied"}],
                "isError": True,
            },
        },
    ]
    path = tmp_path / "pi.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


def test_a_typed_session_log_is_its_wrapped_messages(tmp_path: Path) -> None:
    """Records that all say their `type`: the message records are the steps (inside their
    wrappers, with the wrapper's time), however few; the headers are not steps."""
    path = _pi_session(tmp_path)
    (trace,) = read(path, "generic")
    assert [(s.role, s.kind) for s in trace.steps] == [
        ("user", StepKind.MESSAGE),
        ("assistant", StepKind.MESSAGE),
        ("tool", StepKind.TOOL),
    ]
    result = trace.steps[2]
    assert (result.name, result.tool_call_id, result.status) == ("bash", "call_1", "error")
    assert "Permission denied" in result.content
    assert [s.start_ts.second for s in trace.steps if s.start_ts] == [29, 30, 31]
    assert trace.task == "List the files here" and trace.llm == "claude-sonnet-4-5"


def test_pi_tool_call_parts_are_tool_calls(tmp_path: Path) -> None:
    (trace,) = read(_pi_session(tmp_path), "generic")
    assert [(c.id, c.name) for c in trace.steps[1].tool_calls] == [("call_1", "bash")]
    assert trace.steps[1].content == "Running ls."


def test_inspect_steps_are_timed_by_the_transcript_events() -> None:
    """Inspect messages have no time; a `model` event's output message has the assistant
    message's id, a `tool` event the id of the call a tool message answers."""
    (sample,) = read(SAMPLES / "inspect/inspect_ai/log_read_sample.json", "inspect")
    answer = sample.steps[2]
    assert answer.role == "assistant" and sample.steps[0].start_ts is None  # no event for the prompt
    assert (answer.start_ts, answer.end_ts) == (
        datetime(2025, 7, 5, 13, 59, 40, 965459),
        datetime(2025, 7, 5, 13, 59, 43, 58756),
    )
    (dedup,) = read(SAMPLES / "inspect/inspect_ai/log_message_deduplication.eval", "inspect")
    timed = [s.role for s in dedup.steps if s.start_ts is not None]
    assert timed.count("tool") == 5 and timed.count("assistant") == 6
    assert all(s.end_ts >= s.start_ts for s in dedup.steps if s.start_ts and s.end_ts)


def test_inspect_messages_without_ids_are_timed_by_the_model_event_that_said_them() -> None:
    """Inspect logs of November 2024 have no message ids: the assistant message is the output
    of the first of two `model` events, found by its text (the second is the scorer's grading
    call, whose output is no message of the sample)."""
    path = SAMPLES / "inspect/inspect_ai/2024-11-05T13-31-45-05-00_input-task_8zXjbRzCWrL9GXiXo2vus9.json"
    (sample,) = read(path, "inspect")
    raw = json.loads(path.read_text(encoding="utf-8"))["samples"][0]
    assert not any("id" in m for m in raw["messages"])
    models = [e for e in raw["events"] if e["event"] == "model"]
    answer = sample.steps[-1]
    assert answer.role == "assistant" and len(models) == 2
    assert (answer.start_ts, answer.end_ts) == (parse_time(models[0]["timestamp"]), None)
    assert [s.start_ts for s in sample.steps[:-1]] == [None, None]  # no event says the prompts


def test_otlp_spans_name_agents_and_tools_as_pydantic_ai_and_koog_write_them(tmp_path: Path) -> None:
    """The attributes the real Langfuse exports above keep for Pydantic AI (`agent_name`) and
    Koog (a tool span with only `gen_ai.tool.name`) mean the same in a plain OTLP file."""

    def span(span_id: str, parent: str, name: str, **attrs: str) -> dict[str, Any]:
        return {
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": span_id,
            "parentSpanId": parent,
            "name": name,
            "startTimeUnixNano": "1764859882050000000",
            "endTimeUnixNano": "1764859883050000000",
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()],
        }

    spans = [
        span("eee19b7ec3c1b174", "", "joke_agent run", agent_name="joke_agent"),
        span("eee19b7ec3c1b175", "eee19b7ec3c1b174", "tool.HelloTool", **{"gen_ai.tool.name": "HelloTool"}),
        span("eee19b7ec3c1b176", "", "run.6f8d2449", **{"gen_ai.agent.id": "f9f77d1a"}),  # Koog: an id only
    ]
    path = tmp_path / "spans.json"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}), encoding="utf-8")
    (trace,) = read(path, "otel")
    assert [(s.name, s.kind, s.agent) for s in trace.steps] == [
        ("joke_agent run", StepKind.OTHER, "joke_agent"),
        ("tool.HelloTool", StepKind.TOOL, "joke_agent"),
        ("run.6f8d2449", StepKind.CHAIN, "f9f77d1a"),
    ]
    assert trace.steps[1].tool_calls[0].name == "HelloTool"
