"""The facade `tracefail browse` talks to: corpus pages, one trace, its graph, the selection's
statistics, human labels, export.

Lock design: DuckDB lets one process write a file, and while it does no other process can
open it, not even read-only; while a process reads it, no other process can write it. A TUI
left open for hours must not block `tracefail label`, and must not crash while one runs. So
the browser reads through a `ReadHold`: one read-only connection shared by its workers, kept
for `hold_s` after the last read (a burst of filter changes opens the file once) and closed
before the browser's own human label writes (read-write, closed at once). When another process
holds the lock the call waits up to `wait_s` (`store.open_waiting`, as the CLI's writers do),
then raises `CorpusBusy`; the TUI keeps what it already shows, says the corpus is busy, and
retries on a timer. Filters are answered from an in-memory index while the file is unchanged
(`index_cache`).

Statistics and graphs come from `services.stats`, the same functions `tracefail stats` and
`tracefail graph` call, so the screens and the CLI give one answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import closing, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from tracefail import taxonomy
from tracefail.analysis.change_points import change_points
from tracefail.ingest.fidelity import metadata_text
from tracefail.model import Attribution, Label
from tracefail.services import attribution as attribution_service
from tracefail.services import ops as ops_service
from tracefail.services import stats as stats_service
from tracefail.services.attribution import ReviewPanel
from tracefail.services.clusters import Clusters, failure_clusters
from tracefail.services.corpus import may_write
from tracefail.services.diff import RunDiff, diff_runs
from tracefail.services.index_cache import IndexCache
from tracefail.services.ops import Ops
from tracefail.services.read_hold import ReadHold
from tracefail.services.search import matching_traces, trace_matches
from tracefail.services.spans import span_waterfall
from tracefail.services.stats import SelectionStats, TraceGraph
from tracefail.services.views import CorpusPage, Facets, Receipt, TraceView
from tracefail.store import Database, DatabaseLocked, StoreError, open_waiting
from tracefail.store import export as export_store
from tracefail.store import facets as facet_store
from tracefail.store import human as human_store
from tracefail.store import selection as selection_store
from tracefail.store import trace_view as view_store
from tracefail.store.corpus_index import CorpusIndex, indexed_page
from tracefail.store.db import snapshot_path
from tracefail.store.partitioned import is_partitioned
from tracefail.store.selection import CorpusFilter
from tracefail.store.traces import trace_header

__all__ = ["BrowseService", "CorpusBusy", "LiveState", "StoreError"]

T = TypeVar("T")
# How long a read or a human label waits for another process' lock before the browser says the
# corpus is busy (and retries on a timer): short, the screen must answer
LOCK_WAIT_S = 1.0


class CorpusBusy(Exception):
    """Another process holds the corpus' write lock; retrying later can succeed."""


@dataclass(frozen=True)
class LiveState:
    """Whether `tracefail serve` is writing the corpus (reads then see the copy it publishes
    after commits, at most a few seconds old) and how many traces that copy holds."""

    serving: bool
    traces: int


