"""A ranker on systems it never saw: train holds out whole groups, label and eval say when a
corpus is unlike the ranker's training corpus, and its attributions are stored as not validated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tracefail.cli import app
from tracefail.store import Database

runner = CliRunner()
SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A ranker trained on the 20 shipped Who&When AG2 runs (real runs, real labels)."""
    tmp = tmp_path_factory.mktemp("ranker")
    db, model = tmp / "ag.duckdb", tmp / "ranker.json"
    assert run("ingest", "--db", db, SAMPLES / "whowhen").exit_code == 0
    done = run("train", "--db", db, "--cv", 4, "--bootstrap", 20, "-o", model)
    assert done.exit_code == 0, done.output
    return db, model


def _ranker_attributions(db: Path) -> list[dict]:
    with Database(db, read_only=True) as store:
        rows = store.rows("SELECT metadata FROM attributions WHERE source NOT LIKE 'dataset:%'")
    return [json.loads(m) for (m,) in rows]


def test_label_on_an_unlike_corpus_warns_and_stores_not_validated(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    _, model = trained
    profile = json.loads(model.read_text())["summary"]["profile"]
    assert profile["frameworks"] == {"AG2": 20} and profile["n_runs"] == 20
    db = tmp_path / "mast.duckdb"
    assert run("ingest", "--db", db, SAMPLES / "mast" / "mad_full_sample.json").exit_code == 0
    labelled = run("label", "--db", db, "--judge", f"ranker:{model}", "--task", "attribution")
    assert labelled.exit_code == 0, labelled.output
    assert "not validated on this corpus" in labelled.stderr
    assert "frameworks it never saw" in labelled.stderr and "ChatDev" in labelled.stderr
    stored = _ranker_attributions(db)
    assert len(stored) == 8
    assert all(m["validated"] is False and "ChatDev" in m["transfer"] for m in stored)

    evaluated = run("eval", "--db", db, "--reference", "dataset", "--bootstrap", 20)
    assert "8 attributions" in evaluated.stderr and "not validated on this corpus" in evaluated.stderr

    queue = run("review", "--db", db, "--model", model, "--limit", 3)
    assert queue.exit_code == 0, queue.output
    assert "not validated on this corpus" in queue.stderr
    assert "validates it" in queue.stdout  # the runs whose labels would validate it come first


def test_label_on_the_training_corpus_is_validated(trained: tuple[Path, Path]) -> None:
    db, model = trained
    copy = db.with_name("again.duckdb")
    copy.write_bytes(db.read_bytes())
    labelled = run("label", "--db", copy, "--judge", f"ranker:{model}", "--task", "attribution")
    assert labelled.exit_code == 0, labelled.output
    assert "not validated" not in labelled.stderr
    assert {m["validated"] for m in _ranker_attributions(copy)} == {True}


def test_train_holds_out_whole_groups_beside_in_domain_cv(trained: tuple[Path, Path]) -> None:
    db, _ = trained
    held = run("train", "--db", db, "--cv", "by-metadata.level", "--bootstrap", 20, "--json")
    assert held.exit_code == 0, held.output
    report = json.loads(held.stdout)
    with Database(db, read_only=True) as store:
        levels = dict(store.rows("SELECT metadata ->> 'level', count(*) FROM traces GROUP BY 1"))
    assert {g["group"]: g["n_traces"] for g in report["groups"]} == levels
    assert report["split"] == f"held out by metadata.level ({len(levels)} groups)"
    rows = {r["name"]: r for r in report["rows"]}
    ranker = rows["ranker, held out by metadata.level"]["step"]["value"]
    for rule in ("first_worker_step", "last_worker_step", "last_worker_speaker"):
        paired = rows[rule]["step"]
        assert paired["diff"] == pytest.approx(ranker - paired["value"])
        assert paired["diff_low"] <= paired["diff"] <= paired["diff_high"]
    in_domain = report["in_domain"]["step"]
    assert in_domain["diff"] == pytest.approx(ranker - in_domain["value"])
    pooled = sum(g["step"]["value"] * g["n_traces"] for g in report["groups"]) / report["n_traces"]
    assert pooled == pytest.approx(ranker)

    one = run("train", "--db", db, "--cv", "by-framework")
    assert one.exit_code == 2 and "have framework 'AG2'" in one.stderr
    bad = run("train", "--db", db, "--cv", "by-colour")
    assert bad.exit_code == 2 and "unknown trace column 'colour'" in bad.stderr


def test_labels_of_the_new_corpus_are_what_validates_the_ranker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracefail.services import attribution
    from tracefail.services.attribution import load_ranker, transfer_check

    files = sorted(SAMPLES.joinpath("whowhen").glob("*.json"), key=lambda p: int(p.stem))
    first, model = tmp_path / "first.duckdb", tmp_path / "ranker.json"
    assert run("ingest", "--db", first, *files[:10]).exit_code == 0
    assert run("train", "--db", first, "--cv", 4, "--bootstrap", 20, "-o", model).exit_code == 0
    target = tmp_path / "target.duckdb"
    assert run("ingest", "--db", target, *files).exit_code == 0
    with Database(target) as store:
        store.connection.execute("UPDATE traces SET framework = 'Magentic'")  # another system
        ids = [t for (t,) in store.rows("SELECT trace_id FROM traces ORDER BY trace_id")]
        ranker = load_ranker(model)
        waiting = transfer_check(store, ranker, ids)
        assert not waiting.validated and waiting.labelled == 10  # the 10 it trained on do not count
        assert "until 20 labelled runs here confirm it (10 labelled here" in waiting.message
        monkeypatch.setattr(attribution, "VALIDATION_RUNS", 10)
        enough = transfer_check(store, ranker, ids)
    assert enough.ranker_step is not None and enough.best_rule_step is not None
    assert enough.validated == (enough.ranker_step >= enough.best_rule_step)
    assert enough.metadata()["validated"] is enough.validated
