"""ATIF trajectories (Harbor's Agent Trajectory Interchange Format, v1.0-1.6): `schema_version`,
`session_id`, `agent`, and `steps[]` with `source` (system/user/agent), `message`,
`reasoning_content`, `tool_calls[]`, `observation.results[]` and `metrics`. Each step is a step;
each observation result is a tool step of its own, so a tool's output is readable next to its
call. A result's `subagent_trajectory_ref` names a sub-agent's trajectory, which is its own
file and trace: the reference is kept on the step and on the trace (`subagents`). ATIF v1.7
embeds sub-agents instead, in `subagent_trajectories` (refs resolve by `trajectory_id`): their
steps join the parent's trace as their own agent, right after the observation that returned
them, with `parent_span_id` pointing at that observation (nested sub-agents nest). Harbor's own
golden trajectories showed two more things: a long run is split into `trajectory.json` and
`trajectory.cont-N.json` with the same `session_id` (the head names the next in
`continued_trajectory_ref`), so a continuation file gets its own id `<session_id>/cont-N`; and
v1.7 adds `trajectory_id`, which then names the trace."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest.base import Rejected, as_int, parse_time, with_id
from tracefail.ingest.content import mapping, readable
from tracefail.ingest.reader import first_char, parse_whole_object
from tracefail.model import Step, StepKind, ToolCall, Trace

_ROLES = {"agent": "assistant", "user": "user", "system": "system"}
_CONTINUATION = re.compile(r"\.(cont-\d+)\.json$")


def _native_id(doc: dict[str, Any], source_file: str) -> str | None:
    """trajectory_id (v1.7) or session_id; a `*.cont-N.json` continuation adds `/cont-N`."""
    base = str(doc.get("trajectory_id") or doc.get("session_id") or "") or None
    part = _CONTINUATION.search(source_file)
    return f"{base}/{part.group(1)}" if base and part else base


def _refs(result: dict[str, Any]) -> list[dict[str, Any]]:
    refs = result.get("subagent_trajectory_ref")
    refs = refs if isinstance(refs, list) else [refs] if isinstance(refs, dict) else []
    return [r for r in refs if isinstance(r, dict)]


def _embedded(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """v1.7 `subagent_trajectories` by the `trajectory_id` their refs resolve against."""
    subs = doc.get("subagent_trajectories") or []
    if not isinstance(subs, list):
        raise ValueError("`subagent_trajectories` is not a list")
    found = {}
    for number, sub in enumerate(subs):
        if not isinstance(sub, dict) or not isinstance(sub.get("steps"), list):
            raise ValueError(f"subagent_trajectories[{number}] is not a trajectory (needs a `steps` list)")
        found[str(sub.get("trajectory_id") or sub.get("session_id") or f"subagent-{number}")] = sub
    return found


def _agent_names(parent: str, embedded: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each embedded sub-agent's name: its `agent.name` when that tells it apart from the parent
    and its siblings, else its trajectory id (Harbor sub-agents often run the parent's agent)."""
    names = {key: str(mapping(sub.get("agent")).get("name") or key) for key, sub in embedded.items()}
    taken = [parent, *names.values()]
    return {key: name if taken.count(name) == 1 else key for key, name in names.items()}


