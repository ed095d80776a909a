"""Slices find a planted slice; the betting audit decides correctly and keeps its error level."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import polars as pl
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


def _feature_slices(n_features: int, monkeypatch: pytest.MonkeyPatch) -> tuple[pl.DataFrame, int]:
    """find_slices over 60 traces with `n_features` binned feature columns, and how many polars
    group-bys it ran."""
    from tracefail.analysis.slices import find_slices, slice_table

    rng = np.random.default_rng(3)
    ids = [f"t{i:02d}" for i in range(60)]
    attributes = pl.DataFrame(
        {"trace_id": ids, "llm": [f"L{i % 3}" for i in range(60)]}
        | {f"f{j}": rng.normal(size=60) for j in range(n_features)}
    )
    verdicts = pl.DataFrame(
        {
            "trace_id": ids * 2,
            "mode_id": ["1.3"] * 60 + ["2.1"] * 60,
            "present": [bool(i % 3 == 0 or (i < 20 and i % 2 == 0)) for i in range(60)]
            + [bool(rng.random() < 0.2) for _ in range(60)],
        }
    )
    conditions = slice_table(attributes, [f"f{j}" for j in range(n_features)])
    queries = 0
    group_by = pl.DataFrame.group_by

    def counted(self, *args, **kwargs):
        nonlocal queries
        queries += 1
        return group_by(self, *args, **kwargs)

    monkeypatch.setattr(pl.DataFrame, "group_by", counted)
    found = find_slices(verdicts, conditions, min_size=5, min_lift=1.2)
    monkeypatch.setattr(pl.DataFrame, "group_by", group_by)
    return found, queries


def _brute_force(conditions: pl.DataFrame, verdicts: pl.DataFrame) -> dict[tuple[str, str], tuple[int, int]]:
    """(mode, slice) -> (size, affected) by plain loops over every condition and pair of them."""
    present = {(t, m): p for t, m, p in verdicts.iter_rows()}
    modes = sorted(set(verdicts["mode_id"]))
    attrs = [c for c in conditions.columns if c != "trace_id"]
    counts: dict[tuple[str, str], list[int]] = {}
    for row in conditions.iter_rows(named=True):
        conds = [row[a] for a in attrs if row[a] is not None]
        for group in [*([c] for c in conds), *combinations(conds, 2)]:
            for m in modes:
                if (row["trace_id"], m) in present:
                    n_k = counts.setdefault((m, " & ".join(group)), [0, 0])
                    n_k[0] += 1
                    n_k[1] += present[(row["trace_id"], m)]
    return {key: (n, k) for key, (n, k) in counts.items()}


def test_slices_query_count_does_not_grow_with_features(monkeypatch: pytest.MonkeyPatch):
    """`slices` with features as fast as without: the pairs of conditions are counted in one
    query, not one query per pair of columns (1 min 57 s on the demo corpus with 6 featured traces)."""
    few, few_queries = _feature_slices(2, monkeypatch)
    many, many_queries = _feature_slices(30, monkeypatch)
    assert many_queries == few_queries
    assert many.height >= few.height > 0


def test_slices_count_every_condition_and_pair_exactly():
    from tracefail.analysis.slices import find_slices, slice_table

    rng = np.random.default_rng(5)
    ids = [f"t{i:02d}" for i in range(40)]
    attributes = pl.DataFrame(
        {
            "trace_id": ids,
            "llm": [f"L{i % 3}" for i in range(40)],
            "f0": [None if i % 7 == 0 else float(v) for i, v in enumerate(rng.normal(size=40))],
            "f1": rng.normal(size=40),
        }
    )
    verdicts = pl.DataFrame(
        {
            "trace_id": ids + ids[::2],
            "mode_id": ["1.3"] * 40 + ["2.1"] * 20,
            "present": [bool(rng.random() < 0.4) for _ in range(60)],
        }
    )
    conditions = slice_table(attributes, ["f0", "f1"])
    found = find_slices(verdicts, conditions, min_size=1, min_lift=0.0)
    expected = _brute_force(conditions, verdicts)
    got = {(m, s): (n, k) for m, s, n, k in found.select("mode_id", "slice", "size", "affected").iter_rows()}
    assert got and all(expected[key] == value for key, value in got.items())
    order = found.select("z", "size", "mode_id", "slice").rows()
    assert order == sorted(order, key=lambda r: (-r[0], -r[1], r[2], r[3]))  # a total order


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
