"""Writing and reading traces, steps, dataset labels and quarantined records."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from tracefail.model import Attribution, Label, Step, Trace
from tracefail.store.db import Database, now


@dataclass
class AddResult:
    traces: int = 0
    steps: int = 0
    labels: int = 0
    attributions: int = 0
    duplicates: int = 0
    conflicts: list[tuple[Trace, str]] = field(default_factory=list)
    same_content: Prepared | None = None  # duplicates: their shipped labels may still be new


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
    chars: int  # characters of raw text and step content: what a batch's memory grows with

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
            chars=self.chars,
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
            chars=sum(b.chars for b in batches),
        )


def opening_text(raw: str | None, contents: Sequence[str], limit: int = 2000) -> str:
    """The start of a trace's text (its raw record, else its first steps) for a quarantine row."""
    return raw[:limit] if raw else "\n".join(text[:limit] for text in contents[:3])[:limit]


def prepare(traces: Sequence[Trace]) -> Prepared:
    """The rows of `traces` and their hashes; the traces themselves are not changed."""
    bare: dict[str, list[Any]] = {"steps": [], "labels": [], "attributions": []}
    return Prepared(
        headers=[trace.model_copy(update=bare) for trace in traces],
        hashes=[trace.content_hash() for trace in traces],
        n_steps=[len(trace.steps) for trace in traces],
        steps=_step_columns(traces),
        labels=_rows(_LABEL_SCHEMA, label_rows([label for t in traces for label in t.labels])),
        attributions=_rows(
            _ATTRIBUTION_SCHEMA, attribution_rows([a for t in traces for a in t.attributions])
        ),
        chars=sum(map(text_size, traces)),
    )


def text_size(trace: Trace) -> int:
    """Characters of a trace's raw text and step content: what a batch's memory grows with."""
    return len(trace.raw or "") + sum(len(step.content) for step in trace.steps)