def _add_steps(
    doc: dict[str, Any],
    agent_name: str,
    steps: list[Step],
    subagents: list[dict[str, Any]],
    parent_span: str | None = None,
) -> None:
    """The steps of one trajectory appended to `steps`; an embedded sub-agent's steps follow the
    observation that references it, the unreferenced ones come last, each as its own agent."""
    agent = mapping(doc.get("agent"))
    embedded = _embedded(doc)
    names = _agent_names(agent_name, embedded)
    placed: set[str] = set()
    trajectory = {"trajectory_id": doc["trajectory_id"]} if parent_span and doc.get("trajectory_id") else {}
    for number, item in enumerate(doc["steps"]):
        if not isinstance(item, dict):
            raise ValueError(f"step {number} is not an object")
        source = str(item.get("source") or "agent")
        text, calls = readable(item.get("message"))
        calls += [
            ToolCall(
                id=c.get("tool_call_id"),
                name=str(c.get("function_name") or "?"),
                arguments=args if isinstance(args := c.get("arguments"), str) else json.dumps(args or {}),
            )
            for c in item.get("tool_calls") or []
            if isinstance(c, dict)
        ]
        metrics = mapping(item.get("metrics"))
        when = parse_time(item.get("timestamp"))
        reasoning = item.get("reasoning_content")
        steps.append(
            Step(
                step_idx=len(steps),
                agent=agent_name if source == "agent" else source,
                role=_ROLES.get(source, source),
                kind=StepKind.LLM if source == "agent" else StepKind.MESSAGE,
                content=text,
                tool_calls=calls,
                parent_span_id=parent_span,
                model=item.get("model_name") or (agent.get("model_name") if source == "agent" else None),
                tokens_in=as_int(metrics.get("prompt_tokens")),
                tokens_out=as_int(metrics.get("completion_tokens")),
                start_ts=when,
                metadata={
                    k: v
                    for k, v in {
                        "step_id": item.get("step_id"),
                        "reasoning": reasoning,
                        "cost_usd": metrics.get("cost_usd"),
                        "extra": item.get("extra") or None,  # producers' notes on the step
                        **trajectory,
                    }.items()
                    if v is not None
                },
            )
        )
        observation = mapping(item.get("observation"))
        for result in observation.get("results") or []:
            if not isinstance(result, dict):
                continue
            refs = _refs(result)
            subagents += refs
            inline = [  # by trajectory_id (v1.7), or by session_id as earlier producers embedded them
                k
                for r in refs
                if (k := str(r.get("trajectory_id") or r.get("session_id") or "")) in embedded
                and k not in placed
            ]
            call_names = {c.id: c.name for c in calls}
            span = f"{parent_span or ''}/subagent:{inline[0]}" if inline else None
            steps.append(
                Step(
                    step_idx=len(steps),
                    agent="tool"
                    if not refs
                    else names[inline[0]]
                    if inline
                    else str(refs[0].get("session_id") or refs[0].get("trajectory_id") or "subagent"),
                    role="tool",
                    kind=StepKind.TOOL if not refs else StepKind.AGENT,
                    name=call_names.get(result.get("source_call_id")),
                    content=readable(result.get("content"))[0],
                    tool_call_id=result.get("source_call_id"),
                    span_id=span,
                    parent_span_id=parent_span,
                    start_ts=when,
                    metadata={"subagent_trajectory_ref": refs, **trajectory} if refs else trajectory,
                )
            )
            for key in inline:
                placed.add(key)
                _add_steps(embedded[key], names[key], steps, subagents, f"{parent_span or ''}/subagent:{key}")
    for key, sub in embedded.items():
        if key not in placed:
            _add_steps(sub, names[key], steps, subagents, f"{parent_span or ''}/subagent:{key}")


def trajectory_to_trace(doc: dict[str, Any], source_file: str) -> Trace:
    if not isinstance(doc.get("steps"), list):
        raise ValueError("not an ATIF trajectory (needs a `steps` list)")
    agent = mapping(doc.get("agent"))
    agent_name = str(agent.get("name") or "agent")
    steps: list[Step] = []
    subagents: list[dict[str, Any]] = []
    _add_steps(doc, agent_name, steps, subagents)
    task = next((s.content for s in steps if s.role == "user" and s.content), None)
    final = mapping(doc.get("final_metrics"))
    return with_id(
        Trace(
            trace_id="",
            source="atif",
            native_id=_native_id(doc, source_file),
            framework=agent_name,
            llm=agent.get("model_name"),
            task=task,
            source_file=source_file,
            metadata={
                k: v
                for k, v in {
                    "schema_version": doc.get("schema_version"),
                    "agent_version": agent.get("version"),
                    # tool definitions, agent notes: what the agent was given, for the judge
                    "agent": {k: v for k, v in agent.items() if k not in ("name", "model_name", "version")},
                    "extra": doc.get("extra"),
                    "final_metrics": final,
                    "notes": doc.get("notes"),
                    "subagents": subagents,
                    "embedded_subagents": list(_embedded(doc)),
                    "continued_in": doc.get("continued_trajectory_ref"),
                }.items()
                if v
            },
            steps=steps,
        )
    )


class AtifAdapter:
    name = "atif"
    description = "ATIF trajectory JSON (Harbor, schema_version ATIF-v1.x; steps, tool calls, observations)"
    suffixes = (".json",)

    def sniff(self, path: Path, head: str) -> bool:
        return (
            first_char(head) == "{"
            and '"steps"' in head
            and (
                '"ATIF-v1' in head
                or ('"schema_version"' in head and '"step_id"' in head and '"source"' in head)
            )
        )

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        yield from parse_whole_object(path, lambda doc: [trajectory_to_trace(doc, str(path))])
