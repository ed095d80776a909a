"""A live OTLP trace that grows: new spans are mapped and placed without rebuilding the rest.

`serve` gets a long trace's spans a few at a time. Rebuilding the trace from all its spans on
every write costs O(spans so far) per write; a `GrowingTrace` keeps what the last build knew
(each step's place, its own agent, the children of each span id, the text kept in each step's
metadata, each step's part of the content hash, each span's JSON), so a write maps only the new
spans and returns only the steps whose fields change: the new ones, the stored steps below a new
span that inherit its agent, and, where a new span starts before stored steps, the steps after
it (their index moves). The result is the trace a full build gives, field for field and hash for
hash; where that cannot be had cheaply (OTLP log records, a new task replacing a stored one,
new text that makes text already kept in some step's metadata redundant, a parent cycle) `grow`
raises `Rebuild` and the caller builds the whole trace again.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from typing import Any

from tracefail.ingest import fidelity
from tracefail.ingest.otel import (
    _otlp_span,
    crew_task_agents,
    keep_unread,
    map_spans,
    otel_trace,
    session_of,
    span_step,
)
from tracefail.ingest.otlp_live import MergedSpans, SpanGroup
from tracefail.model import Step, Trace, raw_digest_end, raw_digest_head, raw_digest_more, step_json

# Where a span goes in its trace, as `map_spans` orders them: by start time (none: last), then
# in the order the trace's OTLP document lists them (its service's place, then arrival).
OrderKey = tuple[bool, Any, int, int]
# A span as the trace's `trace_spans` rows keep it: (arrival number, resource JSON, span JSON).
SpanRow = tuple[int, str, str]
_RAW_TAIL = "]}]}]}"  # what closes the document after its last span


class Rebuild(Exception):
    """These spans cannot be added in place; build the whole trace again."""


@dataclass
class Grown:
    """What one write of a grown trace stores: its row, the steps that are new or changed, and
    the new spans (appended to its `trace_spans`; its `raw` is those rows put together)."""

    header: Trace  # the trace row's fields, without steps; `raw` None (the spans hold it)
    digest: str
    n_steps: int
    steps: list[Step]  # new steps and stored steps whose fields (or index) changed
    stored_steps: int  # steps the trace had before: a written step at an index below replaces one
    spans: list[SpanRow]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _resource(service: str | None) -> str:
    attrs = [] if service is None else [{"key": "service.name", "value": {"stringValue": service}}]
    return _dumps({"attributes": attrs})


def _key(span: dict[str, Any], service_place: int, arrival: int) -> OrderKey:
    return (span["start"] is None, span["start"] or 0, service_place, arrival)


def _task_ids(spans: list[dict[str, Any]]) -> set[str]:
    """The CrewAI task ids these spans name (a task span's agent is its task's role)."""
    named = (span["attributes"].get("task_id") for span in spans)
    return {str(task) for task in named if task is not None}


def _kept_lines(step: Step) -> set[str]:
    kept = [step.metadata.get("attributes") or {}, step.metadata.get("events") or []]
    return fidelity.text_lines(kept) if any(kept) else set()


def _text_of(lines: list[set[str]]) -> fidelity.Stored:
    stored = fidelity.Stored()
    stored.add_values([line for group in lines for line in group])
    return stored


@dataclass
class GrowingTrace:
    native_id: str
    merged: MergedSpans  # no log records (a trace with them is rebuilt on every write)
    steps: list[Step]
    own_agents: dict[str | None, str | None]
    stored: fidelity.Stored
    task: str | None
    task_key: OrderKey | None = None  # the key of the step that gave the task
    llm: str | None = None
    llm_key: OrderKey | None = None
    session: str | None = None  # the first session id a span names (metadata, outside the hash)
    digest: str = ""
    keys: list[OrderKey] = field(default_factory=list)  # of the steps, in step order
    arrivals: int = 0
    span_json: dict[str, str] = field(default_factory=dict)
    service_of: dict[str, str | None] = field(default_factory=dict)
    index: dict[str | None, int] = field(default_factory=dict)
    children: dict[str | None, list[str]] = field(default_factory=dict)
    kept: dict[str | None, set[str]] = field(default_factory=dict)  # span id -> lines it keeps (if any)
    step_bytes: list[bytes] = field(default_factory=list)
    # the steps' part of the content hash, b", "-joined, kept up to date from the first step
    # that changes (a join of all of them on every write is O(steps so far))
    steps_blob: bytearray = field(default_factory=bytearray)
    step_starts: list[int] = field(default_factory=list)  # where each step's part begins in it
    # the content hash fed with `raw` up to its last span, so a span appended to the last
    # service's spans costs only its own bytes of hashing (`raw_digest_head`)
    raw_head: Any = None
    last_service: str | None = None
    crew_roles: dict[str, str] = field(default_factory=dict)  # CrewAI task id -> its agent's role
    crew_tasks: set[str] = field(default_factory=set)  # the CrewAI task ids the stored spans name

    @classmethod
    def build(
        cls, native_id: str, merged: MergedSpans, source_file: str, fmt: str
    ) -> tuple[Trace, GrowingTrace]:
        """The whole trace built from `merged` (which holds no log records), and its state."""
        spans = [
            _otlp_span(span, service) for service, group in merged.services.items() for span in group.values()
        ]
        if not spans:
            raise ValueError("the trace has no spans")
        mapped = map_spans(spans)
        state = cls(native_id, merged, mapped.steps, mapped.own_agents, mapped.stored, mapped.task)
        state.crew_roles = crew_task_agents(span["attributes"] for span in spans)
        state.crew_tasks = _task_ids(spans)
        key_of: dict[str, OrderKey] = {}
        for place, (service, group) in enumerate(merged.services.items()):
            for span_id, span in group.items():
                state.span_json[span_id] = _dumps(span)
                state.service_of[span_id] = service
                state.arrivals += 1
                key_of[span_id] = _key(spans[state.arrivals - 1], place, state.arrivals)
        for idx, step in enumerate(state.steps):
            state.index[step.span_id] = idx
            state.keys.append(key_of[str(step.span_id)])
            state.children.setdefault(step.parent_span_id, []).append(str(step.span_id))
            state._keep_lines(step)
        state.step_bytes = [step_json(step) for step in state.steps]
        state._restep(0)
        state.session = session_of(spans)
        trace = otel_trace(native_id, state.steps, state.task, source_file, state.metadata(fmt))
        state.llm = trace.llm
        state.llm_key = next((k for s, k in zip(state.steps, state.keys, strict=True) if s.model), None)
        state.task_key = None if mapped.task_span is None else key_of[mapped.task_span]
        trace.raw = state.raw()
        state._rehash()
        return trace, state

    def metadata(self, fmt: str) -> dict[str, Any]:
        """The trace row's metadata, as `spans_to_trace` writes it for the same spans."""
        return {"format": fmt} | ({"session_id": self.session} if self.session else {})

    def rows(self) -> list[SpanRow]:
        """Every span as a `trace_spans` row, numbered in document order: what a trace written
        whole (just built) stores; later spans are numbered on from there as they arrive."""
        return [
            (number, _resource(service), self.span_json[span_id])
            for number, (service, span_id) in enumerate(
                (service, span_id) for service, group in self.merged.services.items() for span_id in group
            )
        ]

    def _rehash(self) -> None:
        """The content hash from the whole document (after a build, or a span added to a
        service other than the last one)."""
        raw = self.raw()
        self.raw_head = raw_digest_head(raw[: -len(_RAW_TAIL)])
        self.last_service = next(reversed(self.merged.services))
        self.digest = raw_digest_end(self.raw_head, _RAW_TAIL, self.steps_blob, self.task)

    def _restep(self, first: int) -> None:
        """`steps_blob` again from step `first` on (the steps before it are as they were)."""
        if first < len(self.step_starts):  # (a step is only ever added after the last one kept)
            del self.steps_blob[self.step_starts[first] - 2 if first else 0 :]
        del self.step_starts[first:]
        for idx in range(first, len(self.step_bytes)):
            if idx:
                self.steps_blob += b", "
            self.step_starts.append(len(self.steps_blob))
            self.steps_blob += self.step_bytes[idx]

    def _keep_lines(self, step: Step) -> None:
        lines = _kept_lines(step)
        if lines:  # most steps keep none: the check of every write walks only those that do
            self.kept[step.span_id] = lines

    def raw(self) -> str:
        """The trace's OTLP/JSON document, as `MergedSpans.trace` writes it, from each span's JSON."""
        resources = (
            '{"resource":'
            + _resource(service)
            + ',"scopeSpans":[{"spans":['
            + ",".join(self.span_json[span_id] for span_id in group)
            + "]}]}"
            for service, group in self.merged.services.items()
        )
        return '{"resourceSpans":[' + ",".join(resources) + "]}"

    def grow(
        self, groups: list[SpanGroup], logs: list[dict[str, Any]], source_file: str, fmt: str
    ) -> tuple[Grown | None, list[str]]:
        """Add these spans in place: (what to write, None when nothing is new; conflicts)."""
        if logs:
            raise Rebuild("log records")
        fresh: list[tuple[str | None, dict[str, Any]]] = []
        fresh_ids: set[str] = set()
        conflicts: list[str] = []
        for service, spans in groups:
            for span in spans:
                span_id = str(span["spanId"])
                if span_id in self.service_of:
                    first_service = self.service_of[span_id]
                    first = self.merged.services[first_service][span_id]
                    if (first_service, first) != (service, span) and (
                        _otlp_span(first, first_service) != _otlp_span(span, service)
                    ):
                        conflicts.append(
                            f"span {span_id} arrived again with different content; the first copy is kept"
                        )
                elif span_id not in fresh_ids:
                    fresh_ids.add(span_id)
                    fresh.append((service, span))
        if not fresh:
            return None, conflicts
        return self._add(fresh, source_file, fmt), conflicts

    def _add(self, fresh: list[tuple[str | None, dict[str, Any]]], source_file: str, fmt: str) -> Grown:
        place = {service: i for i, service in enumerate(self.merged.services)}
        decoded_spans = [_otlp_span(span, service) for service, span in fresh]
        roles = crew_task_agents(decoded["attributes"] for decoded in decoded_spans)
        if any(task in self.crew_tasks and self.crew_roles.get(task) != role for task, role in roles.items()):
            raise Rebuild("a CrewAI crew span names the agent of a stored task span")
        self.crew_roles |= roles
        self.crew_tasks |= _task_ids(decoded_spans)
        items = []
        for (service, span), decoded in zip(fresh, decoded_spans, strict=True):
            place.setdefault(service, len(place))
            self.arrivals += 1
            step, seen_task = span_step(decoded, self.crew_roles)
            items.append(
                (_key(decoded, place[service], self.arrivals), step, seen_task, decoded, service, span)
            )
        items.sort(key=lambda item: item[0])
        first = bisect.bisect_left(self.keys, items[0][0])  # steps from here on move or are new
        n_old = len(self.steps)
        if self.task == "" or any(item[2] == "" for item in items):
            raise Rebuild("an empty task text (which of them the trace says depends on all its spans)")
        task, task_key = self.task, self.task_key
        for key, _, seen_task, _, _, _ in items:
            if isinstance(seen_task, str) and seen_task and (task_key is None or key < task_key):
                task, task_key = seen_task, key
                break
        if self.task is not None and task != self.task:
            raise Rebuild("a new span gives the trace another task")
        llm, llm_key = self.llm, self.llm_key
        for key, step, _, _, _, _ in items:
            if step.model and (llm_key is None or key < llm_key):
                llm, llm_key = step.model, key
                break
        # the steps from `first` on, old and new, in order
        tail = sorted(
            [(key, step, None) for key, step in zip(self.keys[first:], self.steps[first:], strict=True)]
            + [(item[0], item[1], item) for item in items],
            key=lambda entry: entry[0],
        )
        new_steps = [step for _, step, item in tail if item is not None]
        moved = [step for _, step, item in tail if item is None]
        inserted = [item for item in items if item[0] < self.keys[-1]] if first < n_old else []
        self.steps[first:] = [step for _, step, _ in tail]
        self.keys[first:] = [key for key, _, _ in tail]
        for idx in range(first, len(self.steps)):
            self.steps[idx].step_idx = idx
            self.index[self.steps[idx].span_id] = idx
        for step in new_steps:
            self.own_agents[step.span_id] = step.agent
            self.children.setdefault(step.parent_span_id, []).append(str(step.span_id))
        inherited = self._inherit(new_steps, n_old)
        # Kept text (`keep_unread`) is decided in step order against all the trace's text: the
        # stored steps' decisions hold unless the new text covers a line one of them kept, or a
        # new step placed before them keeps a line first.
        added = fidelity.Stored()
        added.add_values([task] if task != self.task else [])
        added.add_values([step.agent for step in inherited])  # their only field that changed
        for step in new_steps:
            added.add_values(fidelity.step_values(step))
        if any(added.has(line) for lines in self.kept.values() for line in lines):
            raise Rebuild("a new span holds text that a stored step kept in its metadata")
        later = _text_of([self.kept.get(step.span_id, set()) for step in moved])
        for _, _, _, decoded, _, _ in inserted:
            values = [decoded["attributes"], *(e["attributes"] for e in decoded["events"])]
            if any(
                later.has(line)
                for line in fidelity.text_lines([*values, *(e["name"] for e in decoded["events"])])
            ):
                raise Rebuild("a span placed before stored steps repeats text they kept")
        self.stored.add_values([step.agent for step in inherited])
        for step in new_steps:
            self.stored.add_values(fidelity.step_values(step))
        if task != self.task and task:
            self.stored.add_values([task])
        keep_unread([item[1] for item in items], [item[3] for item in items], self.stored)
        for step in new_steps:
            self._keep_lines(step)
        if moved and inserted:
            first_kept = _text_of([self.kept.get(item[1].span_id, set()) for item in inserted])
            if any(first_kept.has(line) for step in moved for line in self.kept.get(step.span_id, ())):
                raise Rebuild("a span placed before stored steps keeps text they kept")
        rows: list[SpanRow] = []
        rehash = False
        number = self.arrivals - len(fresh)
        for service, span in fresh:  # the document lists them as they arrived
            span_id = str(span["spanId"])
            text = _dumps(span)
            if service == self.last_service:
                raw_digest_more(self.raw_head, "," + text)
            elif service not in self.merged.services:  # a new service closes the last one's spans
                raw_digest_more(
                    self.raw_head,
                    _RAW_TAIL[:4] + ',{"resource":' + _resource(service) + ',"scopeSpans":[{"spans":[' + text,
                )
                self.last_service = service
            else:
                rehash = True  # this span goes inside the document, not at its end
            self.merged.services.setdefault(service, {})[span_id] = span
            self.span_json[span_id] = text
            self.service_of[span_id] = service
            rows.append((number, _resource(service), text))
            number += 1
        self.task, self.task_key, self.llm, self.llm_key = task, task_key, llm, llm_key
        for step in inherited:
            if step.step_idx < first:
                self.step_bytes[step.step_idx] = step_json(step)
        self.step_bytes[first:] = [step_json(step) for step in self.steps[first:]]
        self._restep(min([first, *(step.step_idx for step in inherited)]))
        if self.session is None:  # as a rebuild finds it: the first span that names one
            self.session = session_of([item[3] for item in items])
        header = otel_trace(self.native_id, [], task, source_file, self.metadata(fmt))
        header.llm = llm
        if rehash:
            self._rehash()
        else:
            self.digest = raw_digest_end(self.raw_head, _RAW_TAIL, self.steps_blob, task)
        written = [step for step in inherited if step.step_idx < first] + self.steps[first:]
        return Grown(header, self.digest, len(self.steps), written, n_old, rows)

    def _inherit(self, new_steps: list[Step], n_old: int) -> list[Step]:
        """Give the new steps and the stored steps below them that name no agent the agent
        above them (as `inherit_agents` does for a whole trace); the stored steps whose agent
        changed come back."""
        new = {step.span_id for step in new_steps}
        dirty: set[str | None] = set(new)
        queue = list(dirty)
        while queue:  # stored steps below a new span inherit through it
            for child in self.children.get(queue.pop(), []):
                if child not in dirty and self.own_agents[child] is None:
                    dirty.add(child)
                    queue.append(child)
        before = {span_id: self.steps[self.index[span_id]].agent for span_id in dirty}
        resolved: dict[str | None, str | None] = {}
        for start in dirty:
            chain: list[str | None] = []
            node: str | None = start
            agent: str | None = None
            while True:
                if node in resolved:
                    agent = resolved[node]
                    break
                if node not in self.index:
                    break  # no such span (yet): no agent
                if self.own_agents[node] is not None or node not in dirty:
                    agent = self.steps[self.index[node]].agent
                    break
                if node in chain:
                    raise Rebuild("a cycle of parent span ids")
                chain.append(node)
                node = self.steps[self.index[node]].parent_span_id
            for waiting in chain:
                resolved[waiting] = agent
        for span_id, agent in resolved.items():
            self.steps[self.index[span_id]].agent = agent
        changed = (
            span_id for span_id in dirty - new if resolved.get(span_id, before[span_id]) != before[span_id]
        )
        return sorted(
            (self.steps[self.index[span_id]] for span_id in changed), key=lambda step: step.step_idx
        )
