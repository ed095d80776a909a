"""Slices find a planted slice; the betting audit decides correctly and keeps its error level."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tracefail.analysis.audit import audit
from tracefail.cli import app
from tracefail.model import Label, Step, Trace
from tracefail.services import stats as service
from tracefail.store import Database
from tracefail.store.traces import add_traces, insert_labels

runner = CliRunner()


def planted(db: Database) -> None:
    """400 traces over 4 llms x 4 benchmarks; mode 1.3 at 8% except llm=L2 & benchmark=B3 (70%)."""
    rng = np.random.default_rng(1)
    traces, labels = [], []
    for i in range(400):
        llm, bench = f"L{i % 4}", f"B{(i // 4) % 4}"
        rate = 0.7 if (llm, bench) == ("L2", "B3") else 0.08
        tid = f"p:{i}"
        traces.append(
            Trace(
                trace_id=tid,
                source="planted",
                framework="F",
                llm=llm,
                benchmark=bench,
                steps=[
                    Step(step_idx=j, agent="a" if j % 2 else "b", content=f"{i}-{j}")
                    for j in range(2 + i % 5)
                ],
            )
        )
        for mode, p in (("1.3", rate), ("2.1", 0.1)):
            labels.append(
                Label(
                    trace_id=tid,
                    taxonomy_id="mast",
                    taxonomy_version="1.0",
                    mode_id=mode,
                    present=bool(rng.random() < p),
                    source="llm-judge:j",
                )
            )
    add_traces(db, traces, None)
    with db.transaction():
        insert_labels(db, labels)


def test_slices_find_the_planted_slice(db: Database):
    planted(db)
    found = service.slices(db, min_size=10)
    top = found.row(0, named=True)
    assert (top["mode_id"], top["slice"]) == ("1.3", "llm=L2 & benchmark=B3")
    assert top["size"] == 25 and top["significant"]
    assert top["ci_low"] > top["corpus_rate"]
    assert top["lift"] == pytest.approx(top["rate"] / top["corpus_rate"])
    # nothing about the mode without a planted slice is significant
    assert not found.filter((found["mode_id"] == "2.1") & found["significant"]).height
    only = service.slices(db, mode="2.1", min_size=10)
    assert set(only["mode_id"].to_list()) <= {"2.1"}


def test_slices_cli(db: Database):
    planted(db)
    db.close()
    result = runner.invoke(app, ["slices", "--db", db.path, "--mode", "1.3", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["slices"][0]["slice"] == "llm=L2 & benchmark=B3"
    bad = runner.invoke(app, ["slices", "--db", db.path, "--mode", "9.9"])
    assert bad.exit_code == 2 and "--mode 9.9" in bad.output


def test_audit_known_answers():
    rng = np.random.default_rng(0)
    high = audit(list(rng.random(500) < 0.6), 0.2)
    assert high.decision == "above" and high.decided_at < 60 and high.e_above >= 20
    low = audit(list(rng.random(500) < 0.02), 0.3)
    assert low.decision == "below" and low.e_below >= 20
    assert audit([], 0.2).decision == "undecided"
    with pytest.raises(ValueError):
        audit([True], 1.0)


def test_audit_keeps_its_error_level_at_the_threshold():
    rng = np.random.default_rng(7)
    wrong = sum(audit(list(rng.random(400) < 0.2), 0.2, alpha=0.1).decision == "above" for _ in range(300))
    assert wrong / 300 <= 0.1 + 0.03  # Ville: at most alpha, whatever the stopping time


def test_audit_service_orders_by_write_time(db: Database):
    planted(db)
    result = service.audit(db, mode="1.3", threshold=0.5)
    assert result.decision == "below"
    db.close()
    cli = runner.invoke(app, ["audit", "--db", db.path, "--mode", "1.3", "--threshold", "0.01"])
    assert cli.exit_code == 0 and "decision: rate is above 0.01" in cli.stdout
    bad = runner.invoke(app, ["audit", "--db", db.path, "--mode", "1.3", "--threshold", "2"])
    assert bad.exit_code == 2 and "--threshold 2" in bad.output
