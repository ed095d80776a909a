"""Pydantic v2 types shared by every layer: the one vocabulary for traces, labels and verdicts.

Everything that crosses a layer boundary (ingest -> store, judge -> store, store -> TUI) is one
of these types, so adapters and backends can be checked in isolation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from json.encoder import encode_basestring as _quote  # the C string encoder json.dumps uses
from operator import itemgetter
from typing import Any, cast

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, field_validator

# Step features (names as features/extract.py writes them) that views show first: token
# uncertainty, attention flow back to earlier steps, transport capacity, confidence.
HEADLINE_FEATURES = (
    "tok.surprisal_mean",
    "tok.entropy_mean",
    "attn.lookback_ratio",
    "attn.phi_prefix",
    "tok.maxprob_mean",
)


class StepKind(StrEnum):
    """What a step is. Message-level logs use MESSAGE; span trees use the span kind."""

    MESSAGE = "message"
    LLM = "llm"
    TOOL = "tool"
    AGENT = "agent"
    CHAIN = "chain"
    RETRIEVER = "retriever"
    EVENT = "event"
    OTHER = "other"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


class ToolCall(BaseModel):
    """A tool/function call requested inside a step (OpenAI style)."""

    model_config = ConfigDict(frozen=True)

    id: str | None = None
    name: str
    arguments: str = ""  # JSON text as the source gave it; never re-serialized


class Step(BaseModel):
    """One message or span of a trace. `step_idx` is flat and 0-based in trace order."""

    step_idx: int = Field(ge=0)
    agent: str | None = None  # who spoke / acted (speaker), never the chat-relative role
    recipient: str | None = None  # hand-off target when the source says it (Magentic-One "->")
    role: str | None = None  # system/user/assistant/tool/... as the source gives it
    kind: StepKind = StepKind.MESSAGE
    name: str | None = None  # span name, thought/action marker, ...
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    start_ts: datetime | None = None
    end_ts: datetime | None = None
    status: str | None = None  # ok / error / the source's status text
    metadata: dict[str, Any] = Field(default_factory=dict)

    def full_text(self, max_arguments: int = 2000) -> str:
        """Everything a reader of the step needs, compactly: a tool result's call id, the content,
        each tool call with its arguments (capped), a non-ok status and the error text. A
        tool-call step often has empty content, so judges and features read this, not `content`."""
        lines = []
        if self.tool_call_id:
            lines.append(
                f"[tool result for call {self.tool_call_id}{f' ({self.name})' if self.name else ''}]"
            )
        elif self.kind == StepKind.TOOL and self.name:
            lines.append(f"[tool {self.name}]")
        if self.content:
            lines.append(self.content)
        for call in self.tool_calls:
            args = (
                call.arguments
                if len(call.arguments) <= max_arguments
                else call.arguments[:max_arguments] + "…"
            )
            lines.append(f"[tool call {call.name}({args}){f' id={call.id}' if call.id else ''}]")
        if self.status and self.status.lower() not in ("ok", "success", "completed", "unset"):
            lines.append(f"[status: {self.status}]")
        error = self.metadata.get("error")
        if error:
            lines.append(f"[error: {error if isinstance(error, str) else json.dumps(error, default=str)}]")
        return "\n".join(lines)


_STEP_DEFAULTS: dict[str, Any] = {
    name: info.get_default(call_default_factory=True) for name, info in Step.model_fields.items()
}
_SPLIT_FIELDS = frozenset(("step_idx", "content", "agent", "recipient", "role", "name", "start_ts"))
_OTHER_DEFAULTS = {k: v for k, v in _STEP_DEFAULTS.items() if k not in _SPLIT_FIELDS}


@dataclass(slots=True)
class StepColumns:
    """Message steps as columns, as a log splitter cuts them (every other field of such a step
    is its default). A 50 MB MAST file splits into 124k steps: building a `Step` for each, then
    reading each back field by field into rows and hash text, was most of an ingest's Python
    time, so the ingest keeps the columns and only callers that need objects build them."""

    content: list[str] = field(default_factory=list)
    agent: list[str | None] = field(default_factory=list)
    recipient: list[str | None] = field(default_factory=list)
    role: list[str | None] = field(default_factory=list)
    name: list[str | None] = field(default_factory=list)
    start_ts: list[datetime | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.content)

    @classmethod
    def of_steps(cls, steps: list[Step]) -> StepColumns:
        """The columns of message steps that set no other field (checked: a step that does
        would lose it here)."""
        columns = cls()
        for i, step in enumerate(steps):
            values = vars(step)
            if step.step_idx != i or any(values[k] != v for k, v in _OTHER_DEFAULTS.items()):
                raise ValueError(f"step {i} is not a plain message step; keep it as a Step")
            columns.append(step.content, step.agent, step.recipient, step.role, step.name, step.start_ts)
        return columns

    def append(
        self,
        content: str,
        agent: str | None = None,
        recipient: str | None = None,
        role: str | None = None,
        name: str | None = None,
        start_ts: datetime | None = None,
    ) -> None:
        self.content.append(content)
        self.agent.append(agent)
        self.recipient.append(recipient)
        self.role.append(role)
        self.name.append(name)
        self.start_ts.append(start_ts)

    def steps(self) -> list[Step]:
        """The steps as objects (for callers that read or change steps one by one), built
        without validation: the columns hold values of the fields' types (mypy checks the
        splitters), and `model_construct` is slower still (it inspects every default factory
        per call). Copying the defaults and assigning by key is the cheapest way to a full
        `__dict__` in field order."""
        steps = []
        _set = object.__setattr__  # pydantic's own slots: what validation would have set
        rows = zip(self.content, self.agent, self.recipient, self.role, self.name, self.start_ts, strict=True)
        for i, (content, agent, recipient, role, name, start) in enumerate(rows):
            values = _STEP_DEFAULTS.copy()
            values["step_idx"] = i
            values["agent"] = agent
            values["recipient"] = recipient
            values["role"] = role
            values["name"] = name
            values["content"] = content
            values["tool_calls"] = []
            values["start_ts"] = start
            values["metadata"] = {}
            step = object.__new__(Step)
            _set(step, "__dict__", values)
            _set(step, "__pydantic_fields_set__", set(_SPLIT_FIELDS))
            _set(step, "__pydantic_extra__", None)
            _set(step, "__pydantic_private__", None)
            steps.append(step)
        return steps


class SourceKind(StrEnum):
    """What produced a label or attribution: the part of its source name before the colon
    (`human:<user>`, `dataset:<name>`, `llm-judge:<config hash>`, `ranker:<config hash>`,
    `heuristic:<name>`). The order is the trust order: the first kind with a verdict decides."""

    HUMAN = "human"
    DATASET = "dataset"
    LLM_JUDGE = "llm-judge"
    RANKER = "ranker"
    HEURISTIC = "heuristic"


def source_kind(source: str) -> str:
    return source.split(":", 1)[0]


class Label(BaseModel):
    """One failure-mode judgement about a trace from one source (human, judge, dataset, heuristic)."""

    trace_id: str
    taxonomy_id: str
    taxonomy_version: str
    mode_id: str
    present: bool | None  # None: the source gave no usable answer for this mode (e.g. NaN)
    probability: float | None = Field(default=None, ge=0.0, le=1.0)
    raw_probability: float | None = Field(default=None, ge=0.0, le=1.0)  # before calibration
    evidence_steps: list[int] = Field(default_factory=list)
    agent: str | None = None
    rationale: str | None = None
    source: str  # "<kind>:<name>", see SourceKind
    run_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Attribution(BaseModel):
    """Where a failure began: the responsible agent and the 0-based step (Who&When style)."""

    trace_id: str
    agent: str | None = None
    step_idx: int | None = Field(default=None, ge=0)
    reason: str | None = None
    probability: float | None = Field(default=None, ge=0.0, le=1.0)
    source: str
    run_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


# content_hash() writes the JSON text json.dumps(sort_keys=True, ensure_ascii=False) gives for
# {"task", "steps" (every field but metadata), "raw"} straight from the field values: the
# pydantic dump plus json.dumps of that dict cost more than the rest of storing a trace. Every
# stored corpus dedupes re-ingests by this hash, so the bytes must never change
# (tests/test_model_hash.py pins them).
_DATETIME = TypeAdapter(datetime)


def _text(value: str | None) -> bytes:
    """A string as json.dumps(ensure_ascii=False) writes it, UTF-8 encoded. orjson's escaping is
    the same and 4x faster; it refuses lone surrogates, which json passes through."""
    if value is None:
        return b"null"
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _quote(value).encode("utf-8", "surrogatepass")


def _number(value: int | None) -> bytes:
    return b"null" if value is None else int.__repr__(value).encode()


def _time(value: datetime | None) -> bytes:
    if value is None:
        return b"null"
    # pydantic writes an aware time's offset its own way ("Z"); naive ones are isoformat()
    return _text(value.isoformat() if value.tzinfo is None else _DATETIME.dump_python(value, mode="json"))


def _call_json(call: ToolCall) -> bytes:
    arguments, call_id, name = _text(call.arguments), _text(call.id), _text(call.name)
    return b'{"arguments": %b, "id": %b, "name": %b}' % (arguments, call_id, name)


# Every field of a step, read in one pass (`step_values`): the content hash and the stored rows
# both read these tuples, so each step's attributes are fetched once (walking 124k steps once
# per column cost 3x as much: each walk misses the cache on every step). The first KEYED fields
# repeat from step to step (a log's few agents and names, a span tree's models and statuses):
# each combination is encoded once into a template; encoding every field of every step was 90%
# of content_hash's time on a MAST log.
STEP_FIELDS = (
    "agent", "kind", "model", "name", "recipient", "role", "status",
    "content", "end_ts", "parent_span_id", "span_id", "start_ts", "step_idx", "tokens_in", "tokens_out",
    "tool_call_id", "tool_calls", "metadata",
)  # fmt: skip
_KEYED = 7
_STEP_VALUES = itemgetter(*STEP_FIELDS)


def step_values(steps: list[Step]) -> list[tuple[Any, ...]]:
    """Each step's field values in STEP_FIELDS order (read from `__dict__`, not attributes)."""
    return list(map(_STEP_VALUES, map(vars, steps)))


