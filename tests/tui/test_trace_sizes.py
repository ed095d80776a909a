"""The trace view at three terminal sizes, on a real Claude Code sub-agent transcript with parallel
tool calls (data_samples/claude-code/agent-aac57f5.jsonl): the step text stays the largest panel,
tool calls show their arguments and the step of their result, and the layout keys stick."""

from __future__ import annotations

from pathlib import Path

import pytest
from pilot_wait import settle
from textual.pilot import Pilot

from tracefail.services.ingest import ingest
from tracefail.store import Database
from tracefail.tui.app import TracefailApp
from tracefail.tui.layout import TraceLayout
from tracefail.tui.screens.trace import TraceScreen
from tracefail.tui.widgets.step_view import StepView

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples" / "claude-code"
TRACE = "claude-code:ae4a77f8-aedd-4bc1-888f-c94edc91af04/agent-aac57f5"
ERROR_TRACE = "claude-code:0c1e6a52-3f0e-4a7c-9d6b-2f1a8e5c7b90"


@pytest.fixture
def tool_corpus(tmp_path: Path) -> Path:
    db = Database(tmp_path / "tools.duckdb")
    report = ingest(
        db, [SAMPLES / "agent-aac57f5.jsonl", SAMPLES / "0c1e6a52-3f0e-4a7c-9d6b-2f1a8e5c7b90.jsonl"]
    )
    assert report.quarantined == 0, report.messages
    db.close()
    return tmp_path / "tools.duckdb"


def _opener(trace: str, keys: tuple[str, ...]):  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot) -> None:
        await settle(pilot, quiet_rounds=3)
        await pilot.app.push_screen(TraceScreen(trace))
        await settle(pilot, quiet_rounds=3)
        await pilot.press(*keys)
        await settle(pilot, quiet_rounds=3)

    return run_before


# the sixth parallel WebSearch call, then the conversation view: calls and results one after another
TO_LAST_CALL = ("right_square_bracket",) * 6 + ("w",)


