"""One corpus, one answer: the TUI's stats and graph screens report what `tracefail stats` and
`tracefail graph` report. The corpus is built so the old TUI paths would differ: a judge label
whose newest row by creation time is not its newest by id, a label from an older taxonomy round
that only the remap counts, several sources per trace, and two attributions per trace."""

from __future__ import annotations

import json
from pathlib import Path

from pilot_wait import settle
from typer.testing import CliRunner

from tracefail.cli import app as cli
from tracefail.model import Attribution, Label, Step, Trace
from tracefail.store import Database
from tracefail.store.traces import add_traces, insert_attributions, insert_labels
from tracefail.tui.app import TracefailApp
from tracefail.tui.screens.graph import GraphScreen
from tracefail.tui.screens.stats import StatsScreen

TRACES = [
    ("t1", "AG2", "gpt-4o"),
    ("t2", "AG2", "llama"),
    ("t3", "MetaGPT", "gpt-4o"),
    ("t4", "MetaGPT", "llama"),
]


def _label(trace: str, mode: str, present: bool, source: str, version: str = "1.0", name: str = "") -> Label:
    return Label(
        trace_id=trace,
        taxonomy_id="mast",
        taxonomy_version=version,
        mode_id=mode,
        present=present,
        evidence_steps=[1] if present else [],
        source=source,
        metadata={"mode_name": name} if name else {},
    )


def _corpus(path: Path) -> Path:
    with Database(path) as db:
        add_traces(
            db,
            [
                Trace(
                    trace_id=tid,
                    source="hand",
                    framework=fw,
                    llm=llm,
                    steps=[Step(step_idx=i, agent=a, content=f"{tid} {i}") for i, a in enumerate("ABAB")],
                )
                for tid, fw, llm in TRACES
            ],
            None,
        )
        with db.transaction():
            # t1: the judge's absent label is the newer by creation time though written first
            insert_labels(db, [_label("t1", "1.1", False, "llm-judge:j")])
            insert_labels(db, [_label("t1", "1.1", True, "llm-judge:j")])
            insert_labels(
                db,
                [
                    _label("t1", "1.1", False, "human:ann"),
                    _label("t2", "1.1", True, "llm-judge:j"),
                    _label("t2", "2.6", True, "dataset:d"),
                    _label("t3", "1.1", True, "llm-judge:j"),
                    _label("t3", "3.2", False, "llm-judge:j"),
                    # an older round's code: round1-18 4.2 is mast 3.2
                    _label("t3", "4.2", True, "human:ann", "round1-18", "Lack of result verification"),
                    _label("t4", "1.1", False, "dataset:d"),
                ],
            )
            for tid, _, _ in TRACES:  # an older attribution to A, then a newer one to B
                insert_attributions(
                    db, [Attribution(trace_id=tid, agent="A", step_idx=0, source="dataset:d")]
                )
                insert_attributions(
                    db, [Attribution(trace_id=tid, agent="B", step_idx=3, source="llm-judge:j")]
                )
            db.execute(
                "UPDATE labels SET created_at = created_at + INTERVAL 1 DAY "
                "WHERE trace_id = 't1' AND source = 'llm-judge:j' AND NOT present"
            )
            db.execute("UPDATE attributions SET created_at = created_at + INTERVAL 1 DAY WHERE agent = 'B'")
    return path


def _cli_json(*args: str) -> dict:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def test_tui_screens_and_cli_give_the_same_numbers(tmp_path: Path) -> None:
    path = _corpus(tmp_path / "corpus.duckdb")
    by = {
        b: _cli_json("stats", "--db", str(path), "--by", b, "--format", "json") for b in ("framework", "llm")
    }
    graph = _cli_json("graph", "t1", "--db", str(path), "--format", "json")

    app = TracefailApp(path, "tester", export_dir=tmp_path)
    async with app.run_test(size=(140, 44)) as pilot:
        await settle(pilot)
        stats_screen = StatsScreen()
        await app.push_screen(stats_screen)
        await settle(pilot)
        shown = stats_screen.stats
        assert shown is not None
        await app.push_screen(GraphScreen("t1"))
        await settle(pilot)
        graph_screen = app.screen
        assert isinstance(graph_screen, GraphScreen) and graph_screen.built is not None
        built = graph_screen.built

    def cli_rates(b: str) -> set[tuple[str, str, int, int]]:
        rows = by[b]["modes"]
        return {(r["group"], r["mode_id"], r["labelled"], r["affected"]) for r in rows if r["affected"]}

    def tui_rates(rates: tuple) -> set[tuple[str, str, int, int]]:
        return {(r.group, r.mode_id, r.labelled, r.affected) for r in rates}

    # latest label by creation time (t1's 1.1 is absent), the old round's 4.2 counted as 3.2
    assert (
        tui_rates(shown.by_framework)
        == cli_rates("framework")
        == {
            ("AG2", "1.1", 2, 1),
            ("AG2", "2.6", 1, 1),
            ("MetaGPT", "1.1", 2, 1),
            ("MetaGPT", "3.2", 1, 1),
        }
    )
    assert tui_rates(shown.by_llm) == cli_rates("llm")
    assert {r.prevalence for r in shown.by_framework} == {
        r["prevalence"] for r in by["framework"]["modes"] if r["affected"]
    }
    cli_pairs = {(r["mode_a"], r["mode_b"], r["n_ab"]) for r in by["framework"]["cooccurrence"] if r["n_ab"]}
    assert (
        {(p.mode_a, p.mode_b, p.traces) for p in shown.cooccurrence}
        == cli_pairs
        == {
            ("1.1", "2.6", 1),
            ("1.1", "3.2", 1),
        }
    )
    assert shown.total == 4
    assert sum(b.mistakes for b in shown.positions) == sum(
        r["attributions"] for r in by["framework"]["blame"]
    )
    # the graph's mistake agent is the most trusted source's (dataset over a newer judge), its
    # flags the same steps
    assert built.mistake_agent == graph["mistake_agent"] == "A"
    assert built.mistake_source == graph["mistake_source"] == "dataset:d, reference"
    assert built.flagged == graph["flagged_steps"] == [0, 1, 3]  # attributed steps, evidence
