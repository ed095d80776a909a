"""Agreement metrics with known answers, calibration, and `eval` / `calibrate` on a real store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from judge_server import StubServer, completion, valid_answer
from typer.testing import CliRunner

from tracefail.analysis.agreement import (
    accuracy_ci,
    binary_scores,
    binary_scores_ci,
    cohen_kappa,
    expected_calibration_error,
)
from tracefail.cli import app
from tracefail.judge import calibration
from tracefail.judge.runner import to_rows
from tracefail.model import Attribution, Label
from tracefail.services.evaluate import EvalError, calibrate, evaluate
from tracefail.store import Database
from tracefail.store.labels import save_judgement
from tracefail.taxonomy import find

MAST = find("mast-v1")
MODES = [m.id for m in MAST.taxonomy.modes]


def test_cohen_kappa_known_values():
    assert cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(0.5)
    assert cohen_kappa([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)
    assert cohen_kappa(["a", "b", "c"], ["a", "b", "c"]) == pytest.approx(1.0)
    # 20 items: po = 0.7, pe = 0.5*0.6 + 0.5*0.4 = 0.5 -> kappa 0.4
    a = [1] * 10 + [0] * 10
    b = [1] * 8 + [0] * 2 + [1] * 4 + [0] * 6
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa([0, 0], [0, 0]) == 1.0
    with pytest.raises(ValueError):
        cohen_kappa([1], [1, 0])


def test_binary_scores_known_values():
    scores = binary_scores([True, True, False, False, True], [True, False, False, True, True])
    assert (scores.precision, scores.recall) == pytest.approx((2 / 3, 2 / 3))
    assert scores.f1 == pytest.approx(2 / 3) and scores.accuracy == pytest.approx(0.6)
    assert np.isnan(binary_scores([False], [False]).precision)  # no positive predictions: undefined


def test_bootstrap_interval_brackets_the_value():
    rng = np.random.default_rng(1)
    ref = rng.random(200) < 0.4
    pred = np.where(rng.random(200) < 0.8, ref, ~ref)
    out = binary_scores_ci(pred, ref, reps=300)
    for name in ("kappa", "f1", "accuracy"):
        assert out[name]["low"] <= out[name]["value"] <= out[name]["high"]
        assert out[name]["high"] - out[name]["low"] < 0.3
    assert accuracy_ci([True] * 5, reps=50) == {"value": 1.0, "low": 1.0, "high": 1.0}


def test_ece_known_values():
    assert expected_calibration_error([0.9] * 10, [True] * 9 + [False]) == pytest.approx(0.0)
    assert expected_calibration_error([0.8] * 10, [True] * 5 + [False] * 5) == pytest.approx(0.3)
    assert expected_calibration_error([0.2, 0.9], [False, True]) == pytest.approx(0.15)


def test_calibration_fixes_an_overconfident_judge():
    rng = np.random.default_rng(0)
    truth = rng.random(400)  # true probability
    y = rng.random(400) < truth
    raw = 1 / (1 + np.exp(-3 * calibration.logit(truth)))  # 3x overconfident
    before = expected_calibration_error(raw, y)
    for method in calibration.METHODS:
        params = calibration.fit(raw, y, method)
        after = expected_calibration_error([calibration.apply(p, params) for p in raw], y)
        assert after < before / 2
        assert params["a"] == pytest.approx(1 / 3, abs=0.1)
    with pytest.raises(ValueError):
        calibration.fit(raw, y, "isotonic")


def _judge_run(db, source_hash: str = "abc123") -> str:
    db.execute(
        "INSERT INTO runs (run_id, kind, config_hash, status, started_at) "
        "VALUES (?, 'label', ?, 'done', now())",
        [f"run-{source_hash}", source_hash],
    )
    return f"llm-judge:{source_hash}"


def _judge_label(trace: str, mode: str, present: bool, p: float, source: str) -> Label:
    return Label(
        trace_id=trace,
        taxonomy_id="mast",
        taxonomy_version="1.0",
        mode_id=mode,
        present=present,
        probability=p,
        raw_probability=p,
        source=source,
    )


def _human(trace: str, version: str, code: str, present: bool | None, who: str, name: str = "") -> Label:
    return Label(
        trace_id=trace,
        taxonomy_id="mast",
        taxonomy_version=version,
        mode_id=code,
        present=present,
        source=f"human:{who}",
        metadata={"mode_name": name} if name else {},
    )


def test_attribution_is_exact_match_with_baselines(whowhen_db):
    source = _judge_run(whowhen_db)
    gold = whowhen_db.rows(
        "SELECT trace_id, agent, step_idx FROM attributions "
        "WHERE source = 'dataset:whowhen' ORDER BY trace_id"
    )
    assert len(gold) == 20
    preds = []
    for i, (trace, agent, step) in enumerate(gold):
        if i < 5:  # right agent, right step
            preds.append(Attribution(trace_id=trace, agent=agent, step_idx=step, source=source))
        elif i < 10:  # a step whose digits contain the gold step ("1" in "11"): must not count
            preds.append(Attribution(trace_id=trace, agent=agent + "_x", step_idx=step + 10, source=source))
        else:
            preds.append(Attribution(trace_id=trace, agent=None, step_idx=None, source=source))
    save_judgement(whowhen_db, [], preds)
    result = evaluate(whowhen_db, reference="dataset", reps=200).to_json()
    block = result["attribution"]
    assert block["n_traces"] == 20
    assert block["judge"]["agent"]["value"] == pytest.approx(0.25)
    assert block["judge"]["step"]["value"] == pytest.approx(0.25)
    first = sum(step == 0 for _, _, step in gold) / 20
    assert block["baselines"]["first_step"]["step"]["value"] == pytest.approx(first)
    common = block["baselines"]["most_common_step"]
    assert common["step"]["value"] == pytest.approx(
        max(sum(s == k for *_, s in gold) for k in {s for *_, s in gold}) / 20
    )
    steps = dict(whowhen_db.rows("SELECT trace_id, n_steps FROM traces"))
    expected_random = np.mean([1 / steps[t] for t, _, _ in gold])
    assert block["baselines"]["random"]["step"]["value"] == pytest.approx(expected_random)
    assert "most_frequent_speaker" in block["baselines"]


def test_mode_agreement_remaps_old_rounds_and_takes_the_majority(whowhen_db):
    source = _judge_run(whowhen_db)
    traces = [r[0] for r in whowhen_db.rows("SELECT trace_id FROM traces ORDER BY trace_id LIMIT 4")]
    judge = [
        _judge_label(traces[0], "3.2", True, 0.9, source),
        _judge_label(traces[1], "3.2", False, 0.2, source),
        _judge_label(traces[2], "3.2", True, 0.7, source),
        _judge_label(traces[3], "3.3", True, 0.8, source),
        _judge_label(traces[0], "3.3", False, 0.1, source),
        _judge_label(traces[3], "3.2", False, 0.3, source),
    ]
    humans = [
        # round 1 code 4.2 = lack of result verification = final 3.2
        *[_human(traces[0], "round1-18", "4.2", True, w, "Lack of result verification") for w in "abc"],
        _human(traces[1], "round2-17", "3.3", False, "a"),  # round 2's 3.3 is also final 3.2
        _human(traces[1], "round2-17", "3.3", False, "b"),
        _human(traces[1], "round2-17", "3.3", True, "c"),
        # the 14-mode round's 3.2 text is final 3.3, and its 3.3 text is final 3.2
        _human(traces[2], "v1", "3.3", False, "a", "Incorrect Verification"),
        _human(traces[2], "v1", "3.3", False, "b", "Incorrect Verification"),
        _human(traces[3], "v1", "3.2", True, "a", "No or Incomplete Verification"),
        _human(traces[3], "v1", "3.3", False, "a", "Incorrect Verification"),
        _human(traces[0], "round1-18", "2.1", True, "a", "Unbatched repetitive execution"),  # dropped mode
        _human(traces[0], "round1-18", "4.3", None, "a"),  # NaN in the file
    ]
    save_judgement(whowhen_db, judge + humans, [])
    modes = evaluate(whowhen_db, reference="human", reps=100).to_json()["modes"]
    by_mode = {row["mode_id"]: row for row in modes["per_mode"]}
    assert by_mode["3.2"]["n"] == 4 and by_mode["3.2"]["reference_positives"] == 1
    assert by_mode["3.2"]["accuracy"]["value"] == pytest.approx(3 / 4)  # traces[2]: judge yes, humans no
    assert by_mode["3.3"]["n"] == 1 and by_mode["3.3"]["accuracy"]["value"] == 1.0
    assert by_mode["3.3"]["single_class"] and not by_mode["3.2"]["single_class"]
    assert modes["reference_remap"]["dropped"] == {
        "round1-18 2.1 (Unbatched repetitive execution) has no counterpart": 1,
        "no answer (null)": 1,
    }
    # merged verification: only traces[3] has both codes on both sides; judge and humans say yes
    assert modes["merged_3.2_3.3"]["accuracy"]["value"] == 1.0


def test_eval_without_a_judge_run_says_so(whowhen_db):
    with pytest.raises(EvalError, match="run `tracefail label` first"):
        evaluate(whowhen_db, reference="dataset")
    with pytest.raises(EvalError, match="--reference"):
        evaluate(whowhen_db, reference="vibes")


def test_calibrate_then_later_labels_carry_calibrated_probabilities(whowhen_db):
    source = _judge_run(whowhen_db, "cal001")
    traces = [r[0] for r in whowhen_db.rows("SELECT trace_id FROM traces ORDER BY trace_id")]
    rng = np.random.default_rng(3)
    labels = []
    for i, trace in enumerate(traces):
        truth = i % 2 == 0
        raw = float(np.clip(0.75 + (0.2 if truth else 0.0) + rng.normal(0, 0.02), 0.01, 0.99))
        labels.append(_judge_label(trace, "1.3", raw >= 0.5, raw, source))
        labels.append(_human(trace, "1.0", "1.3", truth, "ann"))
    save_judgement(whowhen_db, labels, [])
    result = calibrate(whowhen_db, reference="human", method="platt").to_json()
    fitted = next(m for m in result["modes"] if m["mode_id"] == "1.3")
    assert fitted["ece_after"] < fitted["ece_before"]
    assert result["fitted_modes"] == 1
    assert next(m for m in result["modes"] if m["mode_id"] == "1.1")["skipped"]

    from tracefail.judge.backend import JudgeResult
    from tracefail.model import ModeVerdict, Verdict
    from tracefail.store.labels import latest_calibrations

    cal = latest_calibrations(whowhen_db, source, "mast", "1.0")
    verdict = Verdict(trace_id=traces[0], modes=[ModeVerdict(mode_id="1.3", present=True, probability=0.78)])
    rows, _ = to_rows(JudgeResult(verdict), MAST, source, "run-x", cal)
    assert rows[0].raw_probability == 0.78 and rows[0].probability < 0.5 and rows[0].present is False
    assert rows[0].metadata["calibration"] == "platt"


def test_cli_label_with_http_judge_then_eval_json(whowhen_db, tmp_path):
    path = whowhen_db.path
    whowhen_db.close()

    def ok(body, number, headers):
        return 200, completion(valid_answer(body, MODES, frozenset({"3.2"}))), {}

    runner = CliRunner()
    with StubServer(ok) as server:
        result = runner.invoke(
            app,
            [
                "label",
                "--db",
                path,
                "--judge",
                "openai:stub",
                "--base-url",
                server.base_url,
                "--api-key-env",
                "NO_SUCH_KEY",
                "--concurrency",
                "4",
                "--limit",
                "5",
                "--json",
            ],
        )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["judged"] == 5 and summary["tokens_in"] == 500
    result = runner.invoke(
        app, ["eval", "--db", path, "--reference", "dataset", "--json", "--bootstrap", "50"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    attribution = report["attribution"]
    assert attribution["n_traces"] == 5
    assert {"random", "most_common_step", "first_step", "most_frequent_speaker", "last_worker_step"} <= set(
        attribution["baselines"]
    )
    # the stub blames step 0 every time, so the judge equals the first-step baseline
    assert attribution["judge"]["step"]["value"] == attribution["baselines"]["first_step"]["step"]["value"]
    bad = runner.invoke(app, ["label", "--db", path, "--judge", "gpt4"])
    assert bad.exit_code == 2 and "unknown backend; registered: local, openai, ranker" in bad.stderr


def test_openai_endpoint_without_a_key_fails_before_the_run(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = tmp_path / "c.duckdb"
    runner = CliRunner()
    sample = Path(__file__).resolve().parents[2] / "data_samples" / "whowhen" / "1.json"
    assert runner.invoke(app, ["ingest", "--db", path, str(sample)]).exit_code == 0
    result = runner.invoke(app, ["label", "--db", path, "--judge", "openai:gpt-4o-mini"])
    assert result.exit_code == 2
    assert "$OPENAI_API_KEY is not set" in result.stderr
    with Database(path) as db:
        assert db.rows("SELECT count(*) FROM runs WHERE kind = 'label'") == [(0,)]


def test_eval_and_calibrate_pick_the_latest_judge_with_labels(whowhen_db, tmp_path):
    gold = whowhen_db.rows("SELECT trace_id FROM attributions WHERE source = 'dataset:whowhen' LIMIT 12")
    old, newer = _judge_run(whowhen_db, "old"), _judge_run(whowhen_db, "newer")
    save_judgement(
        whowhen_db, [_judge_label(t, "1.1", i % 2 == 0, 0.7, old) for i, (t,) in enumerate(gold)], []
    )
    save_judgement(whowhen_db, [_judge_label(t, "1.1", True, 0.6, newer) for (t,) in gold], [])
    _judge_run(whowhen_db, "failed")  # the newest run stored nothing (endpoint down)
    result = evaluate(whowhen_db, reference="dataset", reps=50).to_json()
    assert result["judge_source"] == newer and result["other_judge_sources"] == [
        f"{old} (12 mode labels, 0 attributions)"
    ]
    assert result["judge_picked"] == "newest source with labels for the task"
    assert calibrate(whowhen_db, reference="dataset", min_labels=100).judge_source == newer
    whowhen_db.close()
    cli = CliRunner().invoke(
        app, ["eval", "--db", whowhen_db.path, "--reference", "dataset", "--bootstrap", "50"]
    )
    assert cli.exit_code == 0, cli.output
    assert (
        f"modes from {newer}, attribution from no source (newest source with labels for the task)"
        in cli.stderr
    )
    assert f"other sources with labels: {old} (12 mode labels" in cli.stderr


def test_multinomial_bootstrap_matches_resampling_items():
    rng = np.random.default_rng(3)
    ref = rng.random(400) < 0.3
    pred = np.where(rng.random(400) < 0.75, ref, ~ref)
    fast = binary_scores_ci(pred, ref, reps=2000)
    plain = []  # the textbook bootstrap: resample the items themselves
    for _ in range(2000):
        idx = rng.integers(0, 400, 400)
        plain.append(binary_scores(pred[idx], ref[idx]))
    for name in ("kappa", "f1", "accuracy", "precision", "recall"):
        assert fast[name]["value"] == pytest.approx(getattr(binary_scores(pred, ref), name))
        values = np.array([getattr(s, name) for s in plain])
        low, high = np.percentile(values, [2.5, 97.5])
        assert fast[name]["low"] == pytest.approx(low, abs=0.02)
        assert fast[name]["high"] == pytest.approx(high, abs=0.02)
    spread = accuracy_ci([0.5, 0.25, 0.5, 1.0] * 25, reps=500)
    assert spread["value"] == pytest.approx(0.5625)
    assert spread["low"] < spread["value"] < spread["high"]