@pytest.mark.parametrize("size", [(80, 24), (120, 35), (200, 50)], ids=["80x24", "120x35", "200x50"])
def test_trace_view_fits(snap_compare, tool_corpus: Path, tmp_path: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    app = TracefailApp(tool_corpus, "tester", export_dir=tmp_path)
    assert snap_compare(app, terminal_size=size, run_before=_opener(TRACE, TO_LAST_CALL))


@pytest.mark.parametrize("size", [(80, 24), (120, 35), (200, 50)], ids=["80x24", "120x35", "200x50"])
async def test_the_snapshot_screen_shows_text_calls_and_results(
    tool_corpus: Path, tmp_path: Path, size: tuple[int, int]
) -> None:
    """What test_trace_view_fits stores as an image, read as text: the screen's cells in the step
    panel hold at least 10 lines of step text, a tool call with its arguments and a result that
    names its call."""
    app = TracefailApp(tool_corpus, "tester", export_dir=tmp_path)
    async with app.run_test(size=size) as pilot:
        await _opener(TRACE, TO_LAST_CALL)(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, TraceScreen)
        panel = screen.query_one(StepView).region
        cells = [strip.text for strip in screen._compositor.render_strips()]
        inside = [
            line[panel.x + 1 : panel.right - 1].strip(" │▂▄▆▇▎▏")
            for line in cells[panel.y + 1 : panel.bottom - 1]
        ]
        assert sum(1 for line in inside if line) >= 10, inside
        text = "\n".join(inside)
        assert "▶ call WebSearch" in text and '"query": "hex.pm' in text  # the call, arguments shown
        assert "◀ result of WebSearch (call at step" in text  # a result naming its call


@pytest.mark.parametrize("size", [(80, 24), (120, 35), (200, 50)])
async def test_step_text_is_the_largest_panel(
    tool_corpus: Path, tmp_path: Path, size: tuple[int, int]
) -> None:
    app = TracefailApp(tool_corpus, "tester", export_dir=tmp_path)
    async with app.run_test(size=size) as pilot:
        await _opener(TRACE, ("right_square_bracket",) * 7)(pilot)  # step 8: a 1,698-character result
        screen = pilot.app.screen
        assert isinstance(screen, TraceScreen) and screen.step == 8
        step_view = screen.query_one(StepView)
        text_rows = step_view.content_region.height - 2  # the step's header and its result line
        assert text_rows >= 10
        others = [screen.query_one(q) for q in ("#trace-left", "LabelsPanel", "#chart")]
        for widget in others:
            if widget.display:
                assert widget.region.area < step_view.region.area, widget


async def test_call_and_result_link_both_ways(tool_corpus: Path, tmp_path: Path) -> None:
    app = TracefailApp(tool_corpus, "tester", export_dir=tmp_path)
    async with app.run_test(size=(120, 35)) as pilot:
        await _opener(TRACE, ("right_square_bracket",))(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, TraceScreen) and screen.step == 2  # the first WebSearch call
        rendered = str(screen.query_one("#step").render())
        assert '"query": "hex.pm' in rendered  # arguments re-indented, not escaped JSON
        assert '\\"' not in rendered
        await pilot.press("l")
        await settle(pilot)
        result = screen.step
        assert (
            screen.view is not None
            and screen.view.steps[result]["tool_call_id"] == "toolu_01Pjr3rJaMRG6ZGtAByoNUZw"
        )
        assert "◀ result of WebSearch (call at step 2)" in str(screen.query_one("#step").render())
        await pilot.press("l")
        await settle(pilot)
        assert screen.step == 2


async def test_failed_tool_result_says_so(tool_corpus: Path, tmp_path: Path) -> None:
    app = TracefailApp(tool_corpus, "tester", export_dir=tmp_path)
    async with app.run_test(size=(120, 35)) as pilot:
        await _opener(ERROR_TRACE, ("right_square_bracket", "l"))(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, TraceScreen)
        rendered = str(screen.query_one("#step").render())
        assert "◀ result of Bash (call at step" in rendered and "✗ failed" in rendered


async def test_layout_keys_are_remembered(tool_corpus: Path, tmp_path: Path) -> None:
    layout_file = tmp_path / "layout.json"
    app = TracefailApp(tool_corpus, "tester", export_dir=tmp_path, layout_file=layout_file)
    async with app.run_test(size=(120, 35)) as pilot:
        await _opener(TRACE, ("2", "1", "greater_than_sign", "w"))(pilot)
        screen = pilot.app.screen
        assert screen.query_one("LabelsPanel").display  # hidden by default: this trace has no labels
        assert not screen.query_one("#trace-left").display
    remembered = TraceLayout.load(layout_file)
    assert remembered == TraceLayout(
        timeline=False, labels=True, chart=None, left_width=40, conversation=True
    )
    again = TracefailApp(tool_corpus, "tester", export_dir=tmp_path, layout_file=layout_file)
    async with again.run_test(size=(120, 35)) as pilot:
        await _opener(TRACE, ())(pilot)
        assert pilot.app.screen.query_one("LabelsPanel").display
        assert not pilot.app.screen.query_one("#trace-left").display


async def test_x_exports_the_trace(tool_corpus: Path, tmp_path: Path) -> None:
    app = TracefailApp(tool_corpus, "tester", export_dir=tmp_path)
    async with app.run_test(size=(120, 35)) as pilot:
        await _opener(TRACE, ("x",))(pilot)
    written = list(tmp_path.glob("tracefail-trace-*.jsonl"))
    assert len(written) == 1 and TRACE in written[0].read_text(encoding="utf-8")


async def test_ops_screen_shows_the_cli_numbers(tool_corpus: Path, tmp_path: Path) -> None:
    from tracefail.services.ops import ops
    from tracefail.tui.screens.ops import OpsScreen

    app = TracefailApp(tool_corpus, "tester", export_dir=tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot, quiet_rounds=3)
        await pilot.press("O")
        await settle(pilot, quiet_rounds=3)
        screen = pilot.app.screen
        assert isinstance(screen, OpsScreen) and screen.built is not None
        shown = "\n".join(line.text for line in screen.query_one("#ops").render_lines(screen.region))
        with Database(tool_corpus, read_only=True) as db:
            assert screen.built.table.equals(ops(db).table)
        for title in ("per agent", "per model", "per session", "per framework", "per day", "steps per day"):
            assert title in shown
        assert "claude-sonnet-4-5-20250929" in shown and "(n=" in shown
        errors = [r for r in screen.built.table.to_dicts() if r["errors"]]
        first = errors[0]  # a rate is shown with its Wilson interval: 12.5% [4.3–31.0%] (3/24)
        low, high = 100 * first["error_ci_low"], 100 * first["error_ci_high"]
        assert f"[{low:.1f}–{high:.1f}%] ({first['errors']}/{first['steps']})" in shown


def test_ops_screen_snapshot(snap_compare, tool_corpus: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot) -> None:
        await settle(pilot, quiet_rounds=3)
        await pilot.press("O")
        await settle(pilot, quiet_rounds=3)

    app = TracefailApp(tool_corpus, "tester", export_dir=tmp_path)
    assert snap_compare(app, terminal_size=(120, 35), run_before=run_before)


def test_docs_ops_screenshot_is_the_snapshot() -> None:
    """docs/tui-ops.svg is the ops snapshot; after --snapshot-update, copy it over."""
    root = Path(__file__).resolve().parents[2]
    snapshot = Path(__file__).parent / "__snapshots__" / "test_trace_sizes" / "test_ops_screen_snapshot.svg"
    assert (root / "docs" / "tui-ops.svg").read_bytes() == snapshot.read_bytes()


async def test_label_form_refuses_an_agent_not_in_the_trace(tool_corpus: Path, tmp_path: Path) -> None:
    from textual.widgets import Input, Static

    from tracefail.tui.screens.label_edit import LabelEditor

    app = TracefailApp(tool_corpus, "tester", export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _opener(TRACE, ("plus",))(pilot)
        form = pilot.app.screen
        assert isinstance(form, LabelEditor)
        form.query_one("#mode", Input).value = "1.3"
        form.query_one("#agent", Input).value = "Nobody"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(pilot.app.screen, LabelEditor)
        assert "does not speak in this trace" in str(form.query_one("#form-error", Static).render())


def test_label_sources_most_trusted_first() -> None:
    from tracefail.tui.screens.corpus import _short_sources

    shown = _short_sources(
        ["heuristic:loop", "heuristic:repetition", "human:ana", "llm-judge:3f2a", "dataset:mast"], None
    )
    assert shown == ["human:ana", "mast", "judge", "heur×2"]
