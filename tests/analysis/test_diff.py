"""Run diff on real runs: two releases of one MAST run, two samples of one Inspect eval, and two
tau-bench trials of one task (the second trial derived from the shipped one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SAMPLES
from tracefail.analysis.diff import align, first_divergence
from tracefail.services import diff as service
from tracefail.services.ingest import ingest
from tracefail.store import Database
from tracefail.store.traces import get_steps

TAU_FILE = SAMPLES / "tau-bench" / "retail_gpt-4o_results.json"


@pytest.fixture
def runs_db(db: Database) -> Database:
    ingest(db, [SAMPLES / "mast", SAMPLES / "inspect", SAMPLES / "tau-bench"])
    return db


def test_one_mast_run_from_two_releases_is_identical(runs_db: Database) -> None:
    result = service.diff_runs(runs_db, "mast:AG2_GSM-Plus_GPT4o/7", "mast-human:7")
    assert result.first_divergence is None
    assert result.counts == {"same": result.a.n_steps}
    assert {label.source for label in result.a.labels} == {"dataset:mast"}
    assert {label.source for label in result.b.labels} == {f"human:annotator_{i}" for i in (1, 2, 3)}


def test_inspect_samples_diverge_at_the_question(runs_db: Database) -> None:
    failed, passed = "inspect:arc_easy/ev-9aZ/2/1", "inspect:arc_easy/ev-9aZ/1/1"
    result = service.diff_runs(runs_db, failed, passed)
    assert (result.a.outcome, result.b.outcome) == ("failure", "success")
    assert [row.status for row in result.rows] == ["same", "changed", "changed"]
    assert result.first_divergence == 1
    assert result.a.divergent_step == result.b.divergent_step == 1
    assert "mammal" in (result.a.divergent_text or "")


@pytest.fixture
def trials_db(db: Database, tmp_path: Path) -> Database:
    """Task 17 as shipped (trial 0) and a second trial where the lookup fails, the agent asks
    again and then succeeds: a different tool result and steps only in trial 1."""
    record = json.loads(TAU_FILE.read_text())[0]
    retry = json.loads(json.dumps(record))
    retry["trial"], retry["reward"] = 1, 1.0
    traj = retry["traj"]
    traj[3]["content"] = "Error: user not found"
    traj[4:4] = [
        {"role": "assistant", "content": "I could not find you. What is your zip code?"},
        {"role": "user", "content": "It is 19122."},
    ]
    path = tmp_path / "retail_trials.json"
    path.write_text(json.dumps([record, retry]))
    ingest(db, [path], format_name="tau-bench")
    return db


def test_trials_show_tool_result_and_extra_steps(trials_db: Database) -> None:
    a, b = "tau-bench:retail_trials/17/0", "tau-bench:retail_trials/17/1"
    result = service.diff_runs(trials_db, a, b)
    statuses = [(row.status, row.a, row.b) for row in result.rows]
    assert statuses[:3] == [("same", 0, 0), ("same", 1, 1), ("same", 2, 2)]
    assert statuses[3] == ("tool_result", 3, 3)
    assert result.first_divergence == 3
    assert ("only_b", None, 4) in statuses and ("only_b", None, 5) in statuses
    assert result.rows[3].action == "tool find_user_id_by_name_zip"
    assert result.b.divergent_text == "Error: user not found"


def test_alignment_covers_every_step_once(runs_db: Database) -> None:
    a = get_steps(runs_db, "tau-bench:retail_gpt-4o_results/17/0")
    b = get_steps(runs_db, "tau-bench:retail_gpt-4o_results/18/0")
    rows = align(a, b)
    assert sorted(r.a for r in rows if r.a is not None) == [s.step_idx for s in a]
    assert sorted(r.b for r in rows if r.b is not None) == [s.step_idx for s in b]
    assert first_divergence(rows) == 0


def test_unknown_trace_is_an_error(runs_db: Database) -> None:
    with pytest.raises(service.DiffError, match="no trace 'nope'"):
        service.diff_runs(runs_db, "nope", "mast-human:7")
