"""Re-ingesting a corrected dataset file stores its newer labels; the older ones are kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tracefail.services.ingest import ingest
from tracefail.store import Database

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"
WW = SAMPLES / "whowhen" / "1.json"


def _whowhen(tmp_path: Path, **changes: object) -> Path:
    record = json.loads(WW.read_text())
    record.update(changes)
    path = tmp_path / "1.json"
    path.write_text(json.dumps(record))
    return path


@pytest.mark.parametrize(
    ("change", "column", "old", "new"),
    [
        ({"mistake_step": "3"}, "step_idx", 0, 3),
        ({"mistake_agent": "Verification_Expert"}, "agent", "Excel_Expert", "Verification_Expert"),
    ],
)
def test_a_corrected_attribution_is_stored_beside_the_old(
    db: Database, tmp_path: Path, change: dict, column: str, old: object, new: object
) -> None:
    ingest(db, [WW])
    report = ingest(db, [_whowhen(tmp_path, **change)])
    assert (report.duplicates, report.updated, report.quarantined) == (0, 1, 0)
    assert "newer dataset labels" in report.notes[0] and str(tmp_path) in report.notes[0]
    rows = db.rows(
        f"SELECT {column} FROM attributions WHERE source = 'dataset:whowhen' ORDER BY attribution_id"
    )
    assert rows == [(old,), (new,)]
    assert ingest(db, [_whowhen(tmp_path, **change)]).duplicates == 1  # now it is a duplicate


def test_a_changed_outcome_is_stored(db: Database, tmp_path: Path) -> None:
    ingest(db, [WW])
    report = ingest(db, [_whowhen(tmp_path, is_correct=True, ground_truth="9")])
    assert report.updated == 1
    assert db.rows("SELECT outcome, ground_truth FROM traces") == [("success", "9")]


def test_a_changed_mast_annotation_is_a_newer_label(db: Database, tmp_path: Path) -> None:
    source = SAMPLES / "mast" / "mad_full_sample.json"
    ingest(db, [source])
    records = json.loads(source.read_text())
    annotation = records[0]["mast_annotation"]
    annotation["2.1"] = 1 - annotation["2.1"]
    path = tmp_path / "mad_full_sample.json"
    path.write_text(json.dumps(records))
    report = ingest(db, [path])
    assert (report.updated, report.duplicates) == (1, len(records) - 1)
    trace_id = db.rows(
        "SELECT trace_id FROM labels WHERE mode_id = '2.1' GROUP BY trace_id HAVING count(*) = 2"
    )
    assert len(trace_id) == 1
    latest = db.rows(
        "SELECT arg_max(present, label_id), arg_min(present, label_id) FROM labels "
        "WHERE trace_id = ? AND mode_id = '2.1'",
        [trace_id[0][0]],
    )
    assert latest == [(bool(annotation["2.1"]), not annotation["2.1"])]


def test_changed_steps_are_still_a_named_conflict(db: Database, tmp_path: Path) -> None:
    ingest(db, [WW])
    record = json.loads(WW.read_text())
    record["history"][0]["content"] = "a different first step"
    path = tmp_path / "1.json"
    path.write_text(json.dumps(record))
    report = ingest(db, [path])
    assert report.quarantined == 1 and "already stored with different content" in report.messages[0]
    assert str(path) in report.messages[0]