class BrowseService:
    """Reads share one connection held `hold_s` after the last (0: opened and closed per call),
    writes open their own, so the browser holds the corpus' lock only while it is in use."""

    def __init__(
        self,
        path: Path | str,
        user: str,
        *,
        wait_s: float = LOCK_WAIT_S,
        use_index: bool = True,
        hold_s: float = 0.0,
    ) -> None:
        self.path = Path(path)
        self.user = user
        self.wait_s = wait_s
        self.facets_cache: Facets | None = None
        self.index = IndexCache(self.path, enabled=use_index)
        self.reads = ReadHold(lambda: self._connect(read_only=True), hold_s)

    @property
    def source(self) -> str:
        return f"human:{self.user}"

    def prepare(self) -> None:
        """Migrate the schema once if needed (needs the write lock briefly; skipped when busy)."""
        if is_partitioned(self.path):
            return  # a Parquet corpus: read-only, its schema is built in memory on every open
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such database (run `tracefail ingest` first)")
        if not may_write(self.path):  # a corpus this user may only read: as it is
            Database(self.path, read_only=True).close()
            return
        with suppress(DatabaseLocked):  # a writer is running and migrated it; reads retry until it is done
            Database(self.path).close()

    def _connect(self, read_only: bool) -> Database:
        if not is_partitioned(self.path) and not self.path.exists():
            # a write would create a new, empty corpus and "save" the label there
            raise StoreError(
                f"{self.path}: the corpus file is gone (deleted or moved while the browser had it "
                "open); nothing was written"
            )
        try:
            return open_waiting(self.path, self.wait_s, read_only=read_only)
        except DatabaseLocked as exc:
            raise CorpusBusy(str(exc)) from None

    def close(self) -> None:
        """Let go of the file now (the browser quits)."""
        self.reads.close()

    def read(self, fn: Callable[[Database], T]) -> T:
        with self.reads.reading() as db:
            return fn(db)

    def write(self, fn: Callable[[Database], T]) -> T:
        self.index.writes += 1
        self.index.drop()  # before and after: no read may pair the old index with the new file
        try:
            with self.reads.exclusive(), closing(self._connect(read_only=False)) as db:
                done = fn(db)
                if self.facets_cache is not None:  # a new label source is a filter value at once
                    self.facets_cache = _facets(db)
                return done
        finally:
            self.index.writes += 1
            self.index.drop()

    # --- the in-memory index (see `index_cache`) ----------------------------------------------
    @property
    def index_ready(self) -> bool:
        return self.index.ready

    @property
    def index_wanted(self) -> bool:
        """True when filters would be answered with SQL and no index is being built."""
        return self.index.wanted

    def build_index(self) -> float | None:
        """Build the index now (in a worker); seconds taken, or None when off or already building."""
        return self.index.build(self.read)

    def _select(self, f: CorpusFilter, scan: bool = True) -> tuple[CorpusIndex, np.ndarray] | None:
        return self.index.select(f, self.read, scan)

    # --- corpus ----------------------------------------------------------------------------------
    def facets(self) -> Facets:
        self.facets_cache = self.read(_facets)
        return self.facets_cache

    def count(self, f: CorpusFilter) -> int:
        found = self._select(f)
        if found is not None:
            return len(found[1])
        return self.read(lambda db: _count(db, _text_as_ids(db, f)))

    def live(self) -> LiveState:
        """Opens nothing unless serve's copy exists (polled on a timer, it must not keep the file
        held for nothing); that copy is read and closed at once (`ReadHold`)."""
        if not snapshot_path(self.path).exists():
            return LiveState(serving=False, traces=0)
        return self.read(
            lambda db: LiveState(db.snapshot_of is not None, selection_store.count_traces(db, CorpusFilter()))
        )

    def page(self, f: CorpusFilter, offset: int, limit: int) -> CorpusPage:
        found = self._select(f)
        if found is not None:
            return CorpusPage(offset, indexed_page(*found, offset, limit))
        return self.read(lambda db: CorpusPage(offset, _page(db, _text_as_ids(db, f), offset, limit)))

    def indexed_page_and_count(self, f: CorpusFilter, limit: int) -> tuple[CorpusPage, int] | None:
        """The first page and the count from the index alone, in milliseconds and without
        touching the file (fit for the UI thread); None when only a query can answer."""
        found = self._select(f, scan=False)
        if found is None:
            return None
        return CorpusPage(0, indexed_page(*found, 0, limit)), len(found[1])

    def page_and_count(self, f: CorpusFilter, limit: int, on_page: Callable[[CorpusPage], None]) -> int:
        """The first page (handed to `on_page` at once), then the count, on one connection. Free-text
        words are searched once, on that connection, and the page is handed over before it closes:
        the count and the close overlap the paint."""
        found = self._select(f, scan=False)
        if found is not None:
            on_page(CorpusPage(0, indexed_page(*found, 0, limit)))
            return len(found[1])

        def run(db: Database) -> int:
            found = self.index.select(f, lambda query: query(db))  # the index, the text searched here
            if found is not None:
                on_page(CorpusPage(0, indexed_page(*found, 0, limit)))
                return len(found[1])
            resolved = _text_as_ids(db, f)
            on_page(CorpusPage(0, _page(db, resolved, 0, limit)))
            return _count(db, resolved)

        return self.read(run)

    def sparks(self, trace_ids: list[str]) -> tuple[str | None, dict[str, list[float]]]:
        """(feature name, per-step values by trace) for the corpus table's sparkline column."""
        return self.read(lambda db: view_store.sparklines(db, trace_ids))

    def export_jsonl(self, f: CorpusFilter, out: Path) -> int:
        return self.read(lambda db: export_store.export_selection(db, f, out))

    def ops(self) -> Ops:
        """The operations dashboard, as `tracefail stats --section ops` computes it."""
        return self.read(lambda db: ops_service.ops(db))

    def stats(self, f: CorpusFilter) -> SelectionStats:
        """The statistics screen's numbers for the selection, as `tracefail stats` counts them."""
        return self.read(lambda db: stats_service.selection_stats(db, f))

    def review_panel(self, ranker_path: Path | None) -> ReviewPanel:
        """The review view: unlabelled failures ordered as `tracefail review` orders them, and the
        learning curve of every user's `human:` marks."""
        return self.read(lambda db: attribution_service.review_panel(db, ranker_path=ranker_path))

    # --- one trace -------------------------------------------------------------------------------
    def trace(self, trace_id: str) -> TraceView | None:
        def run(db: Database) -> TraceView | None:
            head = trace_header(db, trace_id)
            if head is None:
                return None
            steps = view_store.trace_steps(db, trace_id).to_dicts()
            for step in steps:  # the text adapters kept in metadata, readable in the step detail
                step["kept"] = metadata_text(_json(step.pop("metadata")))
            if steps:
                steps[0]["kept_with_trace"] = metadata_text(_json(head.get("metadata")))
            features = view_store.step_features(db, trace_id)
            return TraceView(
                head=head,
                steps=steps,
                labels=view_store.trace_labels(db, trace_id).to_dicts(),
                attributions=view_store.trusted_attributions(db, trace_id),
                features=features,
                flagged=view_store.flagged_steps(db, trace_id),
                changes={name: change_points(values) for name, values in features.items()},
                has_spans=any(s["parent_span_id"] for s in steps),
                spans=span_waterfall(db, trace_id) if any(s["parent_span_id"] for s in steps) else (),
            )

        return self.read(run)

    def graph(self, trace_id: str) -> TraceGraph:
        """The trace's hand-off graph, as `tracefail graph TRACE` builds it."""
        return self.read(lambda db: stats_service.trace_graph(db, trace_id))

    def search(self, trace_id: str, text: str) -> list[int]:
        """Steps of one trace matching `text` (words, pre*, "phrases"), in trace order."""
        return self.read(lambda db: trace_matches(db, trace_id, text))

    def diff(self, trace_a: str, trace_b: str) -> RunDiff:
        """Two runs aligned step by step, as `tracefail diff A B` shows them."""
        return self.read(lambda db: diff_runs(db, trace_a, trace_b))

    def clusters(self) -> Clusters:
        """Failing traces grouped by failure signature, as `tracefail clusters` lists them."""
        return self.read(failure_clusters)

    def taxonomy_modes(self) -> list[tuple[str, str, str, str]]:
        """Modes a human may add: the corpus' stored taxonomies, else the shipped default."""
        stored = self.read(facet_store.taxonomy_modes)
        if stored:
            return stored
        tax = taxonomy.find().taxonomy
        return [(tax.id, tax.version, m.id, m.name) for m in tax.modes]

    # --- human labels (appended as source human:<user>; other sources are never changed) --------
    def label(
        self,
        trace_id: str,
        mode_id: str,
        present: bool,
        *,
        taxonomy: tuple[str, str],
        probability: float | None = None,
        evidence_steps: list[int] | None = None,
        agent: str | None = None,
        rationale: str | None = None,
        based_on: int | None = None,
    ) -> Receipt:
        label = Label(
            trace_id=trace_id,
            taxonomy_id=taxonomy[0],
            taxonomy_version=taxonomy[1],
            mode_id=mode_id,
            present=present,
            probability=probability if probability is not None else float(present),
            evidence_steps=evidence_steps or [],
            agent=agent,
            rationale=rationale,
            source=self.source,
            metadata={"based_on_label": based_on} if based_on is not None else {},
        )
        row_id = self.write(lambda db: human_store.add_human_label(db, label))
        verb = "present" if present else "absent"
        return Receipt("labels", row_id, trace_id, f"{mode_id} marked {verb} by {self.source}")

    def review(self, trace_id: str, judged: dict[str, Any], accept: bool) -> Receipt:
        """Accept or reject another source's label: a human label that agrees or disagrees."""
        present = bool(judged["present"]) if accept else not bool(judged["present"])
        action = "accepted" if accept else "rejected"
        theirs = "present" if judged["present"] else "absent"
        receipt = self.label(
            trace_id,
            judged["mode_id"],
            present,
            taxonomy=(judged["taxonomy_id"], judged["taxonomy_version"]),
            evidence_steps=list(judged["evidence_steps"] or []),
            agent=judged["agent"],
            rationale=f"{action} {judged['source']} label {judged['label_id']}",
            based_on=judged["label_id"],
        )
        # reject means "this verdict is wrong": say exactly which verdict was stored
        said = f"{'accepting' if accept else 'rejecting'} {judged['source']}'s {theirs}"
        mine = "present" if present else "absent"
        return replace(receipt, description=f"you: {judged['mode_id']} {mine}, {said}")

    def mistake(self, trace_id: str, agent: str | None, step_idx: int, reason: str | None = None) -> Receipt:
        attribution = Attribution(
            trace_id=trace_id,
            agent=agent,
            step_idx=step_idx,
            reason=reason,
            probability=1.0,
            source=self.source,
        )
        row_id = self.write(lambda db: human_store.add_human_attribution(db, attribution))
        return Receipt("attributions", row_id, trace_id, f"mistake set to {agent} at step {step_idx}")

    def undo(self, receipt: Receipt) -> bool:
        return self.write(lambda db: human_store.undo_human_write(db, receipt.table, receipt.row_id))


def _text_as_ids(db: Database, f: CorpusFilter) -> CorpusFilter | None:
    """`f` with its free-text words replaced by the ids of the traces that match them (one search
    of the full-text index, then a join with that list), None when no trace can match."""
    if not f.text:
        return f
    hits = matching_traces(db, f.text).to_list()
    if f.trace_ids:
        wanted = set(f.trace_ids)
        hits = [h for h in hits if h in wanted]
    return replace(f, text=None, trace_ids=tuple(hits)) if hits else None


def _page(db: Database, f: CorpusFilter | None, offset: int, limit: int) -> list[dict[str, Any]]:
    return [] if f is None else selection_store.page_traces(db, f, offset, limit).to_dicts()


def _count(db: Database, f: CorpusFilter | None) -> int:
    return 0 if f is None else selection_store.count_traces(db, f)


def _json(value: Any) -> dict[str, Any]:
    """A JSON column's value as a dict (DuckDB hands JSON over as text)."""
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def _facets(db: Database) -> Facets:
    facets = facet_store.facets(db)
    if not facets.categories:  # no taxonomy stored yet: categories of the shipped default
        for mode in taxonomy.find().taxonomy.modes:
            facets.categories.setdefault(mode.category, []).append(mode.id)
    return facets
