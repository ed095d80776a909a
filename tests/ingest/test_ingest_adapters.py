"""Each adapter on its shipped sample: detection, ids, speakers, tool calls, labels, outcome."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tracefail.ingest import registry, whowhen
from tracefail.ingest.base import Rejected
from tracefail.ingest.chat import message_steps
from tracefail.model import StepKind, Trace
from tracefail.services.ingest import ingest
from tracefail.store import traces as trace_store

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"


def parse(path: Path) -> list[Trace]:
    """Detect the format and parse; the samples must parse without a single rejection."""
    items = list(registry.detect(path).parse(path))
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert not rejected, rejected
    return items


def by_id(traces: list[Trace]) -> dict[str, Trace]:
    return {t.trace_id: t for t in traces}


@pytest.mark.parametrize(
    ("relative", "name"),
    [
        ("mast/mad_full_sample.json", "mast"),
        ("mast/mad_human_sample.json", "mast-human"),
        ("mast/mad_human_round3_nan.json", "mast-human"),
        ("whowhen/1.json", "whowhen"),
        ("whowhen-handcrafted/1.json", "whowhen"),
        ("openai-chat/conversations.jsonl", "openai-chat"),
        ("otel/genai_v1_attributes.json", "otel"),
        ("otel/genai_v2_events.json", "otel"),
        ("otel/genai_v3_messages.json", "otel"),
        ("otel/openinference_otlp.json", "otel"),
        ("otel/trail_span_tree.json", "span-tree"),
        ("langfuse/trace_export.json", "langfuse"),
        ("inspect/arc_easy_log.json", "inspect"),
        ("inspect/ctf.eval", "inspect"),
        ("tau-bench/retail_gpt-4o_results.json", "tau-bench"),
        ("claude-code/0c1e6a52-3f0e-4a7c-9d6b-2f1a8e5c7b90.jsonl", "claude-code"),
        ("codex/rollout-2025-10-29T01-00-00-019a2d7a-41c4-78b1-b7cc-a45d62a89cd5.jsonl", "codex"),
    ],
)
def test_each_sample_is_detected_as_its_format(relative: str, name: str) -> None:
    path = SAMPLES / relative
    assert registry.detect(path).name == name
    assert registry.by_name(name).name == name


def test_every_registered_format_has_a_shipped_sample() -> None:
    detected = {registry.detect(p).name for p in registry.expand([SAMPLES])}
    assert detected == {a.name for a in registry.READERS}  # the generic reader too


def test_mast_full_ids_labels_and_framework_splits() -> None:
    traces = by_id(parse(SAMPLES / "mast/mad_full_sample.json"))
    assert len(traces) == 8
    ag2 = traces["mast:AG2_GSM-Plus_GPT4o/7"]
    assert (ag2.framework, ag2.llm, ag2.benchmark) == ("AG2", "GPT-4o", "GSM-Plus")
    assert [s.agent for s in ag2.steps[:2]] == ["mathproxyagent", "assistant"]  # `name`, not `role`
    assert ag2.raw and ag2.raw.startswith("{")
    present = {lbl.mode_id for lbl in ag2.labels if lbl.present}
    assert present == {"1.3", "3.2"} and len(ag2.labels) == 14
    assert {(lbl.source, lbl.taxonomy_id, lbl.taxonomy_version) for lbl in ag2.labels} == {
        ("dataset:mast", "mast", "v1")
    }
    nulls = traces["mast:ChatDev_ProgramDev-v2_CodeLlama/4"]
    assert all(lbl.present is None for lbl in nulls.labels)
    styles = {t.framework: t.metadata["split"] for t in traces.values()}
    assert styles == {
        "AG2": "ag2-json",
        "MetaGPT": "metagpt-log",
        "ChatDev": "chatdev-log",
        "HyperAgent": "hyperagent-log",
        "AppWorld": "appworld-markdown",
        "Magentic": "magentic-jsonl",
        "OpenManus": "openmanus-loguru",
    }
    chatdev = traces["mast:ChatDev_ProgramDev_GPT4o/3"]
    assert chatdev.task == "Develop a basic Gomoku game."
    talk = [(s.agent, s.recipient) for s in chatdev.steps if s.recipient]
    assert talk[0] == ("Chief Executive Officer", "Chief Product Officer")
    assert not any("flask app.py" in s.content for s in chatdev.steps)
    hyper = traces["mast:HyperAgent_SWE-Bench_Claude/0"]
    assert [s.agent for s in hyper.steps] == [
        "HyperAgent",
        "Planner",
        "Inner-Navigator-Assistant",
        "Navigator",
        "Planner",
    ]
    assert hyper.steps[3].recipient == "Planner"
    appworld = traces["mast:AppWorld_Test-C_GPT4o/0"]
    assert [s.agent for s in appworld.steps] == [
        "Supervisor",
        "spotify_agent",
        "Environment",
        "spotify_agent",
        "Supervisor",
    ]
    assert "# list the playlists first" in appworld.steps[1].content  # a code comment is no heading
    magentic = traces["mast:Magentic_GAIA_GPT4o/0"]
    assert (magentic.steps[2].agent, magentic.steps[2].recipient) == ("Orchestrator", "WebSurfer")
    assert magentic.steps[1].name == "thought"


def test_mast_metagpt_log_steps_are_the_real_messages() -> None:
    trace = by_id(parse(SAMPLES / "mast/mad_full_sample.json"))["mast:MetaGPT_MMLU_GPT4o/16"]
    agents = [s.agent for s in trace.steps]
    assert agents[1:5] == ["Human", "SimpleCoder", "SimpleTester", "SimpleReviewer"]
    assert trace.task.startswith("The following are multiple choice questions")
    assert trace.steps[2].content.startswith("def find_answer():")
    assert trace.steps[2].start_ts.isoformat() == "2025-03-27T01:21:11"


def test_mast_human_labels_keep_round_annotator_and_mode_name() -> None:
    traces = by_id(parse(SAMPLES / "mast/mad_human_sample.json"))
    assert set(traces) == {"mast-human:2", "mast-human:7", "mast-human:4", "mast-human:16"}
    round1 = traces["mast-human:2"]
    assert {lbl.taxonomy_version for lbl in round1.labels} == {"round1-18"}
    assert len(round1.labels) == 18 * 3
    assert {lbl.mode_id for lbl in round1.labels} >= {"4.1", "4.2", "4.3"}
    assert traces["mast-human:7"].labels[0].taxonomy_version == "round2-17"
    final = traces["mast-human:16"]
    assert {lbl.taxonomy_version for lbl in final.labels} == {"v1"}
    first = [lbl for lbl in final.labels if lbl.mode_id == "1.1"]
    assert [(lbl.source, lbl.present) for lbl in first] == [
        ("human:annotator_1", True),
        ("human:annotator_2", False),
        ("human:annotator_3", True),
    ]
    assert first[0].metadata == {"round": "Generlazability", "mode_name": "1.1 Disobey Task Specification"}
    metagpt_loguru = traces["mast-human:4"]
    assert metagpt_loguru.metadata["split"] == "metagpt-loguru"
    assert [s.agent for s in metagpt_loguru.steps[:3]] == ["SimpleCoder", "SimpleTester", "SimpleReviewer"]


def test_mast_human_nan_tokens_become_unknown_not_false() -> None:
    (trace,) = parse(SAMPLES / "mast/mad_human_round3_nan.json")
    by_key = {(lbl.mode_id, lbl.source): lbl for lbl in trace.labels}
    assert by_key[("3.2", "human:annotator_3")].present is None
    assert by_key[("3.3", "human:annotator_3")].present is None
    assert by_key[("3.2", "human:annotator_2")].present is True
    assert {lbl.taxonomy_version for lbl in trace.labels} == {"round3-17"}


def test_whowhen_magentic_roles_parse_agent_recipient_and_note() -> None:
    (trace,) = parse(SAMPLES / "whowhen-handcrafted/1.json")
    assert trace.framework == "Magentic-One"
    assert trace.trace_id == "whowhen:hand-crafted/hc-sample-1"
    parsed = [(s.agent, s.recipient, s.name) for s in trace.steps]
    assert parsed[1] == ("Orchestrator", None, "thought")
    assert parsed[2] == ("Orchestrator", "WebSurfer", None)
    assert parsed[3] == ("WebSurfer", None, None)
    assert parsed[5] == ("Orchestrator", None, "termination condition")
    assert [s.role for s in trace.steps][2] == "Orchestrator (-> WebSurfer)"
    (attribution,) = trace.attributions
    assert (attribution.agent, attribution.step_idx) == ("WebSurfer", 3)


@pytest.mark.parametrize(
    ("question_id", "benchmark"),
    [
        ("4d51c4bf-4b0e-4f3d-897b-3f6687a7d9f2", "GAIA"),  # data_samples/whowhen/1.json
        # the AssistantBench task "Which paintball places in Cologne ..." in Who&When's files
        ("c7afe00869f98cf363fd83677ac41757ed5e57f03eacc3d1304feb0a92084bd1", "AssistantBench"),
        ("hc-sample-1", "AssistantBench/GAIA"),
        (None, "AssistantBench/GAIA"),
    ],
)
def test_whowhen_benchmark_comes_from_the_task_id(question_id: str | None, benchmark: str) -> None:
    document = json.loads((SAMPLES / "whowhen/1.json").read_text())
    document["question_ID"] = question_id
    trace = whowhen.record_to_trace(document, "x.json")
    assert trace.benchmark == benchmark


def test_chat_message_without_role_or_name_has_no_agent() -> None:
    (step,) = message_steps([{"content": "hello"}])
    assert step.agent is None
    (step,) = message_steps([{"role": "assistant", "content": "hi"}])
    assert step.agent == "assistant"


@pytest.mark.parametrize("history_as", ["struct", "json-text"])
def test_whowhen_parquet_rows_match_the_json_files(tmp_path: Path, db, history_as: str) -> None:
    files = sorted((SAMPLES / "whowhen").glob("*.json"))[:5]
    records = [json.loads(f.read_text()) for f in files]
    rows = []
    for record in records:
        row = {
            k: record.get(k)
            for k in (
                "question",
                "question_ID",
                "level",
                "ground_truth",
                "mistake_agent",
                "mistake_step",
                "mistake_reason",
                "is_correct",
            )
        }
        row["level"] = str(row["level"])
        row["ground_truth"] = str(row["ground_truth"])
        history = [{"content": m["content"], "role": m["role"], "name": m["name"]} for m in record["history"]]
        row["history"] = history if history_as == "struct" else json.dumps(history)
        rows.append(row)
    path = tmp_path / "whowhen.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert registry.detect(path).name == "whowhen"
    from_parquet = by_id(parse(path))
    report = ingest(db, files)
    assert report.traces == 5
    assert set(from_parquet) == set(trace_store.trace_ids(db))
    again = ingest(db, [path])  # same records, same content hash: nothing new
    assert (again.traces, again.duplicates, again.quarantined) == (0, 5, 0)


def test_openai_chat_tool_calls_and_named_agents() -> None:
    traces = parse(SAMPLES / "openai-chat/conversations.jsonl")
    weather = by_id(traces)["openai-chat:chat-weather-1"]
    assert weather.llm == "gpt-4o-mini" and weather.task.startswith("Should I pack")
    call = weather.steps[2].tool_calls[0]
    assert (call.id, call.name, json.loads(call.arguments)) == (
        "call_1",
        "get_forecast",
        {"city": "Lisbon", "day": "tomorrow"},
    )
    tool = weather.steps[3]
    assert (tool.kind, tool.tool_call_id, tool.name, tool.agent) == (
        StepKind.TOOL,
        "call_1",
        "get_forecast",
        "tool",
    )
    named = next(t for t in traces if t.native_id is None)
    assert named.trace_id.startswith("openai-chat:") and len(named.trace_id) == len("openai-chat:") + 16
    assert [s.agent for s in named.steps] == ["planner", "writer", "reviewer", "writer"]
    assert named.steps[1].content == "v2.1 adds streaming ingest."


def test_otel_genai_v3_output_is_new_content_only() -> None:
    (trace,) = parse(SAMPLES / "otel/genai_v3_messages.json")
    assert trace.trace_id == "otel:5b8efff798038103d269b633813fc60c"
    assert [s.kind for s in trace.steps] == [StepKind.AGENT, StepKind.LLM, StepKind.TOOL, StepKind.LLM]
    assert all(s.agent == "weather_agent" for s in trace.steps)  # inherited from invoke_agent
    llm, tool, final = trace.steps[1:]
    assert llm.content == "" and llm.tool_calls[0].name == "get_weather"
    assert (llm.tokens_in, llm.tokens_out, llm.model) == (52, 18, "gpt-4o-2024-08-06")
    assert (tool.content, tool.tool_call_id) == ("rain, 11 C", "call_w")
    assert final.content == "It is raining in Paris, 11 C."  # not the repeated history
    assert "What is the weather" not in final.content
    assert trace.task == "What is the weather in Paris?"
    assert final.parent_span_id == trace.steps[0].span_id == "eee19b7ec3c1b174"
    assert trace.steps[0].start_ts < llm.start_ts < tool.start_ts < final.start_ts


def test_otel_genai_v2_events_and_v1_attributes() -> None:
    (events,) = parse(SAMPLES / "otel/genai_v2_events.json")
    assert [s.content for s in events.steps] == ["Sydney.", "Sorry: Canberra."]
    assert (events.steps[0].tokens_in, events.steps[0].tokens_out) == (20, 9)
    assert events.task == "Capital of Australia?"
    (attrs,) = parse(SAMPLES / "otel/genai_v1_attributes.json")
    errored = "The logs do not say.\nerror: upstream timeout"  # an error span says its error
    assert [s.content for s in attrs.steps] == ["Two failed deploys.", errored]
    assert [s.status for s in attrs.steps] == ["ok", "error"]
    assert attrs.steps[1].metadata["status_message"] == "upstream timeout"


def test_openinference_flattened_keys_are_unflattened() -> None:
    (trace,) = parse(SAMPLES / "otel/openinference_otlp.json")
    agent, llm, tool, answer = trace.steps
    assert agent.kind is StepKind.AGENT and agent.agent == "research_agent"
    call = llm.tool_calls[0]
    assert (call.id, call.name, call.arguments) == (
        "call_s",
        "web_search",
        '{"query": "Reykjavik population"}',
    )
    assert (llm.tokens_in, llm.tokens_out, llm.model) == (40, 15, "gpt-4o")
    assert tool.content.startswith("Reykjavik has about 140,000") and tool.tool_calls[0].name == "web_search"
    assert answer.content == "About 140,000."
    assert trace.task == "Find the population of Reykjavik."


def test_trail_span_tree_is_flattened_with_parents() -> None:
    (trace,) = parse(SAMPLES / "otel/trail_span_tree.json")
    assert trace.trace_id == "otel:7d5b3c2a9e1f4d6b8a0c2e4f6a8b0c1d"
    assert [(s.span_id, s.parent_span_id) for s in trace.steps] == [
        ("a1", None),
        ("b1", "a1"),
        ("c1", "b1"),
        ("c2", "b1"),
        ("b2", "a1"),
    ]
    assert trace.steps[3].status == "error" and "NameError" in trace.steps[3].content
    assert trace.steps[2].content.startswith("Thought: run the tests first.")
    assert trace.task == "Fix the failing test in utils.py"


def test_langfuse_observations_tree_and_usage() -> None:
    (trace,) = parse(SAMPLES / "langfuse/trace_export.json")
    assert trace.trace_id == "langfuse:lf-trace-3f2a"
    assert [s.name for s in trace.steps] == [
        "support_agent",
        "plan",
        "lookup_order",
        "answer",
    ]  # by startTime
    plan, tool, answer = trace.steps[1:]
    assert plan.tool_calls[0].name == "lookup_order" and (plan.tokens_in, plan.tokens_out) == (31, 14)
    assert tool.kind is StepKind.TOOL and json.loads(tool.content) == {"status": "lost in transit"}
    assert (answer.tokens_in, answer.status) == (60, "warning")
    assert all(s.parent_span_id == "obs-1" for s in trace.steps[1:])
    assert trace.task == "My order 1042 never arrived."


def test_inspect_json_and_eval_zip() -> None:
    traces = by_id(parse(SAMPLES / "inspect/arc_easy_log.json"))
    right, wrong = traces["inspect:arc_easy/ev-9aZ/1/1"], traces["inspect:arc_easy/ev-9aZ/2/1"]
    assert (right.outcome.value, wrong.outcome.value) == ("success", "failure")
    assert right.llm == "openai/gpt-4o-mini" and right.ground_truth == "B"
    assert right.steps[2].content == "Plants need light.\nB"  # reasoning and text parts
    (ctf,) = parse(SAMPLES / "inspect/ctf.eval")
    assert ctf.trace_id == "inspect:ctf/ev-ctf1/ctf-3/1" and ctf.outcome.value == "failure"
    call = ctf.steps[1].tool_calls[0]
    assert (call.name, json.loads(call.arguments)) == ("bash", {"cmd": "ls /srv/app"})
    assert (ctf.steps[2].status, ctf.steps[2].name, ctf.steps[2].tool_call_id) == ("error", "bash", "tc1")


def test_tau_bench_reward_and_tools() -> None:
    traces = by_id(parse(SAMPLES / "tau-bench/retail_gpt-4o_results.json"))
    failed = traces["tau-bench:retail_gpt-4o_results/17/0"]
    assert failed.outcome.value == "failure" and failed.benchmark == "retail"
    assert failed.task.startswith("You want to exchange")
    assert failed.steps[2].tool_calls[0].name == "find_user_id_by_name_zip"
    assert failed.steps[3].tool_call_id == "call_a"
    assert traces["tau-bench:retail_gpt-4o_results/18/0"].outcome.value == "success"


def test_claude_code_blocks_become_steps_with_the_uuid_tree() -> None:
    (trace,) = parse(SAMPLES / "claude-code/0c1e6a52-3f0e-4a7c-9d6b-2f1a8e5c7b90.jsonl")
    assert trace.trace_id == "claude-code:0c1e6a52-3f0e-4a7c-9d6b-2f1a8e5c7b90"
    assert trace.metadata["summary"] == "Fix failing cart total test"
    kinds = [(s.role, s.kind.value, s.name) for s in trace.steps]
    assert kinds[:4] == [
        ("user", "message", None),
        ("assistant", "message", "thinking"),
        ("assistant", "message", None),
        ("tool", "tool", None),
    ]
    assert trace.steps[2].tool_calls[0].name == "Bash"
    assert (trace.steps[3].tool_call_id, trace.steps[3].status) == ("toolu_1", "error")
    assert trace.steps[5].content == "The file shop/cart.py has been updated."
    assert (trace.steps[1].span_id, trace.steps[2].span_id, trace.steps[2].parent_span_id) == (
        "u2",
        "u2#1",
        "u1",
    )
    assert trace.llm == "claude-sonnet-4-5" and trace.task.startswith("The cart total test fails")


def test_codex_rollout_calls_outputs_and_model() -> None:
    (trace,) = parse(SAMPLES / "codex/rollout-2025-10-29T01-00-00-019a2d7a-41c4-78b1-b7cc-a45d62a89cd5.jsonl")
    assert trace.trace_id == "codex:019a2d7a-41c4-78b1-b7cc-a45d62a89cd5"
    assert trace.task == "Why does GET /health return 500?"  # not the <environment_context> boilerplate
    call = next(s for s in trace.steps if s.tool_calls)
    assert (call.tool_calls[0].name, call.tool_calls[0].id, call.model) == (
        "shell",
        "call_Xy1",
        "gpt-5-codex",
    )
    output = next(s for s in trace.steps if s.kind is StepKind.TOOL)
    assert output.tool_call_id == "call_Xy1" and "divides" not in output.content
    assert [s.name for s in trace.steps].count("reasoning") == 1
    assert len(trace.steps) == 6  # event_msg lines repeat response items and are skipped


def test_codex_pre_envelope_rollout(tmp_path: Path) -> None:
    path = tmp_path / "rollout-old.jsonl"
    lines = [
        {"id": "old-session", "timestamp": "2025-05-01T10:00:00Z", "instructions": None},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"}]},
        {"type": "function_call", "name": "shell", "arguments": '{"command": ["ls"]}', "call_id": "c1"},
        {"type": "function_call_output", "call_id": "c1", "output": {"content": "a.py", "success": False}},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (trace,) = parse(path)
    assert trace.trace_id == "codex:old-session"
    assert [s.role for s in trace.steps] == ["user", "assistant", "tool"]
    assert (trace.steps[2].content, trace.steps[2].status) == ("a.py", "error")


def test_shipped_samples_ingest_cleanly_and_idempotently(db, tmp_path: Path) -> None:
    copy = tmp_path / "samples"
    shutil.copytree(SAMPLES, copy)
    first = ingest(db, [copy])
    assert first.quarantined == 0, first.messages
    assert first.traces >= 49
    before = trace_store.counts(db)
    second = ingest(db, [copy])
    assert (second.traces, second.steps, second.labels, second.quarantined) == (0, 0, 0, 0)
    # otlp-json/ holds one trace twice (wrapped and bare): a duplicate already the first time
    assert first.duplicates == 1
    assert second.duplicates == first.traces + first.duplicates
    after = trace_store.counts(db)
    assert {k: v for k, v in after.items() if k != "runs"} == {k: v for k, v in before.items() if k != "runs"}


def test_claude_code_session_opening_with_a_snapshot_line(tmp_path: Path) -> None:
    sample = SAMPLES / "claude-code/0c1e6a52-3f0e-4a7c-9d6b-2f1a8e5c7b90.jsonl"
    snapshot = {"type": "file-history-snapshot", "messageId": "m1", "snapshot": {}, "isSnapshotUpdate": False}
    path = tmp_path / "session.jsonl"
    path.write_text("\n".join([json.dumps(snapshot), *sample.read_text().splitlines()[1:]]) + "\n")
    (trace,) = parse(path)
    assert len(trace.steps) == 7 and "summary" not in trace.metadata
