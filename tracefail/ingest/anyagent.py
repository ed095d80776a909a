"""mozilla-ai any-agent `AgentTrace` JSON (`agent_trace.model_dump_json()`): one agent run as
`{"spans": [...], "final_output": ...}`. Each span is an OpenTelemetry span dumped by pydantic:
`context`/`parent` objects whose `trace_id`/`span_id` are integers, `start_time`/`end_time` in
Unix nanoseconds, `status: {status_code: ok|error|unset, description}` and plain `attributes`
(`gen_ai.*`; the any-agent keys `gen_ai.output`, `gen_ai.tool.args` are mapped in
`otel_vendors`). Spans go through the OTel span mapper; ids are written as OTel hex, so the same
span exported over OTLP gets the same id.

One file is one run of one agent (the `invoke_agent` span), so a span whose parent is not in the
file (Google ADK's own spans are not recorded) still belongs to that agent. any-agent saves its
test runs as `<FRAMEWORK>_trace.json` (`AgentFramework` names); that name is the framework.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest.base import Rejected, parse_time
from tracefail.ingest.content import mapping
from tracefail.ingest.otel import attributes, spans_to_trace
from tracefail.ingest.reader import first_char, parse_whole_object
from tracefail.model import StepKind, Trace

# any_agent.config.AgentFramework
FRAMEWORKS = ("GOOGLE", "LANGCHAIN", "LLAMA_INDEX", "OPENAI", "AGNO", "SMOLAGENTS", "TINYAGENT")


def _hex(value: Any, width: int) -> str | None:
    """OTel ids as hex (any-agent dumps them as integers); anything else as text."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:0{width}x}"
    return str(value)


def _span(span: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    context, parent, status = (
        mapping(span.get("context")),
        mapping(span.get("parent")),
        mapping(span.get("status")),
    )
    return _hex(context.get("trace_id"), 32), {
        "span_id": _hex(context.get("span_id"), 16),
        "parent_span_id": _hex(parent.get("span_id"), 16),
        "name": span.get("name"),
        "attributes": attributes(span.get("attributes")),
        "events": [
            {"name": e.get("name", ""), "attributes": attributes(e.get("attributes"))}
            for e in span.get("events") or []
            if isinstance(e, dict)
        ],
        "start": parse_time(span.get("start_time")),
        "end": parse_time(span.get("end_time")),
        "status": status.get("status_code"),
        "status_message": status.get("description") or None,
        "service": mapping(mapping(span.get("resource")).get("attributes")).get("service.name"),
    }


def trace_of(document: dict[str, Any], path: Path) -> Trace:
    spans = document.get("spans")
    if not isinstance(spans, list) or not spans:
        raise ValueError("not an any-agent trace (needs a non-empty `spans` list)")
    ids: set[str] = set()
    normalised: list[dict[str, Any]] = []
    for number, span in enumerate(spans):
        if not isinstance(span, dict):
            raise ValueError(f"span {number} is not an object")
        trace_id, found = _span(span)
        if trace_id:
            ids.add(trace_id)
        normalised.append(found)
    framework = path.stem.removesuffix("_trace").upper() if path.stem.endswith("_trace") else ""
    metadata: dict[str, Any] = {"format": "any-agent"}
    version = next(
        (s["attributes"]["any_agent.version"] for s in normalised if "any_agent.version" in s["attributes"]),
        None,
    )
    if version:
        metadata["any_agent_version"] = version
    final = document.get("final_output")
    if final is not None:
        metadata["final_output"] = final if isinstance(final, str) else json.dumps(final, ensure_ascii=False)
    if len(ids) > 1:
        metadata["trace_ids"] = sorted(ids)
    native = min(ids) if ids else path.stem
    trace = spans_to_trace(str(native), normalised, str(path), metadata)
    trace.framework = f"any-agent/{framework.lower()}" if framework in FRAMEWORKS else "any-agent"
    agents = {s.agent for s in trace.steps if s.kind is StepKind.AGENT and s.agent}
    if len(agents) == 1:  # one run of one agent: spans cut off from it by unrecorded parents are its
        (agent,) = agents
        for step in trace.steps:
            step.agent = step.agent or agent
    return trace


class AnyAgentAdapter:
    name = "any-agent"
    description = "mozilla-ai any-agent AgentTrace JSON ({spans: [OTel spans with gen_ai.*], final_output})"
    suffixes = (".json",)

    def sniff(self, path: Path, head: str) -> bool:
        return (
            first_char(head) == "{"
            and '"spans"' in head
            and '"trace_flags"' in head
            and '"is_remote"' in head
            and '"gen_ai.operation.name"' in head
        )

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        # `loads` keeps the 128-bit integer trace ids exact (orjson alone reads them as floats)
        yield from parse_whole_object(path, lambda document: [trace_of(document, path)])
