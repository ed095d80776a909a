"""The rows traces are stored as, built without a database: reader processes prepare them
(importing neither DuckDB nor polars keeps their start-up short) and the store writes them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tracefail.model import STEP_FIELDS, Attribution, Label, StepKind, Trace, step_values


def now() -> datetime:
    """The store's clock: naive UTC, as every timestamp column holds it."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Prepared:
    """Traces as the rows they are stored as, with their content hashes, built apart from the
    write: an ingest prepares the next batch (the Python half of its work, possibly in another
    process) while the store thread writes this one (the DuckDB half). `headers` are the traces
    without steps, labels and attributions, which travel as Arrow tables: a pydantic object per
    label cost more to pickle between processes than the rest of the batch."""

    headers: list[Trace]
    hashes: list[str]
    n_steps: list[int]
    steps: pa.Table
    labels: pa.Table  # run_id null where the label had none: the writing run's id goes there
    attributions: pa.Table

    @property
    def chars(self) -> int:
        """Characters of raw text and step content: what a batch's memory grows with."""
        content = pc.sum(pc.utf8_length(self.steps["content"])).as_py() or 0
        return content + sum(len(t.raw or "") for t in self.headers)

    def text_bytes(self, longer_than: int) -> tuple[int, int]:
        """UTF-8 bytes of the strings over `longer_than` bytes in the long text columns:
        (traces.raw, steps' content, calls and metadata), what a checkpoint of the row groups
        they land in pins."""
        raw = 0
        for trace in self.headers:
            size = len(trace.raw.encode("utf-8", "surrogatepass")) if trace.raw else 0
            raw += size if size > longer_than else 0
        steps = 0
        for name in ("content", "tool_calls", "metadata"):
            sizes = pc.binary_length(self.steps[name])
            steps += pc.sum(pc.filter(sizes, pc.greater(sizes, longer_than))).as_py() or 0
        return raw, steps

    def opening(self, trace_id: str) -> str:
        """The start of one trace's text, for a human reading its quarantine row."""
        header = next(t for t in self.headers if t.trace_id == trace_id)
        mine = self.steps.filter(pc.equal(self.steps["trace_id"], trace_id)).slice(0, 3)
        return opening_text(header.raw, mine["content"].to_pylist())

    def subset(self, indices: Sequence[int]) -> Prepared:
        """The batch of the traces at `indices` only."""
        if len(indices) == len(self.headers):
            return self
        ids = pa.array([self.headers[i].trace_id for i in indices], pa.string())

        def mine(table: pa.Table) -> pa.Table:
            return table.filter(pc.is_in(table["trace_id"], value_set=ids))

        return Prepared(
            headers=[self.headers[i] for i in indices],
            hashes=[self.hashes[i] for i in indices],
            n_steps=[self.n_steps[i] for i in indices],
            steps=mine(self.steps),
            labels=mine(self.labels),
            attributions=mine(self.attributions),
        )

    @staticmethod
    def joined(batches: Sequence[Prepared]) -> Prepared:
        """One batch of several (small files' batches are written together: a DuckDB write
        per file would dominate on a folder of small files)."""
        if len(batches) == 1:
            return batches[0]
        return Prepared(
            headers=[t for b in batches for t in b.headers],
            hashes=[h for b in batches for h in b.hashes],
            n_steps=[n for b in batches for n in b.n_steps],
            steps=pa.concat_tables([b.steps for b in batches]),
            labels=pa.concat_tables([b.labels for b in batches]),
            attributions=pa.concat_tables([b.attributions for b in batches]),
        )


def opening_text(raw: str | None, contents: Sequence[str], limit: int = 2000) -> str:
    """The start of a trace's text (its raw record, else its first steps) for a quarantine row."""
    return raw[:limit] if raw else "\n".join(text[:limit] for text in contents[:3])[:limit]


