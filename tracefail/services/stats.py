"""The facade for statistics, graphs, slices, audits and reports, shared by CLI and TUI.

Each function opens nothing and prints nothing: it takes an open Database, checks its
arguments (raising StatsUsageError with one line a user can act on) and returns tables/results.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import polars as pl

from tracefail.analysis import stats as analysis
from tracefail.analysis.audit import AuditResult
from tracefail.graph import handoff
from tracefail.graph.handoff import GraphMeasures
from tracefail.model import HEADLINE_FEATURES
from tracefail.store import Database, trace_view
from tracefail.store import selection as selection_store
from tracefail.store import stats as stats_store
from tracefail.store.selection import CorpusFilter
from tracefail.taxonomy import DEFAULT_TAXONOMY, TaxonomyFile, find


class StatsUsageError(ValueError):
    """An argument that cannot work (unknown grouping, mode, format); the message says why."""


def load_taxonomy(ref: str) -> TaxonomyFile:
    from tracefail.taxonomy import TaxonomyError

    try:
        return find(ref)
    except TaxonomyError as exc:
        raise StatsUsageError(str(exc)) from None


def _check_source(db: Database, source: str) -> None:
    try:
        analysis.check_source(db, source)
    except analysis.SourceError as exc:
        raise StatsUsageError(str(exc)) from None


def _check_filter(db: Database, words: str, option: str) -> None:
    """A CLI flag's value checked by the filter language, so both take the same values."""
    from tracefail.services.filter_language import FilterError, corpus_filter

    try:
        corpus_filter(db, words)
    except FilterError as exc:
        raise StatsUsageError(f"{option}: {exc}") from None


def _check_by(by: str | None) -> None:
    if by is not None and by not in analysis.GROUPINGS:
        raise StatsUsageError(f"--by {by}: not a grouping (choose from {', '.join(analysis.GROUPINGS)})")


def stats(
    db: Database, *, taxonomy: str = "mast-v1", source: str = analysis.DEFAULT_SOURCE, by: str | None = None
) -> analysis.Stats:
    """Every statistics section for the labels of `source` mapped onto `taxonomy`."""
    _check_by(by)
    _check_source(db, source)
    return analysis.compute(db, load_taxonomy(taxonomy), source, by)


@dataclass(frozen=True)
class ModeRate:
    """One mode's prevalence in one group, as the `modes` section of `tracefail stats` has it."""

    group: str
    mode_id: str
    labelled: int  # traces some selected source labelled for the mode
    affected: int  # of those, traces where some source's latest label says present
    prevalence: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class ModePair:
    mode_a: str
    mode_b: str
    traces: int  # traces with both modes present


@dataclass(frozen=True)
class PositionBin:
    bin: int  # tenths of the trace length
    mistakes: int  # attributed mistake steps in the bin


@dataclass(frozen=True)
class SelectionStats:
    """What the TUI's stats screen draws, for the traces the corpus filter selects: the same
    prevalence and co-occurrence `tracefail stats --by framework|llm` computes."""

    taxonomy: str
    total: int
    policy: str  # how labels became one verdict per (trace, mode), as `tracefail stats` says it
    sources: tuple[tuple[str, int, str], ...]  # (source, labels it decided, "" or judge validation)
    by_framework: tuple[ModeRate, ...]
    by_llm: tuple[ModeRate, ...]
    cooccurrence: tuple[ModePair, ...]
    positions: tuple[PositionBin, ...]


def _rates(frame: pl.DataFrame) -> tuple[ModeRate, ...]:
    # by the interval's lower bound: 1/1 = 100% (interval 21-100%) does not lead over 40/50
    present = frame.filter(pl.col("affected") > 0).sort(
        ["ci_low", "prevalence", "group", "mode_id"], descending=[True, True, False, False]
    )
    return tuple(
        ModeRate(
            group=r["group"],
            mode_id=r["mode_id"],
            labelled=r["labelled"],
            affected=r["affected"],
            prevalence=r["prevalence"],
            ci_low=r["ci_low"],
            ci_high=r["ci_high"],
        )
        for r in present.iter_rows(named=True)
    )


