"""Confident AI traces: what deepeval's tracing sends for one trace (`deepeval/tracing/api.py`,
`TraceApi`), as its integration tests record it for CrewAI, Google ADK, LangChain, LangGraph,
LlamaIndex, OpenAI Agents, Pydantic AI, Strands and AgentCore runs.

`{uuid, name, input, output, status, startTime, endTime, threadId, userId, tags, metadata,
baseSpans, agentSpans, llmSpans, retrieverSpans, toolSpans}`; a span is `{uuid, parentUuid,
name, type (base / agent / llm / retriever / tool), status (SUCCESS / ERRORED), error,
startTime, endTime, input, output}`, an LLM span adds `model`, `inputTokenCount` and
`outputTokenCount`, a span `toolsCalled` (`[{name, inputParameters, output}]`).

The fix shape cannot make: the spans of one trace are kept in five lists by their type, and name
their trace and parent by `uuid` / `parentUuid`. They become one span list with those ids, and
the model, token counts, a tool span's call and the status under the keys the span mapper reads.
The trace's own `input` and `output` are kept as text (trace metadata)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tracefail.ingest.families.family import Family
from tracefail.ingest.reader import first_char

SPAN_LISTS = ("baseSpans", "agentSpans", "llmSpans", "retrieverSpans", "toolSpans")


def _span(span: dict[str, Any], trace_id: Any) -> dict[str, Any]:
    attributes = {
        key: value
        for key, value in {
            "gen_ai.request.model": span.get("model"),
            "gen_ai.usage.input_tokens": span.get("inputTokenCount"),
            "gen_ai.usage.output_tokens": span.get("outputTokenCount"),
        }.items()
        if value is not None
    }
    if span.get("type") == "tool":  # the call: the span's input, else what `toolsCalled` says
        calls = span.get("toolsCalled")
        called = calls[0] if isinstance(calls, list) and calls and isinstance(calls[0], dict) else {}
        arguments = span.get("input") or called.get("inputParameters") or {}
        attributes["gen_ai.tool.name"] = called.get("name") or span.get("name")
        attributes["gen_ai.tool.call.arguments"] = (
            arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        )
    moved = ("uuid", "parentUuid", "model", "inputTokenCount", "outputTokenCount", "status")
    return {
        **{k: v for k, v in span.items() if k not in moved},
        "span_id": span.get("uuid"),
        "trace_id": trace_id,
        "parent_id": span.get("parentUuid"),
        "status": "ERROR" if span.get("status") == "ERRORED" else span.get("status"),
        "attributes": attributes,
    }


def one_span_list(document: Any) -> Any:
    """Each trace's five span lists as one `spans` list of spans with their ids."""
    if isinstance(document, list):
        return [one_span_list(item) for item in document]
    if not (isinstance(document, dict) and any(key in document for key in SPAN_LISTS)):
        return document
    spans = [
        _span(span, document.get("uuid"))
        for key in SPAN_LISTS
        for span in document.get(key) or []
        if isinstance(span, dict)
    ]
    # the trace's own input and output (a chat, a graph state) repeat its root span's: kept as
    # text, so they are not read as a second trace of their own
    rest = {
        k: v if k not in ("input", "output") or isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        for k, v in document.items()
        if k not in SPAN_LISTS
    }
    return {**rest, "spans": spans}


def _detect(path: Path, head: str) -> bool:
    return first_char(head) in "{[" and '"baseSpans"' in head and '"llmSpans"' in head


CONFIDENT_AI = Family(
    name="confident-ai",
    description="Confident AI (deepeval) traces: baseSpans, agentSpans, llmSpans, retrieverSpans, toolSpans",
    suffixes=(".json", ".jsonl"),
    detect=_detect,
    prepare=one_span_list,
)
