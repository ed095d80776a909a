"""Langfuse trace exports: a trace object with its `observations` (API `GET /traces/{id}`, UI export).

Accepted shapes: one trace object, `{"trace": {...}, "observations": [...]}` (the UI/SDK export),
a list of either, or `{"data": [...]}`. Observations become steps ordered by `startTime`;
`parentObservationId` is the parent span (null: child of the trace). A generation's content is
its output made readable (provider envelopes unwrapped); the trace's `scores` are kept, and a
boolean or 0/1 score that names success decides the outcome.

Real exports (Langfuse's own framework-trace fixtures) hold `input`, `output` and `metadata` as
JSON text, not JSON: a question arrives as `"\"What is Langfuse?\""` and a Responses API object
as a string; they are decoded before they are read. A trace without `input` takes its task from
the first user message a generation was sent. Observations that came in over OpenTelemetry keep
the span's attributes in `metadata.attributes`; a Google ADK tool span's result lives only there
(`gcp.vertex.agent.tool_response`), so an observation without output is read from them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest import fidelity
from tracefail.ingest.base import Rejected, as_int, excerpt, first_json, parse_time, reason, text_of, with_id
from tracefail.ingest.content import mapping, readable
from tracefail.ingest.otel import crew_role, crew_task_agents, span_agent, span_kind, tool_call_id
from tracefail.ingest.otel_vendors import normalise
from tracefail.ingest.reader import (
    RawRecord,
    first_char,
    iter_json_array,
    iter_jsonl,
    loads,
    open_text,
    read_whole,
)
from tracefail.model import Outcome, Step, StepKind, ToolCall, Trace

_TYPES = {
    "GENERATION": StepKind.LLM,
    "SPAN": StepKind.CHAIN,
    "EVENT": StepKind.EVENT,
    "AGENT": StepKind.AGENT,
    "TOOL": StepKind.TOOL,
    "CHAIN": StepKind.CHAIN,
    "RETRIEVER": StepKind.RETRIEVER,
    "EVALUATOR": StepKind.CHAIN,
    "GUARDRAIL": StepKind.CHAIN,
    "EMBEDDING": StepKind.OTHER,
}


_OUTCOME_WORDS = ("success", "correct", "pass", "resolved", "solved", "reward", "accuracy", "task_completion")


def _outcome(scores: list[Any]) -> Outcome:
    """Success/failure from the first boolean or 0/1 score whose name says success."""
    for score in scores:
        if not isinstance(score, dict):
            continue
        name = str(score.get("name") or "").lower()
        value = score.get("value", score.get("stringValue"))
        if not any(word in name for word in _OUTCOME_WORDS) and score.get("dataType") != "BOOLEAN":
            continue
        if isinstance(value, str):
            value = {"true": 1, "false": 0, "pass": 1, "fail": 0}.get(value.lower(), value)
        if value in (0, 1, True, False):
            return Outcome.SUCCESS if value else Outcome.FAILURE
    return Outcome.UNKNOWN


def unwrap(item: dict[str, Any]) -> dict[str, Any]:
    """`{"trace": {...}, "observations": [...], "scores": [...]}` -> one trace object."""
    if isinstance(item.get("trace"), dict) and "id" not in item:
        merged = {**item["trace"], **{k: v for k, v in item.items() if k != "trace"}}
        if not isinstance(merged.get("observations"), list):
            merged["observations"] = item["trace"].get("observations")
        return merged
    return item


def decoded(value: Any) -> Any:
    """A field stored as JSON text (an object, array or quoted string), decoded, also when it was
    encoded twice (as some SDKs send it); anything else unchanged."""
    for _ in range(3):
        if not (isinstance(value, str) and value.strip()[:1] in ("{", "[", '"')):
            break
        try:
            value = loads(value)
        except ValueError:
            break
    return value


def _first_user_text(value: Any) -> str | None:
    """The task in a trace or generation input: a prompt, or the first user (human) message."""
    if isinstance(value, dict) and isinstance(value.get("prompt"), str):
        return value["prompt"]
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        value = value["messages"]
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        users = [m for m in value if (m.get("role") or m.get("type")) in ("user", "human")]
        return readable(users[0].get("content", users[0].get("parts")))[0] or None if users else None
    return readable(value)[0] or None


def _usage(obs: dict[str, Any]) -> tuple[int | None, int | None]:
    usage = obs.get("usageDetails") or obs.get("usage") or {}
    if not isinstance(usage, dict):
        return None, None
    return (
        as_int(usage.get("input", usage.get("promptTokens", usage.get("input_tokens")))),
        as_int(usage.get("output", usage.get("completionTokens", usage.get("output_tokens")))),
    )


def record_to_trace(record: dict[str, Any], source_file: str) -> Trace:
    record = unwrap(record)
    observations = record.get("observations")
    if not isinstance(observations, list) or not record.get("id"):
        raise ValueError("not a Langfuse trace (needs `id` and an `observations` list)")
    if not all(isinstance(o, dict) for o in observations):
        raise ValueError("an observation is not an object")
    ordered = sorted(
        enumerate(observations),
        key=lambda p: (
            parse_time(p[1].get("startTime")) is None,
            parse_time(p[1].get("startTime")) or 0,
            p[0],
        ),
    )
    steps = []
    metas = [mapping(decoded(raw.get("metadata"))) for _, raw in ordered]
    span_attrs = [normalise(mapping(meta.get("attributes"))) for meta in metas]  # when it came over OTel
    crew_roles = crew_task_agents(span_attrs)
    for idx, ((_, raw), meta, attrs) in enumerate(zip(ordered, metas, span_attrs, strict=True)):
        obs = {**raw, **{k: decoded(raw.get(k)) for k in ("input", "output")}, "metadata": meta}
        kind = _TYPES.get(str(obs.get("type") or "").upper(), StepKind.OTHER)
        content, calls = readable(obs.get("output"))
        # Langfuse files an OTel span it cannot place as a plain SPAN; its attributes still say
        # what it did (an OpenInference TOOL or AGENT span, a GenAI `execute_tool`)
        said = span_kind(attrs) if str(obs.get("type") or "SPAN").upper() == "SPAN" and attrs else None
        if said is not None and said not in (StepKind.CHAIN, StepKind.OTHER):
            kind = said
        if not content and not calls:  # an ADK tool keeps its result in span attributes only
            content, calls = readable(
                attrs.get("gen_ai.tool.call.result", attrs.get("gen_ai.output.messages"))
            )
        tokens_in, tokens_out = _usage(obs)
        if kind is StepKind.TOOL and not calls:
            args = obs.get("input")  # else where the span's attributes keep them, as `otel` reads
            if args in (None, "", {}):
                args = attrs.get("gen_ai.tool.call.arguments", attrs.get("tool.parameters", ""))
            calls = [
                ToolCall(
                    id=tool_call_id(attrs),
                    name=str(
                        attrs.get("gen_ai.tool.name") or attrs.get("tool.name") or obs.get("name") or "?"
                    ),
                    arguments=args if isinstance(args, str) else text_of(args),
                )
            ]
        level = str(obs.get("level") or "").upper()
        if level == "ERROR" and obs.get("statusMessage") and obs["statusMessage"] not in content:
            content = f"{content}\nerror: {obs['statusMessage']}".strip()
        steps.append(
            Step(
                step_idx=idx,
                agent=meta.get("agent")
                or meta.get("agent_name")
                or span_agent(attrs)
                or crew_role(attrs, crew_roles)
                or (obs.get("name") if str(obs.get("type") or "").upper() == "AGENT" else None),
                role={StepKind.LLM: "assistant", StepKind.TOOL: "tool"}.get(kind),
                kind=kind,
                name=obs.get("name"),
                content=content,
                tool_calls=calls,
                span_id=obs.get("id"),
                parent_span_id=obs.get("parentObservationId"),
                model=obs.get("model"),
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                start_ts=parse_time(obs.get("startTime")),
                end_ts=parse_time(obs.get("endTime")),
                status=level.lower() if level in ("ERROR", "WARNING") else ("ok" if level else None),
                metadata={
                    k: v
                    for k, v in {
                        "level": obs.get("level"),
                        "statusMessage": obs.get("statusMessage"),
                        "metadata": meta,
                    }.items()
                    if v
                },
            )
        )
    stored = fidelity.Stored.of_steps(steps)
    for step, (_, raw) in zip(steps, ordered, strict=True):  # what no field took: the input, ...
        unread = stored.unread(
            {k: v for k, v in raw.items() if k not in ("output", "metadata", "statusMessage")}
        )
        if unread:
            step.metadata["observation"] = unread
    by_id = {s.span_id: s for s in steps}
    for step in steps:  # inherit the agent of the nearest AGENT observation above
        parent, hops = by_id.get(step.parent_span_id), 0
        while step.agent is None and parent is not None and hops < len(steps):
            step.agent, parent, hops = parent.agent, by_id.get(parent.parent_span_id), hops + 1
    task = _first_user_text(decoded(record.get("input")))
    for _, obs in ordered if task is None else ():
        if str(obs.get("type") or "").upper() == "GENERATION" and (
            task := _first_user_text(decoded(obs.get("input")))
        ):
            break
    record = {**record, **{k: decoded(record.get(k)) for k in ("output", "metadata")}}
    stored.add_values([task])
    unread = stored.unread(
        {
            k: v
            for k, v in record.items()
            if k
            not in ("observations", "name", "sessionId", "userId", "tags", "metadata", "output", "scores")
        }
    )
    scores: list[Any] = record["scores"] if isinstance(record.get("scores"), list) else []
    models = [s.model for s in steps if s.model]
    return with_id(
        Trace(
            trace_id="",
            source="langfuse",
            native_id=str(record["id"]),
            framework=None,
            llm=models[0] if models else None,
            task=task,
            outcome=_outcome(scores),
            source_file=source_file,
            metadata={
                k: record[k]
                for k in ("name", "sessionId", "userId", "tags", "metadata", "output", "scores")
                if record.get(k)
            }
            | ({"trace": unread} if unread else {}),
            steps=steps,
        )
    )


class LangfuseAdapter:
    name = "langfuse"
    description = "Langfuse trace export (trace with `observations`; one, a list, {data: [...]}, or JSONL)"
    suffixes = (".json", ".jsonl", ".ndjson")

    def sniff(self, path: Path, head: str) -> bool:
        if path.suffix != ".json":
            first = first_json(head)
            return isinstance(first, dict) and "observations" in {*first, *mapping(first.get("trace"))}
        return first_char(head) in "{[" and '"observations"' in head and '"resourceSpans"' not in head

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        if path.suffix != ".json":
            records: Iterator[RawRecord] = iter_jsonl(path)
        elif first_char(_head(path)) == "[":
            records = iter_json_array(path)
        else:
            records = iter([RawRecord("whole file", read_whole(path))])
        for raw in records:
            try:
                value = raw.json()
                items = value.get("data") if isinstance(value, dict) and "data" in value else [value]
                if not isinstance(items, list):
                    raise ValueError("`data` is not a list of traces")
                for number, item in enumerate(items):
                    if not isinstance(item, dict):
                        raise ValueError(f"trace {number} is not an object")
                    yield record_to_trace(item, str(path))
            except (ValueError, TypeError) as exc:
                yield Rejected(raw.locator, reason(exc), excerpt(raw.text))


def _head(path: Path) -> str:
    with open_text(path) as fh:
        return fh.read(4096)
