"""train -> label --judge ranker: -> eval -> review, end to end through the real CLI and DuckDB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tracefail.cli import app
from tracefail.model import Attribution
from tracefail.store import Database
from tracefail.store.traces import insert_attributions

runner = CliRunner()
SAMPLES = Path(__file__).resolve().parents[2] / "data_samples" / "whowhen"
BASELINES = {
    "first_step",
    "most_common_step",
    "most_common_position",
    "first_worker_step",
    "last_worker_step",
    "last_worker_speaker",
    "most_frequent_speaker",
    "most_frequent_non_orchestrator",
    "random",
}


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.slow
def test_train_label_eval_review(tmp_path: Path) -> None:
    db, model = tmp_path / "c.duckdb", tmp_path / "ranker.json"
    assert run("ingest", "--db", db, SAMPLES).exit_code == 0
    trained = run("train", "--db", db, "--cv", 5, "--bootstrap", 50, "-o", model, "--curve", "--json")
    assert trained.exit_code == 0, trained.output
    report = json.loads(trained.stdout)
    assert report["n_traces"] == 20 and report["folds"] == 5
    rows = {r["name"]: r for r in report["rows"]}
    assert set(rows) == {"ranker"} | BASELINES
    with Database(db, read_only=True) as store:
        gold = store.rows("SELECT step_idx FROM attributions WHERE source = 'dataset:whowhen'")
    first = sum(step == 0 for (step,) in gold) / len(gold)
    assert rows["first_step"]["step"]["value"] == first
    assert rows["first_step"]["step"]["diff"] == pytest.approx(rows["ranker"]["step"]["value"] - first)
    assert [p["n_train"] for p in report["learning_curve"]] == [10, 16]
    saved = json.loads(model.read_text())
    assert saved["summary"]["n_traces"] == 20 and "err_next" in saved["features"]

    labelled = run("label", "--db", db, "--judge", f"ranker:{model}", "--task", "attribution", "--json")
    assert labelled.exit_code == 0, labelled.output
    assert json.loads(labelled.stdout)["attributions"] == 20
    assert json.loads(labelled.stdout)["source"].startswith("ranker:")  # a ranker is not an LLM judge
    with Database(db, read_only=True) as store:
        meta = store.rows("SELECT metadata FROM attributions WHERE source LIKE 'ranker:%' LIMIT 1")[0][0]
    assert len(json.loads(meta)["top_steps"]) == 5

    evaluated = run("eval", "--db", db, "--reference", "dataset", "--bootstrap", 50, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    attribution = json.loads(evaluated.stdout)["attribution"]
    assert json.loads(evaluated.stdout)["attribution_source"].startswith("ranker:")
    assert set(attribution["baselines"]) == BASELINES
    assert 0 <= attribution["judge"]["top3"]["value"] <= 1
    assert attribution["judge"]["top3"]["value"] >= attribution["judge"]["step"]["value"]
    minus = attribution["baselines"]["first_step"]["judge_minus"]["step"]["diff"]
    first_step = attribution["baselines"]["first_step"]["step"]["value"]
    assert minus == pytest.approx(attribution["judge"]["step"]["value"] - first_step)

    with Database(db) as store:
        done = store.rows("SELECT trace_id FROM traces ORDER BY trace_id LIMIT 1")[0][0]
        insert_attributions(store, [Attribution(trace_id=done, step_idx=1, agent="x", source="human:me")])
        disagree = {
            t
            for (t,) in store.rows(
                "SELECT trace_id FROM attributions GROUP BY trace_id HAVING count(DISTINCT step_idx) > 1"
            )
        }
    queue = run("review", "--db", db, "--model", model, "--limit", 30, "--json")
    assert queue.exit_code == 0, queue.output
    items = json.loads(queue.stdout)
    assert done not in {i["trace_id"] for i in items} and len(items) == 19
    flags = [i["trace_id"] in disagree for i in items]
    assert flags == sorted(flags, reverse=True)  # traces whose sources disagree come first


def test_ranker_judge_refuses_bad_files_and_mode_tasks(tmp_path: Path) -> None:
    db, model = tmp_path / "c.duckdb", tmp_path / "ranker.json"
    assert run("ingest", "--db", db, SAMPLES / "1.json").exit_code == 0
    model.write_text("{not json")
    bad = run("label", "--db", db, "--judge", f"ranker:{model}", "--task", "attribution")
    assert bad.exit_code == 2 and str(model) in bad.stderr
    nothing = run("train", "--db", db, "--reference", "human")
    assert nothing.exit_code == 2 and "no attributions" in nothing.stderr
    few = run("train", "--db", db, "-o", model)
    assert few.exit_code == 2 and "need at least 4" in few.stderr


@pytest.mark.slow
def test_stored_lm_features_add_a_ranker_row(tmp_path: Path) -> None:
    from tracefail.store.features import replace_features

    db = tmp_path / "c.duckdb"
    assert run("ingest", "--db", db, SAMPLES).exit_code == 0
    with Database(db) as store:
        gold = dict(store.rows("SELECT trace_id, step_idx FROM attributions"))
        lengths = dict(store.rows("SELECT trace_id, n_steps FROM traces"))
        for trace, n in lengths.items():  # a feature that marks the gold step: it must help
            rows = [(i, "tok.surprisal_mean", 5.0 if i == gold[trace] else 1.0) for i in range(n)]
            replace_features(store, trace, "tiny", "v1", [*rows, (-1, "len.trace_tokens", 9.0)], None)
    trained = run("train", "--db", db, "--cv", 5, "--bootstrap", 20, "-o", tmp_path / "r.json", "--json")
    assert trained.exit_code == 0, trained.output
    report = json.loads(trained.stdout)
    rows = {r["name"]: r for r in report["rows"]}
    assert report["lm_features"] == 1
    assert rows["ranker+lm"]["step"]["value"] > rows["ranker"]["step"]["value"]


def test_lm_traces_only_compares_both_rankers_on_the_featured_subset(tmp_path: Path) -> None:
    from tracefail.store.features import replace_features

    db = tmp_path / "c.duckdb"
    assert run("ingest", "--db", db, SAMPLES).exit_code == 0
    with Database(db) as store:
        lengths = sorted(store.rows("SELECT trace_id, n_steps FROM traces"))[:12]
        for trace, n in lengths:
            rows = [(i, "tok.surprisal_mean", float(i)) for i in range(n)]
            replace_features(store, trace, "tiny", "v1", rows, None)
    args = ("train", "--db", db, "--cv", 4, "--bootstrap", 20, "-o", tmp_path / "r.json", "--json")
    whole = json.loads(run(*args).stdout)
    subset = run(*args, "--lm-traces-only")
    assert subset.exit_code == 0, subset.output
    report = json.loads(subset.stdout)
    assert (whole["n_traces"], report["n_traces"]) == (20, 12)
    rows = {r["name"]: r for r in report["rows"]}
    assert rows["ranker+lm"]["step"]["diff"] == pytest.approx(
        rows["ranker"]["step"]["value"] - rows["ranker+lm"]["step"]["value"]
    )
    with Database(db) as store:
        store.execute("DELETE FROM features")
    none = run(*args, "--lm-traces-only")
    assert none.exit_code == 2 and "stored LM features" in none.stderr


def test_review_without_a_model_orders_by_disagreement_then_trace_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ranker.json here
    db = tmp_path / "c.duckdb"
    for name in ("1.json", "2.json", "3.json"):
        assert run("ingest", "--db", db, SAMPLES / name).exit_code == 0
    with Database(db) as store:
        ids = sorted(r[0] for r in store.rows("SELECT trace_id FROM traces"))
        gold = dict(store.rows("SELECT trace_id, step_idx FROM attributions"))
        store.execute("UPDATE traces SET outcome = 'unknown' WHERE trace_id = ?", [ids[0]])
        last = ids[-1]  # a judge that disagrees with the dataset puts this trace first
        judged = Attribution(trace_id=last, step_idx=gold[last] + 1, source="llm-judge:x")
        insert_attributions(store, [judged])
    queue = run("review", "--db", db, "--json")  # no ranker.json anywhere: too few traces to fit one
    assert queue.exit_code == 0, queue.output
    items = json.loads(queue.stdout)
    # disagreement first, then failed before unknown outcome, then trace id
    assert [i["trace_id"] for i in items] == [last, *ids[1:-1], ids[0]]
    assert items[0]["disagreement"] == 2 and items[0]["uncertainty"] is None
    assert "no ranker loaded" in queue.stderr and "tracefail train" in queue.stderr
    missing = run("review", "--db", db, "--model", tmp_path / "absent.json")
    assert missing.exit_code == 2 and "absent.json" in missing.stderr