def prepare(traces: Sequence[Trace]) -> Prepared:
    """The rows of `traces` and their hashes; the traces themselves are not changed. Steps kept
    as columns (`Trace.step_columns`) go into the step rows column by column."""
    bare: dict[str, list[Any]] = {"steps": [], "labels": [], "attributions": []}
    values = [step_values(trace.steps) for trace in traces]
    return Prepared(
        headers=[_header(trace, bare) for trace in traces],
        hashes=[
            trace.content_hash(None if trace.step_columns is not None else mine)
            for trace, mine in zip(traces, values, strict=True)
        ],
        n_steps=[trace.step_count for trace in traces],
        steps=_step_table(traces, values),
        labels=arrow_rows(LABEL_SCHEMA, label_rows([label for t in traces for label in t.labels])),
        attributions=arrow_rows(
            ATTRIBUTION_SCHEMA, attribution_rows([a for t in traces for a in t.attributions])
        ),
    )


def _header(trace: Trace, bare: dict[str, list[Any]]) -> Trace:
    """The trace without steps, labels and attributions (its columns are not copied along)."""
    header = trace.model_copy(update=bare)
    header._columns = None
    return header


def text_size(trace: Trace) -> int:
    """Characters of a trace's raw text and step content: what a batch's memory grows with."""
    columns = trace.step_columns
    contents = columns.content if columns is not None else [step.content for step in trace.steps]
    return len(trace.raw or "") + sum(map(len, contents))


TRACE_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("source", pa.string()),
        ("native_id", pa.string()),
        ("framework", pa.string()),
        ("llm", pa.string()),
        ("benchmark", pa.string()),
        ("task", pa.string()),
        ("ground_truth", pa.string()),
        ("outcome", pa.string()),
        ("n_steps", pa.int32()),
        ("content_hash", pa.string()),
        ("source_file", pa.string()),
        ("raw", pa.string()),
        ("metadata", pa.string()),
        ("ingest_run_id", pa.string()),
        ("ingested_at", pa.timestamp("us")),
    ]
)
TRACE_SPAN_SCHEMA = pa.schema(
    [("trace_id", pa.string()), ("seq", pa.int32()), ("resource", pa.string()), ("span", pa.string())]
)
STEP_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("step_idx", pa.int32()),
        ("span_id", pa.string()),
        ("parent_span_id", pa.string()),
        ("agent", pa.string()),
        ("recipient", pa.string()),
        ("role", pa.string()),
        ("kind", pa.string()),
        ("name", pa.string()),
        ("content", pa.string()),
        ("tool_calls", pa.string()),
        ("tool_call_id", pa.string()),
        ("model", pa.string()),
        ("tokens_in", pa.int32()),
        ("tokens_out", pa.int32()),
        ("start_ts", pa.timestamp("us")),
        ("end_ts", pa.timestamp("us")),
        ("status", pa.string()),
        ("metadata", pa.string()),
    ]
)
LABEL_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("taxonomy_id", pa.string()),
        ("taxonomy_version", pa.string()),
        ("mode_id", pa.string()),
        ("present", pa.bool_()),
        ("probability", pa.float64()),
        ("raw_probability", pa.float64()),
        ("evidence_steps", pa.list_(pa.int32())),
        ("agent", pa.string()),
        ("rationale", pa.string()),
        ("source", pa.string()),
        ("run_id", pa.string()),
        ("metadata", pa.string()),
        ("created_at", pa.timestamp("us")),
    ]
)
ATTRIBUTION_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("agent", pa.string()),
        ("step_idx", pa.int32()),
        ("reason", pa.string()),
        ("probability", pa.float64()),
        ("source", pa.string()),
        ("run_id", pa.string()),
        ("metadata", pa.string()),
        ("created_at", pa.timestamp("us")),
    ]
)


def json_text(value: object) -> str | None:
    return json.dumps(value, ensure_ascii=False, default=str) if value else None