def selection_stats(
    db: Database,
    within: CorpusFilter,
    *,
    taxonomy: str = DEFAULT_TAXONOMY,
    source: str = analysis.DEFAULT_SOURCE,
    top_pairs: int = 15,
) -> SelectionStats:
    """Prevalence per framework and per llm, co-occurring modes and mistake positions of the
    selected traces, from the same selection tables and source policy as `tracefail stats`
    (trusted by default; latest label per source, older taxonomy rounds remapped)."""
    loaded = load_taxonomy(taxonomy)
    validation = analysis.judge_validation(db, loaded)
    analysis.select(db, loaded, source, within)
    used = analysis.source_table(db, validation)
    pairs = analysis.cooccurrence(db).filter(pl.col("n_ab") > 0)
    pairs = pairs.sort(["n_ab", "mode_a", "mode_b"], descending=[True, False, False]).head(top_pairs)
    tax = loaded.taxonomy
    return SelectionStats(
        taxonomy=f"{tax.id}@{tax.version}",
        total=selection_store.count_traces(db, within),
        policy=analysis.policy_text(source),
        sources=tuple(used.select("source", "counted", "validation").iter_rows()),
        by_framework=_rates(analysis.mode_prevalence(db, loaded, "framework")),
        by_llm=_rates(analysis.mode_prevalence(db, loaded, "llm")),
        cooccurrence=tuple(
            ModePair(a, b, n) for a, b, n in pairs.select("mode_a", "mode_b", "n_ab").iter_rows()
        ),
        positions=tuple(
            PositionBin(b, n) for b, n in stats_store.attribution_positions(db, within).iter_rows()
        ),
    )


@dataclass(frozen=True)
class TraceGraph:
    trace_id: str
    framework: str | None
    graph: nx.DiGraph
    measures: GraphMeasures
    flagged: list[int]
    mistake_agent: str | None  # of the most trusted source's attribution (its step's speaker)
    mistake_source: str | None = None  # that source and whether it is validated


def trace_graph(db: Database, trace_id: str) -> TraceGraph:
    """The hand-off graph of one trace with the flagged steps and the chosen (newest)
    attribution's agent marked: the CLI's `graph TRACE` and the TUI's graph screen."""
    from tracefail.services.selection import UnknownTraceError, resolve_id
    from tracefail.store.traces import get_trace

    try:
        trace_id = resolve_id(db, trace_id)
    except UnknownTraceError as exc:
        raise StatsUsageError(str(exc)) from None
    found = get_trace(db, trace_id)
    if found is None:
        raise StatsUsageError(f"no trace {trace_id!r} in {db.path}")
    flagged = trace_view.flagged_steps(db, trace_id)
    trusted = trace_view.trusted_attributions(db, trace_id)
    mistake = trusted[0]["agent"] if trusted else None
    graph = handoff.handoff_graph(found["steps"], flagged=flagged, mistake_agent=mistake)
    return TraceGraph(
        trace_id,
        found["trace"]["framework"],
        graph,
        handoff.measures(graph, found["steps"]),
        flagged,
        mistake,
        f"{trusted[0]['source']}, {trusted[0]['validation']}" if trusted else None,
    )


def corpus_graphs(db: Database, framework: str | None = None) -> dict[str, tuple[nx.DiGraph, GraphMeasures]]:
    """One hand-off graph per framework, edges summed over its traces."""
    if framework:
        _check_filter(db, f"framework:{shlex.quote(framework)}", "--framework")
    edges = stats_store.handoff_edges(db, framework)
    if framework and not edges.height:
        raise StatsUsageError(f"{db.path}: no hand-offs in traces of framework {framework!r}")
    out: dict[str, tuple[nx.DiGraph, GraphMeasures]] = {}
    for (name,), part in edges.partition_by("framework", as_dict=True, maintain_order=True).items():
        graph = handoff.corpus_graph(part.iter_rows(named=True))
        out[str(name)] = (graph, handoff.measures(graph))
    return out


@dataclass
class DetectReport:
    traces: int
    written: int  # labels stored (traces already done by a heuristic are skipped)
    present: dict[str, int]
    versus_judge: pl.DataFrame  # per heuristic source: kappa etc. against the judge on shared traces


def detect(
    db: Database, *, taxonomy: str = "mast-v1", batch: int = 2000, boilerplate_traces: int = 3
) -> DetectReport:
    """Run the repetition and loop heuristics over every trace not yet labelled by them, store the
    labels, and compare them with the judge's labels for the same modes."""
    from tracefail.analysis import heuristics
    from tracefail.store.labels import done_trace_ids
    from tracefail.store.traces import insert_labels, trace_ids

    loaded = load_taxonomy(taxonomy)
    for mode in (heuristics.REPETITION_MODE, heuristics.LOOP_MODE):
        if mode not in {m.id for m in loaded.taxonomy.modes}:
            raise StatsUsageError(
                f"taxonomy {loaded.taxonomy.id} has no mode {mode}; the heuristics label MAST modes"
            )
    done = set.intersection(*(done_trace_ids(db, s) for s in heuristics.SOURCES))
    todo = [t for t in trace_ids(db) if t not in done]
    ignore = stats_store.boilerplate_texts(db, boilerplate_traces)
    written = 0
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        steps = stats_store.steps_of(db, chunk)
        labels = []
        for (trace_id,), part in steps.partition_by("trace_id", as_dict=True).items():
            labels.extend(heuristics.trace_labels(str(trace_id), part.to_dicts(), loaded.taxonomy, ignore))
        with db.transaction():
            insert_labels(db, labels)
        written += len(labels)
    analysis.select(db, loaded, "all")
    present = {
        source: int(n)
        for source, n in db.rows(
            "SELECT source, count(*) FILTER (WHERE present) FROM stats_labels "
            "WHERE source LIKE 'heuristic:%' GROUP BY 1"
        )
    }
    agreement = analysis.agreement(db)
    versus = agreement.filter(
        (pl.col("level") == "source")
        & pl.col("rater_a").str.starts_with("heuristic:")
        & pl.col("rater_b").str.starts_with("llm-judge:")
    )
    return DetectReport(len(todo), written, present, versus)


