"""Detection that does not stop at the first 64 KiB: telling keys after a long body."""

from __future__ import annotations

import json
from pathlib import Path

from tracefail.ingest import registry
from tracefail.ingest.reader import HEAD_BYTES

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"


def test_whowhen_handcrafted_with_labels_after_a_long_history_is_detected(tmp_path: Path) -> None:
    record = json.loads((SAMPLES / "whowhen-handcrafted" / "1.json").read_text())
    history = record.pop("history")
    filler = {"content": "page text " * 2000, "role": "WebSurfer"}
    long = {"history": history + [filler] * 10, **record}  # labels come after ~200 KiB of history
    path = tmp_path / "7.json"
    path.write_text(json.dumps(long))
    assert path.stat().st_size > 3 * HEAD_BYTES
    assert '"mistake_agent"' not in path.read_text()[:HEAD_BYTES]
    assert registry.detect(path).name == "whowhen"
    trace = next(iter(registry.detect(path).parse(path)))
    assert len(trace.steps) == len(history) + 10 and trace.attributions


def test_key_order_does_not_matter_for_langfuse(tmp_path: Path) -> None:
    export = json.loads((SAMPLES / "langfuse" / "trace_export.json").read_text())
    reordered = {"observations": export.pop("observations"), **export}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(reordered))
    assert registry.detect(path).name == "langfuse"


def test_a_telling_key_between_two_big_values_is_found(tmp_path: Path) -> None:
    export = json.loads((SAMPLES / "langfuse" / "agents_sdk_export.json").read_text())
    export["trace"]["input"] = {"messages": [{"role": "user", "content": "x" * (3 * HEAD_BYTES)}]}
    export["observations"][-1]["output"] = {"content": [{"type": "text", "text": "y" * (3 * HEAD_BYTES)}]}
    path = tmp_path / "big.json"
    path.write_text(json.dumps(export))
    text = path.read_text()
    assert '"observations"' not in text[:HEAD_BYTES] + text[-HEAD_BYTES:]
    assert registry.detect(path).name == "langfuse"


def test_a_one_line_jsonl_longer_than_the_head_is_read_whole(tmp_path: Path) -> None:
    line = json.loads((SAMPLES / "openai-chat" / "conversations.jsonl").read_text().splitlines()[0])
    line["messages"][0]["content"] = "z" * (2 * HEAD_BYTES)
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(line) + "\n")  # head and tail are both cut out of this one line
    assert registry.detect(path).name == "openai-chat"


def test_a_js_sdk_span_dump_with_big_attributes_first_is_detected(tmp_path: Path) -> None:
    """The real Vercel AI SDK span dump with each span's keys reversed and a long prompt: the
    telling `spanContext` sits after 64 KiB and after `attributes`."""
    spans = json.loads((SAMPLES / "otel" / "vercel_ai_sdk_v6_generateText.json").read_text())
    for span in spans:
        span["attributes"]["ai.prompt"] = json.dumps({"prompt": "p" * (2 * HEAD_BYTES)})
    path = tmp_path / "spans.json"
    path.write_text(json.dumps([dict(reversed(span.items())) for span in spans]))
    assert '"spanContext"' not in path.read_text()[:HEAD_BYTES]
    assert registry.detect(path).name == "phoenix"
    assert [len(t.steps) for t in registry.detect(path).parse(path)] == [1, 1]


def test_an_any_agent_trace_with_reordered_keys_and_a_long_prompt_is_detected(tmp_path: Path) -> None:
    """The real any-agent run with every span's keys reversed and `final_output` first: the
    telling `trace_flags`/`is_remote` of the first span lie after a prompt longer than the head."""
    trace = json.loads((SAMPLES / "any-agent" / "GOOGLE_trace.json").read_text())
    prompt = [{"role": "user", "content": "q" * (2 * HEAD_BYTES)}]
    trace["spans"][0]["attributes"]["gen_ai.input.messages"] = json.dumps(prompt)
    reordered = {
        "final_output": trace["final_output"],
        "spans": [dict(reversed(s.items())) for s in trace["spans"]],
    }
    path = tmp_path / "run.json"
    path.write_text(json.dumps(reordered))
    assert '"trace_flags"' not in path.read_text()[:HEAD_BYTES]
    assert registry.detect(path).name == "any-agent"
    (run,) = registry.detect(path).parse(path)
    assert len(run.steps) == len(trace["spans"]) and run.framework == "any-agent"  # no framework in its name
