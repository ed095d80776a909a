"""The facade `tracefail browse` talks to: corpus pages, one trace, human labels, export.

Lock design: DuckDB lets one process write a file, and while it does no other process can
open it, not even read-only. A TUI left open for hours must not block `tracefail label`, and
must not crash while one runs. So the browser never holds the file: every call opens a
connection, does its work and closes it (reads read-only, human label writes read-write).
When another process holds the lock the call retries briefly, then raises `CorpusBusy`; the
TUI keeps what it already shows, says the corpus is busy, and retries on a timer.

Index design: once the first page is shown, the TUI asks the service to build a `CorpusIndex`
(one row per trace with its modes, sources, agreement flags and feature ranges) and later
filter changes, counts and pages are answered from it in memory (numpy masks over row
positions, every sort order precomputed), in milliseconds, without opening the file. The
index belongs to one state of the file: it is stamped with the file's and its write-ahead
log's identity, size and change times before it is read, and any call that finds another
stamp drops it and answers with SQL until a new one is built (so a `tracefail label` run, an
ingest or a human label elsewhere is never hidden). This service's own human writes drop it
too. Free-text words go through `tracefail.services.search` (the full-text index when it is
current, else a scan), once per search text and index.
"""

from __future__ import annotations

import math
import os
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import polars as pl

from tracefail import taxonomy
from tracefail.model import Attribution, Label
from tracefail.services.search import matching_traces, trace_matches
from tracefail.services.spans import SpanTiming, span_waterfall
from tracefail.store import Database, DatabaseLocked
from tracefail.store import browse as store
from tracefail.store.browse import CorpusFilter, CorpusIndex, Facets, FeatureThreshold
from tracefail.store.search import SearchQueryError, parse_query

T = TypeVar("T")

FILTER_KEYS = ("framework", "llm", "benchmark", "outcome", "mode", "category", "source", "agree", "sort")
FILTER_HELP = (
    "framework:AG2 llm:gpt-4o mode:1.3 category:<name> source:human agree:no outcome:failure "
    "tok.surprisal_mean>4 sort:-steps, other words search step text"
)


class CorpusBusy(Exception):
    """Another process holds the corpus' write lock; retrying later can succeed."""


class FilterError(ValueError):
    """A filter the user typed cannot be understood; the message says which part."""


