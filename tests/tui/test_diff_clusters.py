"""Pilot tests of the run diff (space marks, d diffs) and the failure clusters screen (enter
filters the corpus to a cluster), on the real corpus file of conftest.py."""

from __future__ import annotations

from pathlib import Path

from pilot_wait import settle
from textual.widgets import DataTable, Static

from tracefail.services.browse import BrowseService
from tracefail.tui.app import TracefailApp
from tracefail.tui.screens.clusters import ClustersScreen
from tracefail.tui.screens.corpus import CorpusScreen
from tracefail.tui.screens.diff import DiffScreen
from tracefail.tui.screens.help import HelpScreen, binding_groups

SIZE = (140, 44)
INJECTION_SHOWN = "[bold red]PWNED[/]"  # conftest's injected markup, shown literally


def _text(screen: object, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())  # type: ignore[attr-defined]


async def test_mark_two_traces_and_diff(corpus_path: Path, tmp_path: Path) -> None:
    app = TracefailApp(corpus_path, "tester", export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        corpus = app.screen
        assert isinstance(corpus, CorpusScreen)
        first, second = corpus.row_ids[:2]  # demo:inject, demo:spans (sorted by trace id)
        await pilot.press("d")  # nothing marked: a warning, no screen
        await settle(pilot)
        assert app.screen is corpus
        await pilot.press("space")
        table = corpus.query_one(DataTable)
        assert str(table.get_cell(first, "trace_id")).startswith("● ")
        await pilot.press("space")  # unmark again
        assert not str(table.get_cell(first, "trace_id")).startswith("● ")
        await pilot.press("space", "down", "d")  # one marked, d on the other
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DiffScreen)
        expected = BrowseService(corpus_path, "tester").diff(first, second)
        head = _text(screen, "#diff-head")
        assert f"A: {first}" in head and f"B: {second}" in head
        rows = screen.query_one(DataTable)
        assert rows.row_count == len(expected.rows)
        assert expected.first_divergence is not None
        assert rows.cursor_row == expected.first_divergence  # the cursor starts at the divergence
        detail = _text(screen, "#diff-labels")
        at = expected.rows[expected.first_divergence]
        assert f"first divergence: A step {at.a}, B step {at.b}" in detail
        assert "llm-judge:abc123: mode 3.2" in detail  # B's judge label, placed against the divergence
        assert INJECTION_SHOWN in detail or "PWNED" not in detail  # literal when the text is shown
        changes = [i for i, r in enumerate(expected.rows) if r.status != "same"]
        await pilot.press("n")
        later = [i for i in changes if i > expected.first_divergence]
        assert rows.cursor_row == (later[0] if later else expected.first_divergence)
        await pilot.press("escape")
        assert app.screen is corpus


async def test_clusters_open_as_a_corpus_filter(corpus_path: Path, tmp_path: Path) -> None:
    app = TracefailApp(corpus_path, "tester", export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        corpus = app.screen
        await pilot.press("C")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ClustersScreen)
        expected = BrowseService(corpus_path, "tester").clusters()
        assert f"{expected.n_traces} failing traces, {len(expected.clusters)} clusters" in _text(
            screen, "#clusters-head"
        )
        table = screen.query_one(DataTable)
        assert table.row_count == len(expected.clusters)
        assert "words: " + ", ".join(expected.clusters[0].terms) in _text(screen, "#cluster-detail")
        await pilot.press("down")
        chosen = expected.clusters[1]
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is corpus
        assert app.corpus_filter.trace_ids == chosen.trace_ids
        assert sorted(corpus.row_ids) == sorted(chosen.trace_ids)
        assert f"{chosen.size} matching of " in _text(corpus, "#status")
        assert f"trace:<{chosen.size} ids>" in _text(corpus, "#status")


async def test_new_keys_are_in_help_and_palette(corpus_path: Path, tmp_path: Path) -> None:
    app = TracefailApp(corpus_path, "tester", export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        groups = {title: {b.key for b in bindings} for title, bindings in binding_groups()}
        assert {"space", "d", "C"} <= groups["Corpus"]
        assert {"escape", "n", "p"} <= groups["Run diff"]
        assert {"escape", "enter"} <= groups["Clusters"]
        await pilot.press("escape", "ctrl+p")
        await settle(pilot)
        await pilot.press(*"open: failure clusters")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ClustersScreen)