_STEP_JSON = (
    b'{"agent": %b, "content": %%b, "end_ts": %%b, "kind": %b, "model": %b, "name": %b, '
    b'"parent_span_id": %%b, "recipient": %b, "role": %b, "span_id": %%b, "start_ts": %%b, '
    b'"status": %b, "step_idx": %%d, "tokens_in": %%b, "tokens_out": %%b, "tool_call_id": %%b, '
    b'"tool_calls": [%%b]}'
)
# Shared by all traces: a corpus has few combinations (30 in the 50 MB MAST array, whose traces
# have 7,163 between them); the cap bounds what an odd corpus can pile up.
_TEMPLATES: dict[tuple[str | None, ...], bytes] = {}
_MAX_TEMPLATES = 4096


def _template(
    templates: dict[tuple[str | None, ...], bytes], key: tuple[str | None, ...], base: bytes
) -> bytes:
    """`base` with the keyed fields written in and %-slots left for the rest, made once per key."""
    try:
        return templates[key]
    except KeyError:
        if len(templates) >= _MAX_TEMPLATES:
            templates.clear()
        template = templates[key] = base % tuple([_text(value).replace(b"%", b"%%") for value in key])
        return template


def _start_json(times: dict[datetime | None, bytes], start: datetime | None) -> bytes:
    """A start time's JSON. Logs stamp many lines a second, so these are kept; aware times equal
    across offsets yet print apart, so only naive ones are."""
    try:
        return times[start]
    except KeyError:
        start_json = _time(start)
        if start is not None and start.tzinfo is None:
            times[start] = start_json
        return start_json


