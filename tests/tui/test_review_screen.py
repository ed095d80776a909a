"""Pilot test of the review view: the queue `tracefail review` would print, enter opens a trace,
`m` there removes it from the queue and feeds the learning curve."""

from __future__ import annotations

from pathlib import Path

from pilot_wait import settle
from textual.widgets import DataTable, Static

from tracefail.model import Attribution
from tracefail.services.attribution import load_ranker, review_queue, train
from tracefail.store import Database
from tracefail.store.traces import insert_attributions
from tracefail.tui.app import TracefailApp
from tracefail.tui.screens.review import ReviewScreen
from tracefail.tui.screens.trace import TraceScreen

SIZE = (140, 44)


async def open_review(pilot) -> ReviewScreen:
    """Press `v` on the corpus screen: the review view, its panel built."""
    await settle(pilot)
    await pilot.press("v")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ReviewScreen) and screen.panel is not None
    return screen


async def test_queue_opens_traces_and_marks_feed_the_curve(corpus_path: Path, tmp_path: Path) -> None:
    model = tmp_path / "ranker.json"
    with Database(corpus_path) as db:
        train(db, output=model, folds=4, reps=20)
        expected = [i.trace_id for i in review_queue(db, load_ranker(model), limit=50)]
        done = sorted(expected)[:3]
        insert_attributions(
            db, [Attribution(trace_id=t, step_idx=1, agent="x", source="human:b") for t in done]
        )
    app = TracefailApp(corpus_path, "tester", export_dir=tmp_path, ranker_path=model)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        assert screen.row_ids == [t for t in expected if t not in done]
        assert screen.panel.ranker == str(model) and screen.panel.labelled == 3 and not screen.panel.curve
        assert "needs 4 labelled traces, 3 so far" in str(screen.query_one("#review-curve", Static).render())

        first = screen.row_ids[0]
        await pilot.press("enter")
        await settle(pilot)
        trace = pilot.app.screen
        assert isinstance(trace, TraceScreen) and trace.trace_id == first
        await pilot.press("m")  # the highlighted step is the mistake: a fourth human-labelled trace
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("R")
        await settle(pilot)
        assert pilot.app.screen is screen and first not in screen.row_ids
        assert screen.panel is not None and screen.panel.labelled == 4 and screen.panel.curve
        assert screen.panel.best_baseline is not None
        assert "rule: " in str(screen.query_one("#review-curve", Static).render())
        assert screen.query_one(DataTable).row_count == len(expected) - 4


async def test_without_a_ranker_file_one_is_fitted_from_the_dataset(
    corpus_path: Path, tmp_path: Path
) -> None:
    app = TracefailApp(corpus_path, "tester", export_dir=tmp_path, ranker_path=None)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_review(pilot)
        assert screen.panel.ranker == "fitted now on 20 dataset traces" and screen.row_ids