def arrow_rows(schema: pa.Schema, rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def _step_table(traces: Sequence[Trace], values: list[list[tuple[Any, ...]]]) -> pa.Table:
    """The step rows of `traces`, whichever way each keeps its steps, in trace order: runs of
    traces that keep Step objects and runs that keep columns, each run one table."""
    tables = []
    for columnar, run in groupby(
        zip(traces, values, strict=True), key=lambda pair: pair[0].step_columns is not None
    ):
        pairs = list(run)
        mine = [trace for trace, _ in pairs]
        tables.append(_split_rows(mine) if columnar else _step_columns(mine, [v for _, v in pairs]))
    return pa.concat_tables(tables) if len(tables) != 1 else tables[0]


def _split_rows(traces: Sequence[Trace]) -> pa.Table:
    """Step rows of traces whose steps are columns (message steps: the other fields null)."""
    ids: list[str] = []
    idx: list[int] = []
    kept: dict[str, list[Any]] = {
        "agent": [],
        "recipient": [],
        "role": [],
        "name": [],
        "content": [],
        "start_ts": [],
    }
    for trace in traces:
        columns = trace.step_columns
        assert columns is not None
        n = len(columns)
        ids += [trace.trace_id] * n
        idx += range(n)
        for name, column in kept.items():
            column += getattr(columns, name)
    n = len(ids)
    arrays = {name: pa.array(column, STEP_SCHEMA.field(name).type) for name, column in kept.items()}
    arrays["trace_id"] = pa.array(ids, pa.string())
    arrays["step_idx"] = pa.array(idx, pa.int32())
    arrays["kind"] = pa.array([StepKind.MESSAGE.value] * n, pa.string())
    return pa.table([arrays.get(f.name, pa.nulls(n, f.type)) for f in STEP_SCHEMA], schema=STEP_SCHEMA)


def _step_columns(traces: Sequence[Trace], values: list[list[tuple[Any, ...]]]) -> pa.Table:
    """All steps of `traces` (their `step_values`) as one Arrow table, transposed column by
    column: a dict per step cost more than the DuckDB insert itself on a large corpus."""
    flat = [step for mine in values for step in mine]
    columns: dict[str, Sequence[Any]] = dict(
        zip(STEP_FIELDS, zip(*flat, strict=True) if flat else [()] * len(STEP_FIELDS), strict=True)
    )
    columns["trace_id"] = [t.trace_id for t, mine in zip(traces, values, strict=True) for _ in mine]
    columns["kind"] = [kind.value for kind in columns["kind"]]
    columns["tool_calls"] = [
        json_text([c.model_dump() for c in calls]) if calls else None for calls in columns["tool_calls"]
    ]
    columns["metadata"] = [json_text(metadata) if metadata else None for metadata in columns["metadata"]]
    return pa.Table.from_pydict(columns, schema=STEP_SCHEMA)


def label_rows(labels: Sequence[Label], run_id: str | None = None) -> list[dict]:
    """Rows from the labels' field values (no model_dump or model_copy per label: a MAST
    ingest stores 14 per trace); `run_id` fills in where a label has none."""
    created = now()
    return [
        {
            **label.__dict__,
            "run_id": label.run_id or run_id,
            "metadata": json_text(label.metadata),
            "created_at": created,
        }
        for label in labels
    ]


def attribution_rows(attributions: Sequence[Attribution], run_id: str | None = None) -> list[dict]:
    created = now()
    return [
        {**a.__dict__, "run_id": a.run_id or run_id, "metadata": json_text(a.metadata), "created_at": created}
        for a in attributions
    ]


def stamped(rows: pa.Table, run_id: str | None) -> pa.Table:
    """Label or attribution rows as written now by run `run_id` (where a row names no run)."""
    if run_id is not None:
        rows = rows.set_column(
            rows.schema.get_field_index("run_id"), "run_id", pc.fill_null(rows["run_id"], run_id)
        )
    created = pa.array([now()] * rows.num_rows, pa.timestamp("us"))
    return rows.set_column(rows.schema.get_field_index("created_at"), "created_at", created)
