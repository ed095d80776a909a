"""What produced a label is what its source says: a judge's attribution names the step's speaker,
a ranker's labels are `ranker:`, and eval/calibrate pick a source per task."""

from __future__ import annotations

import json

from judge_server import _STEP, StubServer, completion, valid_answer
from typer.testing import CliRunner

from tracefail.cli import app
from tracefail.model import Attribution, Label
from tracefail.services.evaluate import EvalError, calibrate, evaluate
from tracefail.store import Database
from tracefail.store.labels import save_judgement
from tracefail.taxonomy import find

MODES = [m.id for m in find("mast-v1").taxonomy.modes]


def _label_with_stub(path: str, responder, *extra: str) -> dict:  # type: ignore[no-untyped-def]
    with StubServer(responder) as server:
        result = CliRunner().invoke(
            app,
            ["label", "--db", path, "--judge", "openai:stub", "--base-url", server.base_url,
             "--api-key-env", "NO_SUCH_KEY", "--json", *extra],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_judge_that_blames_the_wrong_agent_stores_the_steps_speaker(whowhen_db: Database) -> None:
    """The scripted judge blames step 0 but names another agent of the trace (the mistake of 4 of
    the demo's 6 judge attributions); the stored attribution names step 0's speaker and keeps
    the reply's claim, and eval counts it."""
    path = whowhen_db.path
    speaker0 = dict(whowhen_db.rows("SELECT trace_id, agent FROM steps WHERE step_idx = 0"))
    whowhen_db.close()
    claimed: dict[str, str] = {}

    def wrong_agent(body, number, headers):  # type: ignore[no-untyped-def]
        answer = json.loads(valid_answer(body, MODES))
        speakers = [a.strip() for _, a in _STEP.findall(body["messages"][1]["content"])]
        other = next(a for a in speakers if a != answer["root_cause"]["agent"])
        answer["root_cause"]["agent"] = other
        return 200, completion(json.dumps(answer)), {}

    summary = _label_with_stub(path, wrong_agent, "--limit", "5")
    assert summary["attributions"] == 5 and summary["source"].startswith("llm-judge:")
    with Database(path) as db:
        rows = db.rows(
            "SELECT trace_id, agent, step_idx, metadata FROM attributions WHERE source LIKE 'llm-judge:%'"
        )
        assert len(rows) == 5
        for trace_id, agent, step, metadata in rows:
            claimed[trace_id] = json.loads(metadata)["judge_agent"]
            assert step == 0 and agent == speaker0[trace_id] != claimed[trace_id]
        result = evaluate(db, reference="dataset", reps=20)
    assert result.attribution.speaker_corrected == 5 and result.attribution_source == summary["source"]


def _ranker_rows(db: Database, source: str, traces: list[str]) -> None:
    save_judgement(
        db,
        [],
        [
            Attribution(trace_id=t, agent=None, step_idx=1, source=source, metadata={"top_steps": [1, 0, 2]})
            for t in traces
        ],
    )


def test_eval_after_a_ranker_run_still_evaluates_the_judges_modes(whowhen_db: Database) -> None:
    traces = [r[0] for r in whowhen_db.rows("SELECT trace_id FROM traces ORDER BY trace_id LIMIT 8")]
    judge = "llm-judge:judge01"
    save_judgement(
        whowhen_db,
        [
            Label(trace_id=t, taxonomy_id="mast", taxonomy_version="1.0", mode_id="1.1", present=i % 2 == 0,
                  probability=0.6, raw_probability=0.6, source=judge)
            for i, t in enumerate(traces)
        ]
        + [
            Label(trace_id=t, taxonomy_id="mast", taxonomy_version="1.0", mode_id="1.1", present=i % 3 == 0,
                  source="dataset:demo")
            for i, t in enumerate(traces)
        ],
        [Attribution(trace_id=t, agent=None, step_idx=0, source=judge) for t in traces],
    )  # fmt: skip
    _ranker_rows(whowhen_db, "ranker:abc", traces)  # newer than the judge, attribution only
    result = evaluate(whowhen_db, reference="dataset", reps=20)
    assert result.judge_source == judge and result.modes.n_pairs == 8
    assert result.attribution_source == "ranker:abc" and result.attribution.n_traces == 8
    assert result.attribution.judge is not None and result.attribution.judge.top3 is not None
    assert calibrate(whowhen_db, reference="dataset", min_labels=100).judge_source == judge
    given = evaluate(whowhen_db, reference="dataset", judge_source="ranker:abc", reps=20)
    assert given.modes.n_pairs == 0 and "no mode labels" in (given.modes.note or "")
    assert given.attribution_source == "ranker:abc"
    assert any(o.startswith(judge) for o in given.other_judge_sources)
    for bad in ("ranker:abc", "llm-judge:nothere"):
        try:
            calibrate(whowhen_db, reference="dataset", judge_source=bad)
        except EvalError as exc:
            assert "mode labels" in str(exc) or "no such judge" in str(exc)
        else:
            raise AssertionError(f"calibrate took {bad}")


def test_the_trace_header_and_graph_show_the_trusted_attribution_with_its_source(
    whowhen_db: Database,
) -> None:
    """A newer judge attribution blaming someone else does not replace the dataset's; it is listed
    after it, named and marked not validated, and blames its step's speaker."""
    from tracefail.services.stats import trace_graph
    from tracefail.store.trace_view import trusted_attributions

    trace, gold_agent, gold_step = whowhen_db.rows(
        "SELECT trace_id, agent, step_idx FROM attributions WHERE source = 'dataset:whowhen' "
        "ORDER BY trace_id LIMIT 1"
    )[0]
    speaker0 = whowhen_db.rows("SELECT agent FROM steps WHERE trace_id = ? AND step_idx = 0", [trace])[0][0]
    save_judgement(
        whowhen_db, [], [Attribution(trace_id=trace, agent="Nobody", step_idx=0, source="llm-judge:j")]
    )
    shown = trusted_attributions(whowhen_db, trace)
    assert [(a["source"], a["agent"], a["step_idx"]) for a in shown] == [
        ("dataset:whowhen", gold_agent, gold_step),
        ("llm-judge:j", speaker0, 0),
    ]
    assert shown[0]["validation"] == "reference" and shown[1]["validation"].startswith("not validated")
    graph = trace_graph(whowhen_db, trace)
    assert graph.mistake_agent == gold_agent and (graph.mistake_source or "").startswith("dataset:whowhen")


def test_limit_and_filter_have_a_documented_order_and_attribution_skips_successes(db: Database) -> None:
    from tests.conftest import SAMPLES
    from tracefail.services.ingest import ingest
    from tracefail.services.selection import UnknownTraceError, select_traces

    ingest(db, [SAMPLES])
    ids = [r[0] for r in db.rows("SELECT trace_id FROM traces ORDER BY trace_id")]
    succeeded = {r[0] for r in db.rows("SELECT trace_id FROM traces WHERE outcome = 'success'")}
    assert succeeded & set(ids[:10])  # the first ids by order include a successful run
    assert select_traces(db, None, 10) == ids[:10]
    picked = select_traces(db, None, 10, failing_only=True)
    assert len(picked) == 10 and not succeeded & set(picked) and picked == sorted(picked)
    ag2 = select_traces(db, None, 3, "FRAMEWORK:ag2")
    assert (
        ag2
        == [i for i in ids if db.rows("SELECT framework FROM traces WHERE trace_id = ?", [i])[0][0] == "AG2"][
            :3
        ]
    )
    for bad in ("framework:nope", "outcome:failed"):
        try:
            select_traces(db, None, None, bad)
        except UnknownTraceError as exc:
            assert "known" in str(exc)
        else:
            raise AssertionError(bad)