def _content_json(content: str) -> bytes:
    try:
        return orjson.dumps(content)
    except orjson.JSONEncodeError:  # a lone surrogate: orjson refuses it, the JSON text keeps it
        return _text(content)


def _steps_json(values: list[tuple[Any, ...]]) -> bytes:
    """The JSON of steps (as `step_values` gives them), comma-separated: one trace's memory at
    most, and one `update` for it."""
    times: dict[datetime | None, bytes] = {None: b"null"}
    encoded: list[bytes] = []
    append, text, time, number = encoded.append, _text, _time, _number
    for f in values:
        template = _template(_TEMPLATES, f[:_KEYED], _STEP_JSON)
        content, end, parent, span, start, idx, t_in, t_out, call_id, calls, _ = f[_KEYED:]
        append(
            template
            % (
                _content_json(content),
                b"null" if end is None else time(end),
                b"null" if parent is None else text(parent),
                b"null" if span is None else text(span),
                _start_json(times, start),
                idx,
                b"null" if t_in is None else number(t_in),
                b"null" if t_out is None else number(t_out),
                b"null" if call_id is None else text(call_id),
                b", ".join(map(_call_json, calls)) if calls else b"",
            )
        )
    return b", ".join(encoded)


# A message step's JSON (`_STEP_JSON` with every field a split step leaves at its default
# written in): columns hash to the bytes their Step objects would.
_MESSAGE_JSON = (
    b'{"agent": %b, "content": %%b, "end_ts": null, "kind": "message", "model": null, "name": %b, '
    b'"parent_span_id": null, "recipient": %b, "role": %b, "span_id": null, "start_ts": %%b, '
    b'"status": null, "step_idx": %%d, "tokens_in": null, "tokens_out": null, "tool_call_id": null, '
    b'"tool_calls": []}'
)
_MESSAGE_TEMPLATES: dict[tuple[str | None, ...], bytes] = {}


