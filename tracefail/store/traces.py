"""Writing and reading traces, steps, dataset labels and quarantined records."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import polars as pl
import pyarrow as pa

from tracefail.model import Attribution, Label, Step, Trace, step_values
from tracefail.store.db import Database
from tracefail.store.rows import (
    ATTRIBUTION_SCHEMA,
    LABEL_SCHEMA,
    STEP_SCHEMA,
    TRACE_SCHEMA,
    TRACE_SPAN_SCHEMA,
    Prepared,
    _step_columns,
    arrow_rows,
    attribution_rows,
    json_text,
    label_rows,
    now,
    prepare,
    stamped,
)
from tracefail.store.search import index_written
from tracefail.store.text_list import IN_TEXTS, texts


@dataclass
class AddResult:
    traces: int = 0
    steps: int = 0
    labels: int = 0
    attributions: int = 0
    duplicates: int = 0
    conflicts: list[tuple[Trace, str]] = field(default_factory=list)
    same_content: Prepared | None = None  # duplicates: their shipped labels may still be new


def _insert(db: Database, table: str, schema: pa.Schema, rows: list[dict] | pa.Table) -> None:
    if not len(rows):
        return
    arrow = rows if isinstance(rows, pa.Table) else arrow_rows(schema, rows)  # noqa: F841
    columns = ", ".join(schema.names)
    db.connection.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM arrow")


def insert_rows(db: Database, table: Literal["labels", "attributions"], rows: list[dict]) -> None:
    """Label or attribution rows (as `label_rows` / `attribution_rows` make them) written now."""
    schema = LABEL_SCHEMA if table == "labels" else ATTRIBUTION_SCHEMA
    _insert(db, table, schema, [{**row, "created_at": now()} for row in rows])


def insert_labels(db: Database, labels: Sequence[Label], run_id: str | None = None) -> None:
    """Append labels (callers own the transaction). Labels are never updated in place."""
    _insert(db, "labels", LABEL_SCHEMA, label_rows(labels, run_id))


def insert_attributions(db: Database, attributions: Sequence[Attribution], run_id: str | None = None) -> None:
    _insert(db, "attributions", ATTRIBUTION_SCHEMA, attribution_rows(attributions, run_id))


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
    stored = dict(
        db.rows(f"SELECT trace_id, content_hash FROM traces WHERE trace_id {IN_TEXTS}", [texts(ids)])
    )
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


# A trace's span as a `trace_spans` row keeps it: (arrival number, resource JSON, span JSON).
SpanRows = Mapping[str, Sequence[tuple[int, str, str]]]


def _insert_spans(db: Database, spans: SpanRows) -> None:
    """Append spans to their traces' `trace_spans` (the traces' `raw`, see migration 004)."""
    rows = [
        {"trace_id": trace_id, "seq": seq, "resource": resource, "span": span}
        for trace_id, kept in spans.items()
        for seq, resource, span in kept
    ]
    _insert(db, "trace_spans", TRACE_SPAN_SCHEMA, rows)


def _write(
    db: Database,
    batch: Prepared,
    run_id: str | None,
    result: AddResult,
    *,
    replace: bool = False,
    spans: SpanRows | None = None,
) -> None:
    """Insert traces with their steps, labels and attributions in one transaction; with
    `replace`, their stored rows, steps and spans go first, and their features, which were
    computed on the old steps (labels and attributions stay). A trace in `spans` keeps its
    `raw` as those rows (`trace_spans`), and NULL in its own row."""
    spans = spans or {}
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
            "raw": None if trace.trace_id in spans else trace.raw,
            "metadata": json_text(trace.metadata),
            "ingest_run_id": run_id,
            "ingested_at": ingested,
        }
        for trace, digest, n_steps in zip(batch.headers, batch.hashes, batch.n_steps, strict=True)
    ]
    with db.transaction():
        if replace:
            ids = texts(trace.trace_id for trace in batch.headers)
            for table in ("steps", "features", "traces", "trace_spans"):
                db.execute(f"DELETE FROM {table} WHERE trace_id {IN_TEXTS}", [ids])
        _insert(db, "traces", TRACE_SCHEMA, trace_rows)
        _insert_spans(db, spans)
        _insert(db, "steps", STEP_SCHEMA, batch.steps)
        _insert(db, "labels", LABEL_SCHEMA, stamped(batch.labels, run_id))
        _insert(db, "attributions", ATTRIBUTION_SCHEMA, stamped(batch.attributions, run_id))
        index_written(db, batch.steps, trace_rows)
    result.traces += len(batch.headers)
    result.steps += batch.steps.num_rows
    result.labels += batch.labels.num_rows
    result.attributions += batch.attributions.num_rows


def stored_raw(db: Database, trace_ids: Sequence[str]) -> dict[str, str | None]:
    """The `raw` text of those ids that are stored (None where a trace kept no raw text),
    put together from its spans where it keeps them as `trace_spans`."""
    if not trace_ids:
        return {}
    return dict(db.rows(f"SELECT trace_id, raw FROM trace_raw WHERE trace_id {IN_TEXTS}", [texts(trace_ids)]))


def stored_hashes(db: Database, trace_ids: Sequence[str]) -> dict[str, str]:
    """The content hash of those ids that are stored (without reading their `raw` text)."""
    if not trace_ids:
        return {}
    return dict(
        db.rows(f"SELECT trace_id, content_hash FROM traces WHERE trace_id {IN_TEXTS}", [texts(trace_ids)])
    )


def replace_traces(
    db: Database, traces: Sequence[Trace], run_id: str | None, spans: SpanRows | None = None
) -> AddResult:
    """Store traces whose new version supersedes the stored one (OTLP traces that gained
    spans), in one transaction: their rows and steps are rewritten, their labels and
    attributions are kept, their features (stale now) are deleted. A trace in `spans` keeps
    its `raw` as those `trace_spans` rows, so that later spans are appended to it."""
    result = AddResult()
    if traces:
        _write(db, prepare(traces), run_id, result, replace=True, spans=spans)
    return result


def refresh_grown(
    db: Database, batch: Prepared, traces: Sequence[Trace], run_id: str | None
) -> Prepared | None:
    """Of `traces` (in `batch`, stored already with other content), rewrite those whose new copy
    holds every span the stored copy had, and more: a span export (Langfuse, Phoenix, OTel
    JSON) saved again after its trace grew. Their labels and attributions stay and their
    features go, as for an OTLP trace that gained spans; shipped labels are left to
    `update_shipped`, as for a duplicate. A copy that lost or renamed a span is not a later
    export of the same trace, and stays a conflict. Returns the batch of the traces rewritten
    (with their shipped labels), or None."""
    ids = [t.trace_id for t in traces]
    if not ids:
        return None
    stored = {
        trace_id: set(spans or ())
        for trace_id, spans in db.rows(
            "SELECT trace_id, list(span_id) FILTER (span_id IS NOT NULL) FROM steps "
            f"WHERE trace_id {IN_TEXTS} GROUP BY trace_id",
            [texts(ids)],
        )
    }
    mine = pl.from_arrow(batch.steps.select(["trace_id", "span_id"]))
    assert isinstance(mine, pl.DataFrame)
    incoming = {
        trace_id: set(spans)
        for trace_id, spans in mine.filter(pl.col("trace_id").is_in(ids) & pl.col("span_id").is_not_null())
        .group_by("trace_id")
        .agg(pl.col("span_id"))
        .iter_rows()
    }
    grown = {
        t.trace_id
        for t in traces
        if stored.get(t.trace_id) and stored[t.trace_id] < incoming.get(t.trace_id, set())
    }
    if not grown:
        return None
    rows = batch.subset([i for i, t in enumerate(batch.headers) if t.trace_id in grown])
    _write(
        db,
        replace(rows, labels=rows.labels.slice(0, 0), attributions=rows.attributions.slice(0, 0)),
        run_id,
        AddResult(),
        replace=True,
    )
    return rows


@dataclass(frozen=True)
class GrownTrace:
    """What a write of a stored trace that gained spans changes (see `grow_traces`)."""

    header: Trace  # the trace row's fields; its `raw` is its `trace_spans`
    digest: str
    n_steps: int
    steps: Sequence[Step]  # new steps, and stored steps whose fields or index changed
    stored_steps: int  # steps it had: a written step below this index replaces the stored one
    spans: Sequence[tuple[int, str, str]]  # its new spans, appended to its `trace_spans`


def grow_traces(db: Database, grown: Sequence[GrownTrace], run_id: str | None) -> AddResult:
    """Store stored traces that gained spans, writing only what changed, so that a write costs
    what is new, not the trace's size: each trace's row (header, digest, step count), its new
    or changed steps (by step index) and its new spans; the other steps and spans stay as they
    are, labels and attributions too, and features (stale now) are deleted."""
    result = AddResult()
    if not grown:
        return result
    ingested = now()
    steps = _step_columns([g.header for g in grown], [step_values(list(g.steps)) for g in grown])
    replaced = [
        (g.header.trace_id, step.step_idx)
        for g in grown
        for step in g.steps
        if step.step_idx < g.stored_steps
    ]
    changed = [
        {
            "trace_id": g.header.trace_id,
            "llm": g.header.llm,
            "task": g.header.task,
            "n_steps": g.n_steps,
            "content_hash": g.digest,
            "source_file": g.header.source_file,
            "metadata": json_text(g.header.metadata),
            "ingest_run_id": run_id,
            "ingested_at": ingested,
        }
        for g in grown
    ]
    # scanned by name: parameters would cost a failed pandas import each
    grown_rows = arrow_rows(pa.schema([TRACE_SCHEMA.field(name) for name in changed[0]]), changed)  # noqa: F841
    with db.transaction():
        db.connection.execute(
            "UPDATE traces SET llm = r.llm, task = r.task, n_steps = r.n_steps, "
            "content_hash = r.content_hash, source_file = r.source_file, metadata = r.metadata, "
            "ingest_run_id = r.ingest_run_id, ingested_at = r.ingested_at "
            "FROM grown_rows r WHERE traces.trace_id = r.trace_id"
        )
        db.execute(
            f"DELETE FROM features WHERE trace_id {IN_TEXTS}", [texts(g.header.trace_id for g in grown)]
        )
        if replaced:  # steps appended at the end replace nothing: no scan of the steps table
            written = pa.table(  # noqa: F841 - scanned by name
                {
                    "trace_id": pa.array([trace_id for trace_id, _ in replaced], pa.string()),
                    "step_idx": pa.array([idx for _, idx in replaced], pa.int32()),
                }
            )
            db.connection.execute(
                "DELETE FROM steps USING written "
                "WHERE steps.trace_id = written.trace_id AND steps.step_idx = written.step_idx"
            )
        _insert(db, "steps", STEP_SCHEMA, steps)
        _insert_spans(db, {g.header.trace_id: g.spans for g in grown})
        # only the steps this write changed (and step 0, which carries the trace's metadata)
        index_written(db, steps, changed, grown=True)
    result.traces += len(grown)
    result.steps += steps.num_rows
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
        f"SELECT * EXCLUDE (raw) FROM traces WHERE trace_id {IN_TEXTS}", [texts(trace_ids)]
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
        f"SELECT * FROM steps WHERE trace_id {IN_TEXTS} ORDER BY trace_id, step_idx",
        [texts(trace_ids)],
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
