"""Re-ingested traces whose shipped labels, attributions or outcome changed (a corrected dataset).

The steps are the same (same content hash), so this is not a conflict: the dataset's newer
answer is stored as newer rows of the same source, and the older rows are kept beside them
(readers take the newest row per source, as with human relabels).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tracefail.model import Trace
from tracefail.store.db import Database
from tracefail.store.rows import Prepared
from tracefail.store.text_list import IN_TEXTS, texts
from tracefail.store.traces import insert_rows


def _label_key(source: str, version: str | None, mode: str) -> tuple:
    return (source, version or "", mode)


def _value(present: bool | None, probability: float | None) -> tuple:
    return (present, None if probability is None else round(float(probability), 6))


def _by_trace(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row["trace_id"]].append(row)
    return grouped


def update_shipped(db: Database, batch: Prepared | None, run_id: str | None) -> list[Trace]:
    """Store what changed for the batch's traces (already stored with this content); returns
    the headers of those changed."""
    if batch is None:
        return []
    shipped_labels = _by_trace(batch.labels.to_pylist())
    shipped_blame = _by_trace(batch.attributions.to_pylist())
    with_news = [
        t
        for t in batch.headers
        if shipped_labels.get(t.trace_id) or shipped_blame.get(t.trace_id) or t.outcome or t.ground_truth
    ]
    if not with_news:
        return []
    ids = texts(t.trace_id for t in with_news)
    labels: dict[str, dict[tuple, tuple]] = defaultdict(dict)
    for trace_id, source, version, mode, present, probability in db.rows(
        "SELECT trace_id, source, taxonomy_version, mode_id, arg_max(present, label_id), "
        f"arg_max(probability, label_id) FROM labels WHERE trace_id {IN_TEXTS} GROUP BY ALL",
        [ids],
    ):
        labels[trace_id][_label_key(source, version, mode)] = _value(present, probability)
    blamed: dict[str, dict[str, set[tuple]]] = defaultdict(lambda: defaultdict(set))
    for trace_id, source, agent, step in db.rows(
        "SELECT trace_id, source, agent, step_idx FROM attributions a WHERE trace_id "
        f"{IN_TEXTS} AND run_id IS NOT DISTINCT FROM (SELECT arg_max(run_id, attribution_id) "
        "FROM attributions b WHERE b.trace_id = a.trace_id AND b.source = a.source)",
        [ids],
    ):
        blamed[trace_id][source].add((agent, step))
    heads = {
        r[0]: r[1:]
        for r in db.rows(
            f"SELECT trace_id, outcome, ground_truth FROM traces WHERE trace_id {IN_TEXTS}", [ids]
        )
    }
    changed = []
    for trace in with_news:
        stored = labels[trace.trace_id]
        new_labels = shipped_labels.get(trace.trace_id, [])
        labels_differ = any(
            stored.get(_label_key(row["source"], row["taxonomy_version"], row["mode_id"]))
            != _value(row["present"], row["probability"])
            for row in new_labels
        )
        incoming: dict[str, set[tuple]] = defaultdict(set)
        for row in shipped_blame.get(trace.trace_id, []):
            incoming[row["source"]].add((row["agent"], row["step_idx"]))
        new_blame = any(blamed[trace.trace_id].get(s) != pairs for s, pairs in incoming.items())
        new_head = heads[trace.trace_id] != (trace.outcome.value, trace.ground_truth)
        if not (labels_differ or new_blame or new_head):
            continue
        changed.append(trace)
        with db.transaction():
            if labels_differ:
                insert_rows(db, "labels", [{**row, "run_id": run_id} for row in new_labels])
            if new_blame:
                insert_rows(
                    db, "attributions", [{**row, "run_id": run_id} for row in shipped_blame[trace.trace_id]]
                )
            if new_head:
                db.execute(
                    "UPDATE traces SET outcome = ?, ground_truth = ? WHERE trace_id = ?",
                    [trace.outcome.value, trace.ground_truth, trace.trace_id],
                )
    return changed
