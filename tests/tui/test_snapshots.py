"""SVG snapshots of each screen at a fixed terminal size (review changes with --snapshot-update)."""

from __future__ import annotations

from pathlib import Path

from pilot_wait import settle
from textual.pilot import Pilot
from textual.widgets import Input

from tracefail.tui.app import TracefailApp

SIZE = (140, 40)


async def _settle(pilot: Pilot) -> None:
    await settle(pilot, quiet_rounds=3)


async def _open_span_trace(pilot: Pilot) -> None:
    await _settle(pilot)
    await pilot.press("slash", *'framework:"OpenAI Agents"', "enter")
    await _settle(pilot)
    await pilot.press("enter")
    await _settle(pilot)
    await pilot.press("n")  # the flagged evidence step
    await _settle(pilot)


def _app(corpus_path: Path, tmp_path: Path) -> TracefailApp:
    return TracefailApp(corpus_path, "tester", export_dir=tmp_path)


def test_corpus_screen(snap_compare, corpus_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(_app(corpus_path, tmp_path), terminal_size=SIZE, run_before=_settle)


def test_trace_screen(snap_compare, corpus_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(_app(corpus_path, tmp_path), terminal_size=SIZE, run_before=_open_span_trace)


def test_injection_trace_screen(snap_compare, corpus_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot) -> None:
        await _settle(pilot)
        await pilot.press("slash", *"framework:MetaGPT", "enter")
        await _settle(pilot)
        await pilot.press("enter")
        await _settle(pilot)

    assert snap_compare(_app(corpus_path, tmp_path), terminal_size=SIZE, run_before=run_before)


def test_stats_screen(snap_compare, corpus_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot) -> None:
        await _settle(pilot)
        await pilot.press("S")
        await _settle(pilot)

    assert snap_compare(_app(corpus_path, tmp_path), terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare, corpus_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot) -> None:
        await _settle(pilot)
        await pilot.press("question_mark")
        await _settle(pilot)

    assert snap_compare(_app(corpus_path, tmp_path), terminal_size=SIZE, run_before=run_before)


def test_label_form(snap_compare, corpus_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot) -> None:
        await _open_span_trace(pilot)
        await pilot.press("plus")
        await _settle(pilot)
        for box in pilot.app.screen.query(Input):
            box.cursor_blink = False  # a blinking cursor would make the picture depend on timing
        await pilot.pause()

    assert snap_compare(_app(corpus_path, tmp_path), terminal_size=SIZE, run_before=run_before)


def test_graph_screen(snap_compare, corpus_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot) -> None:
        await _open_span_trace(pilot)
        await pilot.press("g")
        await _settle(pilot)

    assert snap_compare(_app(corpus_path, tmp_path), terminal_size=SIZE, run_before=run_before)


def test_readme_screenshot_is_the_trace_snapshot() -> None:
    """docs/tui-trace.svg is the trace snapshot; after --snapshot-update, copy it over."""
    root = Path(__file__).resolve().parents[2]
    snapshot = Path(__file__).parent / "__snapshots__" / "test_snapshots" / "test_trace_screen.svg"
    assert (root / "docs" / "tui-trace.svg").read_bytes() == snapshot.read_bytes()


def test_diff_screen(snap_compare, corpus_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot) -> None:
        await _settle(pilot)
        await pilot.press("space", "down", "d")  # demo:inject against demo:spans
        await _settle(pilot)

    assert snap_compare(_app(corpus_path, tmp_path), terminal_size=SIZE, run_before=run_before)


def test_clusters_screen(snap_compare, corpus_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot) -> None:
        await _settle(pilot)
        await pilot.press("C")
        await _settle(pilot)

    assert snap_compare(_app(corpus_path, tmp_path), terminal_size=SIZE, run_before=run_before)


def test_review_screen(snap_compare, corpus_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot) -> None:
        await _settle(pilot)
        await pilot.press("v")
        await _settle(pilot)

    assert snap_compare(_app(corpus_path, tmp_path), terminal_size=SIZE, run_before=run_before)