def _looked_up(found: dict[Any, bytes], keys: list[Any], make: Callable[[Any], bytes]) -> list[bytes]:
    """`found[key]` for each key, `make(key)` (which may add it to `found`) where it is not."""
    values = list(map(found.get, keys))
    if None not in values:
        return cast(list[bytes], values)
    return [make(key) if value is None else value for key, value in zip(keys, values, strict=True)]


def columns_json(columns: StepColumns) -> bytes:
    """`_steps_json` of the steps the columns hold, built a column at a time: templates, content
    and times are looked up or encoded with `map` over whole columns and the steps are filled in
    with one `bytes.__mod__` each, with no Python frame per step."""
    keys = list(zip(columns.agent, columns.name, columns.recipient, columns.role, strict=True))
    templates = _looked_up(
        _MESSAGE_TEMPLATES, keys, lambda key: _template(_MESSAGE_TEMPLATES, key, _MESSAGE_JSON)
    )
    try:
        contents = list(map(orjson.dumps, columns.content))
    except orjson.JSONEncodeError:  # a lone surrogate somewhere: that step's content the slow way
        contents = list(map(_content_json, columns.content))
    times: dict[datetime | None, bytes] = {None: b"null"}
    starts = _looked_up(times, columns.start_ts, lambda start: _start_json(times, start))
    return b", ".join(map(bytes.__mod__, templates, zip(contents, starts, range(len(keys)), strict=True)))


class Trace(BaseModel):
    """A whole agent run with its steps, plus the labels that shipped with it."""

    trace_id: str
    source: str  # format/dataset family: whowhen, mast, openai-chat, otel, ...
    native_id: str | None = None
    framework: str | None = None  # AG2, Magentic-One, MetaGPT, ChatDev, ...
    llm: str | None = None
    benchmark: str | None = None
    task: str | None = None
    ground_truth: str | None = None
    outcome: Outcome = Outcome.UNKNOWN
    source_file: str | None = None
    raw: str | None = None  # original text when steps were split out of a free-form log
    metadata: dict[str, Any] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    labels: list[Label] = Field(default_factory=list)
    attributions: list[Attribution] = Field(default_factory=list)

    # The steps as a log splitter cut them (`with_columns`), where the ingest keeps them so;
    # `steps` is empty then, and `materialized()` gives the trace with its Step objects.
    _columns: StepColumns | None = PrivateAttr(default=None)

    @field_validator("steps")
    @classmethod
    def _steps_are_ordered(cls, steps: list[Step]) -> list[Step]:
        for i, step in enumerate(steps):
            if step.step_idx != i:
                raise ValueError(f"step {i} has step_idx {step.step_idx}; steps must be 0..n-1")
        return steps

    def with_columns(self, columns: StepColumns) -> Trace:
        """This trace with its steps kept as columns (it must have no Step objects)."""
        if self.steps:
            raise ValueError("a trace keeps its steps either as Step objects or as columns")
        self._columns = columns
        return self

    @property
    def step_columns(self) -> StepColumns | None:
        """The steps as columns, where they are kept so (see `with_columns`)."""
        return self._columns

    @property
    def step_count(self) -> int:
        return len(self._columns) if self._columns is not None else len(self.steps)

    def materialized(self) -> Trace:
        """The trace with Step objects, whichever way it keeps its steps."""
        if self._columns is None:
            return self
        trace = self.model_copy(update={"steps": self._columns.steps()})
        trace._columns = None
        return trace

    def content_hash(self, values: list[tuple[Any, ...]] | None = None) -> str:
        """Hash of what the trace says (not where it came from): equal content, equal hash.
        `values`: the steps' `step_values`, where the caller read them already."""
        if values is None and self._columns is not None:
            return content_digest(self.raw, columns_json(self._columns), self.task)
        return content_digest(
            self.raw, _steps_json(step_values(self.steps) if values is None else values), self.task
        )