_TRACE_SCHEMA = pa.schema(
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
_STEP_SCHEMA = pa.schema(
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
_LABEL_SCHEMA = pa.schema(
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
_ATTRIBUTION_SCHEMA = pa.schema(
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


def _json(value: object) -> str | None:
    return json.dumps(value, ensure_ascii=False, default=str) if value else None


def _rows(schema: pa.Schema, rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def _insert(db: Database, table: str, schema: pa.Schema, rows: list[dict] | pa.Table) -> None:
    if not len(rows):
        return
    arrow = rows if isinstance(rows, pa.Table) else _rows(schema, rows)  # noqa: F841
    columns = ", ".join(schema.names)
    db.connection.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM arrow")


def _for_ids(db: Database, sql: str, ids: Iterable[str]) -> list[tuple]:
    """Run `sql` with `{ids}` standing for a subquery over `ids`. The ids go in as an Arrow
    column: DuckDB converts a Python list parameter element by element, about 0.25 ms each
    (a failed pandas import per element when pandas is absent), which cost 11% of a MAST ingest."""
    wanted_ids = pa.table({"trace_id": pa.array(list(ids), pa.string())})  # noqa: F841 - scanned by name
    return db.connection.execute(sql.format(ids="(SELECT trace_id FROM wanted_ids)")).fetchall()


def _step_columns(traces: Sequence[Trace]) -> pa.Table:
    """All steps of `traces` as one Arrow table, built column by column: a dict per step cost
    more than the DuckDB insert itself on a large corpus."""
    ids = [t.trace_id for t in traces for _ in t.steps]
    fields = [s.__dict__ for t in traces for s in t.steps]  # a pydantic model's field values
    columns = {
        name: [f[name] for f in fields]
        for name in _STEP_SCHEMA.names
        if name not in ("trace_id", "kind", "tool_calls", "metadata")
    }
    columns["trace_id"] = ids
    columns["kind"] = [f["kind"].value for f in fields]
    columns["tool_calls"] = [
        _json([c.model_dump() for c in f["tool_calls"]]) if f["tool_calls"] else None for f in fields
    ]
    columns["metadata"] = [_json(f["metadata"]) if f["metadata"] else None for f in fields]
    return pa.Table.from_pydict(columns, schema=_STEP_SCHEMA)


def label_rows(labels: Sequence[Label], run_id: str | None = None) -> list[dict]:
    """Rows from the labels' field values (no model_dump or model_copy per label: a MAST
    ingest stores 14 per trace); `run_id` fills in where a label has none."""
    created = now()
    return [
        {
            **label.__dict__,
            "run_id": label.run_id or run_id,
            "metadata": _json(label.metadata),
            "created_at": created,
        }
        for label in labels
    ]


def attribution_rows(attributions: Sequence[Attribution], run_id: str | None = None) -> list[dict]:
    created = now()
    return [
        {**a.__dict__, "run_id": a.run_id or run_id, "metadata": _json(a.metadata), "created_at": created}
        for a in attributions
    ]


def insert_rows(db: Database, table: Literal["labels", "attributions"], rows: list[dict]) -> None:
    """Label or attribution rows (as `label_rows` / `attribution_rows` make them) written now."""
    schema = _LABEL_SCHEMA if table == "labels" else _ATTRIBUTION_SCHEMA
    _insert(db, table, schema, [{**row, "created_at": now()} for row in rows])


def insert_labels(db: Database, labels: Sequence[Label], run_id: str | None = None) -> None:
    """Append labels (callers own the transaction). Labels are never updated in place."""
    _insert(db, "labels", _LABEL_SCHEMA, label_rows(labels, run_id))


def insert_attributions(db: Database, attributions: Sequence[Attribution], run_id: str | None = None) -> None:
    _insert(db, "attributions", _ATTRIBUTION_SCHEMA, attribution_rows(attributions, run_id))


def add_traces(db: Database, traces: Sequence[Trace], run_id: str | None) -> AddResult:
    """Store new traces with their steps and shipped labels in one transaction (see `add_prepared`)."""
    return add_prepared(db, prepare(traces), run_id)


def add_prepared(db: Database, batch: Prepared, run_id: str | None) -> AddResult:
    """Store a prepared batch's new traces with their steps and shipped labels in one transaction.

    A trace whose id is already stored with the same content is a duplicate and is skipped;
    the same id with different content is a conflict for the caller to quarantine. Conflicts
    and duplicates come back as step-less headers.
    """
    result = AddResult()
    if not batch.headers:
        return result
    ids = [t.trace_id for t in batch.headers]
    stored = dict(_for_ids(db, "SELECT trace_id, content_hash FROM traces WHERE trace_id IN {ids}", ids))
    fresh: list[int] = []
    same: list[int] = []
    for i, (trace, digest) in enumerate(zip(batch.headers, batch.hashes, strict=True)):
        known = stored.get(trace.trace_id)
        if known is None:
            stored[trace.trace_id] = digest
            fresh.append(i)
        elif known == digest:
            same.append(i)
        else:
            result.conflicts.append(
                (trace, f"trace id {trace.trace_id} is already stored with different content")
            )
    result.duplicates = len(same)
    if same:
        result.same_content = batch.subset(same)
    _write(db, batch.subset(fresh), run_id, result)
    return result


def _write(
    db: Database, batch: Prepared, run_id: str | None, result: AddResult, *, replace: bool = False
) -> None:
    """Insert traces with their steps, labels and attributions in one transaction; with
    `replace`, their stored rows and steps go first, and their features, which were computed
    on the old steps (labels and attributions stay)."""
    ingested = now()
    trace_rows = [
        {
            "trace_id": trace.trace_id,
            "source": trace.source,
            "native_id": trace.native_id,
            "framework": trace.framework,
            "llm": trace.llm,
            "benchmark": trace.benchmark,
            "task": trace.task,
            "ground_truth": trace.ground_truth,
            "outcome": trace.outcome.value,
            "n_steps": n_steps,
            "content_hash": digest,
            "source_file": trace.source_file,
            "raw": trace.raw,
            "metadata": _json(trace.metadata),
            "ingest_run_id": run_id,
            "ingested_at": ingested,
        }
        for trace, digest, n_steps in zip(batch.headers, batch.hashes, batch.n_steps, strict=True)
    ]
    with db.transaction():
        if replace:
            ids = [trace.trace_id for trace in batch.headers]
            _for_ids(db, "DELETE FROM steps WHERE trace_id IN {ids}", ids)
            _for_ids(db, "DELETE FROM features WHERE trace_id IN {ids}", ids)
            _for_ids(db, "DELETE FROM traces WHERE trace_id IN {ids}", ids)
        _insert(db, "traces", _TRACE_SCHEMA, trace_rows)
        _insert(db, "steps", _STEP_SCHEMA, batch.steps)
        _insert(db, "labels", _LABEL_SCHEMA, stamped(batch.labels, run_id))
        _insert(db, "attributions", _ATTRIBUTION_SCHEMA, stamped(batch.attributions, run_id))
    result.traces += len(batch.headers)
    result.steps += batch.steps.num_rows
    result.labels += batch.labels.num_rows
    result.attributions += batch.attributions.num_rows


def stamped(rows: pa.Table, run_id: str | None) -> pa.Table:
    """Label or attribution rows as written now by run `run_id` (where a row names no run)."""
    if run_id is not None:
        rows = rows.set_column(
            rows.schema.get_field_index("run_id"), "run_id", pc.fill_null(rows["run_id"], run_id)
        )
    created = pa.array([now()] * rows.num_rows, pa.timestamp("us"))
    return rows.set_column(rows.schema.get_field_index("created_at"), "created_at", created)


def stored_raw(db: Database, trace_ids: Sequence[str]) -> dict[str, str | None]:
    """The `raw` text of those ids that are stored (None where a trace kept no raw text)."""
    if not trace_ids:
        return {}
    return dict(_for_ids(db, "SELECT trace_id, raw FROM traces WHERE trace_id IN {ids}", trace_ids))


def replace_traces(db: Database, traces: Sequence[Trace], run_id: str | None) -> AddResult:
    """Store traces whose new version supersedes the stored one (OTLP traces that gained
    spans), in one transaction: their rows and steps are rewritten, their labels and
    attributions are kept, their features (stale now) are deleted."""
    result = AddResult()
    if traces:
        _write(db, prepare(traces), run_id, result, replace=True)
    return result


def quarantine(
    db: Database, file: str, record: str | None, reason: str, excerpt: str | None, run_id: str | None
) -> None:
    """Keep a rejected record and why, so nothing a user gave us silently disappears."""
    db.execute(
        "INSERT INTO quarantine (file, record, reason, excerpt, run_id, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [file, record, reason, (excerpt or "")[:2000], run_id, now()],
    )


def list_traces(db: Database) -> pl.DataFrame:
    """One row per trace with step and label counts, for `ls` and the corpus screen."""
    return db.frame(
        """
        SELECT t.trace_id, t.source, t.framework, t.llm, t.benchmark, t.n_steps, t.outcome,
               coalesce(l.n_labels, 0) AS n_labels,
               coalesce(l.n_present, 0) AS n_modes_present,
               coalesce(a.n_attributions, 0) AS n_attributions,
               coalesce(l.sources, []) AS label_sources
        FROM traces t
        LEFT JOIN (
            SELECT trace_id, count(*) AS n_labels, count(*) FILTER (WHERE present) AS n_present,
                   list(DISTINCT source ORDER BY source) AS sources
            FROM labels GROUP BY trace_id
        ) l USING (trace_id)
        LEFT JOIN (SELECT trace_id, count(*) AS n_attributions FROM attributions GROUP BY trace_id) a
            USING (trace_id)
        ORDER BY t.source, t.trace_id
        """
    )


def trace_ids(db: Database, limit: int | None = None) -> list[str]:
    sql = "SELECT trace_id FROM traces ORDER BY trace_id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [r[0] for r in db.rows(sql)]


def trace_header(db: Database, trace_id: str) -> dict[str, Any] | None:
    """The trace's own row without the raw record: the one reader of a trace's header."""
    return trace_headers(db, [trace_id]).get(trace_id)


def trace_headers(db: Database, trace_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Several traces' headers in one query (a driver feeding many workers reads in chunks)."""
    rows = db.frame(
        "SELECT * EXCLUDE (raw) FROM traces WHERE trace_id IN (SELECT unnest(?))", [list(trace_ids)]
    ).to_dicts()
    return {row["trace_id"]: row for row in rows}


def get_trace(db: Database, trace_id: str) -> dict | None:
    """The trace row, its steps, labels and attributions as plain dicts (JSON-ready)."""
    head = trace_header(db, trace_id)
    if head is None:
        return None
    return {
        "trace": head,
        "steps": db.frame(
            "SELECT * EXCLUDE (trace_id) FROM steps WHERE trace_id = ? ORDER BY step_idx", [trace_id]
        ).to_dicts(),
        "labels": db.frame(
            "SELECT * EXCLUDE (trace_id) FROM labels WHERE trace_id = ? ORDER BY label_id", [trace_id]
        ).to_dicts(),
        "attributions": db.frame(
            "SELECT * EXCLUDE (trace_id) FROM attributions WHERE trace_id = ? ORDER BY attribution_id",
            [trace_id],
        ).to_dicts(),
    }


def get_steps(db: Database, trace_id: str) -> list[Step]:
    """The steps of one trace as model objects, for readers that re-process them."""
    return steps_of(db, [trace_id]).get(trace_id, [])


def steps_of(db: Database, trace_ids: Sequence[str]) -> dict[str, list[Step]]:
    """The steps of several traces in one query (a driver feeding many workers reads in chunks)."""
    rows = db.frame(
        "SELECT * FROM steps WHERE trace_id IN (SELECT unnest(?)) ORDER BY trace_id, step_idx",
        [list(trace_ids)],
    ).to_dicts()
    found: dict[str, list[Step]] = {}
    for row in rows:
        trace_id = row.pop("trace_id")
        row["tool_calls"] = json.loads(row["tool_calls"]) if row["tool_calls"] else []
        row["metadata"] = json.loads(row["metadata"]) if row["metadata"] else {}
        found.setdefault(trace_id, []).append(
            Step.model_validate({k: v for k, v in row.items() if v is not None})
        )
    return found


def counts(db: Database) -> dict[str, int]:
    tables = ["traces", "steps", "labels", "attributions", "features", "quarantine", "runs"]
    return {t: db.rows(f"SELECT count(*) FROM {t}")[0][0] for t in tables}


def quarantined(db: Database) -> pl.DataFrame:
    return db.frame("SELECT * FROM quarantine ORDER BY quarantine_id")
