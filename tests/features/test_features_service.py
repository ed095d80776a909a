"""`extract_features` and `tracefail features` on a real DuckDB corpus with the tiny model."""

from __future__ import annotations

import pytest
from tiny_lm import tiny_lm  # noqa: F401 - fixture
from typer.testing import CliRunner

from tracefail.cli import app
from tracefail.features.errors import FeatureError, ModelLoadError
from tracefail.features.extract import EXTRACTOR_VERSION
from tracefail.features.loading import LoadedModel, load_causal_lm
from tracefail.services.features import extract_features
from tracefail.store import features as feature_store
from tracefail.store import runs as run_store
from tracefail.store import traces as trace_store

FAST = {"window": 1024, "layers": "0"}


@pytest.fixture
def loaded(tiny_lm):  # noqa: F811 - fixture
    model, tokenizer = tiny_lm
    return LoadedModel(model, tokenizer, "tiny", "cpu")


def smallest(db, n: int) -> list[str]:
    """The n shortest traces: the byte-level tiny tokenizer makes long ones slow."""
    rows = db.rows("SELECT trace_id FROM steps GROUP BY trace_id ORDER BY sum(length(content)) LIMIT ?", [n])
    return [r[0] for r in rows]


def stored_counts(db) -> dict[str, int]:
    return dict(db.rows("SELECT trace_id, count(*) FROM features GROUP BY trace_id"))


def test_every_step_of_the_selected_traces_gets_features(whowhen_db, loaded):
    chosen = smallest(whowhen_db, 2)
    report = extract_features(whowhen_db, loaded=loaded, trace_ids=chosen, **FAST)
    assert report.traces == 2 and not report.errors
    for trace_id in chosen:
        n_steps = len(trace_store.get_steps(whowhen_db, trace_id))
        steps = {
            r[0]
            for r in whowhen_db.rows(
                "SELECT DISTINCT step_idx FROM features WHERE trace_id = ? AND name = 'len.step_tokens'",
                [trace_id],
            )
        }
        assert steps == set(range(n_steps))
    run = run_store.list_runs(whowhen_db, "features").to_dicts()[-1]
    assert run["status"] == "done" and run["tokens_in"] == report.tokens


def test_a_second_run_is_a_no_op(whowhen_db, loaded):
    chosen = smallest(whowhen_db, 2)
    extract_features(whowhen_db, loaded=loaded, trace_ids=chosen, **FAST)
    before = stored_counts(whowhen_db)
    again = extract_features(whowhen_db, loaded=loaded, trace_ids=chosen, **FAST)
    assert (again.traces, again.skipped) == (0, 2)
    assert stored_counts(whowhen_db) == before


def test_an_interrupted_run_resumes_without_duplicates(whowhen_db, loaded):
    def stop_after_first(trace_id: str, steps: int) -> None:
        raise KeyboardInterrupt

    chosen = smallest(whowhen_db, 3)
    with pytest.raises(KeyboardInterrupt):
        extract_features(whowhen_db, loaded=loaded, trace_ids=chosen, on_trace=stop_after_first, **FAST)
    assert len(feature_store.done_traces(whowhen_db, "tiny", EXTRACTOR_VERSION)) == 1
    assert run_store.list_runs(whowhen_db, "features").to_dicts()[-1]["status"] == "interrupted"
    resumed = extract_features(whowhen_db, loaded=loaded, trace_ids=chosen, **FAST)
    assert (resumed.traces, resumed.skipped) == (2, 1)
    fresh = extract_features(whowhen_db, loaded=loaded, trace_ids=chosen, **FAST)
    assert fresh.traces == 0
    counts = whowhen_db.rows(
        "SELECT count(*) FROM (SELECT trace_id, step_idx, name FROM features "
        "GROUP BY ALL HAVING count(*) > 1)"
    )
    assert counts == [(0,)]


def test_bad_requests_fail_before_any_work(whowhen_db, loaded):
    with pytest.raises(FeatureError, match=r"no trace 'nope'"):
        extract_features(whowhen_db, loaded=loaded, trace_ids=["nope"], **FAST)
    with pytest.raises(FeatureError, match="--layers"):
        extract_features(whowhen_db, loaded=loaded, limit=1, window=512, layers="0-99")
    assert whowhen_db.rows("SELECT count(*) FROM features") == [(0,)]
    with pytest.raises(ModelLoadError, match="no such GGUF file"):
        load_causal_lm("/nonexistent/model.gguf", device="cpu")


def test_cli_with_a_local_model_directory(whowhen_db, tiny_lm, tmp_path):  # noqa: F811 - fixture
    model, tokenizer = tiny_lm
    model_dir = tmp_path / "tiny-model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    path = whowhen_db.path
    args = [
        "features",
        "--db",
        path,
        "--model",
        str(model_dir),
        "--device",
        "cpu",
        "--window",
        "1024",
        "--layers",
        "0",
        "--traces",
        smallest(whowhen_db, 1)[0],
    ]
    whowhen_db.close()
    runner = CliRunner()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1 traces" in result.stdout and "dir:tiny-model" in result.stdout
    again = runner.invoke(app, args)
    assert "0 traces" in again.stdout and "1 already done" in again.stdout
    missing = runner.invoke(app, ["features", "--db", path, "--model", str(tmp_path / "absent")])
    assert missing.exit_code == 1
    assert "no such local model directory" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
