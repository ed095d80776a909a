"""Hand-off graphs, loops and repetition on a hand-made trace with known answers."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tracefail.analysis.heuristics import LOOP, REPETITION, trace_labels
from tracefail.cli import app
from tracefail.graph.handoff import handoff_graph, measures, repeated_loops, repeated_steps
from tracefail.graph.render import as_dot
from tracefail.model import Attribution, Label, Step, Trace
from tracefail.services.stats import detect, trace_graph
from tracefail.store import Database
from tracefail.store.traces import add_traces, insert_labels
from tracefail.taxonomy import find

runner = CliRunner()
SEARCH = "I will search the web for the population of Paris in 2020 and report it back"
# planner -> coder, then coder <-> tester three times in a row, then coder says the same thing again
AGENTS = ["planner", "coder", "tester", "coder", "tester", "coder", "tester", "coder"]
TEXTS = [
    "plan the work",
    SEARCH,
    "ran tests: 2 failures",
    "fixing the failing tests now please wait",
    "ran tests: 1 failure",
    "another fix for the remaining failure",
    "ran tests: 1 failure",
    SEARCH,
]


def steps() -> list[Step]:
    return [Step(step_idx=i, agent=a, content=t) for i, (a, t) in enumerate(zip(AGENTS, TEXTS, strict=True))]


def test_handoff_graph_counts_and_marks():
    g = handoff_graph(steps(), flagged=[4], mistake_agent="tester")
    assert set(g.edges) == {("planner", "coder"), ("coder", "tester"), ("tester", "coder")}
    assert g.edges["coder", "tester"]["count"] == 3 and g.edges["coder", "tester"]["steps"] == [1, 3, 5]
    assert g.edges["tester", "coder"]["count"] == 3
    assert g.nodes["tester"]["mistake"] and not g.nodes["coder"]["mistake"]
    assert g.nodes["tester"]["flagged_steps"] == [4]
    m = measures(g, steps())
    assert m.agents == 3 and m.handoffs == 7 and m.distinct_handoffs == 3
    assert m.cycles == [["coder", "tester"]]
    assert m.betweenness["coder"] > m.betweenness["planner"] == 0.0
    assert m.out_degree["coder"] == 3 and m.in_degree["coder"] == 4


def test_recipient_overrides_next_speaker():
    g = handoff_graph([Step(step_idx=0, agent="orch", recipient="web"), Step(step_idx=1, agent="coder")])
    assert list(g.edges) == [("orch", "web")]


def test_repeated_loops_known_answer():
    (loop,) = repeated_loops(steps())
    assert (loop.agents, loop.repeats, loop.first_step, loop.last_step) == (["coder", "tester"], 3, 1, 6)
    assert repeated_loops(steps(), min_repeats=4) == []
    abab = [Step(step_idx=i, agent=a) for i, a in enumerate("ABCABCABCD")]
    (three,) = repeated_loops(abab)
    assert three.agents == ["A", "B", "C"] and three.repeats == 3


def test_repeated_steps_and_boilerplate():
    assert repeated_steps(steps()) == [[1, 7]]
    assert repeated_steps(steps(), ignore={SEARCH.lower()}) == []


def test_heuristic_labels():
    tax = find("mast-v1").taxonomy
    repetition, loop = trace_labels("t", [s.model_dump() for s in steps()], tax)
    assert (repetition.source, repetition.mode_id, repetition.present) == (REPETITION, "1.3", True)
    assert repetition.evidence_steps == [7] and repetition.agent == "coder"
    # the loop ends at step 6 and the trace at 7: it ended inside the loop
    assert (loop.source, loop.mode_id, loop.present) == (LOOP, "1.5", True)
    quiet = [
        Step(step_idx=i, agent=a, content=f"distinct text number {i} " * 5).model_dump()
        for i, a in enumerate("ABCD")
    ]
    assert [lbl.present for lbl in trace_labels("q", quiet, tax)] == [False, False]


def _corpus(db: Database) -> None:
    loop_trace = Trace(
        trace_id="h:loop",
        source="hand",
        framework="X",
        steps=steps(),
        attributions=[Attribution(trace_id="h:loop", agent="tester", step_idx=4, source="dataset:d")],
    )
    quiet = Trace(
        trace_id="h:quiet",
        source="hand",
        framework="X",
        steps=[
            Step(step_idx=i, agent=a, content=f"distinct text number {i} " * 5) for i, a in enumerate("ABCD")
        ],
    )
    add_traces(db, [loop_trace, quiet], None)
    with db.transaction():
        insert_labels(
            db,
            [
                Label(
                    trace_id=t,
                    taxonomy_id="mast",
                    taxonomy_version="1.0",
                    mode_id="1.3",
                    present=p,
                    source="llm-judge:j",
                )
                for t, p in (("h:loop", True), ("h:quiet", False))
            ],
        )


def test_detect_stores_labels_once_and_compares_with_judge(db: Database):
    _corpus(db)
    report = detect(db)
    assert (report.traces, report.written) == (2, 4)
    assert report.present == {REPETITION: 1, LOOP: 1}
    row = report.versus_judge.filter(report.versus_judge["rater_a"] == REPETITION).row(0, named=True)
    assert (row["mode_id"], row["n"], row["kappa"]) == ("1.3", 2, 1.0)
    again = detect(db)
    assert (again.traces, again.written) == (0, 0)
    assert db.rows("SELECT count(*) FROM labels WHERE source LIKE 'heuristic:%'")[0][0] == 4


def test_trace_graph_service_and_cli(db: Database, tmp_path):
    _corpus(db)
    found = trace_graph(db, "h:loop")
    assert found.mistake_agent == "tester" and found.flagged == [4]
    assert found.graph.nodes["tester"]["mistake"]
    db.close()
    result = runner.invoke(app, ["graph", "h:loop", "--db", db.path, "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["mistake_agent"] == "tester"
    assert document["measures"]["loops"][0]["repeats"] == 3
    text = runner.invoke(app, ["graph", "h:loop", "--db", db.path])
    assert "repeated loop: coder -> tester x3 (steps 1-6)" in text.stdout
    corpus = runner.invoke(app, ["graph", "--db", db.path, "--format", "json"])
    edges = json.loads(corpus.stdout)["X"]["edges"]
    assert {(e["source"], e["target"], e["count"]) for e in edges} >= {("coder", "tester", 3)}
    png = tmp_path / "g.png"
    assert (
        runner.invoke(app, ["graph", "h:loop", "--db", db.path, "--format", "png", "-o", str(png)]).exit_code
        == 0
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = runner.invoke(app, ["graph", "nope", "--db", db.path])
    assert missing.exit_code == 2 and "no trace 'nope'" in missing.output


def test_dot_escapes_agent_names():
    g = handoff_graph([Step(step_idx=0, agent='evil" -> x [color=red'), Step(step_idx=1, agent="b")])
    dot = as_dot(g, "t")
    assert '"evil\\" -> x [color=red"' in dot


def test_png_draws_names_with_dollars_as_text(tmp_path):
    from tracefail.graph.render import write_png

    g = handoff_graph([Step(step_idx=0, agent="costs $5 \\frac{"), Step(step_idx=1, agent="b")])
    write_png(g, "$ title", tmp_path / "d.png")  # mathtext would raise on the unbalanced "$"
    assert (tmp_path / "d.png").stat().st_size > 1000
