"""The browse service on a real DuckDB file: filters, sort, pages, one trace, labels, locks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tracefail.services.browse import BrowseService, CorpusBusy, StoreError
from tracefail.services.filter_language import CorpusFilter, FeatureThreshold
from tracefail.services.markdown import trace_markdown
from tracefail.store import Database
from tracefail.store.human import undo_human_write

SPAN_TRACE = "demo:spans"  # built in conftest.py
INJECT_TRACE = "demo:inject"


def _ids(service: BrowseService, f: CorpusFilter) -> list[str]:
    return [r["trace_id"] for r in service.page(f, 0, 100).rows]


def test_filters_select_the_right_traces(service: BrowseService) -> None:
    assert service.count(CorpusFilter()) == 22
    assert _ids(service, CorpusFilter(framework="OpenAI Agents")) == [SPAN_TRACE]
    assert service.count(CorpusFilter(mode="1.1")) == 2  # present from the judge on two traces
    assert service.count(CorpusFilter(mode="3.2", source="dataset")) == 1
    assert service.count(CorpusFilter(agreement="disagree")) == 1  # judge says 1.1, dataset says no
    assert _ids(service, CorpusFilter(agreement="agree")) == [SPAN_TRACE]
    assert _ids(service, CorpusFilter(features=(FeatureThreshold("tok.surprisal_mean", ">", 8.0),))) == [
        SPAN_TRACE
    ]
    assert service.count(CorpusFilter(features=(FeatureThreshold("tok.surprisal_mean", ">", 99.0),))) == 0
    assert _ids(service, CorpusFilter(text="WRONG FLIGHT")) == [SPAN_TRACE]
    assert service.count(CorpusFilter(category_modes=("3.2", "3.3"))) == 1


def test_sort_and_pages(service: BrowseService) -> None:
    by_steps = service.page(CorpusFilter(sort="steps", descending=True), 0, 100).rows
    assert [r["n_steps"] for r in by_steps] == sorted((r["n_steps"] for r in by_steps), reverse=True)
    first, second = service.page(CorpusFilter(), 0, 5).rows, service.page(CorpusFilter(), 5, 5).rows
    assert len(first) == len(second) == 5
    assert {r["trace_id"] for r in first}.isdisjoint(r["trace_id"] for r in second)
    by_modes = service.page(CorpusFilter(sort="modes", descending=True), 0, 1).rows
    assert by_modes[0]["modes"] == ["1.1", "2.6"]


def test_sparkline_reads_the_first_uncertainty_feature(service: BrowseService) -> None:
    name, values = service.sparks([SPAN_TRACE, INJECT_TRACE])
    assert name == "tok.surprisal_mean"
    assert list(values) == [SPAN_TRACE] and len(values[SPAN_TRACE]) == 4
    assert service.sparks([INJECT_TRACE]) == (None, {})


def test_trace_view_flags_and_markdown(service: BrowseService) -> None:
    view = service.trace(SPAN_TRACE)
    assert view is not None and view.has_spans
    assert view.flagged == [3]  # the 3.2 evidence; step 2 errored, which the timeline shows apart
    # 2, 2.84, 2.91, 8.14: the jump into step 3 dwarfs the others (median-absolute-deviation rule)
    assert view.changes["tok.surprisal_mean"] == [3]
    assert sorted(view.features) == ["tok.entropy_mean", "tok.surprisal_mean"]
    markdown = trace_markdown(view)
    assert "## Labels" in markdown and "| 3.2 | True | 0.91 | llm-judge:abc123 |" in markdown
    assert "Booked the wrong flight" in markdown
    assert service.trace("no:such") is None
    assert service.search(SPAN_TRACE, "FLIGHT") == [0, 3]  # whole words: not "flights"
    assert service.search(SPAN_TRACE, "flight*") == [0, 2, 3]


def test_human_labels_append_and_undo(service: BrowseService, corpus_path: Path) -> None:
    view = service.trace(SPAN_TRACE)
    assert view is not None
    judged = next(
        lbl for lbl in view.labels if lbl["source"] == "llm-judge:abc123" and lbl["mode_id"] == "3.2"
    )
    rejected = service.review(SPAN_TRACE, judged, accept=False)
    mistake = service.mistake(SPAN_TRACE, "booker", 3, "booked without checking")
    with Database(corpus_path, read_only=True) as db:
        human = db.rows("SELECT mode_id, present, source, metadata FROM labels WHERE source = 'human:tester'")
        assert [(m, p, s) for m, p, s, _ in human] == [("3.2", False, "human:tester")]
        assert json.loads(human[0][3]) == {"based_on_label": judged["label_id"]}
        assert (
            db.rows(
                "SELECT count(*) FROM labels WHERE source = 'llm-judge:abc123' AND mode_id = '3.2' "
                "AND present"
            )[0][0]
            == 1
        )  # the judge's label is untouched
        assert db.rows("SELECT agent, step_idx FROM attributions WHERE source = 'human:tester'") == [
            ("booker", 3)
        ]
    assert service.undo(rejected) and service.undo(mistake)
    assert not service.undo(rejected)
    with Database(corpus_path, read_only=True) as db:
        assert db.rows("SELECT count(*) FROM labels WHERE source LIKE 'human:%'")[0][0] == 0
        assert db.rows("SELECT count(*) FROM attributions WHERE source LIKE 'human:%'")[0][0] == 0


def test_undo_refuses_other_sources(corpus_path: Path) -> None:
    with Database(corpus_path) as db:
        judge_id = db.rows("SELECT min(label_id) FROM labels")[0][0]
        assert not undo_human_write(db, "labels", judge_id)
        assert db.rows("SELECT count(*) FROM labels WHERE label_id = ?", [judge_id])[0][0] == 1


def test_export_selection_writes_only_the_selection(service: BrowseService, tmp_path: Path) -> None:
    target = tmp_path / "sel.jsonl"
    assert service.export_jsonl(CorpusFilter(mode="3.2"), target) == 1
    lines = target.read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["trace_id"] == SPAN_TRACE and len(record["steps"]) == 4 and len(record["labels"]) == 3


def test_a_writer_in_another_process_makes_reads_busy_not_crash(corpus_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', "
            "flush=True); time.sleep(30)",
            str(corpus_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        service = BrowseService(corpus_path, "tester", wait_s=0.05)
        with pytest.raises(CorpusBusy, match="open for writing in another process"):
            service.count(CorpusFilter())
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the lock goes with the process; the same service now reads
        try:
            assert service.count(CorpusFilter()) == 22
            break
        except CorpusBusy:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_injection_trace_is_stored_verbatim(service: BrowseService) -> None:
    view = service.trace(INJECT_TRACE)
    assert view is not None and view.steps[0]["content"].startswith("[bold red]PWNED[/]")


def test_each_source_counts_with_its_latest_label(service: BrowseService) -> None:
    view = service.trace(INJECT_TRACE)
    assert view is not None and view.labels == []
    service.label(INJECT_TRACE, "2.2", True, taxonomy=("mast", "1.0"))
    assert service.count(CorpusFilter(mode="2.2")) == 1
    service.label(INJECT_TRACE, "2.2", False, taxonomy=("mast", "1.0"))  # the same human changes their mind
    assert service.count(CorpusFilter(mode="2.2")) == 0
    assert service.page(CorpusFilter(framework="MetaGPT"), 0, 1).rows[0]["modes"] == []


def test_a_label_after_the_corpus_file_is_gone_is_refused_not_saved_elsewhere(corpus_path: Path) -> None:
    """The browser's write would have created a new, empty corpus at the path and said "saved"."""
    service = BrowseService(corpus_path, "tester", hold_s=60)
    assert service.count(CorpusFilter()) == 22  # the read connection is held
    moved = corpus_path.with_name("moved.duckdb")
    corpus_path.rename(moved)
    with pytest.raises(StoreError, match=r"the corpus file is gone .*nothing was written"):
        service.mistake(SPAN_TRACE, "booker", 3, "after the move")
    assert not corpus_path.exists()
    service.close()
    with Database(moved, read_only=True) as db:
        assert db.rows("SELECT count(*) FROM attributions WHERE source = 'human:tester'") == [(0,)]