def parse_filter(text: str, categories: dict[str, list[str]] | None = None) -> CorpusFilter:
    """Turn the filter bar's `key:value` words into a CorpusFilter; other words are text search."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise FilterError(f"cannot read filter: {exc}") from None
    values: dict[str, Any] = {}
    thresholds: list[FeatureThreshold] = []
    free: list[str] = []
    for word in words:
        key, sep, value = word.partition(":")
        if sep and key in FILTER_KEYS:
            if not value:
                raise FilterError(f"{key}: needs a value")
            if key == "sort":
                descending = value.startswith("-")
                column = value.lstrip("-")
                if column not in store.SORT_COLUMNS:
                    raise FilterError(
                        f"cannot sort by {column!r}; use one of {', '.join(store.SORT_COLUMNS)}"
                    )
                values.update(sort=column, descending=descending)
            elif key == "agree":
                if value not in ("yes", "no"):
                    raise FilterError("agree: takes yes (sources agree) or no (sources disagree)")
                values["agreement"] = "agree" if value == "yes" else "disagree"
            elif key == "category":
                modes = (categories or {}).get(value)
                if not modes:
                    known = ", ".join(sorted(categories or {})) or "none stored"
                    raise FilterError(f"unknown category {value!r} (known: {known})")
                values.update(category=value, category_modes=tuple(modes))
            else:
                values[key] = value
            continue
        threshold = _threshold(word)
        if threshold is not None:
            thresholds.append(threshold)
        else:
            # a quoted phrase ("wrong answer") stays a phrase for the search
            free.append(f'"{word}"' if " " in word and not word.startswith('"') else word)
    text = " ".join(free) or None
    if text is not None:
        try:
            parse_query(text)
        except SearchQueryError as exc:
            raise FilterError(str(exc)) from None
    return CorpusFilter(**values, features=tuple(thresholds), text=text)


def _threshold(word: str) -> FeatureThreshold | None:
    for op in (">=", "<=", ">", "<"):
        name, sep, value = word.partition(op)
        if sep and name and name.replace("_", "").replace(".", "").isalnum():
            try:
                return FeatureThreshold(name=name, op=op, value=float(value))  # type: ignore[arg-type]
            except ValueError:
                raise FilterError(f"{word}: {value!r} is not a number") from None
    return None


def format_filter(f: CorpusFilter) -> str:
    """The filter as the words that would produce it (for the status line and exports)."""
    words = [
        f"{k}:{getattr(f, k)}"
        for k in ("framework", "llm", "benchmark", "outcome", "mode", "source")
        if getattr(f, k)
    ]
    if f.category:
        words.append(f"category:{f.category}")
    if f.agreement:
        words.append("agree:" + ("yes" if f.agreement == "agree" else "no"))
    words += [f"{t.name}{t.op}{t.value:g}" for t in f.features]
    if f.sort != "trace_id" or f.descending:
        words.append(f"sort:{'-' if f.descending else ''}{f.sort}")
    if f.text:
        words.append(shlex.quote(f.text))
    return " ".join(words)


@dataclass
class CorpusPage:
    offset: int
    rows: list[dict[str, Any]]


@dataclass
class TraceView:
    """Everything the trace screen shows, loaded in one worker call."""

    head: dict[str, Any]
    steps: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    attributions: list[dict[str, Any]]
    features: dict[str, list[float | None]]
    flagged: list[int] = field(default_factory=list)
    has_spans: bool = False
    spans: tuple[SpanTiming, ...] = ()  # the span waterfall, when the trace has a span tree

    @property
    def trace_id(self) -> str:
        return str(self.head["trace_id"])


@dataclass
class SelectionStats:
    """What the stats screen draws, for the traces the corpus filter selects."""

    total: int
    by_framework: list[dict[str, Any]]
    by_llm: list[dict[str, Any]]
    cooccurrence: list[dict[str, Any]]
    positions: list[dict[str, Any]]


@dataclass(frozen=True)
class Receipt:
    """A human write, kept so it can be undone."""

    table: Literal["labels", "attributions"]
    row_id: int
    trace_id: str
    description: str


def flagged_steps(view: TraceView) -> list[int]:
    """Steps worth jumping to: evidence of present labels, mistake steps, errored steps."""
    flagged: set[int] = set()
    for label in view.labels:
        if label["present"]:
            flagged.update(label["evidence_steps"] or [])
    flagged.update(a["step_idx"] for a in view.attributions if a["step_idx"] is not None)
    flagged.update(s["step_idx"] for s in view.steps if (s["status"] or "").lower() == "error")
    return sorted(i for i in flagged if 0 <= i < len(view.steps))


def change_points(values: list[float | None], z: float = 2.0) -> list[int]:
    """Steps where a feature jumps: the step-to-step change is over `z` deviations of all changes."""
    deltas = [
        (i, b - a) for i, (a, b) in enumerate(pairwise(values), start=1) if a is not None and b is not None
    ]
    if len(deltas) < 3:
        return []
    mean = sum(d for _, d in deltas) / len(deltas)
    sd = math.sqrt(sum((d - mean) ** 2 for _, d in deltas) / len(deltas))
    if sd == 0:
        return []
    return [i for i, d in deltas if abs(d - mean) > z * sd]


def trace_markdown(view: TraceView, max_chars: int = 4000) -> str:
    """The trace as Markdown for pasting into an LLM, labels and mistake attached."""
    head = view.head
    lines = [
        f"# Trace {view.trace_id}",
        f"framework: {head.get('framework')} · llm: {head.get('llm')} · benchmark: "
        f"{head.get('benchmark')} · outcome: {head.get('outcome')}",
    ]
    if head.get("task"):
        lines += ["", "## Task", "", str(head["task"])]
    if view.labels:
        lines += [
            "",
            "## Labels",
            "",
            "| mode | present | p | source | evidence | rationale |",
            "|---|---|---|---|---|---|",
        ]
        for label in view.labels:
            rationale = (label["rationale"] or "").replace("|", "\\|").replace("\n", " ")
            lines.append(
                f"| {label['mode_id']} | {label['present']} | {label['probability']} | {label['source']} "
                f"| {label['evidence_steps'] or ''} | {rationale} |"
            )
    if view.attributions:
        lines += ["", "## Mistake attributions", ""]
        lines += [
            f"- {a['source']}: agent {a['agent']} at step {a['step_idx']}: {a['reason'] or ''}"
            for a in view.attributions
        ]
    lines += ["", "## Steps"]
    for step in view.steps:
        content = step["content"]
        cut = f"\n… ({len(content) - max_chars:,} more characters)" if len(content) > max_chars else ""
        lines += [
            "",
            f"### Step {step['step_idx']} · {step['agent'] or step['role'] or '?'}",
            "",
            "```text",
            content[:max_chars].replace("```", "ˋˋˋ") + cut,
            "```",
        ]
    return "\n".join(lines) + "\n"


FileStamp = tuple[tuple[int, int, int, int] | None, ...]


@dataclass(frozen=True)
class _Indexed:
    index: CorpusIndex
    stamp: FileStamp
    built_s: float


class BrowseService:
    """Short-lived connections per call so the browser never holds the corpus' lock."""

    def __init__(
        self,
        path: Path | str,
        user: str,
        *,
        retries: int = 3,
        backoff_s: float = 0.15,
        use_index: bool = True,
    ) -> None:
        self.path = Path(path)
        self.user = user
        self.retries = retries
        self.backoff_s = backoff_s
        self.use_index = use_index
        self.facets_cache: Facets | None = None
        self._indexed: _Indexed | None = None
        self._building = threading.Lock()
        self._writes = 0  # this service's own writes, counted so a build overlapping one is dropped
        # the last selection (for paging through it) and the last text searches, per index
        self._selection: tuple[CorpusFilter, _Indexed, np.ndarray] | None = None
        self._text: dict[tuple[str, int], pl.Series] = {}

    @property
    def source(self) -> str:
        return f"human:{self.user}"

    def prepare(self) -> None:
        """Migrate the schema once if needed (needs the write lock briefly; skipped when busy)."""
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such database (run `tracefail ingest` first)")
        with suppress(DatabaseLocked):  # a writer is running and migrated it; reads retry until it is done
            Database(self.path).close()

    @contextmanager
    def _open(self, read_only: bool) -> Iterator[Database]:
        for attempt in range(self.retries + 1):
            try:
                db = Database(self.path, read_only=read_only)
                break
            except DatabaseLocked as exc:
                if attempt == self.retries:
                    raise CorpusBusy(str(exc)) from None
                time.sleep(self.backoff_s * (attempt + 1))
        try:
            yield db
        finally:
            db.close()

    def read(self, fn: Callable[[Database], T]) -> T:
        with self._open(read_only=True) as db:
            return fn(db)

    def write(self, fn: Callable[[Database], T]) -> T:
        self._writes += 1
        self._drop_index()  # before and after: no read may pair the old index with the new file
        try:
            with self._open(read_only=False) as db:
                return fn(db)
        finally:
            self._writes += 1
            self._drop_index()

    # --- the in-memory index (see the module docstring) ----------------------------------------
    def _stamp(self) -> FileStamp:
        """Identity, size and modification times of the file and its WAL: any commit changes them."""
        found = []
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                found.append(None)
            else:
                found.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        return tuple(found)

    def _drop_index(self) -> None:
        self._indexed = None
        self._selection = None
        self._text.clear()

    def _fresh(self) -> _Indexed | None:
        indexed = self._indexed
        if indexed is None or not self.use_index:
            return None
        if indexed.stamp != self._stamp():
            if self._indexed is indexed:
                self._drop_index()
            return None
        return indexed

    @property
    def index_ready(self) -> bool:
        return self._fresh() is not None

    @property
    def index_wanted(self) -> bool:
        """True when filters would be answered with SQL and no index is being built."""
        return self.use_index and not self._building.locked() and self._fresh() is None

    def build_index(self) -> float | None:
        """Read the index (2-3 s on 100k traces / 1.4M labels on a busy 2-core machine); seconds
        taken, or None when the index is off or another thread is building it."""
        if not self.use_index or not self._building.acquire(blocking=False):
            return None
        try:
            started, writes = time.perf_counter(), self._writes
            stamp = self._stamp()  # before reading: a commit during the read makes it stale at once
            index = self.read(store.corpus_index)
            for column in store.SORT_COLUMNS:  # every order now, so no filter change has to sort
                for descending in (False, True):
                    index.order(column, descending)
            built = _Indexed(index, stamp, time.perf_counter() - started)
            if self._writes == writes:  # else one of our own writes overlapped the read
                self._drop_index()  # selections and text hits of any earlier index go with it
                self._indexed = built
            return built.built_s
        finally:
            self._building.release()

    def _select(self, f: CorpusFilter, scan: bool = True) -> tuple[CorpusIndex, np.ndarray] | None:
        """The selection from the index, or None when there is no index for the file as it is
        (or, without `scan`, when its text words were not searched yet)."""
        indexed = self._fresh()
        if indexed is None:
            return None
        last = self._selection
        if last is not None and last[0] == f and last[1] is indexed:
            return indexed.index, last[2]
        text_ids = None
        if f.text:
            key = (f.text.lower(), id(indexed))
            text_ids = self._text.get(key)
            if text_ids is None and not scan:
                return None
            if text_ids is None:
                text_ids = self.read(lambda db: matching_traces(db, f.text or ""))
                if len(self._text) >= 8:
                    self._text.clear()
                self._text[key] = text_ids
        selected = store.select_indexed(indexed.index, f, text_ids)
        if self._fresh() is not indexed:  # the file changed while we filtered
            return None
        self._selection = (f, indexed, selected)
        return indexed.index, selected

    # --- corpus ----------------------------------------------------------------------------------
    def facets(self) -> Facets:
        facets = self.read(store.facets)
        if not facets.categories:  # no taxonomy stored yet: categories of the shipped default
            tax = taxonomy.find().taxonomy
            for mode in tax.modes:
                facets.categories.setdefault(mode.category, []).append(mode.id)
        self.facets_cache = facets
        return facets

    def count(self, f: CorpusFilter) -> int:
        found = self._select(f)
        if found is not None:
            return len(found[1])
        return self.read(lambda db: store.count_traces(db, f))

    def page(self, f: CorpusFilter, offset: int, limit: int) -> CorpusPage:
        found = self._select(f)
        if found is not None:
            return CorpusPage(offset, store.indexed_page(*found, offset, limit))
        return self.read(lambda db: CorpusPage(offset, store.page_traces(db, f, offset, limit).to_dicts()))

    def indexed_page_and_count(self, f: CorpusFilter, limit: int) -> tuple[CorpusPage, int] | None:
        """The first page and the count from the index alone, in milliseconds and without
        touching the file (fit for the UI thread); None when only a query can answer."""
        found = self._select(f, scan=False)
        if found is None:
            return None
        return CorpusPage(0, store.indexed_page(*found, 0, limit)), len(found[1])

    def page_and_count(self, f: CorpusFilter, limit: int, on_page: Callable[[CorpusPage], None]) -> int:
        """The first page (handed to `on_page` at once), then the count, on one connection."""
        found = self._select(f)
        if found is not None:
            on_page(CorpusPage(0, store.indexed_page(*found, 0, limit)))
            return len(found[1])

        def run(db: Database) -> int:
            on_page(CorpusPage(0, store.page_traces(db, f, 0, limit).to_dicts()))
            return store.count_traces(db, f)

        return self.read(run)

    def sparks(self, trace_ids: list[str]) -> tuple[str | None, dict[str, list[float]]]:
        """(feature name, per-step values by trace) for the corpus table's sparkline column."""
        return self.read(lambda db: store.sparklines(db, trace_ids))

    def export_jsonl(self, f: CorpusFilter, out: Path) -> int:
        return self.read(lambda db: store.export_selection(db, f, out))

    def stats(self, f: CorpusFilter) -> SelectionStats:
        def run(db: Database) -> SelectionStats:
            return SelectionStats(
                total=store.count_traces(db, f),
                by_framework=store.prevalence(db, f, "framework").to_dicts(),
                by_llm=store.prevalence(db, f, "llm").to_dicts(),
                cooccurrence=store.cooccurrence(db, f).to_dicts(),
                positions=store.failure_positions(db, f).to_dicts(),
            )

        return self.read(run)

    # --- one trace -------------------------------------------------------------------------------
    def trace(self, trace_id: str) -> TraceView | None:
        def run(db: Database) -> TraceView | None:
            head = store.trace_head(db, trace_id)
            if head is None:
                return None
            steps = store.trace_steps(db, trace_id).to_dicts()
            view = TraceView(
                head=head,
                steps=steps,
                labels=store.trace_labels(db, trace_id).to_dicts(),
                attributions=store.trace_attributions(db, trace_id).to_dicts(),
                features=store.step_features(db, trace_id),
                has_spans=any(s["parent_span_id"] for s in steps),
            )
            view.flagged = flagged_steps(view)
            if view.has_spans:
                view.spans = span_waterfall(db, trace_id)
            return view

        return self.read(run)

    def search(self, trace_id: str, text: str) -> list[int]:
        """Steps of one trace matching `text` (words, pre*, "phrases"), in trace order."""
        return self.read(lambda db: trace_matches(db, trace_id, text))

    def taxonomy_modes(self) -> list[tuple[str, str, str, str]]:
        """Modes a human may add: the corpus' stored taxonomies, else the shipped default."""
        stored = self.read(store.taxonomy_modes)
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
        row_id = self.write(lambda db: store.add_human_label(db, label))
        verb = "present" if present else "absent"
        return Receipt("labels", row_id, trace_id, f"{mode_id} marked {verb} by {self.source}")

    def review(self, trace_id: str, judged: dict[str, Any], accept: bool) -> Receipt:
        """Accept or reject another source's label: a human label that agrees or disagrees."""
        present = bool(judged["present"]) if accept else not bool(judged["present"])
        action = "accepted" if accept else "rejected"
        return self.label(
            trace_id,
            judged["mode_id"],
            present,
            taxonomy=(judged["taxonomy_id"], judged["taxonomy_version"]),
            evidence_steps=list(judged["evidence_steps"] or []),
            agent=judged["agent"],
            rationale=f"{action} {judged['source']} label {judged['label_id']}",
            based_on=judged["label_id"],
        )

    def mistake(self, trace_id: str, agent: str | None, step_idx: int, reason: str | None = None) -> Receipt:
        attribution = Attribution(
            trace_id=trace_id,
            agent=agent,
            step_idx=step_idx,
            reason=reason,
            probability=1.0,
            source=self.source,
        )
        row_id = self.write(lambda db: store.add_human_attribution(db, attribution))
        return Receipt("attributions", row_id, trace_id, f"mistake set to {agent} at step {step_idx}")

    def undo(self, receipt: Receipt) -> bool:
        return self.write(lambda db: store.undo_human_write(db, receipt.table, receipt.row_id))


def with_sort(f: CorpusFilter, column: str) -> CorpusFilter:
    """Sort by `column`; choosing the current column again flips the direction."""
    if column not in store.SORT_COLUMNS:
        raise FilterError(f"cannot sort by {column!r}")
    return replace(f, sort=column, descending=not f.descending if f.sort == column else False)