def content_digest(raw: str | None, steps_json: bytes, task: str | None) -> str:
    """`Trace.content_hash` from its parts: `steps_json` is `step_json` of each step, joined by
    b", " (a growing trace keeps each step's and re-encodes only the steps that changed)."""
    digest = hashlib.sha256(b'{"raw": ')
    digest.update(_text(raw))  # raw and steps run to megabytes: fed in, not joined
    digest.update(b', "steps": [')
    digest.update(steps_json)
    digest.update(b'], "task": ' + _text(task) + b"}")
    return digest.hexdigest()


def raw_digest_head(raw_head: str) -> Any:
    """`content_digest`'s hash fed with the start of a `raw` text, to be fed more of it with
    `raw_digest_more` and finished with `raw_digest_end`: a trace whose `raw` grows at its end
    (a live OTLP trace) then hashes only what is new of it, and gets the same digest."""
    digest = hashlib.sha256(b'{"raw": "')
    digest.update(_text(raw_head)[1:-1])  # JSON escaping is per character: pieces join up
    return digest


def raw_digest_more(digest: Any, raw_more: str) -> None:
    digest.update(_text(raw_more)[1:-1])


def raw_digest_end(digest: Any, raw_tail: str, steps_json: bytes | bytearray, task: str | None) -> str:
    """`content_digest(raw_head + ... + raw_tail, steps_json, task)`; `digest` is left as it was."""
    digest = digest.copy()
    digest.update(_text(raw_tail)[1:-1] + b'", "steps": [')
    digest.update(steps_json)
    digest.update(b'], "task": ' + _text(task) + b"}")
    return str(digest.hexdigest())


def step_json(step: Step) -> bytes:
    """One step's part of its trace's content hash."""
    return _steps_json(step_values([step]))


def stable_id(source: str, native_id: str | None, fallback_hash: str) -> str:
    """`source:native` when the source has an id, else `source:sha256-prefix` of the content."""
    return f"{source}:{native_id}" if native_id else f"{source}:{fallback_hash[:16]}"


class FailureMode(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    category: str
    definition: str
    stage: str | None = None
    positive_example: str | None = None
    negative_example: str | None = None


class Taxonomy(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    version: str
    name: str
    description: str = ""
    categories: dict[str, str] = Field(default_factory=dict)  # category id -> name
    modes: list[FailureMode]

    def mode(self, mode_id: str) -> FailureMode:
        for m in self.modes:
            if m.id == mode_id:
                return m
        raise KeyError(f"taxonomy {self.id} has no mode {mode_id!r}")


class ModeVerdict(BaseModel):
    """The judge's answer for one mode of one trace."""

    mode_id: str
    present: bool
    probability: float = Field(ge=0.0, le=1.0)
    evidence_steps: list[int] = Field(default_factory=list)
    agent: str | None = None
    rationale: str = ""


class Verdict(BaseModel):
    """The judge's structured answer for a whole trace."""

    trace_id: str
    modes: list[ModeVerdict] = Field(default_factory=list)
    root_cause_agent: str | None = None
    root_cause_step: int | None = Field(default=None, ge=0)
    root_cause_probability: float | None = Field(default=None, ge=0.0, le=1.0)
    summary: str = ""
    steps_read: list[int] = Field(default_factory=list)  # which steps the judge saw
    truncated: bool = False