def slices(
    db: Database,
    *,
    taxonomy: str = "mast-v1",
    source: str = analysis.DEFAULT_SOURCE,
    mode: str | None = None,
    min_size: int = 10,
    min_lift: float = 1.5,
    features: bool = True,
) -> pl.DataFrame:
    """Slices of traces (metadata, binned length/agents/feature means) where a mode's rate is far
    above the corpus rate, best first."""
    from tracefail.analysis import slices as slicing

    _check_source(db, source)
    loaded = load_taxonomy(taxonomy)
    if mode is not None and mode not in {m.id for m in loaded.taxonomy.modes}:
        raise StatsUsageError(f"--mode {mode}: not a mode of taxonomy {loaded.taxonomy.id}")
    analysis.select(db, loaded, source)
    verdicts = stats_store.verdict_table(db)
    if mode is not None:
        verdicts = verdicts.filter(pl.col("mode_id") == mode)
    attributes = stats_store.trace_attributes(db)
    numeric = list(slicing.NUMERIC)
    if features:
        means = stats_store.trace_feature_means(db)
        if means.height:
            wide = means.pivot(on="name", index="trace_id", values="value")
            attributes = attributes.join(wide, on="trace_id", how="left")
            numeric += [c for c in wide.columns if c != "trace_id"]
    conditions = slicing.slice_table(attributes, numeric)
    return slicing.find_slices(verdicts, conditions, min_size=min_size, min_lift=min_lift)


def audit(
    db: Database,
    *,
    mode: str,
    threshold: float,
    taxonomy: str = "mast-v1",
    source: str = analysis.DEFAULT_SOURCE,
    alpha: float = 0.05,
) -> AuditResult:
    """Test "mode's rate > threshold" over the trace verdicts in the order labels were written."""
    from tracefail.analysis.audit import audit as run_audit

    _check_source(db, source)
    loaded = load_taxonomy(taxonomy)
    if mode not in {m.id for m in loaded.taxonomy.modes}:
        raise StatsUsageError(f"--mode {mode}: not a mode of taxonomy {loaded.taxonomy.id}")
    if not 0 < threshold < 1:
        raise StatsUsageError(f"--threshold {threshold}: must be strictly between 0 and 1")
    if not 0 < alpha < 1:
        raise StatsUsageError(f"--alpha {alpha}: must be strictly between 0 and 1")
    analysis.select(db, loaded, source)
    sequence = stats_store.mode_sequence(db, mode)
    return run_audit(sequence["present"].to_list(), threshold, alpha=alpha)


def report(
    db: Database,
    output: Path,
    *,
    fmt: str = "html",
    taxonomy: str = "mast-v1",
    source: str = analysis.DEFAULT_SOURCE,
) -> list[Path]:
    """Write the HTML report (one self-contained file) or the charts as PNGs into a folder."""
    from tracefail.analysis import report as reporting
    from tracefail.store.db import now

    if fmt not in ("html", "png"):
        raise StatsUsageError(f"--format {fmt}: choose html or png")
    _check_source(db, source)
    loaded = load_taxonomy(taxonomy)
    result = analysis.compute(db, loaded, source)
    by_framework = analysis.mode_prevalence(db, loaded, "framework")
    split = stats_store.step_feature_split(db, limit_names=4, prefer=list(HEADLINE_FEATURES))
    counts = stats_store.corpus_counts(db)
    rendered = [
        (chart, reporting.render_png(chart)) for chart in reporting.charts(result, by_framework, split)
    ]
    if fmt == "png":
        return reporting.write_pngs(rendered, output)
    generated = now().strftime("%Y-%m-%d %H:%M UTC")
    from tracefail.services.ops import ops

    page = reporting.html_report(result, rendered, counts, generated, ops(db).table)
    output.write_text(page, encoding="utf-8")
    return [output]
