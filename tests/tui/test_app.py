"""Pilot tests: every screen and binding of `tracefail browse` on a real corpus file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pilot_wait import settle
from textual.widgets import DataTable, Input, Static, Tree

from tracefail.analysis.stats import policy_text
from tracefail.model import Label
from tracefail.store import Database
from tracefail.store.traces import insert_labels
from tracefail.taxonomy import find
from tracefail.tui.app import TracefailApp
from tracefail.tui.screens.corpus import CorpusScreen
from tracefail.tui.screens.feature_picker import FeaturePicker
from tracefail.tui.screens.graph import GraphScreen
from tracefail.tui.screens.help import HelpScreen, binding_groups
from tracefail.tui.screens.label_edit import LabelEditor
from tracefail.tui.screens.stats import StatsScreen
from tracefail.tui.screens.trace import TraceScreen
from tracefail.tui.widgets.timeline import Timeline

SIZE = (140, 44)
SPAN_TRACE = "demo:spans"  # built in conftest.py
INJECT_TRACE = "demo:inject"
FILTERS = {SPAN_TRACE: 'framework:"OpenAI Agents"', INJECT_TRACE: "framework:MetaGPT"}


def make_app(corpus_path: Path, tmp_path: Path) -> TracefailApp:
    return TracefailApp(corpus_path, "tester", export_dir=tmp_path)


async def open_trace(pilot, trace_id: str) -> TraceScreen:  # type: ignore[no-untyped-def]
    await settle(pilot)
    corpus = pilot.app.screen
    assert isinstance(corpus, CorpusScreen)
    corpus.query_one("#filter", Input).value = FILTERS[trace_id]
    await pilot.press("slash", "end", "enter")
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, TraceScreen) and screen.trace_id == trace_id
    return screen


def row_of(screen: TraceScreen, mode: str, source: str) -> int:
    assert screen.view is not None
    return next(
        i for i, lbl in enumerate(screen.view.labels) if (lbl["mode_id"], lbl["source"]) == (mode, source)
    )


def shown(screen, selector: str) -> str:  # type: ignore[no-untyped-def]
    """The plain text a widget renders now (what the user reads)."""
    widget = screen.query_one(selector)
    if isinstance(widget, DataTable):
        return "\n".join(" ".join(str(c) for c in widget.get_row_at(i)) for i in range(widget.row_count))
    return str(widget.render())


def human_rows(path: Path) -> list[tuple]:
    with Database(path, read_only=True) as db:
        return db.rows(
            "SELECT mode_id, present, source FROM labels WHERE source LIKE 'human:%' ORDER BY label_id"
        )


async def test_corpus_lists_filters_and_sorts(corpus_path: Path, tmp_path: Path) -> None:
    app = make_app(corpus_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CorpusScreen)
        table = screen.query_one(DataTable)
        assert table.row_count == 22 and screen.total == 22
        assert "22 matching of 22 traces" in shown(screen, "#status")
        await pilot.press("slash")
        await pilot.press(*"framework:MetaGPT")
        await pilot.press("enter")
        await settle(pilot)
        assert screen.row_ids == [INJECT_TRACE]
        assert "1 matching of 22 traces" in shown(screen, "#status")  # matches, not loaded rows
        await pilot.press("escape")  # clear the filter
        await settle(pilot)
        assert table.row_count == 22
        await pilot.press("s")  # trace_id -> framework
        await settle(pilot)
        assert app.corpus_filter.sort == "framework"
        await pilot.press("r")
        await settle(pilot)
        assert app.corpus_filter.descending and screen.row_ids[0] == SPAN_TRACE  # "OpenAI Agents" sorts last
        await pilot.press("R")
        await settle(pilot)
        assert table.row_count == 22
        await pilot.press("slash", *"agree:maybe", "enter")
        await settle(pilot)
        assert table.row_count == 22  # a bad filter keeps the old one and says why, inline
        assert "agree:" in shown(screen, "#filter-error")
        for bad, says in (
            ("model:gpt-4o", "unknown filter key 'model'"),
            ("mode:9.9", "unknown mode '9.9'"),
            ("tok.nonsense>3", "unknown feature 'tok.nonsense'"),
        ):
            box = screen.query_one("#filter", Input)
            box.value = bad
            box.focus()
            await pilot.press("end", "enter")
            await settle(pilot)
            assert says in shown(screen, "#filter-error") and table.row_count == 22, bad
            assert app.corpus_filter.text is None  # never a text search
        box.value = "mode:1.3"
        await pilot.press("end", "enter")
        await settle(pilot)
        assert not screen.query_one("#filter-error").display and app.corpus_filter.mode == "1.3"
        await pilot.press("escape")
        await settle(pilot)
        rows = shown(screen, "#corpus")
        named = [f"{m.id} {m.name[:10]}" for m in find().taxonomy.modes]
        assert any(n in rows for n in named)  # mode names beside ids


async def test_corpus_pages_as_the_cursor_moves(corpus_path: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("tracefail.tui.screens.corpus.PAGE", 5)
    monkeypatch.setattr("tracefail.tui.screens.corpus.LOOKAHEAD", 2)
    app = make_app(corpus_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CorpusScreen)
        assert screen.loaded == 5  # one page: the rest is fetched only when the cursor comes near
        await pilot.press("ctrl+end")
        await settle(pilot)
        assert screen.loaded == 10
        for _ in range(5):
            await settle(pilot)
            await pilot.press("ctrl+end")
        assert screen.loaded == 22 and len(set(screen.row_ids)) == 22


async def test_trace_screen_navigation(corpus_path: Path, tmp_path: Path) -> None:
    app = make_app(corpus_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_trace(pilot, SPAN_TRACE)
        assert screen.query_one("#timeline", Timeline).count == 4
        head = str(screen.query_one("#trace-head", Static).render())
        assert "OpenAI Agents" in head and "gpt-4o" in head
        await pilot.press("n")
        assert screen.step == 3  # evidence of 3.2 (the errored step 2 is marked, not flagged)
        await pilot.press("p")
        assert screen.step == 3  # nothing flagged before it
        assert screen.feature == "tok.surprisal_mean"
        chart = shown(screen, "#chart")
        # 2, 2.84, 2.91, 8.14: the scale's ends, each value, and the jump into step 3 marked
        assert "8.14 ┤" in chart and "2 ┤" in chart and "2.84" in chart and "2.91" in chart
        assert "▲ change at 3" in chart and "▲" in chart.splitlines()[2]
        await pilot.press("f")
        assert screen.feature == "tok.entropy_mean"
        assert "tok.entropy_mean" in shown(screen, "#chart")
        await pilot.press("F")
        await settle(pilot)
        picker = app.screen
        assert isinstance(picker, FeaturePicker)
        await pilot.press(*"surpr", "enter")
        await settle(pilot)
        assert app.screen is screen and screen.feature == "tok.surprisal_mean"
        await pilot.press("slash", *"plan", "enter")
        assert screen.hits == [0]
        assert screen.step == 0
        await pilot.press("escape")  # closes the search, stays on the trace
        assert app.screen is screen and screen.hits == []
        await pilot.press("t")
        assert screen.query_one("#spans", Tree).display
        assert len(screen.query_one("#spans", Tree).root.children) == 1  # one root span, three children
        await pilot.press("t")
        assert screen.query_one("#timeline").display
        labels = screen.query_one("#labels", DataTable)
        labels.focus()
        labels.move_cursor(row=1)
        await pilot.press("enter")  # jump to the label's evidence step
        assert screen.step == 3
        await pilot.press("o")
        assert 3 in screen.expanded
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, CorpusScreen)


async def test_accept_reject_undo_write_human_labels(corpus_path: Path, tmp_path: Path) -> None:
    app = make_app(corpus_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_trace(pilot, SPAN_TRACE)
        labels = screen.query_one("#labels", DataTable)
        labels.focus()
        labels.move_cursor(row=0)  # 1.3 absent (judge)
        await pilot.press("a")
        await settle(pilot)
        assert human_rows(corpus_path) == [("1.3", False, "human:tester")]
        labels.move_cursor(row=row_of(screen, "3.2", "dataset:demo"))
        await pilot.press("minus")
        await settle(pilot)
        assert human_rows(corpus_path)[-1] == ("3.2", False, "human:tester")
        assert len(screen.view.labels) == 5  # the screen re-read the trace
        await pilot.press("u")
        await settle(pilot)
        assert human_rows(corpus_path) == [("1.3", False, "human:tester")]
        await pilot.press("u")
        await settle(pilot)
        assert human_rows(corpus_path) == []
        await pilot.press("u")
        assert any("nothing to undo" in n.message for n in app._notifications)


async def test_edit_add_mode_and_mistake(corpus_path: Path, tmp_path: Path) -> None:
    app = make_app(corpus_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_trace(pilot, SPAN_TRACE)
        await pilot.press("n", "n")  # step 3
        await pilot.press("plus")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, LabelEditor)
        assert editor.query_one("#evidence", Input).value == "3"
        await pilot.press(*"3.2")
        assert shown(editor, "#mode-name") == "No or incomplete verification"  # the name as you type
        editor.query_one("#mode", Input).value = ""
        await pilot.press(*"9.9", "ctrl+s")
        assert "unknown mode" in str(editor.query_one("#form-error", Static).render())
        editor.query_one("#mode", Input).value = "2.6"
        editor.query_one("#rationale", Input).value = "nobody asked which flight"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is screen
        with Database(corpus_path, read_only=True) as db:
            assert db.rows(
                "SELECT mode_id, present, evidence_steps, rationale, taxonomy_id FROM labels "
                "WHERE source = 'human:tester'"
            ) == [("2.6", True, [3], "nobody asked which flight", "mast")]
        labels = screen.query_one("#labels", DataTable)
        labels.focus()
        labels.move_cursor(row=row_of(screen, "3.2", "dataset:demo"))
        await pilot.press("e")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, LabelEditor) and editor.query_one("#mode", Input).value == "3.2"
        rationale = editor.query_one("#rationale", Input)
        assert rationale.value == "" and rationale.placeholder == "was: 3.2 because of step [3]"  # a hint
        editor.query_one("#probability", Input).value = "0.4"
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press("plus")
        await settle(pilot)
        await pilot.press("escape")  # cancel writes nothing
        await settle(pilot)
        screen.query_one("#timeline").focus()
        await pilot.press("m")
        await settle(pilot)
        with Database(corpus_path, read_only=True) as db:
            assert db.rows(
                "SELECT probability, rationale FROM labels WHERE source = 'human:tester' AND mode_id = '3.2'"
            ) == [(0.4, None)]  # the dataset's rationale is not kept as the human's
            assert db.rows("SELECT agent, step_idx FROM attributions WHERE source = 'human:tester'") == [
                ("booker", 3)
            ]
            assert db.rows("SELECT count(*) FROM labels WHERE source = 'human:tester'")[0][0] == 2
        assert "✗ mistake" in str(screen.query_one("#trace-head", Static).render())
        assert "✗ mistake at 3" in shown(screen, "#chart")  # the chart marks the attributed step


async def test_markup_in_trace_text_is_shown_literally(corpus_path: Path, tmp_path: Path) -> None:
    app = make_app(corpus_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_trace(pilot, INJECT_TRACE)
        step = screen.query_one("#step", Static).render()
        plain = str(step)
        assert "[bold red]PWNED[/]" in plain and "[link=https://evil.example]click[/link]" in plain
        assert "\x1b" not in plain and "\x07" not in plain and "␛[31mred" in plain and "␇bell" in plain
        assert all(not span.style or "link" not in str(span.style) for span in step.spans)
        assert not any("PWNED" in str(s.style) for s in step.spans)
        head, preview = screen.query_one("#timeline", Timeline).lines(0)
        assert "[b]agent[/b]" in str(head) and "[bold red]PWNED[/]" in str(preview)
        head = str(screen.query_one("#trace-head", Static).render())
        assert "[i]llm[/i]" in head


async def test_agent_graph(corpus_path: Path, tmp_path: Path) -> None:
    app = make_app(corpus_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_trace(pilot, SPAN_TRACE)
        await pilot.press("g")
        await settle(pilot)
        assert isinstance(app.screen, GraphScreen)
        text = str(app.screen.query_one("#graph", Static).render())
        assert "planner" in text and "searcher" in text and "3 agents" in text
        await pilot.press("escape")
        assert isinstance(app.screen, TraceScreen)


async def test_stats_follow_the_filter(corpus_path: Path, tmp_path: Path) -> None:
    app = make_app(corpus_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"framework:AG2", "enter")
        await settle(pilot)
        await pilot.press("S")
        await settle(pilot)
        assert isinstance(app.screen, StatsScreen)
        stats = str(app.screen.query_one("#stats", Static).render())
        assert "20 traces selected" in stats and "AG2 · 1.1" in stats and "OpenAI Agents" not in stats
        assert "of the trace" in stats  # mistake positions from the Who&When attributions
        # the same policy line and judge validation as `tracefail stats` and the report
        assert f"label policy: {policy_text('trusted')}" in " ".join(stats.split())
        judge_line = next(line for line in stats.splitlines() if "llm-judge:abc123" in line)
        assert "not validated" in judge_line  # 2 shared pairs with the dataset: no evidence it works
        assert "dataset:demo" in stats
        assert "AG2 · 1.1 Disobey task specification" in stats  # names beside ids
        await pilot.press("escape", "escape")
        await settle(pilot)
        await pilot.press("S")
        await settle(pilot)
        stats = str(app.screen.query_one("#stats", Static).render())
        assert "22 traces selected" in stats and "OpenAI Agents · 3.2" in stats
        await pilot.press("R")
        await settle(pilot)
        await pilot.press("escape")
        assert isinstance(app.screen, CorpusScreen)


async def test_help_lists_every_binding(corpus_path: Path, tmp_path: Path) -> None:
    app = make_app(corpus_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        for _title, bindings in binding_groups():
            for binding in bindings:
                assert binding.tooltip or binding.description
        keys = {b.key for _t, bs in binding_groups() for b in bs}
        assert {
            "n",
            "p",
            "slash",
            "a",
            "x",
            "minus",
            "w",
            "l",
            "e",
            "plus",
            "m",
            "u",
            "c",
            "g",
            "S",
            "v",
            "ctrl+p",
        } <= keys
        await pilot.press("escape")
        assert isinstance(app.screen, CorpusScreen)


async def test_palette_runs_verb_object_commands(corpus_path: Path, tmp_path: Path) -> None:
    app = make_app(corpus_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"filter: framework MetaGPT")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot)
        assert app.corpus_filter.framework == "MetaGPT"
        assert app.screen.row_ids == [INJECT_TRACE]


async def test_exports(corpus_path: Path, tmp_path: Path) -> None:
    app = make_app(corpus_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"mode:3.2", "enter")
        await settle(pilot)
        await pilot.press("x")
        await settle(pilot)
        [jsonl] = tmp_path.glob("tracefail-selection-*.jsonl")
        assert [json.loads(line)["trace_id"] for line in jsonl.read_text().splitlines()] == [SPAN_TRACE]
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        [markdown] = tmp_path.glob("tracefail-trace-*.md")
        text = markdown.read_text()
        assert text.startswith("# Trace demo:spans") and "| 3.2 | True |" in text
        assert app.clipboard == text


async def test_a_writer_elsewhere_makes_the_corpus_busy_then_it_refreshes(
    corpus_path: Path, tmp_path: Path
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', "
            "flush=True); time.sleep(60)",
            str(corpus_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        app = make_app(corpus_path, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, CorpusScreen)
            for _ in range(300):
                await pilot.pause(0.02)
                if screen.busy:
                    break
            assert "open for writing in another process" in (screen.busy or "")
            assert "corpus busy" in str(screen.query_one("#status", Static).render())
            holder.kill()
            holder.wait()
            for _ in range(500):  # the retry timer reads it once the writer is gone
                await pilot.pause(0.02)
                if screen.loaded == 22:
                    break
            assert screen.loaded == 22 and screen.busy is None
    finally:
        holder.kill()
        holder.wait()


async def test_reject_stores_the_opposite_verdict_and_says_so(corpus_path: Path, tmp_path: Path) -> None:
    app = make_app(corpus_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_trace(pilot, SPAN_TRACE)
        labels = screen.query_one("#labels", DataTable)
        labels.focus()
        labels.move_cursor(row=0)  # 1.3 absent (judge): rejecting it means "1.3 is present"
        await pilot.press("minus")
        await settle(pilot)
        assert human_rows(corpus_path) == [("1.3", True, "human:tester")]
        toast = app._notifications
        assert any(
            "you: 1.3 present, rejecting llm-judge:" in n.message and "'s absent" in n.message for n in toast
        )
        labels.move_cursor(row=row_of(screen, "3.2", "dataset:demo"))
        await pilot.press("a")
        await settle(pilot)
        assert human_rows(corpus_path)[-1] == ("3.2", True, "human:tester")
        assert any(
            "you: 3.2 present, accepting dataset:demo's present" in n.message for n in app._notifications
        )


async def test_labels_panel_shows_every_source_in_full_and_scrolls(corpus_path: Path, tmp_path: Path) -> None:
    modes = [m.id for m in find().taxonomy.modes]
    sources = ["heuristic:loop-detector", "heuristic:repetition-of-messages"]
    with Database(corpus_path) as db, db.transaction():
        insert_labels(
            db,
            [
                Label(
                    trace_id=SPAN_TRACE,
                    taxonomy_id="mast",
                    taxonomy_version="1.0",
                    mode_id=m,
                    present=i % 2 == 0,
                    source=s,
                )
                for i, m in enumerate(modes)
                for s in sources
            ],
        )
    app = make_app(corpus_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_trace(pilot, SPAN_TRACE)
        labels = screen.query_one("#labels", DataTable)
        assert labels.row_count == 3 + 2 * len(modes)  # 31 rows
        rows = shown(screen, "#labels")
        assert "heuristic:repetition-of-messages" in rows and "llm-judge:abc123" in rows  # never cut
        assert "1.3 Step repetition" in rows
        assert labels.size.height >= 9  # 9 rows at a time on 44 lines; the step text keeps the most room
        labels.focus()
        await pilot.press(*["down"] * labels.row_count)
        await settle(pilot)
        assert labels.cursor_row == labels.row_count - 1 and labels.scroll_y > 0
        last = screen.view.labels[-1] if screen.view else None
        assert last is not None and last["source"] in shown(screen, "#label-detail")


async def test_text_kept_in_metadata_shows_in_the_step_detail_and_is_searched(tmp_path: Path) -> None:
    """A real kagent run keeps its system prompt only in its first LLM span's metadata: the trace
    search finds that step and the step detail shows the prompt."""
    from tests.conftest import SAMPLES
    from tracefail.services.ingest import ingest

    path = tmp_path / "kagent.duckdb"
    with Database(path) as db:
        ingest(db, [SAMPLES / "otel" / "agentevals" / "tempo_export_with_batches.json"])
    app = make_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, TraceScreen)
        assert "Helm Expertise" not in "".join(s["content"] for s in screen.view.steps)  # type: ignore[union-attr]
        await pilot.press("slash")
        screen.query_one("#search", Input).value = "Helm Expertise"
        await pilot.press("enter")
        await settle(pilot)
        assert screen.hits
        detail = shown(screen, "#step")
        assert "kept with the step" in detail and "Helm Expertise" in detail


async def test_corpus_row_shows_a_label_written_in_the_trace(corpus_path: Path, tmp_path: Path) -> None:
    app = make_app(corpus_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_trace(pilot, SPAN_TRACE)
        labels = screen.query_one("#labels", DataTable)
        labels.focus()
        labels.move_cursor(row=0)
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        corpus = pilot.app.screen
        assert isinstance(corpus, CorpusScreen)
        assert "human:tester" in shown(corpus, "#corpus")  # no `R` needed
